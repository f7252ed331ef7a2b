#!/usr/bin/env python3
"""Sums `perf report` lines of the addon (shown as bare addresses when perf cannot read its
symbol table) by the function `nm` places them in. Usage:
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
totals = {}
for line in sys.stdin:
    m = re.match(r'\s+([0-9.]+)%.*redis-store\S*\.node\s+\[\.\]\s+0x([0-9a-f]+)', line)
    if not m:
        continue
    i = bisect.bisect_right(starts, int(m.group(2), 16)) - 1
    name = symbols[i][1] if i >= 0 else '?'
    totals[name] = totals.get(name, 0.0) + float(m.group(1))
for name, pct in sorted(totals.items(), key=lambda kv: -kv[1])[:top]:
    print(f'{pct:8.2f}%  {name[:170]}')
print(f'{sum(totals.values()):8.2f}%  (all samples in the addon)')
