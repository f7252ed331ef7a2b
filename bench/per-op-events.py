#!/usr/bin/env python3
"""Sums a `perf stat --per-thread -x,` file by thread name and prints each event per op.

    python3 bench/per-op-events.py <perf stat file> <ops counted>

Threads are grouped by their name (node's JavaScript thread and V8's and libuv's helpers are
all "node"; tokio's worker is "tokio-rt-worker"); a thread created after perf attached is
counted under its creator's name. The epoll, read and write syscalls of each kind are added
up; a read that finds nothing and a futex call that wakes another thread count too.
bench/profile.sh enables perf's events just before the op's run and perf ends when the
processes exit after it, so the figures include the few calls still in flight at its end and
the shutdown: a few tenths of a percent at most, as measured.
"""
import collections
import sys

COLUMNS = [
    ("context switches", ("context-switches",)),
    ("futex", ("syscalls:sys_enter_futex",)),
    ("epoll waits", ("syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_epoll_pwait")),
    ("reads", ("syscalls:sys_enter_read", "syscalls:sys_enter_recvfrom")),
    ("writes", ("syscalls:sys_enter_write", "syscalls:sys_enter_writev", "syscalls:sys_enter_sendto")),
]
EVENTS = {event for _, events in COLUMNS for event in events}


def main(path, ops_text):
    ops = float(ops_text) if ops_text.isdigit() else 0.0
    if ops <= 0:
        sys.exit(f"per-op-events: expected a count of ops above 0, got {ops_text!r}")
    counts = collections.defaultdict(collections.Counter)
    not_counted = collections.Counter()
    with open(path) as lines:
        for line in lines:
            if line.startswith("#") or not line.strip():
                continue
            # thread-tid,count,unit,event,...: a thread name may itself hold a comma.
            fields = line.rstrip("\n").split(",")
            event = next((f for f in fields if f in EVENTS), None)
            if event is None:
                continue
            at = fields.index(event)
            thread = ",".join(fields[: at - 2]).rsplit("-", 1)[0]
            count = fields[at - 2]
            if count.isdigit():
                counts[thread][event] += int(count)
            else:
                not_counted[event] += 1
    if not counts:
        sys.exit(f"per-op-events: no counts in {path}")
    print(f"    {'thread':<18}" + "".join(f"{name:>18}" for name, _ in COLUMNS))
    for thread in sorted(counts, key=lambda t: -counts[t]["context-switches"]):
        cells = [sum(counts[thread][event] for event in events) / ops for _, events in COLUMNS]
        if max(cells) < 0.005:
            continue  # redis-server's and jemalloc's background threads, idle
        print(f"    {thread:<18}" + "".join(f"{cell:>18.2f}" for cell in cells))
    for event, threads in sorted(not_counted.items()):
        # A thread that never ran while perf counted; its zero is not a measurement.
        print(f"    ({event}: not counted on {threads} thread(s))")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
