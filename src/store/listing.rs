//! `listByUser` on Redis, and the healing and trimming of user indexes that rides on reads
//! and writes.
//!
//! A list reads the index newest first, fetches the records, and leaves out entries whose
//! record is gone or now another user's. When that leaves fewer than `listLimit`, it reads
//! further down the index, for a bounded number of rounds, so it returns what the in-memory
//! store returns. Records are fetched in batches of bounded worst-case size (one MGET each on
//! a standalone server: `LIST_CHUNK_BYTES`, or one record when `maxRecordBytes` is larger),
//! and the batches of one pass are sent together (one round trip), `MAX_LIST_BYTES` and one
//! record at most in the worst case. Healing is best effort: it is skipped when it would
//! outlast the call's deadline, and a refusal never fails the read.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use futures_util::future::join_all;
use redis::{RedisError, Value};
use tokio::time::{timeout_at, Instant};

use super::options::MAX_LIST_BYTES;
use super::redis::{
    eval_one_key, is_wrong_type, random_bits, read_record, wrong_type_names, RedisStore,
    ONE_SLOT_HEAL_FINISH, ONE_SLOT_HEAL_MARK,
};
use super::{check_stored, fitting_records, json_array, LIST_CHUNK_BYTES, LIST_ROUNDS};
use crate::conn::{server_error, CallError, Connection};
use crate::error::describe_chain;

/// One index entry as Redis returned it: the member and score bytes are what
/// compare-and-remove sends back.
pub(super) struct Entry {
    member: Vec<u8>,
    score: Vec<u8>,
}

impl Entry {
    /// The conversation id; `None` for a member that is not UTF-8 (no id of ours is).
    fn id(&self) -> Option<&str> {
        std::str::from_utf8(&self.member).ok()
    }
}

/// Why an entry is left out: its record was missing, or held another user's conversation
/// (by the SHA-1 of the bytes read, so the heal removes it only if it is still that record).
pub(super) enum Stale {
    Missing,
    /// The SHA-1 (hex) and length of the foreign record.
    Foreign(String, usize),
}

/// One heal hashes at most this many bytes of foreign records on Redis's thread; entries
/// beyond it are left for a later list.
const HEAL_FOREIGN_BYTES: usize = 8 * 1024 * 1024;

/// A score of its own for one heal's marks, far below any real one (an `updatedAt` in epoch
/// ms): -1e300 times 1 + 52 random bits, written so that it parses back to the same double.
fn heal_mark() -> String {
    let fraction = (random_bits() >> 76) as f64 / (1u64 << 52) as f64;
    format!("{:e}", -1e300 * (1.0 + fraction))
}

/// What one list may still fetch, in bytes, after the records fetched so far.
fn room(records: &[String]) -> usize {
    let fetched: usize = records.iter().map(String::len).sum();
    (MAX_LIST_BYTES as usize).saturating_sub(fetched)
}

/// Flat `member, score, …` (RESP2) or `[member, score]` pairs (RESP3).
fn parse_entries(reply: Value) -> Vec<Entry> {
    let Value::Array(items) = reply else {
        return Vec::new();
    };
    let bytes = |value: Value| match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.into_bytes()),
        Value::Double(score) => Some(score.to_string().into_bytes()),
        _ => None,
    };
    let mut entries = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let Some(item) = items.next() {
        let pair = match item {
            Value::Array(pair) if pair.len() == 2 => {
                let mut pair = pair.into_iter();
                (pair.next(), pair.next())
            }
            member => (Some(member), items.next()),
        };
        if let (Some(Some(member)), Some(Some(score))) = (pair.0.map(bytes), pair.1.map(bytes)) {
            entries.push(Entry { member, score });
        }
    }
    entries
}

impl RedisStore {
    /// The records of `keys`, in order. Standalone: one MGET. One slot per command: one GET
    /// per key, in parallel. A multi-key MGET of keys that share a slot answers `TRYAGAIN`
    /// for as long as that slot is being migrated key by key (redis-rs then retries until the
    /// deadline), while a single GET is redirected with `ASK` and answered at once.
    async fn read_records(
        &self,
        connection: &mut Connection,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, RedisError> {
        let mut atomic_connection = connection.clone();
        let mut mget = redis::cmd("MGET");
        mget.arg(keys);
        let mget = mget.query_async(&mut atomic_connection);
        if let Some(records) = self.atomically(connection, mget).await? {
            return Ok(records);
        }
        let gets = keys.iter().map(|key| {
            let mut connection = connection.clone();
            async move {
                match read_record(&mut connection, key).await {
                    // MGET answers nil for a key of another type: so does this, and the key is
                    // then left out and healed like a missing record (it holds no conversation),
                    // instead of failing the whole list.
                    Err(error) if is_wrong_type(&error) => Ok(None),
                    read => read,
                }
            }
        });
        join_all(gets).await.into_iter().collect()
    }

    /// The user's newest conversations as one JSON array, healing the index on the way.
    pub(super) async fn run_list_by_user(
        &self,
        user_id: &str,
    ) -> crate::error::StoreResult<String> {
        self.ensure_open()?;
        super::check_id("userId", user_id)?;
        let index_key = self.keys.user_index_key(user_id);
        let limit = self.options.list_limit;
        let chunk = (LIST_CHUNK_BYTES / self.options.max_record_bytes).clamp(1, limit);
        self.call(|mut connection, deadline| async move {
            let mut records = Vec::with_capacity(limit);
            let mut stale: Vec<(Entry, Stale)> = Vec::new();
            // Each round reads on from the lowest score the last one read, so entries removed or
            // added above it meanwhile (a concurrent heal, delete or set) shift nothing. The
            // entries already read at that score come again and are dropped by `seen`: the
            // round asks for that many more.
            let mut seen: HashSet<Vec<u8>> = HashSet::new();
            let mut max_score = b"+inf".to_vec();
            let mut again = 0;
            for _ in 0..LIST_ROUNDS {
                let reply: Value = redis::cmd("ZREVRANGEBYSCORE")
                    .arg(&index_key)
                    .arg(&max_score)
                    .arg("-inf")
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit + again)
                    .query_async(&mut connection)
                    .await
                    .map_err(wrong_type_names(&index_key))?;
                let entries = parse_entries(reply);
                let exhausted = entries.len() < limit + again;
                if let Some(last) = entries.last() {
                    max_score = last.score.clone();
                    again = entries
                        .iter()
                        .rev()
                        .take_while(|e| e.score == max_score)
                        .count();
                }
                let mut entries = entries.into_iter().peekable();
                // Records past `listLimit`, or past what one list returns, are not fetched:
                // they would only be dropped. Each pass sends its MGETs together (one round
                // trip) for as many records as the room left under `MAX_LIST_BYTES` holds,
                // every record at `maxRecordBytes`, and at least one: with the defaults, all
                // of a round's. So a list fetches at most `MAX_LIST_BYTES` and one record of
                // `maxRecordBytes` more (records within `maxRecordBytes`); stopping before
                // that last one would cut lists of small records short whenever
                // `maxRecordBytes` is close to `MAX_LIST_BYTES`.
                while entries.peek().is_some() && records.len() < limit && room(&records) > 0 {
                    let at_once = (room(&records) / self.options.max_record_bytes).max(1);
                    let batch: Vec<Entry> = entries
                        .by_ref()
                        .filter(|entry| self.usable(entry, &index_key))
                        .filter(|entry| seen.insert(entry.member.clone()))
                        .take(at_once.min(limit - records.len()))
                        .collect();
                    let read = (&mut records, &mut stale);
                    self.read_batch(&mut connection, user_id, batch, chunk, read)
                        .await?;
                }
                if records.len() >= limit || exhausted || room(&records) == 0 {
                    break;
                }
            }
            records.truncate(limit);
            let fit = fitting_records(records.iter().map(String::as_str));
            if fit < records.len() {
                self.logger().warn(format!(
                    "a list of {index_key} returns its newest {fit} conversations only: more \
                     would pass {MAX_LIST_BYTES} bytes of JSON, the most one list returns"
                ));
                records.truncate(fit);
            }
            if !stale.is_empty() {
                self.heal_in_time(&mut connection, deadline, &index_key, user_id, &stale)
                    .await;
            }
            Ok(json_array(records.iter().map(String::as_str)))
        })
        .await
    }

    /// A member that is not UTF-8 is another writer's: skipped with a warning, never sent on.
    fn usable(&self, entry: &Entry, index_key: &str) -> bool {
        if entry.id().is_some() {
            return true;
        }
        self.logger().warn(format!(
            "left an index entry out of a list: {index_key} holds a member that is not UTF-8"
        ));
        false
    }

    /// Fetches the records of `batch`, `chunk` keys a read, all reads sent together, and sorts
    /// each into the list or the stale entries.
    async fn read_batch(
        &self,
        connection: &mut Connection,
        user_id: &str,
        batch: Vec<Entry>,
        chunk: usize,
        (records, stale): (&mut Vec<String>, &mut Vec<(Entry, Stale)>),
    ) -> Result<(), CallError> {
        if batch.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = batch
            .iter()
            .map(|entry| self.keys.conversation_key(entry.id().unwrap_or_default()))
            .collect();
        let reads = keys.chunks(chunk).map(|keys| {
            let mut connection = connection.clone();
            async move { self.read_records(&mut connection, keys).await }
        });
        let mut stored = Vec::with_capacity(keys.len());
        for read in join_all(reads).await {
            stored.extend(read?);
        }
        for ((entry, key), value) in batch.into_iter().zip(&keys).zip(stored) {
            let Some(bytes) = value else {
                stale.push((entry, Stale::Missing));
                continue;
            };
            match check_stored(key, bytes) {
                Ok((json, summary)) if summary.user_id == user_id => records.push(json),
                Ok((json, _)) => {
                    let digest = sha1_smol::Sha1::from(json.as_bytes()).digest().to_string();
                    stale.push((entry, Stale::Foreign(digest, json.len())));
                }
                Err(error) => self
                    .logger()
                    .warn(format!("left a record out of a list: {}", error.message)),
            }
        }
        Ok(())
    }

    /// Heals, unless that would outlast the call: a heal that is refused, fails or is cut
    /// short is logged, and the list it rides on is returned all the same.
    async fn heal_in_time(
        &self,
        connection: &mut Connection,
        deadline: Instant,
        index_key: &str,
        user_id: &str,
        stale: &[(Entry, Stale)],
    ) {
        // The list must still get back in time: keep a fifth of the budget for that.
        let heal_by = deadline - self.supervisor.command_timeout() / 5;
        match timeout_at(heal_by, self.heal(connection, index_key, user_id, stale)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => self.heal_failed(index_key, &error),
            Err(_) => self.logger().warn(format!(
                "healing {index_key} did not finish in time; the next list tries again"
            )),
        }
    }

    fn heal_failed(&self, index_key: &str, error: &RedisError) {
        // A refusal (an ACL without scripting) repeats on every list: say it once.
        if server_error(error).is_some() && self.heal_refusal_logged.swap(true, Ordering::AcqRel) {
            return;
        }
        self.logger().warn(format!(
            "could not heal {index_key} (lists still work, stale entries stay): {}",
            describe_chain(error)
        ));
    }

    async fn heal(
        &self,
        connection: &mut Connection,
        index_key: &str,
        user_id: &str,
        stale: &[(Entry, Stale)],
    ) -> Result<(), RedisError> {
        let mut atomic_connection = connection.clone();
        let atomic = self.heal_in_one_script(&mut atomic_connection, index_key, stale);
        if self.atomically(connection, atomic).await?.is_some() {
            return Ok(());
        }
        let mark = heal_mark();
        let mut marking = eval_one_key(&ONE_SLOT_HEAL_MARK, index_key);
        marking.arg(&mark);
        for (entry, _) in stale {
            marking.arg(&entry.member).arg(&entry.score);
        }
        let marked: Vec<Vec<u8>> = marking.query_async(connection).await?;
        if !marked.is_empty() {
            self.finish_one_slot_heal(connection, index_key, user_id, &mark, marked)
                .await?;
        }
        Ok(())
    }

    /// A standalone server's heal: one script over the index and the records.
    async fn heal_in_one_script(
        &self,
        connection: &mut Connection,
        index_key: &str,
        stale: &[(Entry, Stale)],
    ) -> Result<(), RedisError> {
        let mut invocation = self.scripts.heal.key(index_key);
        let mut foreign_bytes = 0;
        for (entry, why) in stale {
            let seen = match why {
                Stale::Missing => "",
                Stale::Foreign(digest, len) => {
                    foreign_bytes += len;
                    if foreign_bytes > HEAL_FOREIGN_BYTES {
                        continue;
                    }
                    digest.as_str()
                }
            };
            invocation
                .key(self.keys.conversation_key(entry.id().unwrap_or_default()))
                .arg(&entry.member)
                .arg(&entry.score)
                .arg(seen);
        }
        invocation.invoke_async::<i64>(connection).await?;
        Ok(())
    }

    /// The second half of a one-slot-per-command heal: reads the marked entries' records again (a `set` of
    /// the same id and `updatedAt` may have landed between the list's read and the mark, its
    /// ZADD a no-op) and removes each entry whose record is still gone or foreign, or puts back
    /// the score of one that now belongs to this user.
    async fn finish_one_slot_heal(
        &self,
        connection: &mut Connection,
        index_key: &str,
        user_id: &str,
        mark: &str,
        marked: Vec<Vec<u8>>,
    ) -> Result<(), RedisError> {
        let keys: Vec<String> = marked
            .iter()
            .map(|member| self.keys.conversation_key(&String::from_utf8_lossy(member)))
            .collect();
        let records = self.read_records(connection, &keys).await?;
        let mut finish = eval_one_key(&ONE_SLOT_HEAL_FINISH, index_key);
        finish.arg(mark);
        for ((member, key), record) in marked.iter().zip(&keys).zip(records) {
            let owned = record
                .and_then(|bytes| check_stored(key, bytes).ok())
                .filter(|(_, summary)| summary.user_id == user_id);
            finish.arg(member);
            match owned {
                Some((_, summary)) => finish.arg(summary.updated_at_ms),
                None => finish.arg(""),
            };
        }
        finish.query_async::<()>(connection).await
    }

    /// After a `set`: `oldest` is what its index write returned once the index grew past
    /// `listLimit` (its oldest entries and a random few, with scores). Those whose record is gone are
    /// removed like a list heals them. Best effort, within the call's deadline.
    pub(super) async fn trim_index(
        &self,
        connection: &mut Connection,
        deadline: Instant,
        index_key: &str,
        user_id: &str,
        written_id: &str,
        oldest: Vec<Value>,
    ) {
        let mut seen = HashSet::new();
        let candidates: Vec<Entry> = parse_entries(Value::Array(oldest))
            .into_iter()
            .filter(|entry| entry.id().is_some_and(|id| id != written_id))
            .filter(|entry| seen.insert(entry.member.clone()))
            .collect();
        if candidates.is_empty() {
            return;
        }
        // Gone: no key, or a key of another type (no conversation either), as a list heals.
        let types = candidates.iter().map(|entry| {
            let mut connection = connection.clone();
            let key = self.keys.conversation_key(entry.id().unwrap_or_default());
            async move {
                redis::cmd("TYPE")
                    .arg(key)
                    .query_async::<String>(&mut connection)
                    .await
            }
        });
        let heal_by = deadline - self.supervisor.command_timeout() / 5;
        let Ok(found) = timeout_at(heal_by, join_all(types)).await else {
            return;
        };
        let gone: Vec<(Entry, Stale)> = candidates
            .into_iter()
            .zip(found)
            .filter(|(_, found)| matches!(found, Ok(kind) if kind != "string"))
            .map(|(entry, _)| (entry, Stale::Missing))
            .collect();
        if gone.is_empty() {
            return;
        }
        self.heal_in_time(connection, deadline, index_key, user_id, &gone)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn each_heal_marks_with_a_score_of_its_own_far_below_any_real_one() {
        let marks: Vec<String> = (0..100).map(|_| heal_mark()).collect();
        let distinct: HashSet<&String> = marks.iter().collect();
        assert_eq!(distinct.len(), marks.len());
        for mark in &marks {
            let score: f64 = mark.parse().unwrap();
            assert!((-2e300..=-1e300).contains(&score), "{mark}");
        }
    }

    #[test]
    fn entries_come_from_flat_and_paired_replies_and_keep_their_bytes() {
        let flat = Value::Array(vec![bulk("a"), bulk("2"), bulk("b"), bulk("1")]);
        let paired = Value::Array(vec![
            Value::Array(vec![bulk("a"), Value::Double(2.5)]),
            Value::Array(vec![Value::BulkString(vec![0xff]), bulk("1")]),
        ]);
        let flat = parse_entries(flat);
        assert_eq!(flat.len(), 2);
        assert_eq!(
            (flat[0].id(), flat[0].score.as_slice()),
            (Some("a"), &b"2"[..])
        );
        let paired = parse_entries(paired);
        assert_eq!(paired[0].score, b"2.5");
        assert_eq!(paired[1].id(), None);
        assert!(parse_entries(Value::Nil).is_empty());
    }
}
