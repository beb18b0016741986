#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (/usr/bin/chromium) through Playwright; Playwright's
# own browser download needs a CDN that CI machines cannot reach. Installs the package when it
# is missing and we are root (CI), else fails with the one command to run.
set -euo pipefail
CHROMIUM="${CARENET_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "browser tests: $CHROMIUM is missing; installing Debian's chromium package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q chromium >/dev/null
  [ -x "$CHROMIUM" ] && exit 0
fi
echo "browser tests need Chromium at $CHROMIUM: run 'sudo apt-get install -y chromium' (or set CARENET_CHROMIUM to a Chromium binary)" >&2
exit 1
