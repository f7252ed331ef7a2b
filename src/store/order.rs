//! The order of calls on one id in the Redis store: a `delete` (a GET, then a transaction)
//! is not overtaken by a `set` or `get` of its id made after it, and does not overtake a
//! `set` made before it, whatever happens between its round trips (a retry after `NOSCRIPT`,
//! a reconnect, another tokio worker).
//!
//! A call takes its [`Turn`] synchronously, on the JavaScript thread where it was made, so
//! turns are taken in the order the calls were made. Sets of one id made one after the other
//! form a group, and so do deletes: the calls of a group run together (sets are kept in order
//! by the connection, and deletes of one id agree), and each waits for the group of the other
//! kind before it. A `get` waits for the deletes before it, and for the sets that followed
//! those; it joins no group, and the group it waits for takes no later member (later calls
//! of that kind start a group after it), so a stream of calls cannot hold a get back. Nothing
//! waits for a `listByUser`, nor does it wait. Each wait counts against the call's own
//! deadline, which runs from when the call was handed to the native store.

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

/// The newest group of calls on one id, and the group of the other kind before it.
struct Group {
    kind: CallKind,
    members: Weak<Signal>,
    done: watch::Receiver<()>,
    /// The group of the other kind before this one, while it may still run.
    after: Option<watch::Receiver<()>>,
    /// A `get` waits for this group: later calls of its kind start a group after it, so that
    /// a stream of them cannot hold the get back for ever.
    closed: bool,
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
            closed: false,
        };
        (group, sender)
    }

    fn running(&self) -> Option<Arc<Signal>> {
        self.members.upgrade()
    }
}

/// The ids with a set or delete taken in and not ended; an id leaves when its newest group
/// ends, so the map holds only ids with calls in flight.
#[derive(Default)]
pub struct IdOrder {
    ids: Mutex<HashMap<Box<str>, Group>>,
}

impl IdOrder {
    /// The turn of a call of `kind` on `id`, made now.
    pub fn take(self: &Arc<Self>, kind: CallKind, id: &str) -> Turn {
        let made = Instant::now();
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        if kind == CallKind::Get {
            // A get follows the deletes before it, and the sets that followed those while they
            // run: released with them, or right after them but before they were sent, it could
            // read the deleted state.
            let after = ids.get_mut(id).and_then(|group| {
                let follows = match group.kind {
                    CallKind::Delete => group.running().is_some(),
                    _ => group.running().is_some() && group.after.is_some(),
                };
                group.closed |= follows;
                follows.then(|| group.done.clone())
            });
            return Turn {
                made,
                after,
                member: None,
            };
        }
        let newest = ids.get(id);
        // A group ends only once its calls and what they waited for have ended (see `Drop`
        // for `Turn`), so a group that ended leaves nothing to wait for.
        let joined = newest.and_then(|group| {
            let signal = group
                .running()
                .filter(|_| group.kind == kind && !group.closed)?;
            Some((group.after.clone(), signal))
        });
        let (after, signal) = match joined {
            Some(joined) => joined,
            None => {
                // After the newest group while it runs: of the other kind, or of this kind and
                // closed (a get waits between the two).
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
    fn a_set_and_a_get_after_a_delete_wait_for_it_and_a_set_before_it_does_not() {
        let order = order();
        let mut set_before = order.take(CallKind::Set, "a");
        let mut delete = order.take(CallKind::Delete, "a");
        let mut set_after = order.take(CallKind::Set, "a");
        let mut get_after = order.take(CallKind::Get, "a");
        assert!(!waits(&mut set_before));
        assert!(waits(&mut delete), "the delete overtook the set before it");
        drop(set_before);
        assert!(!waits(&mut delete));
        assert!(
            waits(&mut set_after),
            "the set overtook the delete before it"
        );
        assert!(
            waits(&mut get_after),
            "the get overtook the delete before it"
        );
        drop(delete);
        assert!(!waits(&mut set_after));
        // The get was made after the set too.
        assert!(waits(&mut get_after));
        drop(set_after);
        assert!(!waits(&mut get_after));
    }

    #[test]
    fn calls_of_one_kind_run_together_and_other_ids_are_not_held() {
        let order = order();
        let mut sets: Vec<Turn> = (0..3).map(|_| order.take(CallKind::Set, "a")).collect();
        let mut deletes: Vec<Turn> = (0..3).map(|_| order.take(CallKind::Delete, "a")).collect();
        let mut other = order.take(CallKind::Set, "b");
        assert!(sets.iter_mut().all(|turn| !waits(turn)));
        assert!(deletes.iter_mut().all(waits));
        assert!(!waits(&mut other));
        // The deletes wait for every set before them, not for the first alone.
        sets.truncate(2);
        assert!(deletes.iter_mut().all(waits));
        sets.clear();
        assert!(deletes.iter_mut().all(|turn| !waits(turn)));
    }

    #[test]
    fn a_get_waits_for_no_set() {
        let order = order();
        let _set = order.take(CallKind::Set, "a");
        assert!(!waits(&mut order.take(CallKind::Get, "a")));
    }

    #[tokio::test]
    async fn a_set_after_sets_that_ended_early_still_waits_for_the_delete_before_them() {
        let order = order();
        let _delete = order.take(CallKind::Delete, "a");
        // A set refused before it waited (bad input) ends at once.
        drop(order.take(CallKind::Set, "a"));
        let mut set = order.take(CallKind::Set, "a");
        assert!(waits(&mut set), "the set overtook the delete");
        let mut get = order.take(CallKind::Get, "a");
        assert!(waits(&mut get), "the get overtook the delete");
    }

    #[tokio::test]
    async fn a_delete_after_a_delete_group_ended_early_still_waits_for_the_sets_before() {
        let order = order();
        let _set = order.take(CallKind::Set, "a");
        drop(order.take(CallKind::Delete, "a"));
        let mut delete = order.take(CallKind::Delete, "a");
        assert!(waits(&mut delete), "the delete overtook the set");
    }

    #[test]
    fn a_get_after_a_delete_and_a_set_waits_for_the_set() {
        let order = order();
        let delete = order.take(CallKind::Delete, "a");
        let mut set = order.take(CallKind::Set, "a");
        let mut get = order.take(CallKind::Get, "a");
        assert!(waits(&mut set));
        drop(delete);
        assert!(!waits(&mut set));
        assert!(waits(&mut get), "the get would read the deleted state");
        // Made once the delete has ended, before the set was sent: it waits for the set too.
        let mut late_get = order.take(CallKind::Get, "a");
        assert!(waits(&mut late_get), "the get could overtake the set");
        drop(set);
        assert!(!waits(&mut get));
        assert!(!waits(&mut late_get));
        // Sets that followed no delete: a get waits for nothing (the connection keeps their
        // order).
        let _set = order.take(CallKind::Set, "a");
        assert!(!waits(&mut order.take(CallKind::Get, "a")));
    }

    #[tokio::test]
    async fn calls_made_after_a_get_do_not_hold_it_back() {
        let order = order();
        let first = order.take(CallKind::Delete, "a");
        let mut get = order.take(CallKind::Get, "a");
        // A later delete starts a group after the one the get waits for.
        let mut second = order.take(CallKind::Delete, "a");
        assert!(waits(&mut get));
        assert!(waits(&mut second));
        let mut set = order.take(CallKind::Set, "a");
        drop(first);
        assert!(
            !waits(&mut get),
            "the get waited for a delete made after it"
        );
        assert!(!waits(&mut second));
        assert!(waits(&mut set));
        drop(second);
        assert!(!waits(&mut set));
    }

    #[tokio::test]
    async fn a_set_waits_for_every_delete_before_it_across_a_get() {
        let order = order();
        let first = order.take(CallKind::Delete, "a");
        let _get = order.take(CallKind::Get, "a");
        // Refused at once: its group lives on until the first delete ends.
        drop(order.take(CallKind::Delete, "a"));
        let mut set = order.take(CallKind::Set, "a");
        tokio::task::yield_now().await;
        assert!(waits(&mut set), "the set overtook the first delete");
        drop(first);
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), set.wait()).await;
        assert!(ended.is_ok(), "the set still waits");
    }

    #[test]
    fn an_id_leaves_the_map_when_its_calls_end() {
        let order = order();
        let set = order.take(CallKind::Set, "a");
        let delete = order.take(CallKind::Delete, "a");
        let get = order.take(CallKind::Get, "a");
        assert_eq!(order.len(), 1);
        drop(get);
        drop(set);
        assert_eq!(order.len(), 1, "the delete is still running");
        drop(delete);
        assert_eq!(order.len(), 0);
        // Gets alone leave nothing behind.
        drop(order.take(CallKind::Get, "a"));
        assert_eq!(order.len(), 0);
    }

    #[test]
    fn many_deletes_and_sets_of_one_id_alternate_in_order() {
        let order = order();
        let mut turns: Vec<(CallKind, Turn)> = (0..200)
            .map(|i| {
                let kind = if i % 3 == 0 {
                    CallKind::Delete
                } else {
                    CallKind::Set
                };
                (kind, order.take(kind, "a"))
            })
            .collect();
        // Run them in order: each runs once what it waits for has ended.
        let mut ended = 0;
        while !turns.is_empty() {
            let runnable: Vec<usize> = (0..turns.len())
                .filter(|&i| !waits(&mut turns[i].1))
                .collect();
            assert!(!runnable.is_empty(), "nothing can run: a cycle");
            // Only calls of one kind run at once, and only the first group.
            let kind = turns[runnable[0]].0;
            assert!(runnable.iter().all(|&i| turns[i].0 == kind));
            assert_eq!(runnable, (0..runnable.len()).collect::<Vec<_>>());
            for i in runnable.into_iter().rev() {
                turns.remove(i);
                ended += 1;
            }
        }
        assert_eq!(ended, 200);
        assert_eq!(order.len(), 0);
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
