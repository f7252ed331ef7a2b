//! The store's commands in flight for the slots of one cluster primary: `NODE_IN_FLIGHT` at
//! most; more wait their turn.
//!
//! redis-rs queues each node's commands on a channel of 50 places, and its cluster task stops
//! polling the commands it carries while it refreshes its slot map, which it does after every
//! `MOVED`. tokio gives a freed place to the command that has waited longest, polled or not:
//! with 50 commands in a node's channel and 50 more waiting, those take every place the node
//! frees and cannot move before the refresh ends, the refresh's own command to that node waits
//! behind them, and every call stalls until a response timeout ends it. A burst at one
//! migrating slot passed with 100 commands at a time to its node and stalled with 130.
//!
//! The bound is per primary, not per client: commands stuck on a primary that stopped answering
//! hold its places only, and calls to the others go on. A command counts against the primary
//! that the watcher's last `CLUSTER SLOTS` names for its key's slot, though it may be sent to
//! another node (the target of a migrating slot, a new primary before the next check): a node
//! then carries its own 40 and the 40 of a slot moving to it, still short of 100. Slots that
//! reply left unassigned, and commands without a key, share one more gate of the same size.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use redis::{Arg, Cmd};
use tokio::sync::Semaphore;

/// The store's commands in flight to one node, at most.
const NODE_IN_FLIGHT: usize = 40;

const SLOTS: u16 = 16384;

/// A run of slots and the primary that serves it, as `CLUSTER SLOTS` names them.
pub(super) struct SlotRange {
    pub(super) start: u16,
    pub(super) end: u16,
    pub(super) node: (String, u16),
}

pub(crate) struct NodeGates {
    /// Sorted by first slot; each with the gate of its primary.
    ranges: RwLock<Vec<(SlotRange, Arc<Semaphore>)>>,
    unassigned: Arc<Semaphore>,
}

impl Default for NodeGates {
    fn default() -> Self {
        NodeGates {
            ranges: RwLock::default(),
            unassigned: Arc::new(Semaphore::new(NODE_IN_FLIGHT)),
        }
    }
}

impl NodeGates {
    /// The gate a command takes a place of (a pipeline: its first command's).
    pub(super) fn gate(&self, cmd: Option<&Cmd>) -> Arc<Semaphore> {
        let Some(slot) = cmd.and_then(key_slot) else {
            return self.unassigned.clone();
        };
        let ranges = self.ranges.read().unwrap_or_else(PoisonError::into_inner);
        let after = ranges.partition_point(|(range, _)| range.start <= slot);
        match after.checked_sub(1).map(|i| &ranges[i]) {
            Some((range, gate)) if slot <= range.end => gate.clone(),
            _ => self.unassigned.clone(),
        }
    }

    /// Takes a new `CLUSTER SLOTS` reply: one gate for all the ranges of a node, and a node
    /// that serves slots before and after keeps its gate, with the places its commands hold.
    pub(super) fn learn(&self, latest: Vec<SlotRange>) {
        let mut ranges = self.ranges.write().unwrap_or_else(PoisonError::into_inner);
        let mut known: HashMap<(String, u16), Arc<Semaphore>> = ranges
            .drain(..)
            .map(|(range, gate)| (range.node, gate))
            .collect();
        let mut next: Vec<(SlotRange, Arc<Semaphore>)> = latest
            .into_iter()
            .filter(|range| range.start <= range.end && range.end < SLOTS)
            .map(|range| {
                let gate = known
                    .entry(range.node.clone())
                    .or_insert_with(|| Arc::new(Semaphore::new(NODE_IN_FLIGHT)))
                    .clone();
                (range, gate)
            })
            .collect();
        next.sort_unstable_by_key(|(range, _)| range.start);
        *ranges = next;
    }
}

/// The slot of a command's first key: the argument after the name, or for a script the first
/// of its keys. `None` for a script without keys or a command without arguments.
fn key_slot(cmd: &Cmd) -> Option<u16> {
    let mut args = cmd.args_iter().filter_map(|arg| match arg {
        Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let name = args.next()?;
    let key = if name.eq_ignore_ascii_case(b"EVAL") || name.eq_ignore_ascii_case(b"EVALSHA") {
        let _script = args.next()?;
        if args.next()? == b"0" {
            return None;
        }
        args.next()?
    } else {
        args.next()?
    };
    Some(crc16::State::<crc16::XMODEM>::calculate(hash_tag(key)) % SLOTS)
}

/// What Redis hashes of a key: what the first `{…}` holds, unless that is empty.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    match key[open + 1..].iter().position(|&b| b == b'}') {
        Some(len) if len > 0 => &key[open + 1..open + 1 + len],
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::*;

    fn range(start: u16, end: u16, port: u16) -> SlotRange {
        SlotRange {
            start,
            end,
            node: ("10.0.0.1".to_owned(), port),
        }
    }

    fn get(key: &str) -> Cmd {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        cmd
    }

    #[test]
    fn a_commands_slot_is_redis_rss_for_its_first_key() {
        let keys: [&[u8]; 11] = [
            b"conv:1",
            b"user:{u}:conversations",
            b"{}x",
            b"{}{x}",
            b"{{a}}",
            b"a}b{c}",
            b"a{b}c{d}",
            b"x{",
            "é".as_bytes(),
            b"\xff{\xfe}",
            b"",
        ];
        for key in keys {
            let mut cmd = redis::cmd("GET");
            cmd.arg(key);
            let expected = format!("{:?}", Slot::for_key(key));
            assert_eq!(format!("Slot({})", key_slot(&cmd).unwrap()), expected);
        }
        let mut eval = redis::cmd("EVAL");
        eval.arg("return 1")
            .arg(1)
            .arg("user:{u}:conversations")
            .arg("arg");
        assert_eq!(key_slot(&eval), key_slot(&get("{u}")));
        let mut keyless = redis::cmd("evalsha");
        keyless.arg("0123").arg(0).arg("not a key");
        assert_eq!(key_slot(&keyless), None);
        assert_eq!(key_slot(&redis::cmd("PING")), None);
    }

    #[test]
    fn each_node_has_a_gate_of_its_own_that_outlives_a_new_slot_map() {
        let gates = NodeGates::default();
        let slot = |key: &str| key_slot(&get(key)).unwrap();
        let (low, high) = ("{b}", "{a}");
        assert!(slot(low) < 8192 && slot(high) >= 8192);
        assert!(Arc::ptr_eq(&gates.gate(Some(&get(low))), &gates.unassigned));

        // 7000 serves two ranges: one gate for both.
        gates.learn(vec![
            range(8192, 16383, 7001),
            range(4000, 8191, 7000),
            range(0, 3999, 7000),
        ]);
        let first = gates.gate(Some(&get(low)));
        assert!(!Arc::ptr_eq(&first, &gates.unassigned));
        assert!(!Arc::ptr_eq(&first, &gates.gate(Some(&get(high)))));
        assert!(slot("{c}") >= 4000 && slot("{c}") < 8192 && slot(low) < 4000);
        assert!(Arc::ptr_eq(&first, &gates.gate(Some(&get("{c}")))));

        let held = first.clone().try_acquire_owned().unwrap();
        // 7000 now serves every slot, in two ranges; 7001 none.
        gates.learn(vec![range(0, 99, 7000), range(100, 16383, 7000)]);
        for key in [low, high, "{c}"] {
            let now = gates.gate(Some(&get(key)));
            assert!(Arc::ptr_eq(&first, &now));
            assert_eq!(now.available_permits(), NODE_IN_FLIGHT - 1);
        }
        drop(held);

        // A gap, and ranges no slot can be in, leave their slots to the shared gate.
        gates.learn(vec![
            range(0, 99, 7000),
            range(16383, 20000, 7001),
            range(9, 3, 7001),
        ]);
        assert!(Arc::ptr_eq(
            &gates.gate(Some(&get(high))),
            &gates.unassigned
        ));
    }
}
