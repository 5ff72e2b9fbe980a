"""Disentanglement of each model family on sprites, against published numbers.

    python benchmarks/disentanglement.py [--families vae,beta-tcvae,dip-vae-i,dip-vae-ii,factor-vae]
        [--seeds 3] [--epochs 2] [--limit 60000] [--counts quick|full] [--out runs/bench-disentanglement]

Trains each family (sprites 64x64, latent 10, the 32/32/64/128 encoder of the shipped sprites
models, each family with its paper's weights: our registry's defaults, see vae_core/families.py)
once per seed through the real CLI, then scores it with vae_core.evaluate (test reconstruction,
and the disentanglement metrics at the --counts sample sizes: "quick" is a tenth of
disentanglement_lib's). Prints mean ± std over the seeds beside the published figures, and
whether our ordering of the families by MIG and by FactorVAE score matches the literature's.

Resumable: each (family, seed) is one folder under --out and one entry of results.json there;
a rerun skips the entries it has. Sprites follows dSprites' factor grid but is this project's own
rendering (vae_core/sprites.py), and a CPU budget of a few epochs is far under the papers'
300,000 steps: compare orderings, not decimals.

Published reference: ARD-VAE (Saha et al. 2025), dSprites, mean of 5 runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# family -> (FactorVAE score %, MIG) on dSprites, ARD-VAE (Saha et al. 2025), mean of 5 runs
PUBLISHED = {"vae": (64.8, 0.06), "beta-tcvae": (75.6, 0.20), "dip-vae-i": (59.5, 0.05), "dip-vae-ii": (60.7, 0.08)}
DEFAULT_FAMILIES = ("vae", "beta-tcvae", "dip-vae-i", "dip-vae-ii", "factor-vae")


def train_flags(family: str) -> list[str]:
    """The paper's objective: plain VAE (beta 1), or the family at its registry defaults."""
    return ["--model", "conv-vae"] if family == "vae" else ["--model", family]


def run_cell(family: str, seed: int, args, folder: Path) -> dict:
    from vae_core.evaluate import DISENTANGLEMENT_COUNTS, evaluate_checkpoint
    cmd = [sys.executable, "-m", "vae_core.train", "--dataset", "sprites", "--latent-dim", "10",
           "--conv-channels", "32,32", "--epochs", str(args.epochs), "--limit", str(args.limit),
           "--lr", "1e-3", "--lr-schedule", "cosine", "--seed", str(seed), "--test-limit", "2000",
           *train_flags(family), "--out", str(folder)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{family} seed {seed} failed:\n{r.stderr[-2000:]}")
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    m = evaluate_checkpoint(folder, limit=1000, iw_samples=1, seed=seed, save=False,
                            disentanglement=dict(DISENTANGLEMENT_COUNTS[args.counts]))
    d = m["disentanglement"]
    return {"family": family, "seed": seed, "epochs": args.epochs, "limit": args.limit, "counts": args.counts,
            "recon": m["recon"], "kl": m["kl"], "active_units": m["active_units"],
            "factor_vae": d["factor_vae_eval_accuracy"], "beta_vae": d["beta_vae_eval_accuracy"], "mig": d["mig"],
            "dci_disentanglement": d["dci_disentanglement"], "sap": d["sap"], "mig_per_factor": d["mig_per_factor"],
            "train_seconds": round(train_s, 1), "eval_seconds": round(time.perf_counter() - t0, 1)}


def mean_sd(values) -> str:
    values = list(values)
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def ranks(values: dict) -> list[str]:
    return sorted(values, key=lambda k: -values[k])


def report(results: list[dict], families) -> str:
    lines = ["| family | seeds | recon (nats) | active | FactorVAE score | MIG | DCI disent. | BetaVAE | "
             "published FactorVAE / MIG |", "|---|---|---|---|---|---|---|---|---|"]
    means = {}
    for fam in families:
        rows = [r for r in results if r["family"] == fam]
        if not rows:
            continue
        means[fam] = {k: statistics.mean(r[k] for r in rows) for k in ("factor_vae", "mig")}
        pub = PUBLISHED.get(fam)
        lines.append(f"| {fam} | {len(rows)} | {mean_sd(r['recon'] for r in rows)} | "
                     f"{statistics.mean(r['active_units'] for r in rows):.1f} | "
                     f"{mean_sd(100 * r['factor_vae'] for r in rows)} % | {mean_sd(r['mig'] for r in rows)} | "
                     f"{mean_sd(r['dci_disentanglement'] for r in rows)} | {mean_sd(100 * r['beta_vae'] for r in rows)} % | "
                     + (f"{pub[0]} % / {pub[1]} |" if pub else "— |"))
    lines.append("\nMIG by factor (the gap between a factor's top two dimensions, mean over the seeds):")
    for fam in means:
        rows = [r["mig_per_factor"] for r in results if r["family"] == fam and r.get("mig_per_factor")]
        if rows:  # rows of results.json written before the key are left out
            lines.append(f"  {fam}: " + ", ".join(f"{name} {statistics.mean(r[name] for r in rows):.2f}"
                                                 for name in rows[0]))
    both = [f for f in means if f in PUBLISHED]
    if len(both) > 1:
        for key, i, name in (("mig", 1, "MIG"), ("factor_vae", 0, "FactorVAE score")):
            ours = ranks({f: means[f][key] for f in both})
            theirs = ranks({f: PUBLISHED[f][i] for f in both})
            lines.append(f"\n{name} order, ours: {' > '.join(ours)}; published: {' > '.join(theirs)}"
                         f" ({'the same' if ours == theirs else 'different'})")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", default=",".join(DEFAULT_FAMILIES))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--limit", type=int, default=60_000, help="training images (a fixed random subset of the grid)")
    p.add_argument("--counts", default="quick", choices=("quick", "full"))
    p.add_argument("--out", default=str(REPO / "runs" / "bench-disentanglement"))
    args = p.parse_args()
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else []
    setting = {"epochs": args.epochs, "limit": args.limit, "counts": args.counts}
    for seed in range(args.seeds):
        for fam in families:
            if any(r["family"] == fam and r["seed"] == seed and all(r[k] == v for k, v in setting.items())
                   for r in results):
                continue
            row = run_cell(fam, seed, args, out / f"{fam}-s{seed}-e{args.epochs}-n{args.limit}")
            results.append(row)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=1))
            os.replace(tmp, path)
            print(f"{fam} seed {seed}: recon {row['recon']:.1f}, FactorVAE {row['factor_vae']:.3f}, "
                  f"MIG {row['mig']:.3f}, DCI {row['dci_disentanglement']:.3f} "
                  f"({row['train_seconds']:.0f} s training, {row['eval_seconds']:.0f} s scoring)", flush=True)
    shown = [r for r in results if all(r[k] == v for k, v in setting.items())]
    print(f"\nsprites 64x64, latent 10, {args.epochs} epochs of {args.limit:,} images, "
          f"{args.counts} metric counts\n")
    print(report(shown, families))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
