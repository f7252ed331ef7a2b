//! The order of calls on one id in the Redis store: calls on one id apply in the order they
//! were made, as the in-memory store's do, whatever happens between their round trips (a
//! `delete`'s GET then its transaction, a `set` retried after `NOSCRIPT`, one slot per
//! command, a reconnect) and whichever task tokio runs first.
//!
//! A call takes its [`Turn`] synchronously, on the JavaScript thread where the native method
//! is called, so turns are taken in the order the calls were made. Calls form groups: gets of
//! one id made one after the other run together, and so do deletes (they agree); each `set`
//! is a group of its own. A group starts once the group before it has ended, so only calls
//! on one id that overlap ever wait, and they wait within their own deadline, which runs from
//! when the call reached the native store. Nothing waits for a `listByUser`, nor does it wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::watch;
use tokio::time::Instant;

/// What a call on an id does, for its place in the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Get,
    Set,
    Delete,
}

/// The calls of one group hold its sender; when the last one ends, the sender is dropped and
/// every receiver's `changed()` returns.
type Signal = watch::Sender<()>;

/// The newest group of calls on one id.
struct Group {
    kind: CallKind,
    members: Weak<Signal>,
    done: watch::Receiver<()>,
    /// The group before this one, while it may still run.
    after: Option<watch::Receiver<()>>,
}

impl Group {
    fn new(kind: CallKind, after: Option<watch::Receiver<()>>) -> (Group, Arc<Signal>) {
        let (sender, done) = watch::channel(());
        let sender = Arc::new(sender);
        let group = Group {
            kind,
            members: Arc::downgrade(&sender),
            done,
            after,
        };
        (group, sender)
    }

    fn running(&self) -> Option<Arc<Signal>> {
        self.members.upgrade()
    }
}

/// The ids with a call taken in and not ended; an id leaves when its newest group ends, so
/// the map holds only ids with calls in flight.
#[derive(Default)]
pub struct IdOrder {
    ids: Mutex<HashMap<Box<str>, Group>>,
}

impl IdOrder {
    /// The turn of a call of `kind` on `id`, made now.
    pub fn take(self: &Arc<Self>, kind: CallKind, id: &str) -> Turn {
        let made = Instant::now();
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        let newest = ids.get(id);
        // Joins the newest group while it runs and takes calls of this kind (sets never
        // share: two sets of one id sent by two tasks may reach Redis in either order). A
        // group ends only once its calls and what they waited for have ended (see `Drop` for
        // `Turn`), so a group that ended leaves nothing to wait for.
        let joined = newest.and_then(|group| {
            let signal = group
                .running()
                .filter(|_| group.kind == kind && kind != CallKind::Set)?;
            Some((group.after.clone(), signal))
        });
        let (after, signal) = match joined {
            Some(joined) => joined,
            None => {
                let after = newest.and_then(|group| group.running().map(|_| group.done.clone()));
                let (group, signal) = Group::new(kind, after.clone());
                match ids.get_mut(id) {
                    Some(newest) => *newest = group,
                    None => {
                        ids.insert(id.into(), group);
                    }
                }
                (after, signal)
            }
        };
        Turn {
            made,
            after,
            member: Some(Member {
                order: self.clone(),
                id: id.into(),
                signal,
            }),
        }
    }

    /// A member of `id`'s group ended: the id leaves once its newest group has no member.
    fn leave(&self, id: &str, signal: Arc<Signal>) {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        drop(signal);
        if ids.get(id).is_some_and(|group| group.running().is_none()) {
            ids.remove(id);
        }
    }

    /// How many ids have calls in flight (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids.lock().unwrap().len()
    }
}

struct Member {
    order: Arc<IdOrder>,
    id: Box<str>,
    signal: Arc<Signal>,
}

/// A call's place in the order of its id: when it was made, and what it waits for. Dropped
/// when the call ends (settled, timed out, or failed before it sent anything).
pub struct Turn {
    made: Instant,
    after: Option<watch::Receiver<()>>,
    member: Option<Member>,
}

impl Turn {
    /// A turn that waits for nothing, made now: for a call outside any order.
    pub fn unordered() -> Turn {
        Turn {
            made: Instant::now(),
            after: None,
            member: None,
        }
    }

    /// When the call was made: its deadline runs from here.
    pub fn made(&self) -> Instant {
        self.made
    }

    /// Whether the calls this one must follow have all ended: its wait would end at once.
    pub fn is_free(&self) -> bool {
        // Err: the group's last sender is gone, i.e. what it waited for ended.
        self.after
            .as_ref()
            .is_none_or(|after| !matches!(after.has_changed(), Ok(false)))
    }

    /// Resolves once the calls this one must follow have ended.
    pub async fn wait(&mut self) {
        if let Some(after) = &mut self.after {
            // Err: the group's last sender is gone, i.e. the group ended. Nothing is sent.
            let _ = after.changed().await;
        }
        self.after = None;
    }
}

impl Drop for Turn {
    /// A call that ended before its wait did (refused before it waited, or out of time while
    /// waiting) stays in its group until the wait is over: a group then ends only after what it
    /// waited for, and a call that follows it needs to wait for it alone.
    fn drop(&mut self) {
        let Some(Member { order, id, signal }) = self.member.take() else {
            return;
        };
        let pending = self
            .after
            .take()
            .filter(|after| after.has_changed().is_ok());
        match (pending, tokio::runtime::Handle::try_current()) {
            (Some(mut after), Ok(runtime)) => {
                runtime.spawn(async move {
                    let _ = after.changed().await;
                    order.leave(&id, signal);
                });
            }
            // Without a runtime (a call dropped on the JavaScript thread because it could not be
            // spawned, so it never ran) nothing can wait on: the group may end before what it
            // waited for. Calls are only ever dropped on the runtime once spawned.
            _ => order.leave(&id, signal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll};

    fn waits(turn: &mut Turn) -> bool {
        let mut context = Context::from_waker(futures_util::task::noop_waker_ref());
        let wait = pin!(turn.wait());
        matches!(wait.poll(&mut context), Poll::Pending)
    }

    fn order() -> Arc<IdOrder> {
        Arc::new(IdOrder::default())
    }

    #[test]
    fn calls_on_one_id_run_in_the_order_made() {
        let order = order();
        let mut set_before = order.take(CallKind::Set, "a");
        let mut delete = order.take(CallKind::Delete, "a");
        let mut set_after = order.take(CallKind::Set, "a");
        let mut get_after = order.take(CallKind::Get, "a");
        assert!(!waits(&mut set_before));
        assert!(waits(&mut delete), "the delete overtook the set before it");
        drop(set_before);
        assert!(!waits(&mut delete));
        assert!(waits(&mut set_after), "the set overtook the delete");
        assert!(waits(&mut get_after), "the get overtook the delete");
        drop(delete);
        assert!(!waits(&mut set_after));
        assert!(waits(&mut get_after), "the get overtook the set");
        drop(set_after);
        assert!(!waits(&mut get_after));
    }

    #[test]
    fn gets_and_deletes_of_one_id_run_together_sets_one_by_one_and_other_ids_are_not_held() {
        let order = order();
        let mut gets: Vec<Turn> = (0..3).map(|_| order.take(CallKind::Get, "a")).collect();
        let mut first = order.take(CallKind::Set, "a");
        let mut second = order.take(CallKind::Set, "a");
        let mut deletes: Vec<Turn> = (0..3).map(|_| order.take(CallKind::Delete, "a")).collect();
        let mut other = order.take(CallKind::Set, "b");
        assert!(gets.iter_mut().all(|turn| !waits(turn)));
        assert!(waits(&mut first) && waits(&mut second));
        assert!(!waits(&mut other));
        gets.truncate(1);
        assert!(waits(&mut first), "the set overtook a get");
        gets.clear();
        assert!(!waits(&mut first));
        assert!(waits(&mut second), "two sets of one id ran together");
        drop(first);
        assert!(!waits(&mut second));
        assert!(deletes.iter_mut().all(waits));
        drop(second);
        assert!(deletes.iter_mut().all(|turn| !waits(turn)));
    }

    #[tokio::test]
    async fn calls_after_one_that_ended_early_still_wait_for_what_it_waited_for() {
        let order = order();
        let delete = order.take(CallKind::Delete, "a");
        // A set refused before it waited (bad input) ends at once; its group lives on until
        // the delete ends.
        drop(order.take(CallKind::Set, "a"));
        let mut set = order.take(CallKind::Set, "a");
        let mut get = order.take(CallKind::Get, "a");
        tokio::task::yield_now().await;
        assert!(waits(&mut set), "the set overtook the delete");
        drop(delete);
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), set.wait()).await;
        assert!(ended.is_ok(), "the set still waits");
        assert!(waits(&mut get));
    }

    #[test]
    fn calls_made_after_a_get_do_not_hold_it_back() {
        let order = order();
        let delete = order.take(CallKind::Delete, "a");
        let mut get = order.take(CallKind::Get, "a");
        let mut later = order.take(CallKind::Delete, "a");
        drop(delete);
        assert!(
            !waits(&mut get),
            "the get waited for a delete made after it"
        );
        assert!(waits(&mut later));
        drop(get);
        assert!(!waits(&mut later));
    }

    #[test]
    fn an_id_leaves_the_map_when_its_calls_end() {
        let order = order();
        let set = order.take(CallKind::Set, "a");
        let delete = order.take(CallKind::Delete, "a");
        let get = order.take(CallKind::Get, "a");
        assert_eq!(order.len(), 1);
        drop(set);
        drop(delete);
        assert_eq!(order.len(), 1, "the get is still running");
        drop(get);
        assert_eq!(order.len(), 0);
    }

    /// Random calls on one id, ended in random order (some before they ran, as refused or
    /// timed-out calls are): a call that runs never overtakes a live call made before it,
    /// unless both are gets or both deletes; something can always run; the map empties.
    #[tokio::test]
    async fn random_calls_on_one_id_never_overtake_and_never_stall() {
        let order = order();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let kinds = [CallKind::Get, CallKind::Set, CallKind::Delete];
        for _round in 0..300 {
            let mut live: Vec<(CallKind, Turn)> = Vec::new();
            for _ in 0..(1 + next(12)) {
                let kind = kinds[next(3) as usize];
                live.push((kind, order.take(kind, "a")));
            }
            while !live.is_empty() {
                tokio::task::yield_now().await;
                let runnable: Vec<usize> = (0..live.len())
                    .filter(|&i| !waits(&mut live[i].1))
                    .collect();
                assert!(!runnable.is_empty(), "nothing can run");
                for &i in &runnable {
                    let kind = live[i].0;
                    let shared = kind != CallKind::Set;
                    assert!(
                        live[..i].iter().all(|(k, _)| shared && *k == kind),
                        "a {kind:?} overtook a live call of another group"
                    );
                }
                // End a runnable call, or now and then one still waiting.
                let index = if next(5) == 0 {
                    next(live.len() as u64) as usize
                } else {
                    runnable[next(runnable.len() as u64) as usize]
                };
                live.remove(index);
            }
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            assert_eq!(order.len(), 0, "an id stayed in the map");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_ends_when_the_call_before_it_ends() {
        let order = order();
        let delete = order.take(CallKind::Delete, "a");
        let mut set = order.take(CallKind::Set, "a");
        let made = set.made();
        let ended = tokio::spawn(async move {
            set.wait().await;
            Instant::now()
        });
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        drop(delete);
        let ended = ended.await.unwrap();
        assert!(ended - made >= std::time::Duration::from_millis(30));
    }
}
