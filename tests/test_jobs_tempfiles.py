"""Temp files killed writers leave in run folders (issue 12): which go, and when.

Every run file is written to .<name>.XXXX.tmp and renamed (files.atomic_write_bytes);
a writer killed mid-write leaves that temp file behind. The files here are fakes with
their age set by os.utime, in real job folders (status.json written by the real code),
a real plain run folder and the folder of a real running job.
"""
import os
import time

from tests.test_jobs import LONG, TINY as TINY_JOB, _wait_for, runs  # noqa: F401 (runs: the fixture)
from vae_core.catalog import list_models
from vae_core.checkpoint import save_checkpoint
from vae_core.jobs import (STALE_TMP_S, cancel_job, job_folder, read_status, refresh, remove_stale_temp_files,
                           start_job, update_status, wait_job)
from vae_core.models import ModelConfig, build_model

TINY = [*TINY_JOB, "--epochs", "1"]


def _temp_files(folder, age_s):
    """A killed model write, a killed status write and a killed grid write, all age_s old."""
    files = [folder / ".model.safetensors.k1ll3d.tmp", folder / ".status.json.x7y8z9.tmp",
             folder / "grids" / ".recon_e001.png.abcdef.tmp"]
    when = time.time() - age_s
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"\0" * 2048)  # a partial write
        os.utime(f, (when, when))
    return files


def test_listing_removes_old_temp_files_of_a_finished_job_and_keeps_young_ones(runs):
    folder = runs / "20261122-000000-d0ne"
    save_checkpoint(folder, build_model(ModelConfig(latent_dim=2)))
    update_status(folder, id=folder.name, state="done", pid=None, device="cpu", args=[])
    stale = _temp_files(folder, STALE_TMP_S + 60)
    young = folder / ".config.json.y0ung1.tmp"  # as a writer would hold it: seconds old
    young.write_bytes(b"{")
    lookalikes = [folder / "notes.tmp", folder / ".lock", folder / "grids" / "recon_e001.png"]
    for f in lookalikes:
        f.touch()
    jobs = refresh(runs)  # `jobs list` and the Train page
    assert [j["id"] for j in jobs] == [folder.name]
    assert [f.exists() for f in stale] == [False, False, False]
    assert young.exists() and all(f.exists() for f in lookalikes)
    assert (folder / "model.safetensors").is_file() and read_status(folder)["state"] == "done"


def test_the_model_listing_cleans_a_plain_train_run_by_age_alone(runs):
    """`python -m vae_core.train --out X` folders have no status.json: only the age protects
    a live writer there, so a young temp file stays and an old one goes."""
    folder = runs / "plain-run"
    save_checkpoint(folder, build_model(ModelConfig(latent_dim=2)))
    stale = _temp_files(folder, STALE_TMP_S + 1)
    young = _temp_files(runs / "young-run", STALE_TMP_S - 30)  # a second plain run, its writers alive
    assert "runs/plain-run" in [m.key for m in list_models(runs)]
    assert not any(f.exists() for f in stale)
    assert all(f.exists() for f in young)


def test_a_running_job_keeps_even_old_temp_files_until_it_ends(runs):
    """The job's runner is a live process: nothing in its folder is touched, whatever its age;
    once cancelled, the next listing removes the old ones."""
    job = start_job(LONG)
    folder = job_folder(job)
    _wait_for(lambda: read_status(folder)["state"] == "running" and read_status(folder)["progress"]["step"] > 0,
              what="the job training")
    stale = _temp_files(folder, 3600)
    assert remove_stale_temp_files(folder) == []
    refresh(runs)
    list_models(runs)
    assert all(f.exists() for f in stale) and read_status(folder)["state"] == "running"
    assert cancel_job(job)["state"] == "cancelled"
    refresh(runs)
    assert not any(f.exists() for f in stale)


def test_a_killed_runner_no_longer_protects_its_folder(runs):
    """status.json still says running, but its pid is not the job's runner any more."""
    folder = runs / "20261122-000000-dead"
    folder.mkdir(parents=True)
    update_status(folder, id=folder.name, state="running", pid=os.getpid(), device="cpu", args=[],
                  progress={"epoch": 0, "epochs": 1})  # this pytest process: alive, but not this job's runner
    stale = _temp_files(folder, STALE_TMP_S + 60)
    young = _temp_files(folder / "grids" / "sub", 1)
    removed = remove_stale_temp_files(folder)
    assert sorted(removed) == sorted(stale) and all(f.exists() for f in young)


def test_the_job_runner_starting_in_its_folder_removes_every_temp_file(runs):
    """When the runner starts it is the folder's only writer: even a temp file seconds old goes."""
    first = start_job(LONG)  # holds the one CPU slot, so the second job waits, queued
    second = start_job(TINY)
    folder = job_folder(second)
    assert read_status(folder)["state"] == "queued"
    young = _temp_files(folder, 0)
    assert remove_stale_temp_files(folder) == [] and all(f.exists() for f in young)  # a listing keeps them
    cancel_job(first)  # the slot frees, the second job's runner starts
    assert wait_job(second, timeout=180)["state"] == "done"
    assert not any(f.exists() for f in young)
    assert not [p for p in folder.rglob("*.tmp")]
