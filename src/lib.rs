//! `@copilot-chat/redis-store`: chat conversations in Redis over TLS, as a Node.js addon.
#![deny(clippy::all)]
// Without the binding (`cargo test`) nothing calls the store's API: dead code and unused
// imports are reported by the build with the binding on.
#![cfg_attr(not(feature = "binding"), allow(dead_code, unused_imports))]

mod conn;
mod error;
mod json_text;
mod log;
mod schema;
mod store;

#[cfg(feature = "binding")]
mod binding;

/// mimalloc instead of the C library's malloc: cheaper for the store's many short-lived buffers,
/// most of all those allocated on one thread and freed on another (docs/performance.md,
/// "Changes measured").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
