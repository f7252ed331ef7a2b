#!/usr/bin/env bash
# Profiles this package's get, set and listByUser at c=64 with perf (Debian's linux-perf):
# the Node process (JS frames through --perf-basic-prof) and redis-server, sampled together
# while the op runs, and writes the top frames per thread group to bench/results/profile-<op>.txt,
# with the context switches and the syscalls that hand work between threads, per op and per
# thread name (`perf stat`). CONCURRENCY other than 64 and PEER (another bench peer, such as
# ioredis-zod) go into the file's name: profile-set-c1-ioredis-zod.txt.
# The release addon is stripped: for Rust frames, build one with symbols and point the bench's
# peer at it (BENCH_STORE_MODULE, a checkout whose .node is that build):
#   CARGO_PROFILE_RELEASE_STRIP=none npm run build
#
#   bash bench/profile.sh [get set listByUser] (PROFILE_SECONDS=6 CONCURRENCY=64 PEER=ours)
set -eu
cd "$(dirname "$0")/.."
SECONDS_PER_OP=${PROFILE_SECONDS:-6}
CONCURRENCY=${CONCURRENCY:-64}
PEER=${PEER:-ours}
SUFFIX=""
[ "$CONCURRENCY" != 64 ] && SUFFIX="-c$CONCURRENCY"
[ "$PEER" != ours ] && SUFFIX="$SUFFIX-$PEER"
OPS=("$@")
[ ${#OPS[@]} -eq 0 ] && OPS=(get set listByUser)
STORE="this checkout"
[ -n "${BENCH_STORE_MODULE:-}" ] && STORE="the checkout in BENCH_STORE_MODULE"
[ "$PEER" != ours ] && STORE="peer $PEER"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for op in "${OPS[@]}"; do
  # From $TMP: --perf-basic-prof leaves V8 logs in the working directory.
  (cd "$TMP" && exec node --perf-basic-prof "$OLDPWD/bench/profile.js" --op "$op" --peer "$PEER" --concurrency "$CONCURRENCY" --seconds "$SECONDS_PER_OP") >"$TMP/$op.log" 2>&1 &
  driver=$!
  until grep -q '^ready ' "$TMP/$op.log"; do
    kill -0 "$driver" 2>/dev/null || { cat "$TMP/$op.log"; exit 1; }
    sleep 0.2
  done
  read -r _ node_pid redis_pid < <(grep '^ready ' "$TMP/$op.log")
  cp "/proc/$node_pid/maps" "$TMP/$op.maps"
  events=context-switches,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read
  # Both end when the two processes exit, right after the op's run.
  perf stat --per-thread -x, -e "$events" -p "$node_pid,$redis_pid" -o "$TMP/$op.stat" >/dev/null 2>&1 &
  stat=$!
  perf record -F 999 -g -p "$node_pid,$redis_pid" -o "$TMP/$op.data" >/dev/null 2>&1 &
  record=$!
  # The op starts once both have opened their counters on the two processes.
  for perf_pid in "$stat" "$record"; do
    until ls -l "/proc/$perf_pid/fd" 2>/dev/null | grep -q 'perf_event'; do
      kill -0 "$perf_pid" 2>/dev/null || { echo "perf exited before it attached" >&2; exit 1; }
      sleep 0.05
    done
  done
  kill -USR1 "$node_pid"
  wait "$driver"
  wait "$record" || true
  wait "$stat" || true
  out=bench/results/profile-$op$SUFFIX.txt
  {
    echo "# perf profile: $op at c=$CONCURRENCY, ${SECONDS_PER_OP} s, node + redis-server ($(date -u +%FT%TZ), bench at commit $(git rev-parse --short HEAD), store: $STORE)"
    grep -E '^(done|cpu per op)' "$TMP/$op.log"
    echo
    echo "## samples by thread (comm)"
    perf report -i "$TMP/$op.data" --no-children --sort comm --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -12
    echo
    echo "## context switches and syscalls per op, by thread name (perf stat over the op's run)"
    python3 bench/per-op-events.py "$TMP/$op.stat" "$(grep -oE '[0-9]+ ops$' "$TMP/$op.log" | grep -oE '^[0-9]+')"
    echo
    echo "## top frames (self), all threads"
    perf report -i "$TMP/$op.data" --no-children --sort comm,dso,sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -45 | cut -c1-200
    echo
    addon=$(grep -o '/[^ ]*redis-store[^ ]*\.node' "$TMP/$op.maps" | head -1 || true)
    if [ -n "$addon" ] && nm "$addon" >/dev/null 2>&1; then
      echo "## the addon's frames (self), resolved with nm: $(basename "$addon")"
      perf report -i "$TMP/$op.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
        python3 bench/resolve-addon-frames.py "$addon" 25
      echo
    fi
    echo "## top frames (self + callees), all threads"
    perf report -i "$TMP/$op.data" --children --sort sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -40 | cut -c1-200
  } >"$out.tmp"
  # Paths of this machine stay out of the summary.
  sed -e "s|$PWD/||g" ${BENCH_STORE_MODULE:+-e "s|$BENCH_STORE_MODULE/|<store>/|g"} -e "s|\[JIT\] tid [0-9]*|[JIT]|" "$out.tmp" >"$out"
  rm -f "$out.tmp"
  echo "wrote $out"
done
