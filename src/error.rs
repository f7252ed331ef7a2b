//! The one error type of the store, with the stable codes of docs/DESIGN.md.

use std::fmt;

/// The stable `code` a rejection carries in JavaScript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Unavailable,
    InvalidArgument,
    CorruptRecord,
    InvalidConfig,
    Closed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unavailable => "STORE_UNAVAILABLE",
            ErrorCode::InvalidArgument => "STORE_INVALID_ARGUMENT",
            ErrorCode::CorruptRecord => "STORE_CORRUPT_RECORD",
            ErrorCode::InvalidConfig => "STORE_INVALID_CONFIG",
            ErrorCode::Closed => "STORE_CLOSED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub code: ErrorCode,
    pub message: String,
}

impl StoreError {
    /// Ids and keys in the message are the caller's or another writer's: control characters
    /// are escaped, so a message is one line that says what it says.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        StoreError {
            code,
            message: printable(message.into()),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn corrupt_record(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::CorruptRecord, message)
    }

    pub fn invalid_config(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidConfig, message)
    }

    pub fn closed() -> Self {
        Self::new(ErrorCode::Closed, "the store is closed")
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

/// `text` with every control character (and the Unicode line and paragraph separators)
/// escaped as `\n`, `\u{1b}`…: no id or key can break a log line or forge another.
pub fn printable(text: String) -> String {
    let unsafe_char = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if !text.chars().any(unsafe_char) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Joins an error and its `source()` chain into one line, for messages and logs. A TLS
/// failure in the chain is said as one: what the handshake failed on, not a bare I/O error.
pub fn describe_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    match tls_failure(error) {
        Some(tls) => {
            let raw = tls.to_string();
            let said = describe_tls(tls);
            if text.contains(&raw) {
                text.replacen(&raw, &said, 1)
            } else {
                format!("{text}: {said}")
            }
        }
        None => text,
    }
}

/// The rustls error in `error`'s chain. tokio-rustls wraps it in an `io::Error`, whose
/// `source()` skips it, and redis-rs keeps that in an `Arc<dyn Error>`, whose `source()` is
/// the I/O error's: so each link is unwrapped by hand too.
fn tls_failure<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut next = Some(error);
    while let Some(error) = next {
        let unwrapped: &(dyn std::error::Error + 'static) = match error.downcast_ref::<Shared>() {
            Some(shared) => shared.as_ref(),
            None => error,
        };
        for link in [error, unwrapped] {
            if let Some(tls) = link.downcast_ref::<rustls::Error>() {
                return Some(tls);
            }
            let payload = link
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            if payload.is_some() {
                return payload;
            }
        }
        next = error.source();
    }
    None
}

/// A failed handshake, said as what failed and why.
fn describe_tls(error: &rustls::Error) -> String {
    use crate::conn::tls::OFFERED;
    use rustls::{AlertDescription, Error, PeerIncompatible};
    let why = match error {
        // OpenSSL sends HandshakeFailure both when nothing is in common and, over TLS 1.2,
        // when a client certificate it requires is missing: both causes are said.
        Error::AlertReceived(alert @ AlertDescription::HandshakeFailure) => format!(
            "the server refused it ({alert:?} alert): likely no TLS version and cipher suite \
             in common ({OFFERED}), or the server requires a client certificate (`tls.cert` \
             and `tls.key`) that was not sent or not accepted"
        ),
        Error::AlertReceived(alert @ AlertDescription::InsufficientSecurity) => format!(
            "the server refused it ({alert:?} alert): likely no TLS version and cipher suite \
             in common ({OFFERED})"
        ),
        Error::AlertReceived(alert @ AlertDescription::CertificateRequired) => format!(
            "the server refused it ({alert:?} alert): it requires a client certificate \
             (`tls.cert` and `tls.key`)"
        ),
        Error::AlertReceived(alert @ AlertDescription::ProtocolVersion) => format!(
            "the server refused it ({alert:?} alert): no TLS version in common (the store \
             speaks TLS 1.2 and 1.3)"
        ),
        Error::AlertReceived(alert) => format!("the server refused it ({alert:?} alert)"),
        Error::PeerIncompatible(
            why @ (PeerIncompatible::NoCipherSuitesInCommon
            | PeerIncompatible::ServerDoesNotSupportTls12Or13
            | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig),
        ) => format!("nothing in common with the server ({why:?}; {OFFERED})"),
        Error::InvalidCertificate(why) => format!("the server's certificate was refused: {why}"),
        other => other.to_string(),
    };
    format!("TLS handshake failed: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rustls failure as redis-rs reports it: inside an `io::Error`, inside a `RedisError`.
    fn from_the_wire(tls: rustls::Error) -> redis::RedisError {
        redis::RedisError::from(std::io::Error::new(std::io::ErrorKind::InvalidData, tls))
    }

    #[test]
    fn a_refused_handshake_says_tls_and_why() {
        let text = describe_chain(&from_the_wire(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        )));
        assert!(text.starts_with("TLS handshake failed: "), "{text}");
        assert!(text.contains("HandshakeFailure"), "{text}");
        // Both likely causes: nothing in common, or a client certificate the server requires.
        assert!(
            text.contains("likely no TLS version and cipher suite in common"),
            "{text}"
        );
        assert!(text.contains("no CBC"), "{text}");
        assert!(
            text.contains("or the server requires a client certificate (`tls.cert` and `tls.key`)"),
            "{text}"
        );
        assert!(!text.contains("received fatal alert"), "said twice: {text}");

        let text = describe_chain(&from_the_wire(rustls::Error::AlertReceived(
            rustls::AlertDescription::InsufficientSecurity,
        )));
        assert!(text.contains("cipher suite in common"), "{text}");
        assert!(!text.contains("client certificate"), "{text}");

        let text = describe_chain(&from_the_wire(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired,
        )));
        assert!(text.contains("requires a client certificate"), "{text}");

        let text = describe_chain(&from_the_wire(rustls::Error::AlertReceived(
            rustls::AlertDescription::ProtocolVersion,
        )));
        assert!(text.contains("no TLS version in common"), "{text}");

        let text = describe_chain(&from_the_wire(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13,
        )));
        assert!(
            text.contains("TLS handshake failed: nothing in common"),
            "{text}"
        );
    }

    #[test]
    fn a_refused_certificate_still_says_certificate() {
        let text = describe_chain(&from_the_wire(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        )));
        assert_eq!(
            text,
            "TLS handshake failed: the server's certificate was refused: UnknownIssuer"
        );
    }

    #[test]
    fn other_errors_are_joined_as_before() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(describe_chain(&redis::RedisError::from(io)), "refused");
    }

    #[test]
    fn messages_and_log_lines_stay_one_line() {
        assert_eq!(printable("conv:a\nb".into()), "conv:a\\nb");
        assert_eq!(
            printable("x\r\u{1b}[2J\u{2028}".into()),
            "x\\r\\u{1b}[2J\\u{2028}"
        );
        assert_eq!(printable("plain é 🎉".into()), "plain é 🎉");
        let error = StoreError::corrupt_record("conv:evil\n[STORE] forged");
        assert!(!error.message.contains('\n'));
    }
}
