#!/usr/bin/env bash
# The README's first command: set up (if needed) and run the app on the shipped default model.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$repo/scripts/setup.sh" | tail -n 1)"
cd "$repo"
exec "$VENV/bin/streamlit" run app.py "$@"
