#!/usr/bin/env bash
# Builds the four Linux addons on an x86_64 Debian 12 machine, from the package registries only:
#   linux-x64-gnu, linux-arm64-gnu (glibc 2.17 and later), linux-x64-musl, linux-arm64-musl.
# Rust: Debian's rustc-web, whose standard library Debian also ships for arm64 (multiarch) and
# as source (for musl, which Debian ships no prebuilt std for: built with -Zbuild-std).
# Linker and C libraries: Zig from PyPI through cargo-zigbuild, driven by `napi build -x`.
# Then checks every file with readelf (scripts/check-linux-binaries.js).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_ZIGBUILD_VERSION=0.24.1
ZIGLANG_VERSION=0.15.2
TOOLS="${CARGO_TARGET_DIR:-target}/cross-tools"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"

# --- Debian packages (root, as .ci/run installs redis-server)
packages=()
dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64; need_update=1; }
for p in rustc-web cargo-web rust-web-src libstd-rust-web-dev:arm64 python3-venv; do
  dpkg -s "$p" >/dev/null 2>&1 || packages+=("$p")
done
if [ ${#packages[@]} -gt 0 ] || [ -n "${need_update:-}" ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
fi
host_rust=$(dpkg-query -W -f '${Version}' rustc-web)
arm64_std=$(dpkg-query -W -f '${Version}' libstd-rust-web-dev:arm64)
[ "$host_rust" = "$arm64_std" ] || { echo "rustc-web $host_rust but arm64 std $arm64_std: apt-get upgrade them together" >&2; exit 1; }

# --- cargo-zigbuild and Zig, pinned, in their own venv
if ! "$TOOLS/bin/cargo-zigbuild" --version 2>/dev/null | grep -q " $CARGO_ZIGBUILD_VERSION\$" ||
   ! "$TOOLS/bin/python" -m ziglang version 2>/dev/null | grep -qx "$ZIGLANG_VERSION"; then
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION" "ziglang==$ZIGLANG_VERSION"
fi

# Debian's compiler, not rustup's, whatever comes first on PATH: its std exists for every target here.
export PATH="$TOOLS/bin:/usr/bin:$PATH" RUSTC=/usr/bin/rustc
unset RUSTUP_TOOLCHAIN
# cdylibs on musl link libc dynamically; -Zbuild-std on a stable compiler needs RUSTC_BOOTSTRAP.
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-feature=-crt-static"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C target-feature=-crt-static"
echo "rustc: $(rustc --version); cargo-zigbuild $CARGO_ZIGBUILD_VERSION; zig $("$TOOLS/bin/python" -m ziglang version)"

napi_build() {
  echo "=== $1"
  nice -n 10 npx napi build --platform --release --js binding.js --dts binding.d.ts --target "$1" -x "${@:2}"
}
# The `.2.17` suffix makes Zig link against glibc 2.17's symbol versions.
napi_build x86_64-unknown-linux-gnu.2.17
napi_build aarch64-unknown-linux-gnu.2.17
RUSTC_BOOTSTRAP=1 napi_build x86_64-unknown-linux-musl -- -Zbuild-std=std,panic_abort
RUSTC_BOOTSTRAP=1 napi_build aarch64-unknown-linux-musl -- -Zbuild-std=std,panic_abort

node scripts/check-linux-binaries.js
