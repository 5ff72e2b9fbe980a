"""Favourite latent points: named z vectors, exported and imported as JSON.

    {"format": "vae-explorer-favourites", "version": 1, "model": "mnist-z2",
     "latent_dim": 2, "favourites": {"fat zero": [0.1, -1.2], ...}}

Imports are untrusted user files: parsed with json (never pickle), size-capped,
and every vector checked for length and finiteness before anything is kept.

The Explore page keeps each model's favourites on disk in the same format, one file
per model under $VAE_FAVOURITES_DIR (default: <runs folder>/.favourites/), written
atomically, so they outlive a reload, a restart and a deleted favourite stays deleted.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from vae_core import VaeError, parse_json
from vae_core.files import atomic_write_bytes

FORMAT = "vae-explorer-favourites"
MAX_BYTES = 1_000_000
MAX_FAVOURITES = 1000


def export_favourites(favourites: dict[str, list[float]], model: str, latent_dim: int) -> bytes:
    doc = {"format": FORMAT, "version": 1, "model": model, "latent_dim": latent_dim,
           "favourites": {name: [float(v) for v in z] for name, z in favourites.items()}}
    return (json.dumps(doc, indent=2) + "\n").encode()


def import_favourites(data: bytes, latent_dim: int) -> dict[str, list[float]]:
    """Parse an exported file; VaeError with one clear sentence when it is unusable."""
    if len(data) > MAX_BYTES:
        raise VaeError(f"The favourites file is larger than {MAX_BYTES // 1000} kB; is it the right file?")
    try:
        doc = parse_json(data.decode("utf-8"))
    except ValueError as e:  # not UTF-8, not JSON, nested too deeply, a 5,000-digit number
        raise VaeError(f"The favourites file is not valid JSON ({e.__class__.__name__}); export one from this page.") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("favourites"), dict):
        raise VaeError("This JSON file is not a favourites export of VAE Latent Explorer.")
    if doc.get("latent_dim") != latent_dim:
        raise VaeError(f"These favourites are for a {doc.get('latent_dim')}-dimensional latent space; "
                       f"the current model has {latent_dim} dimensions.")
    favs = doc["favourites"]
    if len(favs) > MAX_FAVOURITES:
        raise VaeError(f"The file holds {len(favs)} favourites; at most {MAX_FAVOURITES} are accepted.")
    out = {}
    for name, z in favs.items():
        ok = (isinstance(z, list) and len(z) == latent_dim
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in z))
        if not ok:
            raise VaeError(f"Favourite {str(name)[:40]!r} is not a list of {latent_dim} finite numbers.")
        out[str(name)[:100]] = [float(v) for v in z]
    return out



# ---------------------------------------------------------------- on disk, per model

def favourites_dir() -> Path:
    """$VAE_FAVOURITES_DIR, else .favourites/ inside the runs folder (gitignored, beside the runs)."""
    from vae_core.catalog import runs_dir
    return Path(os.environ.get("VAE_FAVOURITES_DIR") or runs_dir() / ".favourites")


def favourites_file(model_key: str) -> Path:
    """One JSON file per model: 'runs/20261122-1530-ab12' -> runs_20261122-1530-ab12.json."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", model_key).lstrip(".") or "model"
    return favourites_dir() / f"{safe}.json"


def load_favourites(path: Path, latent_dim: int) -> dict[str, list[float]]:
    """The favourites saved in path ({} when there are none yet). The file is the export
    format, so it is checked like an import: a damaged file is a VaeError, never a crash."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise VaeError(f"The favourites file {path} cannot be read ({e.strerror}).") from e
    try:
        return import_favourites(data, latent_dim)
    except VaeError as e:
        raise VaeError(f"The saved favourites in {path} are unusable: {e}") from e


def save_favourites(path: Path, favourites: dict[str, list[float]], model: str, latent_dim: int) -> None:
    """Write all of a model's favourites at once, atomically (temporary file, fsync, rename)."""
    atomic_write_bytes(Path(path), export_favourites(favourites, model, latent_dim))
