#!/usr/bin/env bash
# What the test suite needs from the system, beyond what pip installs: Debian's Chromium,
# which tests/e2e/test_approvals_page.py drives through Playwright (Playwright never downloads
# a browser here, and those tests fail, not skip, without it). `make test` runs this
# every time: with Chromium there, it returns at once.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0

say() { echo "make test: $*" >&2; }
if ! command -v apt-get >/dev/null; then
    say "the approvals page tests need Chromium at $CHROMIUM; install it with your"
    say "distribution's package manager (Debian and Ubuntu: apt-get install chromium)"
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=(env)
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo env)
else
    say "the approvals page tests need Debian's Chromium ($CHROMIUM), and installing it"
    say "needs root. Run once, then make test again:"
    say "  sudo apt-get update && sudo apt-get install -y chromium"
    exit 1
fi
# apt's hundreds of lines go to a log, shown only if the install fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt_get() { "${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get -q "$@" >>"$log" 2>&1; }
say "installing Debian's Chromium for the approvals page tests (about a minute)"
# The package lists may be stale or absent on a fresh machine: refresh them only if needed.
if ! apt_get install -y chromium && ! { apt_get update && apt_get install -y chromium; }; then
    tail -n 30 "$log" >&2
    say "installing chromium failed (apt-get's last lines above)"
    exit 1
fi
