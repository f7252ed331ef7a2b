#!/usr/bin/env python3
"""Sums a `perf stat --per-thread -x,` file by thread name and prints each event per op.

    python3 bench/per-op-events.py <perf stat file> <ops counted>

Threads are grouped by their name (node's JavaScript thread and V8's and libuv's helpers are
all "node"; tokio's worker is "tokio-rt-worker"); the epoll, read and write syscalls of each
kind are added up. perf counts over the op's run (bench/profile.sh starts the run once perf has
attached, and perf ends when the processes exit after it), so set-up is left out and the
shutdown's few events are counted in.
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


def main(path, ops):
    ops = float(ops)
    counts = collections.defaultdict(lambda: collections.Counter())
    with open(path) as lines:
        for line in lines:
            fields = line.rstrip("\n").split(",")
            if len(fields) < 4 or line.startswith("#") or not fields[1].isdigit():
                continue
            thread = fields[0].rsplit("-", 1)[0]
            counts[thread][fields[3]] += int(fields[1])
    print(f"    {'thread':<18}" + "".join(f"{name:>18}" for name, _ in COLUMNS))
    for thread in sorted(counts, key=lambda t: -counts[t]["context-switches"]):
        cells = [sum(counts[thread][event] for event in events) / ops for _, events in COLUMNS]
        if max(cells) < 0.005:
            continue  # redis-server's and jemalloc's background threads, idle
        print(f"    {thread:<18}" + "".join(f"{cell:>18.2f}" for cell in cells))


if __name__ == "__main__":
    if len(sys.argv) != 3 or not sys.argv[2]:
        sys.exit(__doc__)
    main(*sys.argv[1:])
