//! The Redis store: each call is one supervised unit of round trips under one deadline.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::{FutureExt, TryFutureExt};
use redis::{RedisError, Script};
use serde::Deserialize;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::order::{CallKind, IdOrder, Turn};
use super::{check_id, check_record, check_stored, KeyLayout, RedisSettings, StoreStatus};
use super::{CallStats, StoreOptions, INDEX_TTL_MARGIN_SECONDS};
use crate::conn::{self, server_error, CallError, Connection, Status, Supervisor};
use crate::error::{StoreError, StoreResult};
use crate::log::Logger;
use crate::schema::ConversationSummary;

/// The most sets one transaction carries, as `lib/batcher.js` gathers at most in a turn: a
/// native caller's longer batch goes in several, so that no script call holds redis-server
/// for long.
const SETS_PER_TRANSACTION: usize = 16;

/// The standalone scripts, sent by SHA (EVALSHA, loaded on first use).
pub(super) struct Scripts {
    /// Run inside the set's `MULTI`, by SHA, and by its text ([`SET`]) after a `NOSCRIPT`.
    pub set: Script,
    pub heal: Script,
}

impl Scripts {
    fn load() -> Self {
        Scripts {
            set: Script::new(SET),
            heal: Script::new(include_str!("scripts/heal.lua")),
        }
    }
}

const SET: &str = include_str!("scripts/set.lua");

/// The one-key scripts of one slot per command (a cluster, or a server that refuses
/// `CROSSSLOT`), sent whole (EVAL). A primary that is importing a slot may
/// serve no slot yet, so redis-rs never sends it `SCRIPT LOAD`, and an `EVALSHA` redirected
/// there by `ASK` could only answer `NOSCRIPT`. Redis caches an EVAL'd script by its SHA too.
pub(super) static RECORD_SET: OneSlotScript =
    OneSlotScript::new(include_str!("scripts/record_set.lua"));
pub(super) static INDEX_ADD: OneSlotScript =
    OneSlotScript::new(include_str!("scripts/index_add.lua"));
pub(super) static ONE_SLOT_HEAL_MARK: OneSlotScript =
    OneSlotScript::new(include_str!("scripts/heal_cluster.lua"));
pub(super) static ONE_SLOT_HEAL_FINISH: OneSlotScript =
    OneSlotScript::new(include_str!("scripts/heal_cluster_finish.lua"));

/// A script sent whole on every call: its comment lines emptied, which redis-server would
/// otherwise read, hash (the SHA it caches scripts by) and copy each time (README, "Redis
/// Cluster", has the cost). The lines stay, so a Lua error's `@user_script:N` is the file's.
pub(super) struct OneSlotScript {
    source: &'static str,
    code: OnceLock<String>,
}

impl OneSlotScript {
    const fn new(source: &'static str) -> Self {
        OneSlotScript {
            source,
            code: OnceLock::new(),
        }
    }

    pub(super) fn code(&self) -> &str {
        self.code.get_or_init(|| without_comments(self.source))
    }
}

/// Lua with each line that is only a comment (`--`) left empty. The scripts have no comment
/// after code on a line and no long string or comment (`[[`): a test holds them to that.
fn without_comments(source: &str) -> String {
    let lines: Vec<&str> = source
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("--") {
                ""
            } else {
                line
            }
        })
        .collect();
    lines.join("\n")
}

/// `EVAL script 1 key`: the start of a cluster script's command; its arguments follow.
pub(super) fn eval_one_key(script: &OneSlotScript, key: &str) -> redis::Cmd {
    let mut command = redis::cmd("EVAL");
    command.arg(script.code()).arg(1).arg(key);
    command
}

/// `SET key json EX ttl`, its buffer sized for the document at the start: built an argument
/// at a time, the buffer grew past the document by doubling, which copied it once more.
pub(super) fn set_with_ttl(key: &str, json: &str, ttl: u64) -> redis::Cmd {
    // The command's name, `EX`, the TTL's digits and a `GET` the caller may add.
    const SMALL_ARGS: usize = 32;
    let mut command = redis::Cmd::with_capacity(6, key.len() + json.len() + SMALL_ARGS);
    command.arg("SET").arg(key).arg(json).arg("EX").arg(ttl);
    command
}

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
    pub(super) supervisor: Supervisor<Connection>,
    gate: CallGate,
    pub(super) keys: KeyLayout,
    pub(super) options: StoreOptions,
    pub(super) scripts: Scripts,
    /// A refused heal (an ACL without scripting) was logged: once is enough.
    pub(super) heal_refusal_logged: AtomicBool,
    /// The server refused a script or transaction over two hash slots (`CROSSSLOT`: Azure
    /// Managed Redis' Enterprise policy): since then every call works one slot per command.
    pub(super) one_slot_per_command: AtomicBool,
    /// The server refused `SET … GET` (Redis before 6.2, as Azure Cache for Redis 6): since
    /// then a record written one slot per command goes through `record_set.lua`.
    pub(super) set_get_refused: AtomicBool,
    pub(super) stats: CallStats,
    /// The order of gets, sets and deletes of one id (see `order.rs`).
    order: Arc<IdOrder>,
}

/// Only the owner, for `delete` of a record that may not pass validation any more.
#[derive(Deserialize)]
struct Owner {
    #[serde(rename = "userId")]
    user_id: String,
}

/// A set checked and named: what its part of the transaction writes.
pub(super) struct PlannedSet<'a> {
    id: &'a str,
    json: &'a str,
    summary: ConversationSummary,
    record_key: String,
    index_key: String,
}

impl PlannedSet<'_> {
    /// The script's refusal of this set: a key of another type names the key.
    fn refusal(&self, error: RedisError) -> CallError {
        match server_error(&error) {
            Some((code, which)) if code == "WRONGTYPE" && which == "record" => {
                other_type(&self.record_key)
            }
            Some((code, which)) if code == "WRONGTYPE" && which == "index" => {
                other_type(&self.index_key)
            }
            _ => CallError::Redis(error),
        }
    }

    /// This set's item of the script's reply: its index sample, or its refusal.
    fn sample(&self, reply: redis::Value) -> Result<Vec<redis::Value>, CallError> {
        match reply {
            redis::Value::Array(sample) => Ok(sample),
            redis::Value::ServerError(error) => Err(self.refusal(error.into())),
            _ => Err(no_reply()),
        }
    }
}

/// The script's reply in a set's transaction, after a `SET` of each pending key; a refusal of
/// a `SET` or of the script itself (`NOSCRIPT`, or a lone set's refusal: see `set.lua`) as an
/// error.
fn script_reply(
    replies: Result<Vec<redis::Value>, RedisError>,
) -> Result<redis::Value, RedisError> {
    let mut replies = replies?;
    let script = replies.pop();
    if let Some(redis::Value::ServerError(error)) = replies
        .into_iter()
        .find(|reply| matches!(reply, redis::Value::ServerError(_)))
    {
        return Err(error.into());
    }
    match script {
        Some(redis::Value::ServerError(error)) => Err(error.into()),
        Some(reply) => Ok(reply),
        None => Err(RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "no reply from the set script",
        ))),
    }
}

/// A reply of a shape the set script never gives (a server that is not Redis, or a bug).
fn no_reply() -> CallError {
    CallError::Redis(RedisError::from((
        redis::ErrorKind::UnexpectedReturnType,
        "the set script's reply is not one item a set",
    )))
}

/// What a call's error says to its caller: a `WRONGTYPE` is a corrupt record, and a `MOVED`
/// from a cluster node reached without `cluster: true` says to set it.
fn named(error: CallError, cluster: bool) -> CallError {
    super::writes::moved(wrong_type_is_corrupt(error), cluster)
}

/// One set of a batch refused on its own: the store's error, as `call_in_turn` and the
/// supervisor word a lone set's (batches run on a standalone server only).
fn item_error(error: CallError) -> StoreError {
    match named(error, false) {
        CallError::Store(error) => error,
        CallError::Redis(error) => match server_error(&error) {
            Some((code, detail)) => conn::refused(&code, &detail),
            None => conn::call_failed(&error),
        },
    }
}

/// An ACL's refusal of a key (its key patterns), which Redis gives as the command is queued,
/// not of a command. Every key refusal from Redis 6.0 to 7.4 (and Valkey) says "no
/// permissions to access"; a command's says "to run the '…' command", after a user's name
/// that may hold any word but a space.
fn refuses_a_key(error: &RedisError) -> bool {
    server_error(error).is_some_and(|(code, detail)| {
        code == "NOPERM" && detail.to_lowercase().contains("no permissions to access")
    })
}

fn is_no_script(error: &RedisError) -> bool {
    server_error(error).is_some_and(|(code, _)| code == "NOSCRIPT")
}

pub(super) fn is_wrong_type(error: &RedisError) -> bool {
    server_error(error).is_some_and(|(code, _)| code == "WRONGTYPE")
}

pub(super) fn other_type(key: &str) -> CallError {
    CallError::Store(StoreError::corrupt_record(format!(
        "{key}: holds a value of another type"
    )))
}

/// A `WRONGTYPE` refusal no step of the call named a key for: still a corrupt record.
fn wrong_type_is_corrupt(error: CallError) -> CallError {
    let CallError::Redis(redis_error) = &error else {
        return error;
    };
    match server_error(redis_error) {
        Some((code, detail)) if code == "WRONGTYPE" => CallError::Store(
            StoreError::corrupt_record(format!("Redis refused the command: {code} {detail}")),
        ),
        _ => error,
    }
}

impl From<Status> for StoreStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Connecting => StoreStatus::Connecting,
            Status::Ready => StoreStatus::Ready,
            Status::Reconnecting => StoreStatus::Reconnecting,
            Status::End => StoreStatus::End,
        }
    }
}

/// A key of another type is a corrupt record naming that key; anything else stays Redis's.
pub(super) fn wrong_type_names(key: &str) -> impl FnOnce(RedisError) -> CallError + '_ {
    move |error| {
        if is_wrong_type(&error) {
            other_type(key)
        } else {
            CallError::Redis(error)
        }
    }
}

impl RedisStore {
    /// Checks what only connecting can check (TLS material, a cluster's database), then
    /// connects in the background on `runtime`.
    pub fn connect(
        settings: RedisSettings,
        logger: Logger,
        runtime: &Handle,
    ) -> StoreResult<RedisStore> {
        let keys = KeyLayout::new(settings.options.key_prefix.as_str())?;
        let supervisor = conn::supervise(
            settings.connection(),
            settings.credentials.clone(),
            logger,
            runtime,
        )?;
        Ok(RedisStore {
            supervisor,
            gate: CallGate::default(),
            keys,
            options: settings.options,
            scripts: Scripts::load(),
            heal_refusal_logged: AtomicBool::new(false),
            one_slot_per_command: AtomicBool::new(false),
            set_get_refused: AtomicBool::new(false),
            stats: CallStats::default(),
            order: Arc::default(),
        })
    }

    /// `end` from the moment `close()` is called, as the in-memory store's.
    pub fn status(&self) -> StoreStatus {
        if self.is_closing() {
            return StoreStatus::End;
        }
        self.supervisor.status().into()
    }

    /// Whether `close()` has been called.
    pub(super) fn is_closing(&self) -> bool {
        self.gate.closing.load(Ordering::Acquire)
    }

    pub fn address(&self) -> String {
        self.supervisor.address().to_string()
    }

    /// When the credentials from the `credentials` option expire, in epoch milliseconds;
    /// `None` without that option, before the provider first answered, or for credentials
    /// that do not expire.
    pub fn credentials_expire_at(&self) -> Option<f64> {
        self.supervisor.credentials_expire_at()
    }

    pub(super) fn logger(&self) -> &Logger {
        self.supervisor.logger()
    }

    pub async fn ready(&self) -> StoreResult<()> {
        // Closing, it will never be ready again.
        if self.is_closing() {
            return Err(StoreError::closed());
        }
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

    /// The place of a call of `kind` on `id` among the calls on that id, taken where
    /// JavaScript made the call (so in the order the calls were made); the call runs with it.
    pub fn turn(&self, kind: CallKind, id: &str) -> Turn {
        // An id the call will refuse (a 20 MB string, say) is not copied into the order.
        if check_id("id", id).is_err() {
            return Turn::unordered();
        }
        self.order.take(kind, id)
    }

    /// Takes no call in from now on: done on the JavaScript thread where `close()` is called,
    /// so a call made after it gets `STORE_CLOSED` even before [`close`](Self::close) runs.
    pub fn begin_close(&self) {
        self.gate.closing.store(true, Ordering::Release);
    }

    /// Lets the calls already taken in settle (each within its own deadline; one still
    /// waiting for a connection gives up at once), then stops the supervisor. Always
    /// settles: each wait is bounded.
    pub async fn close(&self) {
        self.begin_close();
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
            self.logger()
                .warn("close: the connection task did not stop in time; it stops on its own");
        }
    }

    /// One call under the supervisor, which turns what failed into the store's error.
    pub(super) async fn call<T, F, Fut>(&self, call: F) -> StoreResult<T>
    where
        F: FnOnce(Connection, Instant) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        self.call_in_turn(Turn::unordered(), call).await
    }

    /// [`call`](Self::call) in `turn`: its deadline runs from when it was made, and it starts
    /// once the calls on its id that it follows have ended.
    pub(super) async fn call_in_turn<T, F, Fut>(&self, mut turn: Turn, call: F) -> StoreResult<T>
    where
        F: FnOnce(Connection, Instant) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let call = |connection: Connection, deadline| {
            let cluster = connection.is_cluster();
            call(connection, deadline).map_err(move |error| named(error, cluster))
        };
        let made = turn.made();
        let result = self.supervisor.call_after(made, turn.wait(), call).await;
        drop(turn);
        result
    }

    pub(super) fn ensure_open(&self) -> StoreResult<()> {
        if self.supervisor.is_closed() {
            return Err(StoreError::closed());
        }
        Ok(())
    }

    pub(super) async fn run_get(&self, id: &str, turn: Turn) -> StoreResult<Option<String>> {
        self.ensure_open()?;
        check_id("id", id)?;
        let key = self.keys.conversation_key(id);
        self.call_in_turn(turn, |mut connection, _| async move {
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

    /// Atomically where the server allows it: one script writes the record, its entry and the
    /// index TTL, so no reader sees a conversation without its entry and a key of another type
    /// stops everything. One slot per command (a cluster, or a server that refuses
    /// `CROSSSLOT`): the record is written first and its entry after (each one command, so a
    /// migrating slot's `ASK` is followed), and `listByUser` heals what a failure in between
    /// leaves. Either way, once the index is over `listLimit` the write returns a few of its
    /// entries, and the trim checks their records as its own step (a script touches only the
    /// keys it declares): under the limit, an atomic set is one round trip.
    pub(super) async fn run_set(&self, id: &str, json: &str, turn: Turn) -> StoreResult<()> {
        self.ensure_open()?;
        let set = self.plan_set(id, json)?;
        self.call_in_turn(turn, |connection, deadline| async move {
            let mut written = self
                .write_sets(connection, deadline, std::slice::from_ref(&set))
                .await?;
            written.pop().unwrap_or_else(|| Err(no_reply()))
        })
        .await
    }

    /// Sets of one batch, none of them waiting for an earlier call on its id, on a standalone
    /// server: in transactions of at most [`SETS_PER_TRANSACTION`], each of whose one script call
    /// writes its sets (docs/performance.md, "Changes measured"), under one deadline (the earliest
    /// call's). Each set settles on its own: a refused argument, a key of another type or an ACL's
    /// refusal of its keys fails that set alone; what fails a transaction (a lost connection, a
    /// timeout, a panic) fails every set that was in it.
    pub(super) async fn run_set_batch(
        &self,
        calls: Vec<(&str, &str, Turn)>,
    ) -> Vec<StoreResult<()>> {
        let mut calls = calls.into_iter().peekable();
        let mut transactions = Vec::new();
        while calls.peek().is_some() {
            let sets: Vec<_> = calls.by_ref().take(SETS_PER_TRANSACTION).collect();
            let count = sets.len();
            // A panic fails the sets of its transaction, not those of the others.
            transactions.push(async move {
                AssertUnwindSafe(self.run_set_transaction(sets))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|payload| {
                        vec![Err(super::internal_error(payload.as_ref())); count]
                    })
            });
        }
        let outcomes = futures_util::future::join_all(transactions).await;
        outcomes.into_iter().flatten().collect()
    }

    async fn run_set_transaction(&self, calls: Vec<(&str, &str, Turn)>) -> Vec<StoreResult<()>> {
        let mut outcomes = Vec::with_capacity(calls.len());
        let (mut sets, mut turns, mut places) = (Vec::new(), Vec::new(), Vec::new());
        for (place, (id, json, turn)) in calls.into_iter().enumerate() {
            match self.ensure_open().and_then(|()| self.plan_set(id, json)) {
                Ok(set) => {
                    sets.push(set);
                    turns.push(turn);
                    places.push(place);
                    // Each replaced below, once the transaction is done.
                    outcomes.push(Err(StoreError::unavailable("internal error: not written")));
                }
                Err(error) => outcomes.push(Err(error)),
            }
        }
        let Some(made) = turns.iter().map(Turn::made).min() else {
            return outcomes;
        };
        let wait = futures_util::future::join_all(turns.iter_mut().map(Turn::wait)).map(drop);
        let write = |connection, deadline| {
            self.write_sets(connection, deadline, &sets)
                .map_err(|error| named(error, false))
        };
        let written = self.supervisor.call_after(made, wait, write).await;
        drop(turns);
        match written {
            Ok(written) => {
                for (place, outcome) in places.into_iter().zip(written) {
                    outcomes[place] = outcome.map_err(item_error);
                }
            }
            Err(error) => {
                for place in places {
                    outcomes[place] = Err(error.clone());
                }
            }
        }
        outcomes
    }

    /// `set`'s checks and keys.
    fn plan_set<'a>(&self, id: &'a str, json: &'a str) -> StoreResult<PlannedSet<'a>> {
        let summary = check_record(&self.options, id, json)?;
        Ok(PlannedSet {
            id,
            json,
            record_key: self.keys.conversation_key(id),
            index_key: self.keys.user_index_key(&summary.user_id),
            summary,
        })
    }

    /// Writes `sets` (each on its own, see [`run_set`](Self::run_set)), then trims the indexes
    /// past `listLimit`. `Err` is what failed them all; inside, each set's own outcome, in order.
    async fn write_sets(
        &self,
        connection: Connection,
        deadline: Instant,
        sets: &[PlannedSet<'_>],
    ) -> Result<Vec<Result<(), CallError>>, CallError> {
        let samples = match sets {
            [set] => vec![self.write_set(&connection, set).await],
            _ => match self.transaction(&connection, sets).await {
                Ok(Some(redis::Value::Array(replies))) if replies.len() == sets.len() => sets
                    .iter()
                    .zip(replies)
                    .map(|(set, reply)| set.sample(reply))
                    .collect(),
                Ok(Some(_)) => return Err(no_reply()),
                // One slot per command from now on (`atomically`), or the transaction refused
                // whole before anything ran: an ACL's key pattern refuses one set's key as the
                // script call is queued, and EXEC then refuses them all (`EXECABORT`). Each
                // set goes on its own, as `set` sends it.
                Ok(None) => self.write_each(&connection, sets).await?,
                Err(error) if refuses_a_key(&error) => self.write_each(&connection, sets).await?,
                Err(error) => return Err(CallError::Redis(error)),
            },
        };
        let trims = sets.iter().zip(samples).map(|(set, sample)| {
            let mut connection = connection.clone();
            async move {
                let sample = sample?;
                let (index_key, user_id) = (&set.index_key, &set.summary.user_id);
                self.trim_index(
                    &mut connection,
                    deadline,
                    index_key,
                    user_id,
                    set.id,
                    sample,
                )
                .await;
                Ok(())
            }
        });
        Ok(futures_util::future::join_all(trims).await)
    }

    /// Each of `sets` as `set` writes one. What says something of the connection (it broke, or
    /// the server is a replica now) fails them all, so that the supervisor hears of it.
    async fn write_each(
        &self,
        connection: &Connection,
        sets: &[PlannedSet<'_>],
    ) -> Result<Vec<Result<Vec<redis::Value>, CallError>>, CallError> {
        let samples = sets.iter().map(|set| self.write_set(connection, set));
        let mut outcomes = Vec::with_capacity(sets.len());
        for outcome in futures_util::future::join_all(samples).await {
            match outcome {
                Err(CallError::Redis(error)) if !conn::is_own_refusal(&error) => {
                    return Err(CallError::Redis(error))
                }
                outcome => outcomes.push(outcome),
            }
        }
        Ok(outcomes)
    }

    /// One set: its own transaction, or one slot per command. Returns its index sample.
    async fn write_set(
        &self,
        connection: &Connection,
        set: &PlannedSet<'_>,
    ) -> Result<Vec<redis::Value>, CallError> {
        match self
            .transaction(connection, std::slice::from_ref(set))
            .await
        {
            // A lone set's refusal is the script's whole reply.
            Err(error) => Err(set.refusal(error)),
            Ok(Some(reply)) => set.sample(reply),
            Ok(None) => {
                let keys = (set.record_key.as_str(), set.index_key.as_str());
                let mut connection = connection.clone();
                let updated_at_ms = set.summary.updated_at_ms;
                self.set_one_slot(&mut connection, keys, set.id, set.json, updated_at_ms)
                    .await
            }
        }
    }

    /// The transaction of `sets`: a `SET` of each pending key, then `set.lua` for all of them;
    /// `None` when the store works one slot per command (`atomically`). The script's reply: a
    /// lone set's item, or one item a set.
    async fn transaction(
        &self,
        connection: &Connection,
        sets: &[PlannedSet<'_>],
    ) -> Result<Option<redis::Value>, RedisError> {
        let ttl = self.options.ttl_seconds;
        let pending: Vec<String> = sets
            .iter()
            .map(|set| self.keys.pending_key(&set.record_key, random_bits()))
            .collect();
        let script = |command: &str, script: &str| {
            let mut transaction = redis::pipe();
            // The script's reply holds each set's refusal: redis-rs would fail them all
            // (`script_reply` reads the replies).
            transaction.atomic().ignore_errors();
            for (set, pending) in sets.iter().zip(&pending) {
                transaction.add_command(set_with_ttl(pending, set.json, ttl));
            }
            transaction.cmd(command).arg(script).arg(3 * sets.len());
            for (set, pending) in sets.iter().zip(&pending) {
                transaction
                    .arg(pending)
                    .arg(&set.record_key)
                    .arg(&set.index_key);
            }
            for set in sets {
                transaction.arg(set.summary.updated_at_ms).arg(set.id);
            }
            transaction
                .arg(ttl + INDEX_TTL_MARGIN_SECONDS)
                .arg(self.options.list_limit);
            transaction
        };
        let mut transaction_connection = connection.clone();
        let transaction = async {
            let by_sha = script_reply(
                script("EVALSHA", self.scripts.set.get_hash())
                    .query_async(&mut transaction_connection)
                    .await,
            );
            // A server that lost its script cache (a restart, a failover, SCRIPT FLUSH)
            // ran the SETs alone: the same transaction with the script's text writes the
            // same pending keys again and renames them (and caches the script).
            let Err(error) = &by_sha else { return by_sha };
            if !is_no_script(error) {
                return by_sha;
            }
            let by_text = script_reply(
                script("EVAL", SET)
                    .query_async(&mut transaction_connection)
                    .await,
            );
            if by_text.is_err() {
                // The SETs by SHA ran and the script never did (the retry refused: an ACL
                // without EVAL; or lost): their pending keys go now, at best, or with their
                // TTL (the connection lost, the deadline or close() first). After a lone
                // set's refusal by the script itself its pending key is gone already.
                let _ = redis::cmd("UNLINK")
                    .arg(&pending)
                    .query_async::<()>(&mut transaction_connection)
                    .await;
            }
            by_text
        };
        self.atomically(connection, transaction).await
    }

    /// Removes the conversation and its owner's index entry; a missing id is not an error.
    pub(super) async fn run_delete(&self, id: &str, turn: Turn) -> StoreResult<()> {
        self.ensure_open()?;
        check_id("id", id)?;
        let key = self.keys.conversation_key(id);
        self.call_in_turn(turn, |mut connection, _| async move {
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
            let mut transaction = redis::pipe();
            transaction.atomic();
            transaction.add_command(record_delete.clone()).ignore();
            transaction.add_command(index_remove.clone()).ignore();
            // The index holding another type holds no entry to remove: the record is deleted
            // (DEL never refuses), and the delete is done.
            let foreign_index = |result: Result<_, RedisError>| match result {
                Err(error) if is_wrong_type(&error) => {
                    self.logger().warn(format!(
                        "deleted {key}; its owner's index {index_key} holds a value of another \
                         type, left as it is"
                    ));
                    Ok(Some(()))
                }
                result => result,
            };
            let mut transaction_connection = connection.clone();
            let deleted = foreign_index(
                self.atomically(
                    &connection,
                    transaction.query_async::<()>(&mut transaction_connection),
                )
                .await,
            )?;
            if deleted.is_some() {
                return Ok(());
            }
            // Record first: healing only removes entries whose record is really gone.
            record_delete.query_async::<()>(&mut connection).await?;
            foreign_index(
                index_remove
                    .query_async::<()>(&mut connection)
                    .await
                    .map(Some),
            )?;
            Ok(())
        })
        .await
    }
}

/// Where the trim's random sample of the index starts (the scripts take it modulo the size).
pub(super) fn random_rank() -> u32 {
    random_bits() as u32
}

/// Random bits from the standard library's randomly seeded hasher (no generator needed: these
/// only have to differ from call to call and from other writers' keys).
pub(super) fn random_bits() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    (u128::from(half()) << 64) | u128::from(half())
}

pub(super) async fn read_record(
    connection: &mut Connection,
    key: &str,
) -> Result<Option<Vec<u8>>, RedisError> {
    redis::cmd("GET").arg(key).query_async(connection).await
}

#[cfg(test)]
mod tests {
    use super::super::TRIM_BATCH;
    use super::*;
    use crate::error::ErrorCode;

    fn refusal(code: &str) -> CallError {
        CallError::Redis(redis::make_extension_error(
            code.to_owned(),
            Some("detail".to_owned()),
        ))
    }

    #[test]
    fn the_set_script_samples_trim_batch_entries_from_the_pending_keys_random_bits() {
        // set.lua takes neither as an argument (docs/performance.md, "Changes measured").
        assert!(SET.contains(&format!("\nlocal TRIM_BATCH = {TRIM_BATCH}\n")));
        assert!(SET.contains("local pending, record, index = KEYS[3 * i - 2],"));
        assert!(SET.contains("tonumber(string.sub(pending, -8), 16)"));
        // Both forms of the pending key end with the nonce's low 32 bits as 8 hex digits.
        for (prefix, id) in [("app:", "c1"), ("a{:", "c1"), ("", "a}b")] {
            let keys = KeyLayout::new(prefix).unwrap();
            for (nonce, low) in [(u128::MAX - 1, u32::MAX - 1), (7, 7), (1 << 32, 0)] {
                let pending = keys.pending_key(&keys.conversation_key(id), nonce);
                let last = &pending[pending.len() - 8..];
                assert_eq!(u32::from_str_radix(last, 16), Ok(low), "{pending}");
            }
        }
    }

    #[test]
    fn a_set_sized_at_the_start_sends_the_bytes_of_one_built_an_argument_at_a_time() {
        let json = format!("{{\"text\":\"{}\"}}", "é".repeat(5_000));
        for ttl in [0, 86_400, u64::MAX] {
            let mut sized = set_with_ttl("conv:ключ", &json, ttl);
            sized.arg("GET");
            let mut grown = redis::cmd("SET");
            grown
                .arg("conv:ключ")
                .arg(&json)
                .arg("EX")
                .arg(ttl)
                .arg("GET");
            assert_eq!(sized.get_packed_command(), grown.get_packed_command());
        }
    }

    #[test]
    fn one_slot_scripts_are_sent_with_their_comment_lines_emptied_and_every_line_in_place() {
        for script in [
            &RECORD_SET,
            &INDEX_ADD,
            &ONE_SLOT_HEAL_MARK,
            &ONE_SLOT_HEAL_FINISH,
        ] {
            // What emptying whole lines relies on: no long string or comment, whose lines a
            // `--` could start, and no comment after code.
            assert!(!script.source.contains("[["), "{}", script.source);
            assert!(!script.source.contains("[="), "{}", script.source);
            for line in script.source.lines() {
                assert!(
                    line.trim_start().starts_with("--") || !line.contains("--"),
                    "a comment after code: {line}"
                );
            }
            let (code, source) = (script.code(), script.source);
            assert_eq!(code.split('\n').count(), source.lines().count());
            for (sent, line) in code.split('\n').zip(source.lines()) {
                assert!(sent == line || (sent.is_empty() && line.trim_start().starts_with("--")));
            }
            assert!(code.len() < source.len() && !code.contains("--"), "{code}");
        }
        assert_eq!(
            without_comments("-- a\n\n  -- b\nlocal x = 1\n  return x\n"),
            "\n\n\nlocal x = 1\n  return x"
        );
    }

    #[test]
    fn a_refused_key_is_told_from_a_refused_command_in_every_wording() {
        let noperm = |detail: &str| {
            redis::make_extension_error("NOPERM".to_owned(), Some(detail.to_owned()))
        };
        // Redis 6.0 to 7.0, then 7.2 on (and Valkey).
        for key in [
            "this user has no permissions to access one of the keys used as arguments",
            "No permissions to access a key",
        ] {
            assert!(refuses_a_key(&noperm(key)), "{key}");
        }
        for command in [
            "this user has no permissions to run the 'eval' command",
            "User monkey has no permissions to run the 'eval' command",
            "User apikey-writer has no permissions to run the 'evalsha' command",
        ] {
            assert!(!refuses_a_key(&noperm(command)), "{command}");
        }
    }

    #[test]
    fn a_wrongtype_refusal_is_a_corrupt_record_and_other_refusals_stay_redis_errors() {
        match wrong_type_is_corrupt(refusal("WRONGTYPE")) {
            CallError::Store(error) => {
                assert_eq!(error.code, ErrorCode::CorruptRecord);
                assert_eq!(error.message, "Redis refused the command: WRONGTYPE detail");
            }
            CallError::Redis(error) => panic!("still a Redis error: {error}"),
        }
        for code in ["READONLY", "NOPERM"] {
            assert!(matches!(
                wrong_type_is_corrupt(refusal(code)),
                CallError::Redis(_)
            ));
        }
    }
}
