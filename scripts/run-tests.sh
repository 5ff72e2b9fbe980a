#!/usr/bin/env bash
# The README's second command: set up (if needed) and run the whole test suite.
# Browser tests drive Debian's Chromium; it is installed here when missing and we are root.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$repo/scripts/setup.sh" | tail -n 1)"
cd "$repo"

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "run-tests: installing Debian's chromium for the browser tests" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2
  else
    echo "run-tests: /usr/bin/chromium is missing and cannot be installed here (not root/Debian); browser tests will skip outside CI" >&2
  fi
fi

# Tests never download: datasets come from ../shared/datasets (read-only) or are skipped/failed clearly.
export VAE_NO_DOWNLOAD=1
if [ -z "${VAE_DATA_ROOT:-}" ] && [ -d "$repo/../shared/datasets" ]; then
  export VAE_DATA_ROOT="$(cd "$repo/../shared/datasets" && pwd)"
fi
# Two xdist workers, one OpenMP thread each (tests/conftest.py): both cores busy all run long.
exec "$VENV/bin/python" -m pytest -n "${VAE_TEST_WORKERS:-2}" --dist loadgroup "$@"
