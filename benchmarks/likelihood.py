"""Test-set log-likelihood on binarized MNIST, next to the published numbers.

    python benchmarks/likelihood.py [--train] [--limit N] [--iw-samples 5000] [CHECKPOINT ...]

Protocol of Burda, Grosse & Salakhutdinov (2015), "Importance Weighted
Autoencoders", Table 1: training images binarized dynamically (a fresh Bernoulli
draw per pixel each time an image is seen), the 10,000 test images binarized once
with a fixed seed, and -log p(x) estimated with K = 5000 importance samples.

--train runs the training commands below first (about 55 minutes on 2 CPU cores;
the z = 50 run is the shipped checkpoints/mnist-bin-z50, copied there by
scripts/ship_model.py).
Without it, the checkpoints given (default: the shipped checkpoints/mnist-bin-z50
plus runs/bin-z2 and runs/bin-z16 when they exist) are scored by vae_core.evaluate.
--limit scores the first N test images only (the full set with K = 5000 is 50
million decoder passes: 50 minutes at benchmarks/eval_speed.py's rate on 2 quiet CPU
cores; the run behind the shipped metrics.json, 83.52 nats, took 72 minutes on shared ones).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PUBLISHED = [("VAE, 1 stochastic layer (50), MLP — Burda et al. 2015, Table 1", 86.76),
             ("IWAE, 2 stochastic layers, K=50 — Burda et al. 2015, Table 1", 82.90)]
GOAL = 84.0

# The exact commands behind the shipped mnist-bin-z50 and the z = 2 / 16 rows.
COMMON = ["--dataset", "mnist", "--binarize", "dynamic", "--beta", "1", "--beta-schedule", "linear",
          "--extra-decoder-layer", "--batch-size", "128", "--lr", "1e-3", "--lr-schedule", "cosine", "--seed", "0"]
COMMANDS = {  # about 14 s an epoch on 2 CPU cores
    "runs/bin-z50": ["--latent-dim", "50", "--epochs", "200", "--warmup-epochs", "20"],
    "runs/bin-z16": ["--latent-dim", "16", "--epochs", "15", "--warmup-epochs", "3"],
    "runs/bin-z2": ["--latent-dim", "2", "--epochs", "15", "--warmup-epochs", "3"],
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="*")
    p.add_argument("--train", action="store_true", help="run the training commands first")
    p.add_argument("--limit", type=int, default=None, help="score the first N test images")
    p.add_argument("--iw-samples", type=int, default=5000)
    args = p.parse_args()
    from vae_core.evaluate import evaluate_checkpoint

    if args.train:
        for out, extra in COMMANDS.items():
            cmd = [sys.executable, "-m", "vae_core.train", *COMMON, *extra, "--out", str(REPO / out)]
            print("$", " ".join(cmd[1:]), flush=True)
            subprocess.run(cmd, check=True, cwd=REPO)
        print("ship the z = 50 run with: python scripts/ship_model.py runs/bin-z50 mnist-bin-z50", flush=True)
    default = ["checkpoints/mnist-bin-z50", "runs/bin-z16", "runs/bin-z2"]
    targets = [Path(c) for c in args.checkpoints] or [REPO / c for c in default if (REPO / c).is_dir()]
    rows = []
    for folder in targets:
        print(f"scoring {folder} with K = {args.iw_samples} ...", file=sys.stderr, flush=True)
        m = evaluate_checkpoint(folder, limit=args.limit, iw_samples=args.iw_samples)
        rows.append((f"ours: ConvVAE z={m['latent_dim']} ({folder.name})", m))
    print(f"\nbinarized MNIST test set, -log p(x) in nats (lower is better); K = {args.iw_samples}"
          + (f", first {args.limit} test images" if args.limit else ", all 10,000 test images"))
    print(f"{'model':<66} {'NLL':>7} {'-ELBO':>7} {'active':>7}")
    for name, nll in PUBLISHED:
        print(f"{name:<66} {nll:7.2f} {'':>7} {'':>7}")
    for name, m in rows:
        print(f"{name:<66} {m['nll']:7.2f} {m['neg_elbo']:7.2f} {m['active_units']:>4}/{m['latent_dim']:<2}")
    z50 = [m for _, m in rows if m["latent_dim"] == 50]
    if z50:
        verdict = "met" if z50[0]["nll"] <= GOAL else "not met"
        print(f"goal: ConvVAE z=50 at <= {GOAL} nats: {verdict} ({z50[0]['nll']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
