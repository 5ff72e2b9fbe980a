"""What the Compare page puts side by side: metrics rows, shared z, sweep results on disk."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vae_core.evaluate import collapsed, image_count, latent_use  # noqa: F401  (image_count: the sidebar's)

# (metrics key, column title, format)
METRIC_COLUMNS = [("nll", "NLL (IWAE)", "{:.2f}"), ("neg_elbo", "−ELBO", "{:.2f}"), ("recon", "recon", "{:.2f}"),
                  ("kl", "KL", "{:.2f}"), ("active_units", "active units", "{}"),
                  ("mutual_info", "I(x;z)", "{:.2f}"), ("mse", "MSE/pixel", "{:.4f}"),
                  ("shuffled_recon", "recon, shuffled z", "{:.2f}"), ("twonn_dim", "TWO-NN dim", "{:.1f}")]
# Shown only when a picked model has them: discrete codes, and disentanglement on data with factors
OPTIONAL_COLUMNS = [("codebook_usage", "codebook use", "{:.0%}"), ("perplexity", "code perplexity", "{:.1f}"),
                    ("factor_vae_eval_accuracy", "FactorVAE score", "{:.1%}"), ("mig", "MIG", "{:.3f}"),
                    ("dci_disentanglement", "DCI disent.", "{:.3f}"), ("beta_vae_eval_accuracy", "BetaVAE score",
                                                                       "{:.1%}"), ("sap", "SAP", "{:.3f}"),
                    # sample quality (vae_core.quality): the classifier's Fréchet distance, never called FID
                    ("fd_recon", "FD-clf recon", "{:.1f}"), ("fd_prior", "FD-clf N(0,I)", "{:.1f}"),
                    ("fd_mixture", "FD-clf GMM", "{:.1f}"), ("fd_interp", "FD-clf interp.", "{:.1f}"),
                    ("precision_prior", "precision N(0,I)", "{:.2f}"), ("recall_prior", "recall N(0,I)", "{:.2f}"),
                    # Inception FID, only where the evaluation was given --fid-weights
                    ("fid_prior", "FID N(0,I)", "{:.1f}"), ("fid_mixture", "FID GMM", "{:.1f}")]


def metric_value(m: dict | None, key: str):
    """A metric by key; the disentanglement scores sit one level down, under "disentanglement"."""
    if m is None:
        return None
    return m[key] if key in m else (m.get("disentanglement") or {}).get(key)


def metric_text(m: dict | None, key: str, fmt: str) -> str:
    v = metric_value(m, key)
    if v is None:
        return "—"
    if key == "mutual_info" and m.get("mi_samples") and v >= math.log(m["mi_samples"]) - 0.01:
        return "≥ " + fmt.format(v)  # at the estimator's cap, log N
    return fmt.format(v)


def protocol_text(m: dict | None) -> str:
    """Which evaluation a row shows: images, split, binarization, K."""
    if m is None:
        return "not evaluated"
    binarized = ", binarized" if m.get("binarized") else ""
    return f"{image_count(m)} {m.get('split')} images{binarized}, K={m.get('iw_samples')}"


def latent_text(m: dict | None, dim: int) -> str:
    """The table's "latent use": collapse with its reason, else how many dims are active."""
    if m is None:
        return ""
    reason = collapsed(m, dim)
    return f"collapsed: {reason}" if reason else latent_use(m, dim)


def latent_badge(m: dict | None, dim: int) -> tuple[str, str]:
    """(text, colour) of a model's badge. Red is kept for collapse: a model that switches
    off the dims it does not need (29/50 for the best likelihood here) is blue, not a warning."""
    if m is None:
        return "not evaluated", "gray"
    if reason := collapsed(m, dim):
        return f"collapsed — {reason}", "red"
    if m.get("dead_codes"):  # a discrete model: codes no test image uses are capacity thrown away
        share = m["dead_codes"] / m["codebook_size"]
        return (f"dead codes — {m['dead_codes']:,} of {m['codebook_size']:,} unused by the test images",
                "orange" if share > 0.1 else "blue")
    if m.get("codebook_usage") is not None:
        return f"every one of {m['codebook_size']:,} codes used", "green"
    au = m.get("active_units")
    return latent_use(m, dim), ("green" if au == dim else "blue")


def metrics_rows(models: dict[str, tuple[int, dict | None]]) -> list[dict]:
    """One table row per model name -> (latent dim, metrics or None), values formatted for display.
    The protocol comes right after the name: NLLs of different protocols are not comparable."""
    rows = []
    optional = [c for c in OPTIONAL_COLUMNS if any(metric_value(m, c[0]) is not None for _, m in models.values())]
    for name, (dim, m) in models.items():
        row = {"model": name, "protocol": protocol_text(m), "latent dim": dim}
        row.update({title: metric_text(m, key, fmt) for key, title, fmt in METRIC_COLUMNS + optional})
        row["latent use"] = latent_text(m, dim)
        rows.append(row)
    return rows


def evaluations_rows(saved: dict[str, list[dict]]) -> list[dict]:
    """Every saved evaluation of each model (model name -> read_all_metrics), the one the
    metrics table uses (the most complete) first and marked."""
    shown = [("nll", "NLL (IWAE)", "{:.2f}"), ("neg_elbo", "−ELBO", "{:.2f}"), ("active_units", "active units", "{}")]
    rows = []
    for name, entries in saved.items():
        for i, m in enumerate(entries):
            rows.append({"model": name, "protocol": protocol_text(m), "used above": "✓" if i == 0 else "",
                         **{title: metric_text(m, key, fmt) for key, title, fmt in shown},
                         "seed": m.get("seed"), "seconds": m.get("seconds"),
                         "evaluated": (m.get("evaluated_at") or "—").replace("T", " ").replace("+00:00", " UTC")})
    return rows


def text_width(values, header: str = "") -> int:
    """Pixels a dataframe column needs to show every value whole: ~8 px per character of
    Streamlit's 14 px table font (digits and lower case are 7-8 px) plus cell padding."""
    return 8 * max([len(header), *(len(str(v)) for v in values)]) + 24


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


def named_sweeps(roots: dict[str, Path]) -> dict[str, Path]:
    """find_sweeps keyed by short names, "runs/sweep" or "benchmarks/sweep-default": the
    label of each root plus the folder under it. A page shows these, never a server path."""
    named = {}
    for label, root in roots.items():
        for folder, f in find_sweeps(root).items():
            rel = Path(folder).relative_to(Path(root)).as_posix()
            named[label if rel == "." else f"{label}/{rel}"] = f
    return named
