//! The two stores and what they share: options, key layout, argument rules.

mod keys;
mod listing;
mod memory;
mod observed;
mod options;
mod order;
mod redis;
mod stats;
mod writes;

use crate::error::{StoreError, StoreResult};
use crate::schema::{self, ConversationSummary};

pub use crate::conn::{CredentialSource, CredentialsProvider, Token};
pub use crate::log::{LogLevel, Logger};
use keys::KeyLayout;
pub use memory::MemoryStore;
pub use observed::{internal_error, run_batch};
use options::MAX_LIST_BYTES;
pub use options::{Options, RedisSettings, StoreOptions};
pub use order::{CallKind, Turn};
pub use redis::{Admitted, RedisStore};
use stats::CallStats;
pub use stats::{epoch_ms, Operation, OperationStats, StatsSnapshot, ERROR_CODES};

/// `status`, in ioredis' words; `Ready` means usable now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreStatus {
    Connecting,
    Ready,
    Reconnecting,
    End,
}

/// The user index outlives its conversations by an hour, so no live conversation loses its entry.
const INDEX_TTL_MARGIN_SECONDS: u64 = 3600;

/// A `set` into an index of more than `listLimit` entries checks this many of its oldest and
/// drops those whose record is gone: the index of an active user stays bounded.
const TRIM_BATCH: usize = 4;

/// One MGET of a list asks for at most this many bytes in the worst case (every record at
/// `maxRecordBytes`), so no single reply holds the shared connection for long.
const LIST_CHUNK_BYTES: usize = 64 * 1024 * 1024;

/// Rounds of `listLimit` index entries a list reads at most, when entries whose record is
/// gone leave it short.
const LIST_ROUNDS: usize = 4;

/// The longest id or userId, in UTF-8 bytes. A key longer than the server's `proto-max-bulk-len`
/// makes it close the shared connection, failing every caller's calls.
const MAX_ID_BYTES: usize = 64 * 1024;

fn check_id(name: &str, id: &str) -> StoreResult<()> {
    if id.is_empty() {
        return Err(StoreError::invalid_argument(format!(
            "{name}: expected a non-empty string"
        )));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(StoreError::invalid_argument(format!(
            "{name}: {} bytes of UTF-8, more than {MAX_ID_BYTES}",
            id.len()
        )));
    }
    Ok(())
}

/// Everything `set` checks before anything is written.
fn check_record(options: &StoreOptions, id: &str, json: &str) -> StoreResult<ConversationSummary> {
    check_id("id", id)?;
    if json.len() > options.max_record_bytes {
        return Err(StoreError::invalid_argument(format!(
            "conversation: {} bytes of JSON, more than maxRecordBytes ({})",
            json.len(),
            options.max_record_bytes
        )));
    }
    let summary =
        schema::validate_conversation(json).map_err(|e| StoreError::invalid_argument(e.message))?;
    // Its owner's list could never be asked for (listByUser refuses a userId that long).
    check_id("userId", &summary.user_id)?;
    // Stored under one id and listed under another, a conversation could never be found again.
    if summary.external_id != id {
        return Err(StoreError::invalid_argument(
            "id: must equal the conversation's externalId",
        ));
    }
    // `index.js` strips it; only a caller of the native class directly gets here.
    if summary.has_live_ref {
        return Err(StoreError::invalid_argument(
            "conversation.sdkConversationRef: a live SDK object is never stored",
        ));
    }
    Ok(summary)
}

/// Validates a stored value on its way out; `key` names it in the error.
fn check_stored(key: &str, bytes: Vec<u8>) -> StoreResult<(String, ConversationSummary)> {
    let json = String::from_utf8(bytes)
        .map_err(|_| StoreError::corrupt_record(format!("{key}: not UTF-8 text")))?;
    match schema::validate_conversation(&json) {
        Ok(summary) => Ok((json, summary)),
        Err(e) => Err(StoreError::corrupt_record(format!("{key}: {}", e.message))),
    }
}

/// How many of `records` (newest first) one list returns: all of them, unless their JSON
/// array would pass `MAX_LIST_BYTES`; then the newest that fit.
fn fitting_records<'a>(records: impl IntoIterator<Item = &'a str>) -> usize {
    let mut bytes = 2; // the brackets
    let mut count = 0;
    for record in records {
        bytes += record.len() + usize::from(count > 0);
        if bytes as u64 > MAX_LIST_BYTES {
            break;
        }
        count += 1;
    }
    count
}

/// Joins validated JSON records into one JSON array, so JavaScript parses a list in one call.
fn json_array<'a>(records: impl IntoIterator<Item = &'a str, IntoIter: Clone>) -> String {
    let records = records.into_iter();
    // Sized at once: a list's ~500 KB would otherwise be copied each time it doubles.
    let length = records
        .clone()
        .map(|record| record.len() + 1)
        .sum::<usize>()
        + 1;
    let mut out = String::with_capacity(length.max(2));
    out.push('[');
    for (i, record) in records.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(record);
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_returns_the_newest_records_whose_json_array_fits_in_max_list_bytes() {
        let mib = |n: usize| "x".repeat(n << 20);
        let (hundred, fifty_five) = (mib(100), mib(55));
        assert_eq!(fitting_records(["{}", "{}"]), 2);
        assert_eq!(fitting_records(Vec::<&str>::new()), 0);
        // 100 + 100 + 55 MiB, two commas and the brackets: 255 MiB and 4 bytes.
        assert_eq!(fitting_records([&*hundred, &hundred, &fifty_five]), 3);
        // One more MiB passes 256 MiB: the third record is left out, and any after it.
        let fifty_six = mib(56);
        assert_eq!(fitting_records([&*hundred, &hundred, &fifty_six, "{}"]), 2);
        // Exactly at the bound fits.
        let rest = "x".repeat(MAX_LIST_BYTES as usize - (200 << 20) - 4);
        assert_eq!(fitting_records([&*hundred, &hundred, &rest]), 3);
        assert_eq!(fitting_records([&*hundred, &hundred, &rest, ""]), 3);
    }
}
