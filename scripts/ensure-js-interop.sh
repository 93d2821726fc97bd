#!/usr/bin/env bash
# Makes sure the js-libp2p interoperability test (tests/interop_js.rs) can run: Node.js >= 20
# and npm on the PATH, and tests/interop/js/node_modules installed with `npm ci` from the
# committed package-lock.json (exact versions; no package downloads anything at install time).
#
# - Node.js or npm missing: installed with apt-get (root only).
# - node_modules missing, or installed from another package.json / package-lock.json / Node.js
#   major version than now: `npm ci` again.
# Never skips: if Node.js >= 20 or the packages cannot be had, it fails loudly.
# Can be run or sourced (scripts/test runs it).
set -euo pipefail

js_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/interop/js"

js_fail() {
  echo "error: js-libp2p interop test: $*" >&2
  exit 1
}

node_major() {
  node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    js_fail "Node.js >= 20 and npm are needed and this is not root; install them"
  fi
  echo "== installing Node.js and npm with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  missing=()
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  apt-get install -y -qq "${missing[@]}" >/dev/null ||
    js_fail "apt-get install ${missing[*]} failed"
fi

major="$(node_major)"
if [ "$major" -lt 20 ]; then
  js_fail "Node.js $(node --version 2>/dev/null || echo '?') is older than 20 (the packages in $js_dir need 20 or later); install Node.js 20+"
fi

# What node_modules was installed from: the manifest, the lock file and Node's major version.
stamp_file="$js_dir/node_modules/.berty-node-interop-stamp"
want_stamp="$(cat "$js_dir/package.json" "$js_dir/package-lock.json" | sha256sum | cut -d' ' -f1) node-$major"
if [ ! -f "$stamp_file" ] || [ "$(cat "$stamp_file")" != "$want_stamp" ]; then
  echo "== npm ci in tests/interop/js"
  (cd "$js_dir" && npm ci --no-audit --no-fund) ||
    js_fail "npm ci in $js_dir failed"
  echo "$want_stamp" >"$stamp_file"
fi
