#!/usr/bin/env bash
# Profiles this package's get, set and listByUser (at c=64 unless CONCURRENCY says otherwise)
# with perf (Debian's linux-perf): the Node process (JS frames through --perf-basic-prof) and
# redis-server, sampled together while the op runs, and writes the top frames per thread group
# to bench/results/profile-<op>.txt, with the context switches and the syscalls that hand work
# between threads, per op and per thread name (`perf stat`). CONCURRENCY other than 64 and
# PEER (another bench peer, such as ioredis-zod) go into the file's name:
# profile-set-c1-ioredis-zod.txt. Both perf runs start with their events off and are enabled
# through their control fifos before profile.js is told (SIGUSR1) to start the op's run; they
# end when node and redis-server exit after it. perf needs to read the kernel's trace events
# (root, or perf_event_paranoid and tracefs permissions that allow it).
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
driver="" redis="" stat="" record=""
cleanup() {
  # node's exit hooks stop its redis-server (support/redis.js), unless node itself was killed;
  # perf ends with its targets.
  for pid in $driver $redis $record $stat; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Turns on the events of the perf run <name> (started with -D -1 --control) and returns once
# perf acknowledges, which it does after enabling them on every thread of both processes.
enable_perf() { # <name> <pid>
  local reply="" waited=0
  exec 7<>"$TMP/$1.ctl" 8<>"$TMP/$1.ack"
  echo enable >&7
  until [ "$reply" = ack ]; do
    read -r -t 1 reply <&8 && continue
    waited=$((waited + 1))
    if ! kill -0 "$2" 2>/dev/null || [ "$waited" -ge 30 ]; then
      echo "perf $1 did not start counting:" >&2
      cat "$TMP/$op.$1.err" >&2
      exit 1
    fi
  done
  exec 7>&- 8<&-
}
perf_warning() { # <name>
  echo "warning: perf $1 exited with an error:" >&2
  cat "$TMP/$op.$1.err" >&2
}
for op in "${OPS[@]}"; do
  # From $TMP: --perf-basic-prof leaves V8 logs in the working directory.
  (cd "$TMP" && exec node --perf-basic-prof "$OLDPWD/bench/profile.js" --op "$op" --peer "$PEER" --concurrency "$CONCURRENCY" --seconds "$SECONDS_PER_OP") >"$TMP/$op.log" 2>&1 &
  driver=$!
  until grep -qs '^ready ' "$TMP/$op.log"; do
    kill -0 "$driver" 2>/dev/null || { cat "$TMP/$op.log"; exit 1; }
    sleep 0.2
  done
  read -r _ node_pid redis_pid < <(grep '^ready ' "$TMP/$op.log")
  redis=$redis_pid
  cp "/proc/$node_pid/maps" "$TMP/$op.maps"
  events=context-switches,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read
  rm -f "$TMP"/{stat,record}.{ctl,ack}
  mkfifo "$TMP"/{stat,record}.{ctl,ack}
  perf stat -D -1 --control "fifo:$TMP/stat.ctl,$TMP/stat.ack" --per-thread -x, -e "$events" \
    -p "$node_pid,$redis_pid" -o "$TMP/$op.stat" >/dev/null 2>"$TMP/$op.stat.err" &
  stat=$!
  perf record -D -1 --control "fifo:$TMP/record.ctl,$TMP/record.ack" -F 999 -g \
    -p "$node_pid,$redis_pid" -o "$TMP/$op.data" >/dev/null 2>"$TMP/$op.record.err" &
  record=$!
  enable_perf stat "$stat"
  enable_perf record "$record"
  kill -USR1 "$node_pid"
  if ! wait "$driver"; then
    driver=""
    echo "bench/profile.js failed:" >&2
    cat "$TMP/$op.log" >&2
    exit 1
  fi
  wait "$record" || perf_warning record
  wait "$stat" || perf_warning stat
  driver="" redis="" stat="" record=""
  out=bench/results/profile-$op$SUFFIX.txt
  {
    echo "# perf profile: $op at c=$CONCURRENCY, ${SECONDS_PER_OP} s, node + redis-server ($(date -u +%FT%TZ), bench at commit $(git rev-parse --short HEAD), store: $STORE)"
    grep -E '^(done|cpu per op)' "$TMP/$op.log"
    echo
    echo "## samples by thread (comm)"
    perf report -i "$TMP/$op.data" --no-children --sort comm --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -12
    echo
    echo "## context switches and syscalls per op, by thread name (perf stat over the op's run)"
    echo "(node: the JavaScript thread, V8's workers and libuv's; reads and futex count every call, one that finds nothing or wakes another thread too)"
    python3 bench/per-op-events.py "$TMP/$op.stat" "$(sed -nE 's/^done .* ([0-9]+) ops$/\1/p' "$TMP/$op.log")"
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
