#!/usr/bin/env bash
# The README's first command: set up (if needed) and run the app on the shipped default model.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$repo/scripts/setup.sh" | tail -n 1)"
cd "$repo"
# the datasets beside the clone, when they are there (nearest images, reconstructions)
if [ -z "${VAE_DATA_ROOT:-}" ] && [ -d "$repo/../shared/datasets" ]; then
  export VAE_DATA_ROOT="$repo/../shared/datasets"
fi
exec "$VENV/bin/streamlit" run app.py "$@"
