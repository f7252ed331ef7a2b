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

/// Joins an error and its `source()` chain into one line, for messages and logs.
pub fn describe_chain(error: &dyn std::error::Error) -> String {
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
    text
}

#[cfg(test)]
mod tests {
    use super::*;

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
