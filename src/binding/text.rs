//! A conversation's JSON (a get's) or a list's, for JavaScript, made so that V8 only copies
//! it.
//!
//! `napi_create_string_utf8` makes V8 decode the text, and V8 decodes UTF-8 slowly once it
//! leaves ASCII: about 50 µs for a conversation of 12 KB in Cyrillic, against 2 µs to copy
//! the same as UTF-16. A single character past U+00FF (a curly quote, an emoji) also turns the
//! whole text (about 10 KB a conversation, 500 KB for a list of 50) into a two-byte string,
//! twice the size, which `JSON.parse` then reads. So the text goes:
//! - as Latin-1 JSON meaning the same (`crate::json_text`: a character up to U+00FF as its
//!   byte, any other as its `\u` escape), copied with `napi_create_string_latin1` into a
//!   one-byte string: ASCII as it is, and text with a few characters past U+00FF;
//! - else as UTF-16, copied with `napi_create_string_utf16` into the two-byte string V8 would
//!   have made of it: text whose escapes would make it more than a quarter longer (mostly in
//!   Cyrillic, Greek or CJK scripts, say: two or three UTF-8 bytes a character, six
//!   escaped), which is counted before anything is written. Rust's encoder does in about
//!   8 µs what V8's decoder does in 50.
//!
//! The Redis store makes it on tokio's thread (`From<String>` in the call's future); the
//! in-memory store, on the caller's.
//!
//! An external one-byte string (`node_api_create_external_string_latin1`), which would skip
//! the copy, was tried and not kept: V8 keeps such strings in old space, so only a full GC
//! frees them, and once V8 is told of their bytes (as it must be, or 2,000 lists hold 1 GB)
//! it runs full GCs so often that a list cost more than a copy (docs/performance.md,
//! "Changes measured").

use std::ptr;

use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName};
use napi::{check_status, sys, Result, ValueType};

use crate::json_text::into_latin1_json;

/// JSON text for JavaScript, made ready before the call returns to JavaScript (the Redis
/// store does it on tokio's thread).
pub enum JsonText {
    /// Latin-1 JSON meaning the same: a one-byte string, copied as is.
    Latin1(Vec<u8>),
    /// Text mostly past U+00FF: a two-byte string, copied as is.
    Utf16(Vec<u16>),
}

impl From<String> for JsonText {
    fn from(text: String) -> Self {
        match into_latin1_json(text) {
            Ok(latin1) => JsonText::Latin1(latin1),
            Err(text) => {
                // At most one unit a UTF-8 byte (one for one to three bytes, two for four); the
                // rest is given back (for CJK text two thirds of it, untouched).
                let mut utf16 = Vec::with_capacity(text.len());
                utf16.extend(text.encode_utf16());
                utf16.shrink_to_fit();
                JsonText::Utf16(utf16)
            }
        }
    }
}

impl ToNapiValue for JsonText {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        match value {
            JsonText::Latin1(latin1) => {
                let mut value = ptr::null_mut();
                // SAFETY: on the JavaScript thread with its env, as every to_napi_value is; V8
                // copies the bytes before this returns.
                check_status!(unsafe {
                    sys::napi_create_string_latin1(
                        env,
                        latin1.as_ptr().cast(),
                        latin1.len() as isize,
                        &mut value,
                    )
                })?;
                Ok(value)
            }
            JsonText::Utf16(utf16) => {
                let mut value = ptr::null_mut();
                // SAFETY: as above.
                check_status!(unsafe {
                    sys::napi_create_string_utf16(
                        env,
                        utf16.as_ptr(),
                        utf16.len() as isize,
                        &mut value,
                    )
                })?;
                Ok(value)
            }
        }
    }
}

impl TypeName for JsonText {
    fn type_name() -> &'static str {
        "string"
    }

    fn value_type() -> ValueType {
        ValueType::String
    }
}

/// A string from JavaScript (a set's JSON) as UTF-8, copied in one pass. napi-rs's `String`
/// asks V8 for the UTF-8 length first, a scan of the whole text, and zeroes its buffer before
/// V8 writes it: for a set's 9.7 KB document that was 1.6% of a set's CPU samples
/// (`v8::String::Utf8Length`, `memset`). Here the buffer is sized from the UTF-16 length,
/// which V8 knows (three UTF-8 bytes a unit at most, a lone surrogate becoming U+FFFD as with
/// napi-rs), and V8 writes the text into it once; a buffer left mostly unused is shrunk
/// (below). Past [`ONE_PASS_UNITS`] the exact length is asked for first, as napi-rs does, so
/// that a huge argument does not take three times its size.
pub struct Utf8Text(pub String);

/// The longest text (in UTF-16 units) copied in one pass: 3 MiB (and a byte) of buffer at most.
const ONE_PASS_UNITS: usize = 1 << 20;

/// Unused buffer past which a one-pass copy is shrunk to its text (a 10 KB document's 20 KB is
/// kept: giving it back would cost a copy a set).
const SHRINK_SLACK: usize = 64 << 10;

impl FromNapiValue for Utf8Text {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        let mut units = 0;
        // SAFETY (both calls): on the JavaScript thread with its env, as every from_napi_value
        // is; V8 writes at most `capacity` bytes (the last one a NUL) into `bytes`' spare
        // capacity and says how many it wrote before the NUL.
        check_status!(
            unsafe { sys::napi_get_value_string_utf16(env, value, ptr::null_mut(), 0, &mut units) },
            "expected a string"
        )?;
        if units > ONE_PASS_UNITS {
            return Ok(Utf8Text(unsafe { String::from_napi_value(env, value) }?));
        }
        let capacity = units * 3 + 1;
        let mut bytes = Vec::<u8>::with_capacity(capacity);
        let mut written = 0;
        check_status!(unsafe {
            sys::napi_get_value_string_utf8(
                env,
                value,
                bytes.as_mut_ptr().cast(),
                capacity,
                &mut written,
            )
        })?;
        // SAFETY: V8 wrote `written` bytes of UTF-8 (invalid sequences replaced) into the spare
        // capacity, `written < capacity`.
        unsafe { bytes.set_len(written) };
        // The text lives as long as its call (its turn's wait and retries included): a large
        // ASCII one gives back the two thirds it did not use. Only a buffer less than half
        // used is shrunk, since mimalloc reallocates in place (keeping the block) down to half
        // its size; text of 1.5 bytes a unit or more (Cyrillic, Greek) keeps up to twice its
        // size for the call.
        if capacity - written > SHRINK_SLACK && capacity > 2 * written {
            bytes.shrink_to_fit();
        }
        Ok(Utf8Text(unsafe { String::from_utf8_unchecked(bytes) }))
    }
}

impl TypeName for Utf8Text {
    fn type_name() -> &'static str {
        "string"
    }

    fn value_type() -> ValueType {
        ValueType::String
    }
}
