#!/usr/bin/env bash
# Shared set-up for the README's two commands: make the virtual environment if it is
# missing, install the pinned requirements when they changed, and install this
# package (editable) so `vae-train` and `import vae_core` work from anywhere.
#   VAE_VENV   where the venv lives (default: .venv in the repo). CI keeps one outside
#              the clone, keyed by a hash of requirements.txt, so runs do not refill the disk.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
VENV="${VAE_VENV:-$repo/.venv}"

pick_python() {
  for py in "${PYTHON:-}" python3.11 python3; do
    [ -n "$py" ] || continue
    command -v "$py" >/dev/null 2>&1 || continue
    if "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
      echo "$py"; return 0
    fi
  done
  echo "setup: Python 3.11 or newer is needed (tried \$PYTHON, python3.11, python3)." >&2
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  py="$(pick_python)"
  echo "setup: creating virtual environment $VENV with $py" >&2
  "$py" -m venv "$VENV"
fi

want="$(sha256sum requirements.txt | cut -c1-16)"
stamp="$VENV/.vae-requirements"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "setup: installing pinned requirements into $VENV (first run downloads ~5 GB of wheels)" >&2
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r requirements.txt
  echo "$want" > "$stamp"
fi

# The editable install points at this clone; redo it when the venv serves another clone.
here="$("$VENV/bin/python" -c 'import pathlib, vae_core; print(pathlib.Path(vae_core.__file__).resolve().parent.parent)' 2>/dev/null || true)"
if [ "$here" != "$repo" ] || [ ! -x "$VENV/bin/vae-train" ]; then
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e "$repo"
fi
echo "$VENV"
