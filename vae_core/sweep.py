"""Sweeps: train and evaluate a grid of models, one row of metrics per cell.

    python -m vae_core.sweep --out runs/sweep [--models conv-vae,linear-vae,conv-ae,linear-ae]
        [--latent-dims 2,16] [--betas 0.1,1,4] [--free-bits 0] [--warmups 0]
        [--limit 10000] [--epochs 5] [--eval-limit 1000] [--iw-samples 50]
        [--no-jobs | --ray [auto|ADDRESS] [--cpus-per-cell 1] [--gpus-per-cell 0]]

The grid is the product of the lists; autoencoders have no beta, free bits or
warm-up, so they get one cell per latent dim. These are the comparisons the
reference recipe grew from: AE vs VAE, conv vs linear, beta, latent dim, the
posterior-collapse remedies. Each cell trains on the first --limit MNIST images
(dynamically binarized, so the NLL follows Burda et al.'s protocol), then
vae_core.evaluate scores it on the first --eval-limit test images.

Cells run through the Train page's job runner (vae_core.jobs: background
processes, VAE_CPU_JOBS at a time) unless --no-jobs, which trains them in this
process one after another, or --ray, which runs each cell as a Ray task on
a local instance or a cluster (sweep_ray.py). results.json and results.csv in --out are rewritten
(atomically) after every cell with the cell's settings, every metric of
vae_core.evaluate, training seconds and peak memory. Resumable: a cell already
in results.json is skipped; a job started by an interrupted sweep is waited for,
not started again. A sweep with more cells than the queue may hold
(VAE_MAX_QUEUED_JOBS) finishes its oldest cells before it queues more. The CLI
exits 1 when a cell of the grid failed (each is logged with its reason), 0 when
every cell is in results.json.
"""
from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vae_core import VaeError
from vae_core.evaluate import METRIC_KEYS, evaluate_checkpoint
from vae_core.quality import QUALITY_KEYS
from vae_core.families import FAMILY_MODELS
from vae_core.files import atomic_write_bytes, atomic_write_json

# 16 cells: AE vs VAE, conv vs linear, beta and latent dim. --free-bits 0,0.5 or
# --warmups 0,2 add the collapse remedies (each doubles the VAE cells).
DEFAULT_GRID = {"models": ["conv-vae", "linear-vae", "conv-ae", "linear-ae"], "latent_dims": [2, 16],
                "betas": [0.1, 1.0, 4.0], "free_bits": [0.0], "warmups": [0.0]}
DEFAULT_BASE = {"dataset": "mnist", "limit": 10_000, "epochs": 5, "batch_size": 128, "lr": 1e-3,
                "binarize": "dynamic", "test_limit": 1000}


@dataclass(frozen=True)
class Cell:
    model: str
    latent_dim: int
    beta: float = 1.0
    free_bits: float = 0.0
    warmup_epochs: float = 0.0

    @property
    def weighted(self) -> bool:
        """Whether beta, free bits and warm-up apply: the plain VAEs. Autoencoders have no KL, and a
        family of the literature is weighted by its own flags (its registry defaults in a sweep)."""
        return self.model.endswith("-vae") and self.model not in FAMILY_MODELS

    @property
    def id(self) -> str:
        if not self.weighted:
            return f"{self.model}-z{self.latent_dim}"
        return f"{self.model}-z{self.latent_dim}-b{self.beta:g}-fb{self.free_bits:g}-wu{self.warmup_epochs:g}"

    def train_args(self, base: dict) -> list[str]:
        args = [f"--{k.replace('_', '-')}={v}" for k, v in base.items() if v is not None]
        args += [f"--model={self.model}", f"--latent-dim={self.latent_dim}"]
        if self.weighted:
            args += [f"--beta={self.beta:g}", f"--free-bits={self.free_bits:g}"]
            if self.warmup_epochs > 0:
                args += ["--beta-schedule=linear", f"--warmup-epochs={self.warmup_epochs:g}"]
        if self.model.startswith("conv"):
            args.append("--extra-decoder-layer")
        return args


def grid_cells(models, latent_dims, betas, free_bits, warmups) -> list[Cell]:
    """The product of the lists, with one cell per (model, latent dim) for autoencoders."""
    cells: dict[str, Cell] = {}
    for m, d, b, fb, wu in itertools.product(models, latent_dims, betas, free_bits, warmups):
        c = Cell(m, int(d), float(b), float(fb), float(wu))
        if not c.weighted:
            c = Cell(m, int(d))
        cells.setdefault(c.id, c)
    return list(cells.values())


def read_results(out: Path) -> list[dict]:
    try:
        rows = json.loads((out / "results.json").read_text())
    except (OSError, ValueError):
        return []
    return rows if isinstance(rows, list) else []


def write_results(out: Path, rows: list[dict]) -> None:
    atomic_write_json(out / "results.json", rows)
    cols = list(dict.fromkeys(k for r in rows for k in r if k != "kl_per_dim"))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    atomic_write_bytes(out / "results.csv", buf.getvalue().encode())


def _row(cell: Cell, folder: Path, metrics: dict) -> dict:
    from vae_core.jobs import read_metrics as epoch_metrics
    epochs = epoch_metrics(folder)
    peak = max((e.get("peak_gpu_mb") or e.get("peak_rss_mb") or 0.0 for e in epochs), default=None)
    return {"cell": cell.id, **asdict(cell), **{k: metrics.get(k) for k in METRIC_KEYS},
            **{k: metrics[k] for k in ("codebook_usage", "perplexity", "dead_codes") if k in metrics},
            **{k: metrics[k] for k in QUALITY_KEYS if k in metrics},  # where a shipped classifier fits
            "train_seconds": round(sum(e.get("seconds", 0.0) for e in epochs), 1),
            "peak_memory_mb": None if peak is None else round(peak, 1),
            "epochs": len(epochs), "eval_images": metrics.get("images"), "iw_samples": metrics.get("iw_samples"),
            "checkpoint": str(folder)}


def run_sweep(out, cells: list[Cell], base: dict | None = None, *, eval_limit: int | None = 1000,
              iw_samples: int = 50, use_jobs: bool = True, data_root=None, ray: str | None = None,
              cpus_per_cell: int = 1, gpus_per_cell: float = 0, log=print) -> list[dict]:
    """Train and evaluate every cell not yet in out/results.json; returns all rows.

    ray: None runs the cells here (the job runner, or this process with use_jobs=False);
    "local" (a Ray instance for this sweep), "auto" or a cluster address runs each as a Ray
    task with cpus_per_cell CPUs and gpus_per_cell GPUs (sweep_ray.py)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = {**DEFAULT_BASE, **(base or {})}
    if data_root:
        base["data_root"] = str(data_root)
    rows = read_results(out)
    done = {r["cell"] for r in rows}
    todo = [c for c in cells if c.id not in done]
    log(f"sweep: {len(cells)} cells, {len(cells) - len(todo)} already done, {len(todo)} to run")
    state_path = out / "jobs.json"  # cell id -> job id, so a resumed sweep finds its jobs
    try:
        jobs = json.loads(state_path.read_text())
    except (OSError, ValueError):
        jobs = {}
    runs = out / "runs"

    def record(cell: Cell, folder: Path, metrics: dict, how: str):
        rows.append(_row(cell, folder, metrics))
        write_results(out, rows)
        log(f"  {cell.id}: nll {metrics['nll'] if metrics['nll'] is not None else float('nan'):.2f}, "
            f"recon {metrics['recon']:.2f}, active {metrics['active_units']}/{cell.latent_dim} ({how})")

    def evaluate(cell: Cell, folder: Path):
        t0 = time.time()
        metrics = evaluate_checkpoint(folder, limit=eval_limit, iw_samples=iw_samples, data_root=data_root,
                                      quality="auto")
        record(cell, folder, metrics, f"evaluated in {time.time() - t0:.0f} s")

    if ray is not None:
        from vae_core.sweep_ray import run_cells

        def write_cell(cell: Cell, files: dict[str, bytes], metrics: dict, host: str):
            folder = out / "cells" / cell.id
            if folder.exists():  # what an earlier, failed try of this cell left
                shutil.rmtree(folder)
            for name, blob in files.items():
                atomic_write_bytes(folder / name, blob)
            record(cell, folder, metrics, f"Ray task on {host}")

        run_cells(todo, base, eval_limit=eval_limit, iw_samples=iw_samples, data_root=data_root,
                  address=ray, cpus_per_cell=cpus_per_cell, gpus_per_cell=gpus_per_cell,
                  write_cell=write_cell, log=log)
        return rows

    if not use_jobs:
        from vae_core.train import config_from_args, train
        for cell in todo:
            folder = out / "cells" / cell.id
            log(f"training {cell.id}")
            train(config_from_args(cell.train_args(base) + ["--out", str(folder)]), progress=False)
            evaluate(cell, folder)
        return rows

    from vae_core import jobs as J

    def finish(cell: Cell):
        log(f"waiting for {cell.id} (job {jobs[cell.id]})")
        status = J.wait_job(jobs[cell.id], runs)
        if status["state"] != "done":
            log(f"  {cell.id}: {status['state']}: {status.get('error') or ''} (rerun the sweep to retry it)")
            return
        evaluate(cell, J.job_folder(jobs[cell.id], runs))

    # queue them all (the runner starts VAE_CPU_JOBS at a time); when the queue is full
    # (VAE_MAX_QUEUED_JOBS), finish the oldest started cell first, then queue the next
    started: list[Cell] = []
    for cell in todo:
        status = J.read_status(J.job_folder(jobs[cell.id], runs)) if cell.id in jobs else None
        if status is None or status["state"] in ("failed", "cancelled"):
            while True:
                try:
                    jobs[cell.id] = J.start_job(cell.train_args(base), runs)
                    break
                except J.QueueFull:
                    if not started:  # the queue is full of jobs this sweep did not start
                        raise
                    finish(started.pop(0))
            atomic_write_json(state_path, jobs)
        started.append(cell)
    for cell in started:
        finish(cell)
    return rows


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m vae_core.sweep", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder for results.json, results.csv and the runs")
    p.add_argument("--models", default=",".join(DEFAULT_GRID["models"]))
    p.add_argument("--latent-dims", type=_floats, default=DEFAULT_GRID["latent_dims"])
    p.add_argument("--betas", type=_floats, default=DEFAULT_GRID["betas"])
    p.add_argument("--free-bits", type=_floats, default=DEFAULT_GRID["free_bits"])
    p.add_argument("--warmups", type=_floats, default=DEFAULT_GRID["warmups"], help="KL warm-up epochs (0 = none)")
    p.add_argument("--dataset", default=DEFAULT_BASE["dataset"])
    p.add_argument("--data-root", default=None)
    p.add_argument("--limit", type=int, default=DEFAULT_BASE["limit"], help="training images per cell")
    p.add_argument("--epochs", type=int, default=DEFAULT_BASE["epochs"])
    p.add_argument("--eval-limit", type=int, default=1000, help="test images scored per cell")
    p.add_argument("--iw-samples", type=int, default=50)
    p.add_argument("--no-jobs", action="store_true", help="train in this process, one cell after another")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="auto|ADDRESS",
                   help="run each cell as a Ray task: alone, on a Ray instance started for this sweep; "
                        "'auto' or HEAD_IP:6379 on a running cluster (see vae_core/sweep_ray.py)")
    p.add_argument("--cpus-per-cell", type=int, default=1, help="with --ray: CPUs each cell's task asks for")
    p.add_argument("--gpus-per-cell", type=float, default=0, help="with --ray: GPUs each cell's task asks for")
    args = p.parse_args(argv)
    from vae_core.models import MODEL_KINDS
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODEL_KINDS + FAMILY_MODELS]
    if bad or not models:
        print(f"error: unknown model {bad}: choose from {', '.join(MODEL_KINDS + FAMILY_MODELS)}", file=sys.stderr)
        return 2
    cells = grid_cells(models, [int(d) for d in args.latent_dims], args.betas, args.free_bits, args.warmups)
    base = {"dataset": args.dataset, "limit": args.limit, "epochs": args.epochs}
    t0 = time.time()
    try:
        rows = run_sweep(args.out, cells, base, eval_limit=args.eval_limit, iw_samples=args.iw_samples,
                         use_jobs=not args.no_jobs, data_root=args.data_root, ray=args.ray,
                         cpus_per_cell=args.cpus_per_cell, gpus_per_cell=args.gpus_per_cell)
    except VaeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    missing = len({c.id for c in cells} - {r["cell"] for r in rows})
    print(f"{len(rows)} cells in {args.out}/results.csv ({time.time() - t0:.0f} s this run)"
          + (f"; {missing} of the grid's cells failed: rerun the same command to retry them" if missing else ""))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
