#!/usr/bin/env bash
# Makes sure the dashboard's browser test (tests/dashboard_browser.rs) can run: Chromium and
# chromedriver on the PATH, from Debian's packages `chromium` and `chromium-driver`.
#
# - Either missing: both installed with apt-get (root only).
# - Not root, or the install fails: it fails loudly. The test never skips: without
#   chromedriver it fails too.
# Can be run or sourced (scripts/test runs it).
set -euo pipefail

chromium_fail() {
  echo "error: dashboard browser test: $*" >&2
  exit 1
}

have_chromium() {
  command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1
}

if ! have_chromium; then
  if [ "$(id -u)" != 0 ]; then
    chromium_fail "chromium and chromedriver are needed and this is not root; install Debian's packages chromium and chromium-driver"
  fi
  echo "== installing chromium and chromium-driver with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null ||
    chromium_fail "apt-get install chromium chromium-driver failed"
  have_chromium || chromium_fail "chromium or chromedriver still missing after apt-get install"
fi

# The two must be of the same major version, or chromedriver refuses the browser.
browser_major="$(chromium --version 2>/dev/null | grep -oE '[0-9]+' | head -n1 || true)"
driver_major="$(chromedriver --version 2>/dev/null | grep -oE '[0-9]+' | head -n1 || true)"
if [ -z "$browser_major" ] || [ "$browser_major" != "$driver_major" ]; then
  chromium_fail "chromium ($(chromium --version 2>&1 || true)) and chromedriver ($(chromedriver --version 2>&1 || true)) differ; install matching chromium and chromium-driver packages"
fi
