#!/usr/bin/env bash
# Installs everything Starling needs that is missing on a Debian 12 machine reaching only the package
# registries. Idempotent: a second run checks versions and changes nothing.
#
#   STARLING_WASM_TOOLCHAIN=auto|rustup|debian   (default auto: rustup's wasm32 target, else Debian's rustc-web)
#   STARLING_CACHE=dir                           (default ~/.cache/starling: host tools built once per machine)
#   STARLING_WITH_BROWSER=0                      skip chromium (only needed for browser tests)
#   STARLING_RECORD_TOOLCHAIN=0                  install the route but keep the recorded choice (test.sh uses
#                                                this to keep route B tested without switching the build to it)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

WASM_BINDGEN_VERSION=0.2.130
WORKER_BUILD_VERSION=0.8.7
mode=${STARLING_WASM_TOOLCHAIN:-auto}
start=$(date +%s)
steps=0

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated = 0 ]; then step "apt-get update"; apt-get update -qq; apt_updated=1; fi
  step "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  steps=$((steps + 1))
}

# 1. System packages.
apt_install pkg-config libssl-dev ca-certificates
if [ "${STARLING_WITH_BROWSER:-1}" != 0 ]; then apt_install chromium chromium-driver; fi

# 2. The wasm32 standard library: rustup's target (route A) or Debian's rustc-web with a self-built sysroot (route B).
route_a() {
  command -v rustup >/dev/null || return 1
  rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown && return 0
  step "rustup target add wasm32-unknown-unknown (timeout 180 s)"
  timeout 180 rustup target add wasm32-unknown-unknown >/dev/null 2>&1
}
route_b() {
  apt_install rustc-web cargo-web rust-web-src rust-web-llvm lld-22 rustfmt-web rust-web-clippy
  local libdir
  libdir=$(/usr/bin/rustc --print target-libdir --target wasm32-unknown-unknown)
  local stamp="$libdir/.starling-sysroot"
  local want
  want=$(/usr/bin/rustc -vV | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  step "building the wasm32 std for Debian's rustc ($(/usr/bin/rustc --version)); about a minute"
  local tmp
  tmp=$(mktemp -d)
  mkdir -p "$tmp/src"
  printf '[package]\nname = "sysroot-dummy"\nversion = "0.0.0"\nedition = "2021"\n[lib]\npath = "src/lib.rs"\n[profile.release]\npanic = "abort"\n' >"$tmp/Cargo.toml"
  echo '#![no_std]' >"$tmp/src/lib.rs"
  (cd "$tmp" && env -u RUSTUP_TOOLCHAIN PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS=-Cembed-bitcode=yes \
    /usr/bin/cargo build -q --release --target wasm32-unknown-unknown \
    -Zbuild-std=std,panic_abort,panic_unwind,proc_macro,test)
  mkdir -p "$libdir"
  find "$tmp/target/wasm32-unknown-unknown/release/deps" -name 'lib*.rlib' -o -name 'lib*.rmeta' |
    grep -v sysroot_dummy | xargs -I{} cp {} "$libdir/"
  echo "$want" >"$stamp"
  rm -rf "$tmp"
  steps=$((steps + 1))
}
case "$mode" in
  rustup) route_a || die "rustup could not add wasm32-unknown-unknown; retry, or set STARLING_WASM_TOOLCHAIN=debian" ;;
  debian) route_b ;;
  auto) route_a || { warn "rustup's wasm32 target is unavailable; falling back to Debian's rustc-web"; route_b; } ;;
  *) die "STARLING_WASM_TOOLCHAIN must be auto, rustup or debian (got '$mode')" ;;
esac
if [ "${STARLING_RECORD_TOOLCHAIN:-1}" = 0 ]; then
  :
elif [ "$mode" = debian ] || ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo debian >"$STARLING_CACHE/toolchain"
else
  echo rustup >"$STARLING_CACHE/toolchain"
fi

# 3. Host tools from crates.io, pinned, built once per machine into the cache.
cargo_tool() { # name version binary
  local have=""
  # `wasm-bindgen --version` prints "wasm-bindgen 0.2.130", `worker-build --version` just "0.8.7".
  [ -x "$STARLING_CACHE/bin/$3" ] && have=$("$STARLING_CACHE/bin/$3" --version 2>/dev/null | awk '{print $NF}')
  [ "$have" = "$2" ] && return 0
  step "cargo install $1@$2 (a few minutes, once per machine)"
  # --locked first; some releases' lockfiles name since-yanked crates, then resolve afresh (same pinned tool version).
  cargo install -q --locked --root "$STARLING_CACHE" "$1@$2" 2>/dev/null ||
    cargo install -q --root "$STARLING_CACHE" "$1@$2" ||
    die "cargo install $1@$2 failed (see above); check that crates.io is reachable and rerun scripts/setup.sh"
  steps=$((steps + 1))
}
[ -x "$STARLING_CACHE/bin/wasm-bindgen-test-runner" ] || rm -f "$STARLING_CACHE/bin/wasm-bindgen" # runs the wasm tests in Chromium
cargo_tool wasm-bindgen-cli "$WASM_BINDGEN_VERSION" wasm-bindgen
cargo_tool worker-build "$WORKER_BUILD_VERSION" worker-build

# 4. JS tools pinned in package-lock.json (wrangler, esbuild, binaryen, playwright-core, test deps).
lock_sum=$(sha256sum package-lock.json | cut -c1-16)
if [ ! -f node_modules/.starling-lock ] || [ "$(cat node_modules/.starling-lock)" != "$lock_sum" ]; then
  step "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  echo "$lock_sum" >node_modules/.starling-lock
  steps=$((steps + 1))
fi

summary "setup: toolchain ready ($(cat "$STARLING_CACHE/toolchain") wasm32 std, wasm-bindgen $WASM_BINDGEN_VERSION, worker-build $WORKER_BUILD_VERSION, wrangler $(node_modules/.bin/wrangler --version 2>/dev/null | tail -1)); $steps step(s) run in $(($(date +%s) - start)) s"
