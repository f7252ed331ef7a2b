//! `@copilot-chat/redis-store`: chat conversations in Redis over TLS, as a Node.js addon.
#![deny(clippy::all)]

pub mod config;
pub mod conn;
pub mod error;
pub mod schema;
pub mod store;

#[cfg(feature = "binding")]
mod binding;
