//! Leaf values of a stored conversation, as the raw JSON text of one literal: string
//! literals are checked on their raw text and unescaped only when a check needs it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};

use super::timestamp::parse_utc_bytes;

/// The characters of a JSON string literal, None when `raw` is another type.
pub(super) fn string_content(raw: &str) -> Option<Cow<'_, [u8]>> {
    let inner = string_inner(raw)?;
    Some(if inner.contains('\\') {
        Cow::Owned(unescape(raw))
    } else {
        Cow::Borrowed(inner.as_bytes())
    })
}

/// The text between the quotes of a JSON string literal, escapes left as they are.
fn string_inner(raw: &str) -> Option<&str> {
    raw.strip_prefix('"')?.strip_suffix('"')
}

/// Decodes an already validated string literal; lone surrogates become WTF-8.
fn unescape(raw: &str) -> Vec<u8> {
    struct Bytes;
    impl Visitor<'_> for Bytes {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
    }
    serde_json::Deserializer::from_str(raw)
        .deserialize_bytes(Bytes)
        .unwrap_or_default()
}

/// Applies an ASCII check to a string literal, unescaping only if the raw text fails it.
fn check_str<T>(raw: &str, check: impl Fn(&[u8]) -> Option<T>) -> Option<T> {
    let inner = string_inner(raw)?;
    check(inner.as_bytes()).or_else(|| {
        if inner.contains('\\') {
            check(&unescape(raw))
        } else {
            None
        }
    })
}

pub(super) fn is_uuid(raw: &str) -> bool {
    check_str(raw, |b| {
        (b.len() == 36
            && b.iter().enumerate().all(|(i, &c)| match i {
                8 | 13 | 18 | 23 => c == b'-',
                _ => c.is_ascii_hexdigit(),
            }))
        .then_some(())
    })
    .is_some()
}

pub(super) fn is_one_of(raw: &str, options: &[&str]) -> bool {
    check_str(raw, |b| {
        options.iter().any(|o| o.as_bytes() == b).then_some(())
    })
    .is_some()
}

pub(super) fn timestamp(raw: &str) -> Option<i64> {
    check_str(raw, parse_utc_bytes)
}

pub(super) fn is_timestamp(raw: &str) -> bool {
    timestamp(raw).is_some()
}

pub(super) fn is_string(raw: &str) -> bool {
    raw.starts_with('"')
}

/// `""` is the only spelling of the empty string; escapes always yield a character.
pub(super) fn is_non_empty_string(raw: &str) -> bool {
    is_string(raw) && raw.len() > 2
}

pub(super) fn is_object(raw: &str) -> bool {
    raw.starts_with('{')
}

/// An integer >= 0 as Zod's `z.number().int().nonnegative()` judges the number JS reads
/// (`Number.isInteger`: `3.0` is 3, `2 ** 53` and `1e300` are integers, `1e400` is Infinity
/// and is not).
pub(super) fn is_step(raw: &str) -> bool {
    let starts_numeric = raw.starts_with(|c: char| c == '-' || c.is_ascii_digit());
    match raw.parse::<f64>() {
        Ok(n) if starts_numeric => n.is_finite() && n.trunc() == n && n >= 0.0,
        _ => false,
    }
}

/// The text of a non-empty string literal; `None` when it holds a lone surrogate, which has
/// no Rust `String` (and could alias another id once replaced).
pub(super) fn well_formed_text(raw: &str) -> Option<String> {
    let inner = string_inner(raw)?;
    if inner.is_empty() {
        return None;
    }
    if inner.contains('\\') {
        String::from_utf8(unescape(raw)).ok()
    } else {
        Some(inner.to_owned())
    }
}
