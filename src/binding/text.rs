//! JSON text handed to JavaScript without a copy into V8's heap, where Node can.
//!
//! A list's JSON (about 500 KB for 50 conversations) made with `napi_create_string_utf8` is
//! decoded from UTF-8 and copied into a fresh V8 string. One that big goes to V8's
//! large-object space: an mmap'd region per string, faulted in page by page, and counted
//! against the old generation, so lists drive full GCs. An external one-byte string keeps the
//! bytes where Rust put them and V8 reads them in place; its finalizer frees them when the
//! string dies. Text beyond ASCII goes as Latin-1 JSON meaning the same
//! (`crate::json_text`), unless that would make it more than a quarter longer. README,
//! "Performance", has the figures.
//!
//! `node_api_create_external_string_latin1` is in Node from 20.4 (18.18) on. It is looked up
//! when first needed instead of linked: the addon is linked with immediate binding, so a
//! symbol the running Node lacks would fail the load itself.
//!
//! V8 does not count an external string's bytes towards the next full GC (the strings live
//! in old space, and only a full GC frees them): without help, lists would pile up their
//! bytes until something else prompted one (1 GB after 2,000 lists, measured). So V8 is told
//! of each string's bytes (`napi_adjust_external_memory`), and of the bytes freed since, the
//! next time the JavaScript thread makes one; the finalizer may run inside a GC, where
//! Node-API must not be called, so it only counts.

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::OnceLock;

use napi::bindgen_prelude::{ToNapiValue, TypeName};
use napi::{check_status, sys, Result, ValueType};

use crate::json_text::into_latin1_json;

/// Text shorter than this is copied as usual: the external string's bookkeeping (a finalizer
/// and an entry in V8's external string table) would cost more than the copy saves.
const EXTERNAL_MIN_BYTES: usize = 64 * 1024;

/// JSON text for JavaScript, made ready on tokio's thread (the Latin-1 form of a list can
/// take a millisecond, which the JavaScript thread should not pay).
pub enum JsonText {
    /// Latin-1 JSON meaning the same, for an external one-byte string.
    Latin1(Vec<u8>),
    /// Text to copy: shorter than `EXTERNAL_MIN_BYTES`, mostly past U+00FF, or for a Node
    /// without external strings.
    Utf8(String),
}

impl From<String> for JsonText {
    fn from(text: String) -> Self {
        if text.len() < EXTERNAL_MIN_BYTES || create_external_latin1().is_none() {
            return JsonText::Utf8(text);
        }
        match into_latin1_json(text) {
            Ok(latin1) => JsonText::Latin1(latin1),
            Err(text) => JsonText::Utf8(text),
        }
    }
}

type CreateExternalLatin1 = unsafe extern "C" fn(
    env: sys::napi_env,
    text: *mut c_char,
    length: usize,
    finalize: sys::napi_finalize,
    hint: *mut c_void,
    result: *mut sys::napi_value,
    copied: *mut bool,
) -> sys::napi_status;

/// The running Node's `node_api_create_external_string_latin1`, if it has one.
fn create_external_latin1() -> Option<CreateExternalLatin1> {
    static CREATE: OnceLock<Option<CreateExternalLatin1>> = OnceLock::new();
    *CREATE.get_or_init(|| {
        const NAME: &[u8] = b"node_api_create_external_string_latin1\0";
        // The host is the process itself, loaded for as long as the process lives; an error
        // means no external strings, never a panic (this runs as a promise settles).
        #[cfg(unix)]
        {
            use libloading::os::unix::{Library, RTLD_LAZY};
            // SAFETY: opening the process itself runs no initialisers.
            let host = unsafe { Library::open(None::<&std::ffi::OsStr>, RTLD_LAZY) }.ok()?;
            // SAFETY: the symbol, where Node has it, has this signature (node_api.h).
            let create = unsafe { host.get::<CreateExternalLatin1>(NAME) }
                .ok()
                .map(|f| *f);
            std::mem::forget(host);
            create
        }
        #[cfg(windows)]
        {
            let host = libloading::os::windows::Library::this().ok()?;
            // SAFETY: as above.
            let create = unsafe { host.get::<CreateExternalLatin1>(NAME) }
                .ok()
                .map(|f| *f);
            std::mem::forget(host);
            create
        }
        #[cfg(not(any(unix, windows)))]
        {
            let _ = NAME;
            None
        }
    })
}

thread_local! {
    /// Bytes of this thread's external strings freed since V8 was last told. A finalizer
    /// runs on the thread of the isolate that owns the string, as its next string is made.
    static FREED: Cell<i64> = const { Cell::new(0) };
}

/// Frees the bytes of an external string V8 no longer needs (or has copied).
unsafe extern "C" fn free_text(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the `Box<Vec<u8>>` leaked in `external`, handed back exactly once.
    let bytes = unsafe { Box::from_raw(hint.cast::<Vec<u8>>()) };
    let held = bytes.capacity() as i64;
    drop(bytes);
    // Never fails: at thread exit the count has no one left to tell.
    let _ = FREED.try_with(|freed| freed.set(freed.get() + held));
}

/// An external one-byte string over `bytes` (Latin-1), or the bytes back when Node cannot
/// make one.
unsafe fn external(
    env: sys::napi_env,
    create: CreateExternalLatin1,
    bytes: Vec<u8>,
) -> std::result::Result<sys::napi_value, Vec<u8>> {
    let bytes = Box::new(bytes);
    let (data, length, held) = (bytes.as_ptr(), bytes.len(), bytes.capacity());
    let hint = Box::into_raw(bytes);
    let mut value = ptr::null_mut();
    let mut copied = false;
    // SAFETY: `data` stays valid until `free_text` runs, which Node does once, when the string
    // dies or, if it copied the bytes, at once.
    let status = unsafe {
        create(
            env,
            data.cast_mut().cast(),
            length,
            Some(free_text),
            hint.cast(),
            &mut value,
            &mut copied,
        )
    };
    if status == sys::Status::napi_ok {
        // What this string holds (its allocation), less what strings since freed: V8 weighs
        // it when it decides on a full GC. (Should Node have copied, the finalizer has
        // already run.)
        let freed = FREED.with(|freed| freed.replace(0));
        let mut total = 0;
        // SAFETY: on the JavaScript thread with its env. A failure only leaves V8's
        // estimate where it was.
        unsafe { sys::napi_adjust_external_memory(env, held as i64 - freed, &mut total) };
        return Ok(value);
    }
    // On failure Node never calls the finalizer: the bytes are still ours.
    // SAFETY: `hint` came from `Box::into_raw` above and was not handed over.
    Err(*unsafe { Box::from_raw(hint) })
}

impl ToNapiValue for JsonText {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        // SAFETY (each call below): on the JavaScript thread with its env, as every
        // to_napi_value is.
        match value {
            JsonText::Utf8(text) => unsafe { String::to_napi_value(env, text) },
            JsonText::Latin1(latin1) => {
                let made = match create_external_latin1() {
                    Some(create) => unsafe { external(env, create, latin1) },
                    None => Err(latin1),
                };
                match made {
                    Ok(value) => Ok(value),
                    Err(latin1) => unsafe { latin1_copy(env, &latin1) },
                }
            }
        }
    }
}

/// A one-byte string copied from Latin-1 bytes.
unsafe fn latin1_copy(env: sys::napi_env, bytes: &[u8]) -> Result<sys::napi_value> {
    let mut value = ptr::null_mut();
    // SAFETY: on the JavaScript thread with its env; `bytes` is read before this returns.
    check_status!(unsafe {
        sys::napi_create_string_latin1(env, bytes.as_ptr().cast(), bytes.len() as isize, &mut value)
    })?;
    Ok(value)
}

impl TypeName for JsonText {
    fn type_name() -> &'static str {
        "string"
    }

    fn value_type() -> ValueType {
        ValueType::String
    }
}
