#!/usr/bin/env bash
# Makes sure Debian's Chromium is on this machine for the browser test (tests/e2e/test_web_example.py).
# Playwright drives this one; it never downloads a browser of its own. Installs it through apt where
# it is missing (as root, or with sudo).
set -uo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

if command -v chromium >/dev/null; then exit 0; fi

command -v apt-get >/dev/null || {
  echo "ensure_browser: chromium is missing and apt-get was not found; install Chromium by hand so that 'chromium' is on PATH" >&2
  exit 1
}
echo "ensure_browser: installing chromium through apt (once)"
if ! { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null; }; then
  echo "ensure_browser: could not install chromium through apt (needs root or sudo, and Debian's package archive); install it by hand: apt-get install chromium" >&2
  exit 1
fi
command -v chromium >/dev/null || { echo "ensure_browser: apt installed chromium but 'chromium' is not on PATH" >&2; exit 1; }
echo "ensure_browser: $(chromium --version 2>/dev/null)"
exit 0
