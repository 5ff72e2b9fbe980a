"""Background jobs, for real: tiny digits jobs in their own OS processes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vae_core import VaeError
from vae_core.catalog import list_models
from vae_core.checkpoint import load_checkpoint
from vae_core.jobs import (process_alive, cancel_job, delete_job, job_folder, job_settings, job_summary, main,
                           read_status, refresh, start_job, wait_job)
from vae_core.train import TrainConfig

TINY = ["--dataset", "digits", "--limit", "300", "--device", "cpu"]
LONG = ["--dataset", "digits", "--epochs", "500", "--batch-size", "32", "--device", "cpu"]


@pytest.fixture()
def runs(tmp_path, monkeypatch, cache_root):
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_CPU_JOBS", "1")
    monkeypatch.delenv("VAE_MAX_QUEUED_JOBS", raising=False)  # the shipped bounds, not the caller's
    monkeypatch.delenv("VAE_MAX_JOB_STEPS", raising=False)
    return tmp_path / "runs"


def _wait_for(pred, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _proc_state(pid):
    """The /proc state letter of pid ("Z" for a zombie), or None once it is gone (reaped)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    return next(line.split()[1] for line in text.splitlines() if line.startswith("State:"))


def _epochs_done(folder):
    try:
        return len((folder / "metrics.jsonl").read_text().splitlines())
    except OSError:
        return 0


def test_a_job_runs_to_done_and_becomes_a_model(runs):
    job = start_job(TINY + ["--epochs", "2"])
    status = wait_job(job, timeout=180)
    assert status["state"] == "done", status
    folder = job_folder(job)
    ck = load_checkpoint(folder)
    assert ck.config["metrics"]["epoch"] == 2
    assert status["progress"]["epoch"] == 2 and status["started"] and status["ended"] and status["pid"]
    assert _proc_state(status["pid"]) is None  # wait_job reaped the job it launched: no zombie left
    assert "epoch 2:" in (folder / "log.txt").read_text()
    assert f"runs/{job}" in [m.key for m in list_models()]  # offered by the sidebar picker
    from vae_core.latents import load_cached_latents
    assert load_cached_latents(ck.hash, "test") is not None  # its scatter is ready


def test_cancel_keeps_the_last_completed_epoch(runs):
    job = start_job(LONG)
    folder = job_folder(job)
    _wait_for(lambda: _epochs_done(folder) >= 1, what="a completed epoch")
    assert f"runs/{job}" not in [m.key for m in list_models()]  # not offered while running
    pid = read_status(folder)["pid"]
    status = cancel_job(job)
    assert status["state"] == "cancelled", status
    assert _proc_state(pid) is None  # reaped: not a zombie waiting for this process to exit
    ck = load_checkpoint(folder)
    assert ck.config["metrics"]["epoch"] >= 1
    assert not any(p.name.endswith(".tmp") for p in folder.iterdir())


def test_a_killed_job_is_reported_failed_with_its_log(runs):
    job = start_job(LONG)
    folder = job_folder(job)
    _wait_for(lambda: _epochs_done(folder) >= 1, what="a completed epoch")
    pid = read_status(folder)["pid"]
    os.killpg(pid, signal.SIGKILL)
    _wait_for(lambda: [j for j in refresh() if j["id"] == job][0]["state"] == "failed", what="failed state")
    status = read_status(folder)
    assert "ended without reporting" in status["error"] and "epoch 1:" in status["error"]


def test_jobs_queue_behind_the_cpu_limit(runs):
    first = start_job(LONG)
    second = start_job(TINY + ["--epochs", "1"])
    assert read_status(job_folder(second))["state"] == "queued"
    _wait_for(lambda: _epochs_done(job_folder(first)) >= 1, what="first job's epoch")
    assert read_status(job_folder(second))["state"] == "queued"  # still waiting for the slot
    cancel_job(first)  # the slot frees; the second starts by itself
    _wait_for(lambda: [j for j in refresh() if j["id"] == second][0]["state"] == "done", timeout=180, what="done")
    pid = read_status(job_folder(second))["pid"]
    # it exits just after writing "done"; a later refresh (the Train page polls) collects it: no zombie
    _wait_for(lambda: refresh() and _proc_state(pid) is None, timeout=30, what="the job reaped")


def test_diverging_job_fails_with_the_nan_advice(runs):
    job = start_job(TINY + ["--epochs", "3", "--lr", "1e6"])
    status = wait_job(job, timeout=180)
    assert status["state"] == "failed"
    assert "lower learning rate" in status["error"] and "epoch" in status["error"]


def test_missing_dataset_fails_naming_the_folder(runs, tmp_path):
    job = start_job(["--dataset", "mnist", "--data-root", str(tmp_path / "nodata"), "--epochs", "1"])
    status = wait_job(job, timeout=180)
    assert status["state"] == "failed" and str(tmp_path / "nodata" / "MNIST" / "raw") in status["error"]


@pytest.mark.parametrize("args", [["--beta", "-1"], ["--latent-dim", "0"], ["--dataset", "cifar"],
                                  ["--no-such-flag"], ["--out", "x"]])
def test_invalid_flags_are_refused_and_leave_no_job(runs, args):
    with pytest.raises(VaeError):
        start_job(["--dataset", "digits"] + args)
    assert not runs.exists() or not [p for p in runs.iterdir() if p.is_dir()]


def test_a_new_manager_process_lists_the_same_jobs_and_the_cli_works(runs):
    env = {**os.environ, "VAE_RUNS_DIR": str(runs)}
    cli = [sys.executable, "-m", "vae_core.jobs"]
    job = subprocess.run(cli + ["start"] + TINY + ["--epochs", "1"], env=env, capture_output=True, text=True,
                         timeout=120).stdout.strip()
    r = subprocess.run(cli + ["wait", job, "--timeout", "180"], env=env, capture_output=True, text=True, timeout=200)
    assert r.returncode == 0 and "done" in r.stdout
    listed = json.loads(subprocess.run(cli + ["list", "--json"], env=env, capture_output=True, text=True,
                                       timeout=120).stdout)
    assert [j["id"] for j in listed] == [job] and listed[0]["state"] == "done"
    status = json.loads(subprocess.run(cli + ["status", job, "--json"], env=env, capture_output=True, text=True,
                                       timeout=120).stdout)
    assert status["state"] == "done"  # (a refused start from the CLI: test_runs_dir_may_come_before_...)
    assert subprocess.run(cli + ["delete", job], env=env, timeout=120).returncode == 0
    assert not (runs / job).exists()


def test_delete_is_refused_while_running(runs):
    job = start_job(LONG)
    with pytest.raises(VaeError, match="cancel it"):
        delete_job(job)
    cancel_job(job)
    delete_job(job)
    assert not (runs / job).exists()


def test_job_settings_read_the_flags_and_fill_in_the_train_defaults():
    d = TrainConfig()
    status = {"args": ["--dataset", "digits", "--beta=0.5", "--epochs", "3", "--out", "runs/x"]}
    assert job_settings(status) == dict(dataset="digits", model=d.model, latent_dim=d.latent_dim, beta=0.5, epochs=3,
                                        free_bits=d.free_bits, target_kl=None)
    assert job_summary(status) == f"digits · {d.model} · z={d.latent_dim} · β=0.5 · 3 epochs"
    assert job_summary({"args": ["--model", "conv-ae", "--latent-dim", "16", "--beta", "0", "--epochs", "1"]}) \
        == f"{d.dataset} · conv-ae · z=16 · β=0 · 1 epoch"
    for unreadable in ({}, {"args": None}, {"args": ["--latent-dim", "two"]}):
        assert job_settings(unreadable) == {} and job_summary(unreadable) == "settings unknown"


def test_a_job_launched_by_another_process_is_cancelled_all_the_same(runs):
    env = {**os.environ, "VAE_RUNS_DIR": str(runs)}
    job = subprocess.run([sys.executable, "-m", "vae_core.jobs", "start"] + LONG, env=env, capture_output=True,
                         text=True, timeout=120).stdout.strip()
    folder = job_folder(job)
    pid = read_status(folder)["pid"]
    assert cancel_job(job)["state"] == "cancelled"  # not our child: nothing to reap, nothing to trip over
    assert not process_alive(pid, folder.name)


def test_runs_dir_may_come_before_or_after_the_subcommand(tmp_path, monkeypatch, cache_root, capsys):
    decoy = tmp_path / "decoy"  # where a job would land if --runs-dir were ignored
    monkeypatch.setenv("VAE_RUNS_DIR", str(decoy))
    runs = tmp_path / "runs"

    def cli(*argv):
        rc = main([str(a) for a in argv])
        return rc, capsys.readouterr().out.strip()

    rc, first = cli("start", "--runs-dir", runs, *TINY, "--epochs", "1")
    assert rc == 0 and (runs / first / "status.json").is_file()
    rc, second = cli("start", *TINY, "--epochs", "1", f"--runs-dir={runs}")
    assert rc == 0 and (runs / second / "status.json").is_file()
    assert cli("--runs-dir", runs, "cancel", second)[0] == 0  # queued behind the first: cancelled at once
    assert cli("wait", first, "--runs-dir", runs, "--timeout", "180")[0] == 0
    rc, listed = cli("list", f"--runs-dir={runs}")
    summary = job_summary(read_status(runs / first))
    assert rc == 0 and f"{first}  done" in listed and f"{second}  cancelled" in listed and summary in listed
    assert summary.startswith("digits · ")
    assert cli("status", first, "--runs-dir", runs) == (0, next(x for x in listed.splitlines() if first in x))
    assert cli("cancel", "--runs-dir", runs, first)[0] == 0  # a done job stays done
    assert cli("delete", first, "--runs-dir", runs)[0] == 0 and cli("--runs-dir", runs, "delete", second)[0] == 0
    assert not [p for p in runs.iterdir() if p.is_dir()] and not decoy.exists()
    # the reported case, as a real command: the flag after the subcommand is not a training flag
    bad = subprocess.run([sys.executable, "-m", "vae_core.jobs", "start", "--runs-dir", str(runs), "--dataset",
                          "digits", "--beta", "-2"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--beta must be" in bad.stderr, bad.stderr


def test_cancel_never_signals_a_process_that_is_not_the_job(tmp_path):
    """A stale "running" status whose pid now belongs to another process (here a sleep in
    its own process group, as a reused pid would be): cancel must leave that process alone."""
    import subprocess
    from vae_core.jobs import cancel_job, update_status
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        folder = tmp_path / "runs" / "20261122-000000-dead"
        folder.mkdir(parents=True)
        update_status(folder, id=folder.name, state="running", pid=other.pid, device="cpu", args=[],
                      progress={"epoch": 0, "epochs": 1})
        status = cancel_job(folder.name, tmp_path / "runs", grace_s=1.0)
        assert status["state"] in ("cancelled", "failed")
        time.sleep(0.2)
        assert other.poll() is None  # the unrelated process still runs: it was never signalled
    finally:
        other.kill()
        other.wait()


def test_deleting_a_run_takes_its_latent_cache_and_served_files_with_it(tmp_path, monkeypatch):
    """Its decoder weights stayed downloadable at /app/static/decoders/<hash>.bin and its
    cache on disk after a delete; a shipped model's cache is never touched."""
    import ui_common
    from vae_core.checkpoint import checkpoint_hash, save_checkpoint
    from vae_core.jobs import delete_job, update_status
    from vae_core.latents import cache_folder
    from vae_core.models import ModelConfig, build_model
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(ui_common, "STATIC", tmp_path / "static")
    folder = tmp_path / "runs" / "20261122-000000-beef"
    torch_model = build_model(ModelConfig(latent_dim=3))
    save_checkpoint(folder, torch_model)
    update_status(folder, id=folder.name, state="done", pid=None, device="cpu", args=[])
    h = checkpoint_hash(folder)
    cache_folder(h).mkdir(parents=True)
    (cache_folder(h) / "test_meta.json").write_text("{}")
    served = [tmp_path / "static" / "decoders" / f"{h}.bin", tmp_path / "static" / "points" / f"{h}-0123.bin",
              tmp_path / "static" / "points" / "otherhash-0123.bin"]
    for f in served:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    ui_common.forget_served_files(delete_job(folder.name, tmp_path / "runs"))
    assert not folder.exists() and not cache_folder(h).exists()
    assert [f.exists() for f in served] == [False, False, True]  # another model's file stays
