//! Validation of `StoredConversation` JSON, mirroring the server's Zod schema
//! (see docs/DESIGN.md, "StoredConversation"), in one pass without building a tree.

mod conversation;
mod literal;
mod timestamp;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::de::{Deserialize, IgnoredAny};

/// What the store needs to know of a valid conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    pub user_id: String,
    /// Validated as a UUID, so plain ASCII.
    pub external_id: String,
    pub updated_at_ms: i64,
    /// The JSON carries `sdkConversationRef`, which is never stored (another writer's record,
    /// or a `toJSON` that put it back).
    pub has_live_ref: bool,
}

/// A validation failure; Display is the message, e.g. "history[3].role: expected 'user' | 'agent'".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    pub message: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SchemaError {}

/// Validates one stored conversation given as JSON text (exactly what JS JSON.stringify produced).
pub fn validate_conversation(json: &str) -> Result<ConversationSummary, SchemaError> {
    let ctx = conversation::Ctx::default();
    conversation::validate(json, &ctx).map_err(|err| {
        // The pass stops at the first bad value, which may come before a syntax
        // error further on: malformed text must always read as invalid JSON.
        let message = match (ctx.take(), syntax_error(json)) {
            (_, Some(syntax)) => format!("invalid JSON: {syntax}"),
            (Some(message), None) => message,
            (None, None) => format!("invalid JSON: {err}"),
        };
        SchemaError { message }
    })
}

/// Parses without validating; only runs once validation has already failed.
fn syntax_error(json: &str) -> Option<serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(json);
    IgnoredAny::deserialize(&mut de)
        .and_then(|_| de.end())
        .err()
}
