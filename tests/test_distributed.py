"""torchrun with gloo: two real CPU processes train one model (vae_core/distributed.py).

Each run is a real `python -m torch.distributed.run` (MNIST, digits); a Python audit
hook (sitecustomize.py on PYTHONPATH, as in test_no_network.py) logs every file each rank
opens for writing or renames, so "rank 1 writes nothing" is observed, not assumed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.live_app import free_port


def common(epochs: int = 2) -> list[str]:
    return ["--dataset", "mnist", "--limit", "2000", "--test-limit", "500", "--epochs", str(epochs),
            "--precision", "fp32", "--device", "cpu", "--conv-channels", "8,16", "--hidden", "32", "--seed", "0"]


WRITES = textwrap.dedent("""
    import os, sys
    # opened before the hook is installed, and written with os.write: the hook never sees itself
    _fd = os.open(os.environ["VAE_WRITE_LOG"] + "." + os.environ.get("RANK", "solo"),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    def _hook(event, args):
        if event == "open" and args[0] is not None and not isinstance(args[0], int):
            mode, flags = args[1], args[2] or 0
            if (mode and any(c in mode for c in "wax+")) or (not mode and flags & (os.O_WRONLY | os.O_RDWR)):
                os.write(_fd, f"open\\t{os.fsdecode(args[0])}\\n".encode())
        elif event in ("os.rename", "os.mkdir", "os.remove"):
            os.write(_fd, f"{event}\\t{os.fsdecode(args[0])}\\n".encode())
    sys.addaudithook(_hook)
""")


def _env(tmp_path, data_root) -> dict:
    (tmp_path / "sitecustomize.py").write_text(WRITES)
    return {**os.environ, "PYTHONPATH": str(tmp_path), "VAE_WRITE_LOG": str(tmp_path / "writes"),
            "VAE_DATA_ROOT": str(data_root), "OMP_NUM_THREADS": "1"}


def _torchrun(nproc: int, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master-port", str(free_port()), "-m", "vae_core.train", *args]


def _writes(tmp_path, rank: str, under) -> list[str]:
    log = tmp_path / f"writes.{rank}"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if str(under) in line]


def test_two_gloo_processes_train_the_model_one_process_trains_with_their_global_batch(tmp_path, data_root,
                                                                                        cache_root, monkeypatch):
    """2 ranks x batch 32 against 1 process x batch 64, same seed: the same images in the same steps
    from the same initial weights. Only the reparameterisation noise differs (each rank draws its
    own epsilon), so the losses after the 2 epochs (63 steps) agree closely but not bit for bit.
    Measured for seeds 0, 1, 2: final test losses 238.5/239.1, 225.7/226.0, 246.7/246.8 nats (at most
    0.3% apart), while those three seeds' runs differ from each other by 5-9%. The bound, 2%, lies
    between: a broken shard, a missing gradient average or rank 0's metrics alone make another run.
    (After one epoch, 31 steps, two noise draws can still be 3% apart: that epoch is not compared.)"""
    from vae_core.checkpoint import load_checkpoint
    env = _env(tmp_path, data_root)
    ddp, solo = tmp_path / "ddp", tmp_path / "solo"
    r = subprocess.run(_torchrun(2, [*common(), "--batch-size", "32", "--out", str(ddp)]), env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 processes (torchrun, gloo), global batch 2 x 32 = 64" in r.stderr
    assert r.stdout.count("done: 2 epochs") == 1  # rank 0 reports for the group
    r1 = subprocess.run([sys.executable, "-m", "vae_core.train", *common(), "--batch-size", "64", "--out", str(solo)],
                        env=env, capture_output=True, text=True, timeout=300)
    assert r1.returncode == 0, r1.stderr[-3000:]

    # an ordinary, complete run folder
    assert sorted(p.name for p in ddp.iterdir()) == ["config.json", "grids", "metrics.jsonl", "model.safetensors"]
    assert sorted(p.name for p in (ddp / "grids").iterdir()) == ["prior_e001.png", "prior_e002.png",
                                                                 "recon_e001.png", "recon_e002.png"]
    config = json.loads((ddp / "config.json").read_text())
    assert config["command"].startswith("torchrun --nproc_per_node=2 -m vae_core.train --dataset mnist")
    lines = [json.loads(x) for x in (ddp / "metrics.jsonl").read_text().splitlines()]
    solo_lines = [json.loads(x) for x in (solo / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2] and lines[-1]["processes"] == 2 and lines[-1]["global_batch"] == 64
    # the epoch's metrics are the whole group's: its training loss is the one process's to the same 2%
    assert lines[-1]["loss"] == pytest.approx(solo_lines[-1]["loss"], rel=0.02)
    assert lines[-1]["test_loss"] == pytest.approx(solo_lines[-1]["test_loss"], rel=0.02)
    assert lines[-1]["test_loss"] < lines[0]["test_loss"]

    # rank 0 wrote the folder; rank 1 wrote nothing in it, not even a temp file
    assert _writes(tmp_path, "0", ddp) and _writes(tmp_path, "1", ddp) == []

    # and it is an ordinary checkpoint: it loads, and the app shows it
    ck = load_checkpoint(ddp)
    assert ck.model_config.latent_dim == 2
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path))
    from tests.test_app import app, no_errors
    no_errors(app("runs/ddp", "pages/explore.py"))


def _children(pid: int) -> list[int]:
    """Every descendant of pid (torchrun's ranks are its children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(c) for t in os.listdir(f"/proc/{p}/task")
                    for c in open(f"/proc/{p}/task/{t}/children").read().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def _environ(pid: int) -> dict:
    try:
        raw = open(f"/proc/{pid}/environ", "rb").read()
    except OSError:
        return {}
    return dict(kv.split("=", 1) for kv in raw.decode(errors="replace").split("\0") if "=" in kv)


# ---------------------------------------------------------------- jobs with several processes

def test_a_two_process_job_takes_two_slots_and_a_killed_rank_fails_it_cleanly(tmp_path, monkeypatch, cache_root):
    """`jobs start --processes 2`: the job runs its ranks under torchrun and counts as two CPU
    slots (with VAE_CPU_JOBS=2 a one-process job waits behind it); killing its rank 1 ends it
    failed, with the reason, its last completed epoch loads, and the waiting job starts. (A
    torchrun run to the end: the test above; the job's done path is the one-process job's.)"""
    from vae_core.checkpoint import load_checkpoint
    from vae_core.jobs import cancel_job, job_summary, read_status, start_job, wait_job
    from tests.test_jobs import _wait_for
    runs = tmp_path / "runs"
    monkeypatch.setenv("VAE_RUNS_DIR", str(runs))
    monkeypatch.setenv("VAE_CPU_JOBS", "2")
    flags = ["--dataset", "digits", "--epochs", "300", "--batch-size", "32", "--device", "cpu", "--conv-channels",
             "8,16", "--hidden", "32"]
    with pytest.raises(Exception, match="whole number from 1"):
        start_job(flags, processes=0)
    long = start_job(flags, processes=2)
    solo = start_job(flags[:2] + ["--limit", "300", "--epochs", "1"])
    assert read_status(runs / long)["state"] == "running" and read_status(runs / solo)["state"] == "queued"
    folder = runs / long
    try:
        _wait_for(lambda: (folder / "metrics.jsonl").exists() and
                  len((folder / "metrics.jsonl").read_text().splitlines()) >= 1, what="an epoch of the 2-process job")
        rank1 = next(pid for pid in _children(read_status(folder)["pid"]) if _environ(pid).get("RANK") == "1")
        os.kill(rank1, signal.SIGKILL)
        job = wait_job(long, timeout=120)
    finally:
        if read_status(folder)["state"] == "running":
            cancel_job(long)
    assert job["state"] == "failed" and job["error"].startswith(
        "A training process of this 2-process job failed: rank 1 was killed by SIGKILL (torchrun exit code"), job
    assert job["processes"] == 2 and "2 processes" in job_summary(job)
    assert json.loads((folder / "config.json").read_text())["command"].startswith("torchrun --nproc_per_node=2")
    assert "global batch 2 x 32 = 64" in (folder / "log.txt").read_text()
    # the two slots freed: the failed job's runner schedules the waiting one as it exits
    _wait_for(lambda: read_status(runs / solo)["state"] in ("running", "done"), timeout=30, what="the queued job")
    cancel_job(solo)
    ck = load_checkpoint(folder)
    saved = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    assert ck.config["metrics"]["epoch"] == saved[-1]["epoch"] >= 1
    assert not [p for p in folder.rglob("*") if p.suffix == ".tmp"]  # no half-written file
