#!/usr/bin/env python3
"""Sums `perf report` lines of the addon by function: as perf names them where it read the
addon's symbol table, else (bare addresses) by the function `nm` places them in. perf prints
those addresses as offsets in the file, while `nm` gives virtual addresses: the two differ by
each LOAD segment's vaddr - offset (0x1000 for the addon's code), so each address is mapped
through the segment holding it first. Usage:
  perf report ... --sort dso,sym --stdio -g none | resolve-addon-frames.py ADDON.node [TOP]"""
import bisect
import re
import subprocess
import sys

addon = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
symbols = []
for line in subprocess.run(['nm', '-n', '-C', addon], capture_output=True, text=True).stdout.splitlines():
    parts = line.split(None, 2)
    if len(parts) == 3 and parts[1] in ('t', 'T', 'w', 'W'):
        symbols.append((int(parts[0], 16), parts[2]))
starts = [s for s, _ in symbols]
segments = []  # (file offset, size in the file, virtual address) of each LOAD segment
for line in subprocess.run(['readelf', '-lW', addon], capture_output=True, text=True).stdout.splitlines():
    parts = line.split()
    if parts and parts[0] == 'LOAD':
        segments.append((int(parts[1], 16), int(parts[4], 16), int(parts[2], 16)))


def virtual_address(offset):
    for start, size, vaddr in segments:
        if start <= offset < start + size:
            return offset - start + vaddr
    return offset


totals = {}
for line in sys.stdin:
    m = re.match(r'\s+([0-9.]+)%.*redis-store\S*\.node\s+\[\.\]\s+(\S.*?)\s*$', line)
    if not m:
        continue
    frame = m.group(2)
    if re.fullmatch(r'0x[0-9a-f]+', frame):
        i = bisect.bisect_right(starts, virtual_address(int(frame, 16))) - 1
        name = symbols[i][1] if i >= 0 else '?'
    else:
        name = frame  # perf found the symbol table itself
    totals[name] = totals.get(name, 0.0) + float(m.group(1))
for name, pct in sorted(totals.items(), key=lambda kv: -kv[1])[:top]:
    print(f'{pct:8.2f}%  {name[:170]}')
print(f'{sum(totals.values()):8.2f}%  (all samples in the addon)')
