//! The in-memory store for development: the same rules as Redis (validation, TTL, ordering,
//! limit, ownership), over records kept as the same JSON text.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::stats::{epoch_ms, CallStats};
use super::INDEX_TTL_MARGIN_SECONDS;
use super::{check_id, check_record, fitting_records, json_array, StoreOptions, StoreStatus};
use crate::error::{StoreError, StoreResult};

struct Record {
    json: String,
    user_id: String,
    expires_at: Instant,
}

/// Ids of one user's conversations with their `updatedAt` score, like the Redis sorted set.
#[derive(Default)]
struct UserIndex {
    scores: HashMap<String, i64>,
    expires_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    records: HashMap<String, Record>,
    indexes: HashMap<String, UserIndex>,
    writes_since_sweep: usize,
}

pub struct MemoryStore {
    options: StoreOptions,
    state: Mutex<State>,
    closed: AtomicBool,
    pub(super) stats: CallStats,
    /// Epoch ms of the last status change: created, closed.
    status_since: AtomicU64,
}

/// Expired records are invisible at once and freed by a sweep every this many writes.
const SWEEP_EVERY_WRITES: usize = 256;

impl MemoryStore {
    pub fn new(options: StoreOptions) -> Self {
        MemoryStore {
            options,
            state: Mutex::new(State::default()),
            closed: AtomicBool::new(false),
            stats: CallStats::default(),
            status_since: AtomicU64::new(epoch_ms()),
        }
    }

    pub(super) fn status_since(&self) -> u64 {
        self.status_since.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Ready from the start; `End` once closed.
    pub fn status(&self) -> StoreStatus {
        if self.is_closed() {
            StoreStatus::End
        } else {
            StoreStatus::Ready
        }
    }

    pub fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.status_since.store(epoch_ms(), Ordering::Relaxed);
        }
        let mut state = self.lock();
        state.records.clear();
        state.indexes.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the maps half-updated in a way that matters here.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ensure_open(&self) -> StoreResult<()> {
        if self.is_closed() {
            return Err(StoreError::closed());
        }
        Ok(())
    }

    pub(super) fn run_get(&self, id: &str) -> StoreResult<Option<String>> {
        self.ensure_open()?;
        check_id("id", id)?;
        let now = Instant::now();
        let state = self.lock();
        Ok(state
            .records
            .get(id)
            .filter(|r| r.expires_at > now)
            .map(|r| r.json.clone()))
    }

    pub(super) fn run_set(&self, id: &str, json: &str) -> StoreResult<()> {
        self.ensure_open()?;
        let summary = check_record(&self.options, id, json)?;
        let now = Instant::now();
        let ttl = Duration::from_secs(self.options.ttl_seconds);
        let mut state = self.lock();
        let previous = state.records.insert(
            id.to_owned(),
            Record {
                json: json.to_owned(),
                user_id: summary.user_id.clone(),
                expires_at: now + ttl,
            },
        );
        if let Some(previous) = previous.filter(|p| p.user_id != summary.user_id) {
            if let Some(index) = state.indexes.get_mut(&previous.user_id) {
                index.scores.remove(id);
            }
        }
        let index = state.indexes.entry(summary.user_id).or_default();
        if index.expires_at.is_some_and(|at| at <= now) {
            index.scores.clear();
        }
        index.scores.insert(id.to_owned(), summary.updated_at_ms);
        index.expires_at = Some(now + ttl + Duration::from_secs(INDEX_TTL_MARGIN_SECONDS));
        state.writes_since_sweep += 1;
        if state.writes_since_sweep >= SWEEP_EVERY_WRITES {
            state.writes_since_sweep = 0;
            sweep(&mut state, now);
        }
        Ok(())
    }

    pub(super) fn run_delete(&self, id: &str) -> StoreResult<()> {
        self.ensure_open()?;
        check_id("id", id)?;
        let mut state = self.lock();
        if let Some(record) = state.records.remove(id) {
            if let Some(index) = state.indexes.get_mut(&record.user_id) {
                index.scores.remove(id);
            }
        }
        Ok(())
    }

    pub(super) fn run_list_by_user(&self, user_id: &str) -> StoreResult<String> {
        self.ensure_open()?;
        check_id("userId", user_id)?;
        let now = Instant::now();
        let state = self.lock();
        let Some(index) = state.indexes.get(user_id) else {
            return Ok(String::from("[]"));
        };
        if index.expires_at.is_some_and(|at| at <= now) {
            return Ok(String::from("[]"));
        }
        let mut live: Vec<(&String, i64, &Record)> = index
            .scores
            .iter()
            .filter_map(|(id, score)| {
                let record = state.records.get(id)?;
                (record.expires_at > now && record.user_id == user_id)
                    .then_some((id, *score, record))
            })
            .collect();
        // ZREVRANGEBYSCORE order: score descending, then member descending.
        live.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(a.0)));
        live.truncate(self.options.list_limit);
        live.truncate(fitting_records(
            live.iter().map(|(_, _, r)| r.json.as_str()),
        ));
        Ok(json_array(live.iter().map(|(_, _, r)| r.json.as_str())))
    }
}

fn sweep(state: &mut State, now: Instant) {
    state.records.retain(|_, r| r.expires_at > now);
    let records = &state.records;
    state.indexes.retain(|_, index| {
        index.scores.retain(|id, _| records.contains_key(id));
        !index.scores.is_empty()
    });
}
