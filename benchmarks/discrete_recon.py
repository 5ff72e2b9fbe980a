"""VQ-VAE and FSQ against the Gaussian VAE of the same size: reconstruction and codebook use.

    python benchmarks/discrete_recon.py [--datasets mnist,sprites] [--epochs 3] [--limit 60000]
        [--out runs/bench-discrete]

The same conv network with a z of 4 numbers, three ways:
    conv-vae   Gaussian posterior, beta 1
    fsq        levels 8,5,5,5: a grid of 1,000 codes (the FSQ paper's 2^10 setting)
    vq-vae     2 slots of 2 numbers, K = 32 codes each: 1,024 code pairs, about the same 10 bits
Each is trained through the real CLI for the same epochs on the same images (seed 0) and scored
by vae_core.evaluate on 2,000 test images: reconstruction in nats per image (and MSE per pixel),
the test set's codebook usage and perplexity, and the last epoch's training-set usage. Resumable
per (dataset, model) through results.json in --out.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODELS = {"conv-vae": ["--model", "conv-vae", "--latent-dim", "4"],
          "fsq": ["--model", "fsq", "--latent-dim", "4", "--fsq-levels", "8,5,5,5"],
          "vq-vae": ["--model", "vq-vae", "--latent-dim", "4", "--code-dim", "2", "--codebook-size", "32"]}
SHAPE = {"mnist": [], "sprites": ["--conv-channels", "32,32"]}


def fmt(value, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="mnist,sprites")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--limit", type=int, default=60_000)
    p.add_argument("--out", default=str(REPO / "runs" / "bench-discrete"))
    args = p.parse_args()
    from vae_core.evaluate import evaluate_checkpoint
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else []
    for dataset in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        for name, flags in MODELS.items():
            if any(r["dataset"] == dataset and r["model"] == name and r["epochs"] == args.epochs
                   and r["limit"] == args.limit for r in results):
                continue
            folder = out / f"{dataset}-{name}-e{args.epochs}-n{args.limit}"
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "vae_core.train", "--dataset", dataset, *SHAPE[dataset],
                                *flags, "--epochs", str(args.epochs), "--limit", str(args.limit), "--lr", "1e-3",
                                "--lr-schedule", "cosine", "--test-limit", "2000", "--out", str(folder)],
                               cwd=REPO, capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"{dataset} {name} failed:\n{r.stderr[-2000:]}")
            seconds = time.perf_counter() - t0
            m = evaluate_checkpoint(folder, limit=2000, iw_samples=1, save=False)
            last = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
            results.append({"dataset": dataset, "model": name, "epochs": args.epochs, "limit": args.limit,
                            "recon": m["recon"], "mse": m["mse"], "kl": m["kl"],
                            "test_usage": m.get("codebook_usage"), "test_perplexity": m.get("perplexity"),
                            "train_usage": last.get("codebook_usage"), "codebook": m.get("codebook_size"),
                            "train_seconds": round(seconds, 1)})
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=1))
            os.replace(tmp, path)
            print(f"{dataset} {name}: recon {m['recon']:.1f} ({seconds:.0f} s)", flush=True)
    print(f"\n{args.epochs} epochs of up to {args.limit:,} images; 2,000 test images\n")
    print("| dataset | model | recon (nats) | MSE/pixel | KL | codebook | test usage | perplexity | "
          "training usage (last epoch) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if r["epochs"] != args.epochs or r["limit"] != args.limit:
            continue
        print(f"| {r['dataset']} | {r['model']} | {r['recon']:.1f} | {r['mse']:.4f} | {fmt(r['kl'], '{:.1f}')} | "
              f"{r['codebook'] or '—'} | {fmt(r['test_usage'], '{:.1%}')} | {fmt(r['test_perplexity'], '{:.0f}')} | "
              f"{fmt(r['train_usage'], '{:.1%}')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
