"""Sweep cells as Ray tasks: `python -m vae_core.sweep --ray [auto|ADDRESS] ...`.

    ray start --head --port 6379                       # on one machine
    ray start --address HEAD_IP:6379                   # on every other one
    python -m vae_core.sweep --ray auto --out runs/sweep ...   # on any of them

`--ray` alone starts a Ray instance on this machine for the sweep (and stops it after);
`auto` joins the cluster this machine belongs to; an address (HEAD_IP:6379 or
ray://HEAD_IP:10001) joins that one.

Each cell is one Ray task asking for --cpus-per-cell CPUs and --gpus-per-cell GPUs, so
Ray places as many cells on a node as its resources hold. Nothing assumes a shared
filesystem: a task gets the training flags, the dataset's name and --data-root (the
folder every node is expected to hold the data in), trains and evaluates in a temporary
folder of its own node, and returns the metrics and the run folder's files (a few MB)
to this process, which writes them to <out>/cells/<cell>/ and the row to results.json,
exactly as the local runner does. The vae_core package travels with the tasks (Ray's
py_modules); the pinned requirements must be installed on every node.

A task whose node lacks the data, or that fails in any other way the trainer explains
(a VaeError), fails that cell with the message and the node's name; the other cells go on,
and a rerun retries exactly the cells not in results.json. Stopping the sweep (Ctrl-C)
cancels its tasks; the cells already written stay.
"""
from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from vae_core import VaeError

# environment a task needs to behave as this process does (no downloads in CI, the data's folder)
_FORWARDED_ENV = ("VAE_NO_DOWNLOAD", "VAE_DATA_ROOT")
MAX_RESULT_MB = 256  # the files a cell sends back; a shipped-size model is under 8 MB


def _run_cell(train_args: list[str], eval_limit, iw_samples: int, data_root, threads: int) -> dict:
    """One cell on a Ray worker: train and evaluate in a temporary folder; the metrics and the files."""
    import ray
    import torch

    from vae_core.evaluate import evaluate_checkpoint
    from vae_core.train import config_from_args, train

    host = socket.gethostname()
    torch.set_num_threads(max(1, threads))
    # the GPU Ray gave this task (it sets CUDA_VISIBLE_DEVICES), else the CPU even where a GPU is:
    # a GPU the scheduler did not hand out belongs to another task
    device = "cuda" if ray.get_gpu_ids() else "cpu"
    with tempfile.TemporaryDirectory(prefix="vae-sweep-cell-") as tmp:
        try:
            train(config_from_args([*train_args, "--out", tmp, "--device", device]), progress=False)
            metrics = evaluate_checkpoint(tmp, limit=eval_limit, iw_samples=iw_samples, data_root=data_root,
                                          quality="auto")
        except VaeError as e:
            return {"error": str(e), "host": host}
        files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir())
                 if p.is_file() and not p.name.startswith(".")}
    size = sum(len(b) for b in files.values())
    if size > MAX_RESULT_MB << 20:
        return {"error": f"the run folder holds {size / 2**20:.0f} MB, over the {MAX_RESULT_MB} MB a cell may "
                         "send back", "host": host}
    return {"metrics": metrics, "files": files, "host": host}


def connect(address: str | None):
    """ray.init for a sweep: None starts a local instance; "auto" or an address joins a cluster.
    Returns a function that disconnects (a no-op when Ray was already initialised by the caller)."""
    try:
        import ray
    except ImportError as e:
        raise VaeError("--ray needs the ray package: pip install -r requirements.txt") from e
    if ray.is_initialized():  # the caller (a notebook, a test) set Ray up: use it as it is
        return lambda: None
    import vae_core
    env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
    runtime_env = {"py_modules": [str(Path(vae_core.__file__).parent)], "env_vars": env}
    try:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False, include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = "a local Ray instance" if address in (None, "local") else f"the Ray cluster at {address!r}"
        raise VaeError(f"Could not start or reach {where}: {e}") from e
    return ray.shutdown


def run_cells(todo, base: dict, *, eval_limit, iw_samples: int, data_root, address: str | None,
              cpus_per_cell: int, gpus_per_cell: float, write_cell, log) -> list[str]:
    """Run the cells as Ray tasks; write_cell(cell, files, metrics, host) records each as it finishes.
    Returns the ids of the cells that failed (each logged with its reason)."""
    if cpus_per_cell < 1 or gpus_per_cell < 0:
        raise VaeError(f"--cpus-per-cell must be at least 1 and --gpus-per-cell at least 0 "
                       f"(got {cpus_per_cell}, {gpus_per_cell}).")
    disconnect = connect(address)
    import ray
    try:
        task = ray.remote(num_cpus=cpus_per_cell, num_gpus=gpus_per_cell, max_retries=0)(_run_cell)
        pending = {task.remote(cell.train_args(base), eval_limit, iw_samples, data_root, cpus_per_cell): cell
                   for cell in todo}
        has = ray.cluster_resources()
        log(f"  {len(pending)} Ray tasks submitted ({cpus_per_cell} CPU, {gpus_per_cell:g} GPU each; "
            f"the cluster has {has.get('CPU', 0):g} CPUs, {has.get('GPU', 0):g} GPUs)")
        failed = []
        try:
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                cell = pending.pop(ref)
                try:
                    out = ray.get(ref)
                except ray.exceptions.RayError as e:  # the worker died, or raised something unexplained
                    out = {"error": f"the Ray task failed: {type(e).__name__}: {str(e).strip().splitlines()[-1]}",
                           "host": "?"}
                if "error" in out:
                    failed.append(cell.id)
                    log(f"  {cell.id}: failed on {out['host']}: {out['error']} (rerun the sweep to retry it)")
                    continue
                write_cell(cell, out["files"], out["metrics"], out["host"])
        finally:
            for ref in pending:  # interrupted: the cells not finished stop with this sweep
                ray.cancel(ref, force=True)
        return failed
    finally:
        disconnect()
