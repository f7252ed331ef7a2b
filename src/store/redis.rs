//! The Redis store: each call is one supervised unit of round trips under one deadline.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, RedisError, Script};
use tokio::sync::Notify;
use serde::Deserialize;

use super::{
    check_id, check_record, check_stored, json_array, KeyLayout, StoreOptions,
    INDEX_TTL_MARGIN_SECONDS,
};
use crate::conn::{server_error, CallError, Connection, StoreStatus, Supervisor};
use crate::error::{StoreError, StoreResult};

/// Removes index entries left by a conversation that is gone or now another user's, but only
/// while their score is still the one the list read: a concurrent `set` is never undone.
const HEAL_INDEX_STANDALONE: &str = r#"
local removed = 0
for i = 2, #KEYS do
  local member, score = ARGV[2 * i - 2], ARGV[2 * i - 1]
  if redis.call('ZSCORE', KEYS[1], member) == score then
    local record = redis.pcall('GET', KEYS[i])
    local stale = not record
    if type(record) == 'string' then
      local ok, decoded = pcall(cjson.decode, record)
      stale = ok and type(decoded) == 'table' and decoded.userId ~= ARGV[1]
    end
    if stale then removed = removed + redis.call('ZREM', KEYS[1], member) end
  end
end
return removed
"#;

/// In a cluster the records live in other slots than the index, so the script sees only the
/// index; the list has just found each record gone or foreign. `set` writes the record before
/// its entry, so a racing `set` re-adds what this removes.
const HEAL_INDEX_CLUSTER: &str = r#"
local removed = 0
for i = 2, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return removed
"#;

/// Calls taken in and not settled yet, so `close()` can let them finish.
#[derive(Default)]
struct CallGate {
    closing: AtomicBool,
    in_flight: AtomicUsize,
    drained: Notify,
}

/// One call taken in by `RedisStore::admit`; the store it runs on.
pub struct Admitted {
    store: Arc<RedisStore>,
}

impl Admitted {
    pub fn store(&self) -> &RedisStore {
        &self.store
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if self.store.gate.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.store.gate.drained.notify_waiters();
        }
    }
}

/// What `close()` allows beyond a call's deadline before it stops waiting.
const CLOSE_SLACK: Duration = Duration::from_secs(1);

pub struct RedisStore {
    supervisor: Supervisor,
    gate: CallGate,
    keys: KeyLayout,
    options: StoreOptions,
    heal_index_standalone: Script,
    heal_index_cluster: Script,
}

/// Only the owner, for `delete` of a record that may not pass validation any more.
#[derive(Deserialize)]
struct Owner {
    #[serde(rename = "userId")]
    user_id: String,
}

fn is_wrong_type(error: &RedisError) -> bool {
    server_error(error).is_some_and(|(code, _)| code == "WRONGTYPE")
}

fn wrong_type_names(key: &str) -> impl FnOnce(RedisError) -> CallError + '_ {
    move |error| {
        if is_wrong_type(&error) {
            CallError::Store(StoreError::corrupt_record(format!(
                "{key}: holds a value of another type"
            )))
        } else {
            CallError::Redis(error)
        }
    }
}

impl RedisStore {
    pub fn new(supervisor: Supervisor, keys: KeyLayout, options: StoreOptions) -> Self {
        RedisStore {
            supervisor,
            gate: CallGate::default(),
            keys,
            options,
            heal_index_standalone: Script::new(HEAL_INDEX_STANDALONE),
            heal_index_cluster: Script::new(HEAL_INDEX_CLUSTER),
        }
    }

    pub fn status(&self) -> StoreStatus {
        self.supervisor.status()
    }

    pub fn address(&self) -> String {
        self.supervisor.address().to_string()
    }

    pub async fn ready(&self) -> StoreResult<()> {
        self.ensure_open()?;
        self.supervisor.ready().await
    }

    /// Takes a call in, synchronously where JavaScript made it: a call taken in before
    /// `close()` runs to its end, one after it gets `STORE_CLOSED`.
    pub fn admit(self: &Arc<Self>) -> StoreResult<Admitted> {
        if self.gate.closing.load(Ordering::Acquire) {
            return Err(StoreError::closed());
        }
        self.gate.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok(Admitted {
            store: self.clone(),
        })
    }

    /// Lets the calls already taken in settle (each within its own deadline), then stops the
    /// supervisor. Always settles: each wait is bounded.
    pub async fn close(&self) {
        self.gate.closing.store(true, Ordering::Release);
        self.supervisor.drain();
        let bound = self.supervisor.command_timeout() + CLOSE_SLACK;
        let drained = async {
            loop {
                let notified = self.gate.drained.notified();
                if self.gate.in_flight.load(Ordering::Acquire) == 0 {
                    break;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(bound, drained).await;
        if tokio::time::timeout(bound, self.supervisor.close())
            .await
            .is_err()
        {
            self.supervisor
                .logger()
                .warn("close: the connection task did not stop in time; it stops on its own");
        }
    }

    fn ensure_open(&self) -> StoreResult<()> {
        if self.supervisor.is_closed() {
            return Err(StoreError::closed());
        }
        Ok(())
    }

    pub async fn get(&self, id: &str) -> StoreResult<Option<String>> {
        self.ensure_open()?;
        check_id("id", id)?;
        let key = self.keys.conversation_key(id);
        self.supervisor
            .call(|mut connection| async move {
                let stored = read_record(&mut connection, &key)
                    .await
                    .map_err(wrong_type_names(&key))?;
                match stored {
                    None => Ok(None),
                    Some(bytes) => Ok(Some(check_stored(&key, bytes)?.0)),
                }
            })
            .await
    }

    /// Standalone: SET + ZADD + EXPIRE in one MULTI/EXEC, so no reader sees a conversation
    /// without its entry. Cluster: the keys live in different slots, so the record is written
    /// first and its entry after, and `listByUser` heals what a failure in between leaves.
    pub async fn set(&self, id: &str, json: &str) -> StoreResult<()> {
        self.ensure_open()?;
        let summary = check_record(&self.options, id, json)?;
        let index_key = self.keys.user_index_key(&summary.user_id);
        let ttl = self.options.ttl_seconds;
        let mut record_write = redis::cmd("SET");
        record_write
            .arg(self.keys.conversation_key(id))
            .arg(json)
            .arg("EX")
            .arg(ttl);
        let mut index_add = redis::cmd("ZADD");
        index_add.arg(&index_key).arg(summary.updated_at_ms).arg(id);
        let mut index_expire = redis::cmd("EXPIRE");
        index_expire
            .arg(&index_key)
            .arg(ttl + INDEX_TTL_MARGIN_SECONDS);
        self.supervisor
            .call(|mut connection| async move {
                let index_writes = if connection.is_cluster() {
                    record_write.query_async::<()>(&mut connection).await?;
                    pipeline([index_add, index_expire], false)
                } else {
                    pipeline([record_write, index_add, index_expire], true)
                };
                index_writes
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(wrong_type_names(&index_key))?;
                Ok(())
            })
            .await
    }

    /// Removes the conversation and its owner's index entry; a missing id is not an error.
    pub async fn delete(&self, id: &str) -> StoreResult<()> {
        self.ensure_open()?;
        check_id("id", id)?;
        let key = self.keys.conversation_key(id);
        self.supervisor
            .call(|mut connection| async move {
                // A key of another type is deleted too: it is in our namespace and unusable.
                let stored = match read_record(&mut connection, &key).await {
                    Err(error) if is_wrong_type(&error) => None,
                    stored => stored?,
                };
                let owner = stored
                    .as_deref()
                    .and_then(|bytes| serde_json::from_slice::<Owner>(bytes).ok());
                let mut record_delete = redis::cmd("DEL");
                record_delete.arg(&key);
                let Some(owner) = owner else {
                    record_delete.query_async::<()>(&mut connection).await?;
                    return Ok(());
                };
                let index_key = self.keys.user_index_key(&owner.user_id);
                let mut index_remove = redis::cmd("ZREM");
                index_remove.arg(&index_key).arg(id);
                if connection.is_cluster() {
                    // Record first: healing only removes entries whose record is really gone.
                    record_delete.query_async::<()>(&mut connection).await?;
                    index_remove
                        .query_async::<()>(&mut connection)
                        .await
                        .map_err(wrong_type_names(&index_key))?;
                } else {
                    let transaction = pipeline([record_delete, index_remove], true);
                    transaction
                        .query_async::<()>(&mut connection)
                        .await
                        .map_err(wrong_type_names(&index_key))?;
                }
                Ok(())
            })
            .await
    }

    /// The user's newest conversations as one JSON array, healing the index on the way.
    pub async fn list_by_user(&self, user_id: &str) -> StoreResult<String> {
        self.ensure_open()?;
        check_id("userId", user_id)?;
        let index_key = self.keys.user_index_key(user_id);
        self.supervisor
            .call(|mut connection| async move {
                let entries: Vec<(String, String)> = redis::cmd("ZREVRANGEBYSCORE")
                    .arg(&index_key)
                    .arg("+inf")
                    .arg("-inf")
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(self.options.list_limit)
                    .query_async(&mut connection)
                    .await
                    .map_err(wrong_type_names(&index_key))?;
                if entries.is_empty() {
                    return Ok(String::from("[]"));
                }
                let keys: Vec<String> = entries
                    .iter()
                    .map(|(id, _)| self.keys.conversation_key(id))
                    .collect();
                let stored: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut connection)
                    .await?;
                let mut records = Vec::with_capacity(stored.len());
                let mut stale = Vec::new();
                for ((entry, key), value) in entries.iter().zip(&keys).zip(stored) {
                    let Some(bytes) = value else {
                        stale.push((entry, key));
                        continue;
                    };
                    match check_stored(key, bytes) {
                        Ok((json, summary)) if summary.user_id == user_id => records.push(json),
                        Ok(_) => stale.push((entry, key)),
                        Err(error) => self
                            .supervisor
                            .logger()
                            .warn(format!("left a record out of a list: {}", error.message)),
                    }
                }
                if !stale.is_empty() {
                    self.heal(&mut connection, &index_key, user_id, &stale)
                        .await?;
                }
                Ok(json_array(records.iter().map(String::as_str)))
            })
            .await
    }

    async fn heal(
        &self,
        connection: &mut Connection,
        index_key: &str,
        user_id: &str,
        stale: &[(&(String, String), &String)],
    ) -> Result<(), CallError> {
        let cluster = connection.is_cluster();
        let script = if cluster {
            &self.heal_index_cluster
        } else {
            &self.heal_index_standalone
        };
        let mut invocation = script.key(index_key);
        invocation.arg(user_id);
        for ((id, score), key) in stale {
            if !cluster {
                invocation.key(key.as_str());
            }
            invocation.arg(id).arg(score);
        }
        let removed: i64 = invocation.invoke_async(connection).await?;
        if cluster && removed > 0 {
            self.restore_raced_entries(connection, index_key, user_id, stale)
                .await?;
        }
        Ok(())
    }

    /// In a cluster, a `set` of the same id and `updatedAt` can land between the list's MGET
    /// and the heal (its ZADD a no-op, then removed): read the records again and put back the
    /// entry of any that now exists for this user.
    async fn restore_raced_entries(
        &self,
        connection: &mut Connection,
        index_key: &str,
        user_id: &str,
        stale: &[(&(String, String), &String)],
    ) -> Result<(), CallError> {
        let keys: Vec<&str> = stale.iter().map(|(_, key)| key.as_str()).collect();
        let records: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(connection)
            .await?;
        let mut restore = redis::pipe();
        for (((id, _), key), record) in stale.iter().zip(records) {
            let Some(bytes) = record else { continue };
            if let Ok((_, summary)) = check_stored(key, bytes) {
                if summary.user_id == user_id {
                    restore
                        .cmd("ZADD")
                        .arg(index_key)
                        .arg(summary.updated_at_ms)
                        .arg(id)
                        .ignore();
                }
            }
        }
        if !restore.is_empty() {
            restore.query_async::<()>(connection).await?;
        }
        Ok(())
    }
}

async fn read_record(
    connection: &mut Connection,
    key: &str,
) -> Result<Option<Vec<u8>>, RedisError> {
    redis::cmd("GET").arg(key).query_async(connection).await
}

/// Commands as one pipeline whose replies are not needed; `atomic` wraps it in MULTI/EXEC.
fn pipeline<const N: usize>(commands: [Cmd; N], atomic: bool) -> redis::Pipeline {
    let mut pipeline = redis::pipe();
    if atomic {
        pipeline.atomic();
    }
    for command in commands {
        pipeline.add_command(command).ignore();
    }
    pipeline
}
