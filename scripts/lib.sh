# Shared helpers for Starling's scripts: progress lines, errors a person can act on, the toolchain environment.
export STARLING_CACHE=${STARLING_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/starling}
mkdir -p "$STARLING_CACHE/bin"
export PATH="$STARLING_CACHE/bin:$PATH"
export CI=${CI:-1} WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
# Tell worker-build to use local binaries instead of downloading them.
export WASM_BINDGEN_BIN="$STARLING_CACHE/bin/wasm-bindgen"
export ESBUILD_BIN="$PWD/node_modules/@esbuild/linux-x64/bin/esbuild"
export WASM_OPT_BIN="$PWD/node_modules/.bin/wasm-opt"

step() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
summary() { printf '\033[1m%s\033[0m\n' "$*"; }

# Put Debian's rustc first when the wasm32 std was built for it (route B).
use_wasm_toolchain() {
  if [ "$(cat "$STARLING_CACHE/toolchain" 2>/dev/null)" = debian ]; then
    export PATH="/usr/bin:$PATH"
    export RUSTUP_TOOLCHAIN=
  fi
}
