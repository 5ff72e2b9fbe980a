"""What the Compare page puts side by side: metrics rows, shared z, sweep results on disk."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vae_core.evaluate import collapsed

# (metrics key, column title, format)
METRIC_COLUMNS = [("nll", "NLL (IWAE)", "{:.2f}"), ("neg_elbo", "−ELBO", "{:.2f}"), ("recon", "recon", "{:.2f}"),
                  ("kl", "KL", "{:.2f}"), ("active_units", "active units", "{}"),
                  ("mutual_info", "I(x;z)", "{:.2f}"), ("mse", "MSE/pixel", "{:.4f}"),
                  ("shuffled_recon", "recon, shuffled z", "{:.2f}"), ("twonn_dim", "TWO-NN dim", "{:.1f}")]


def metrics_rows(models: dict[str, tuple[int, dict | None]]) -> list[dict]:
    """One table row per model name -> (latent dim, metrics or None), values formatted for display."""
    rows = []
    for name, (dim, m) in models.items():
        row = {"model": name, "latent dim": dim}
        for key, title, fmt in METRIC_COLUMNS:
            v = None if m is None else m.get(key)
            row[title] = "—" if v is None else fmt.format(v)
            if key == "mutual_info" and v is not None and m.get("mi_samples") and v >= math.log(m["mi_samples"]) - 0.01:
                row[title] = "≥ " + row[title]  # at the estimator's cap, log N
        row["protocol"] = "not evaluated" if m is None else \
            f"{image_count(m)} {m.get('split')} images{', binarized' if m.get('binarized') else ''}, K={m.get('iw_samples')}"
        row["collapsed"] = "" if m is None else (collapsed(m, dim) or "")
        rows.append(row)
    return rows


def image_count(m: dict) -> str:
    """How many images a metrics.json was scored on, written for people: 10,000."""
    n = m.get("images")
    return f"{n:,}" if isinstance(n, int) else str(n)


def shared_z(latent_dim: int, n: int = 8, seed: int = 0) -> np.ndarray:
    """The same n prior samples for every model of this latent dim."""
    return np.random.default_rng(seed + latent_dim).standard_normal((n, latent_dim)).astype(np.float32)


def find_sweeps(*roots) -> dict[str, Path]:
    """results.json files of sweeps under the given folders (one level down, or the folder itself)."""
    found = {}
    for root in roots:
        root = Path(root)
        for f in [root / "results.json", *sorted(root.glob("*/results.json"))]:
            if f.is_file():
                found[str(f.parent)] = f
    return found
