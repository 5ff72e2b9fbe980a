"""AppTest of the Train page: no jobs, jobs in every state, the form starts a job."""

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from vae_core.checkpoint import atomic_write_json
from vae_core.jobs import cancel_job, refresh, start_job

TIMEOUT = 120


@pytest.fixture()
def runs(tmp_path, monkeypatch, cache_root):
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_CPU_JOBS", "1")
    return tmp_path / "runs"


def train_page() -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def fake_job(runs, job_id, state, error=None):
    folder = runs / job_id
    folder.mkdir(parents=True)
    atomic_write_json(folder / "status.json", {
        "id": job_id, "state": state, "args": ["--dataset", "digits", "--out", str(folder)], "device": "cpu",
        "created": "2026-11-21T10:00:00+00:00", "started": None, "ended": None, "pid": None,
        "progress": {"epoch": 1.0, "epochs": 3, "step": 5, "steps": 5}, "error": error})
    (folder / "log.txt").write_text("epoch 1: loss 200\n")
    return folder


def test_no_jobs(runs):
    at = train_page()
    assert any("No jobs yet" in i.value for i in at.info)
    assert [b.label for b in at.button] == ["Start job"]


def test_jobs_in_every_state(runs):
    running = start_job(["--dataset", "digits", "--epochs", "500", "--batch-size", "32", "--device", "cpu"])
    try:
        fake_job(runs, "20200101-000001-aaaa", "done")
        fake_job(runs, "20200101-000002-bbbb", "failed", error="The training loss became nan at epoch 2: lower lr.")
        fake_job(runs, "20200101-000003-cccc", "cancelled")
        fake_job(runs, "20200101-000004-dddd", "queued")  # the running job holds the only CPU slot
        at = train_page()
        states = {j["id"]: j["state"] for j in refresh()}
        assert sorted(states.values()) == ["cancelled", "done", "failed", "queued", "running"]
        labels = " ".join(p.proto.text for p in at.get("progress"))
        for job_id, state in states.items():
            assert f"{job_id} · {state}" in labels
        assert at.button(key="cancel_job")  # the newest (running) job is selected: it can be cancelled
        at.button(key="sel_20200101-000002-bbbb").click().run()
        assert any("nan at epoch 2" in e.value for e in at.error)
        at.button(key="sel_20200101-000001-aaaa").click().run()
        assert at.button(key="open_job").label == "Open in Explore"
        assert not at.exception
    finally:
        cancel_job(running)


def test_submitting_the_form_starts_a_job(runs):
    at = train_page()
    at.selectbox(key="train_preset").set_value("Quick test (digits, 1 minute)").run()
    at.button[0].click().run()  # Start job
    assert not at.exception
    assert any("started" in s.value for s in at.success)
    jobs = refresh()
    assert len(jobs) == 1 and "--dataset" in jobs[0]["args"] and "digits" in jobs[0]["args"]
    for job in jobs:
        if job["state"] in ("queued", "running"):
            cancel_job(job["id"])
