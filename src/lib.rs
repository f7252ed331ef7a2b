//! `@copilot-chat/redis-store`: chat conversations in Redis over TLS, as a Node.js addon.
#![deny(clippy::all)]
// Without the binding only the tests call the store: dead code is reported with it on.
#![cfg_attr(not(feature = "binding"), allow(dead_code))]

pub mod conn;
pub mod error;
mod log;
pub mod schema;
pub mod store;

#[cfg(feature = "binding")]
mod binding;
