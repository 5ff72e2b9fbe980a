"""AppTest of the Train page: no jobs, jobs in every state, the form starts a job."""

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from vae_core.files import atomic_write_json
from vae_core.jobs import cancel_job, job_summary, refresh, start_job
from vae_core.train import TrainConfig

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


def fake_job(runs, job_id, state, error=None, flags=()):
    folder = runs / job_id
    folder.mkdir(parents=True)
    atomic_write_json(folder / "status.json", {
        "id": job_id, "state": state, "args": ["--dataset", "digits", *flags, "--out", str(folder)], "device": "cpu",
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
        fake_job(runs, "20200101-000001-aaaa", "done", flags=["--model", "conv-ae", "--latent-dim", "16", "--beta", "0"])
        fake_job(runs, "20200101-000002-bbbb", "failed", error="The training loss became nan at epoch 2: lower lr.")
        fake_job(runs, "20200101-000003-cccc", "cancelled")
        fake_job(runs, "20200101-000004-dddd", "queued")  # the running job holds the only CPU slot
        at = train_page()
        states = {j["id"]: j["state"] for j in refresh()}
        assert sorted(states.values()) == ["cancelled", "done", "failed", "queued", "running"]
        rows = [p.proto.text for p in at.get("progress")]
        for job in refresh():  # each row says what the job trains, where it stands, and its id
            assert any(f"{job_summary(job)} · {job['state']} · cpu · epoch " in r and r.endswith(job["id"])
                       for r in rows), (job["id"], rows)
        epochs = TrainConfig().epochs  # --epochs left out: the train CLI's default
        assert any(r.startswith(f":material/check_circle: digits · conv-ae · z=16 · β=0 · {epochs} epochs · done")
                   for r in rows), rows
        assert any("digits · conv-vae · z=2 · β=1 · 500 epochs · running · cpu" in r for r in rows), rows
        assert at.button(key="cancel_job")  # the newest (running) job is selected: it can be cancelled
        at.button(key="sel_20200101-000002-bbbb").click().run()
        assert any("nan at epoch 2" in e.value for e in at.error)
        at.button(key="sel_20200101-000001-aaaa").click().run()
        assert at.button(key="open_job").label == "Open in Explore"
        assert at.subheader[0].value == f"digits · conv-ae · z=16 · β=0 · {epochs} epochs — done"
        assert "20200101-000001-aaaa" in at.caption[0].value
        assert not at.exception
    finally:  # the queued fake job would start (and train for minutes) once the slot frees: cancel it first
        for state in ("queued", "running"):
            for job in refresh():
                if job["state"] == state:
                    cancel_job(job["id"])


def test_submitting_the_form_starts_a_job(runs):
    at = train_page()
    at.selectbox(key="train_preset").set_value("Quick test (digits, about 10 s)").run()
    at.button[0].click().run()  # Start job
    assert not at.exception
    assert any("started" in s.value for s in at.success)
    jobs = refresh()
    assert len(jobs) == 1 and "--dataset" in jobs[0]["args"] and "digits" in jobs[0]["args"]
    for job in jobs:
        if job["state"] in ("queued", "running"):
            cancel_job(job["id"])


@pytest.mark.parametrize("public", [False, True])
def test_public_mode_refuses_the_page_on_its_own(runs, monkeypatch, public):
    # app.py leaves the page out in public mode; this is the page's own refusal, reached directly
    monkeypatch.setenv("VAE_PUBLIC", "1" if public else "0")
    at = AppTest.from_file(str(REPO / "pages" / "train.py"), default_timeout=TIMEOUT)
    at.session_state["model_entry"] = "set by app.py's picker"  # the page only checks that the app ran
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if public:
        assert [e.value for e in at.error] == [
            "Training is off in this public demo (VAE_PUBLIC=1): run the app without it to train models."]
        assert not at.button and not at.get("expander") and not at.title
        assert not runs.exists()  # nothing was scheduled either
    else:  # the same setup renders the page: the refusal above is the page's doing
        assert not at.error and [b.label for b in at.button] == ["Start job"]


def test_a_family_is_trained_from_the_form_with_its_own_hyperparameters(runs):
    """Picking beta-tcvae swaps β, its schedule and free bits for the family's own weights
    (with its paper named); the job it starts runs that family with the edited weight and
    finishes with a checkpoint that records it. A sprites preset starts the shipped recipe."""
    import time

    from vae_core.checkpoint import load_checkpoint
    at = train_page()
    at.selectbox(key="train_preset").set_value("Quick test (digits, about 10 s)").run()
    labels = lambda: [w.label for w in at.number_input]  # noqa: E731
    assert "β (KL weight)" in labels() and "tc-beta" not in labels()
    at.selectbox(key="train_model_Quick test (digits, about 10 s)").set_value("beta-tcvae").run()
    assert not at.exception
    assert "tc-beta" in labels() and "β (KL weight)" not in labels() and "Free bits ε (nats per dim)" not in labels()
    assert any("Chen, Li, Grosse & Duvenaud 2018" in c.value for c in at.caption)
    next(w for w in at.number_input if w.label == "tc-beta").set_value(3.0)
    at.button[0].click().run()
    assert not at.exception and any("started" in s.value for s in at.success), [e.value for e in at.error]
    job = refresh()[0]
    args = job["args"]
    assert args[args.index("--model") + 1] == "beta-tcvae" and args[args.index("--tc-beta") + 1] == "3.0"
    assert "--beta" not in args and "--free-bits" not in args
    assert "digits · beta-tcvae · z=2 · tc_alpha=1 · tc_beta=3 · tc_gamma=1" in job_summary(job)
    deadline = time.time() + 120
    while refresh()[0]["state"] in ("queued", "running") and time.time() < deadline:
        time.sleep(1)
    job = refresh()[0]
    assert job["state"] == "done", job
    ck = load_checkpoint(runs / job["id"])
    assert ck.model_config.family == "beta-tcvae" and ck.config["training"]["family_params"]["tc_beta"] == 3.0


def test_the_training_gallery_shows_any_epoch_and_makes_a_gif(runs):
    """A finished run's grids of every epoch: a slider picks the epoch (the newest first), and
    the GIF has one labelled frame per epoch."""
    from vae_core.gif import gif_info
    from vae_core.jobs import epoch_grids, gallery_gif
    from vae_core.train import train
    folder = fake_job(runs, "20200101-000005-eeee", "done", flags=["--epochs", "3"])
    train(TrainConfig(dataset="digits", epochs=3, limit=128, test_limit=32, batch_size=64, hidden=32,
                      conv_channels="8,16", device="cpu", precision="fp32", out=str(folder)), progress=False)
    grids = epoch_grids(folder)
    assert list(grids) == [1, 2, 3] and all(set(g) == {"recon", "prior"} for g in grids.values())
    (folder / "grids" / "notes_e001.txt").write_text("x")  # strangers in the folder are ignored
    assert list(epoch_grids(folder)) == [1, 2, 3]
    for kind in ("prior", "recon"):
        info = gif_info(gallery_gif(folder, kind))
        assert info["frames"] == 3 and info["size"][0] == info["size"][1] and info["loop"] == 0
    at = train_page()
    at.button(key="sel_20200101-000005-eeee").click().run()
    slider = at.select_slider[0]
    assert slider.label == "Epoch" and list(slider.options) == ["1", "2", "3"] and slider.value == 3
    captions = [i.caption for el in at.get("image") for i in el.proto.imgs]
    assert any(c.startswith("epoch 3: test images") for c in captions), captions
    slider.set_value(1).run()
    captions = [i.caption for el in at.get("image") for i in el.proto.imgs]
    assert any(c.startswith("epoch 1: test images") for c in captions) and not any("epoch 3" in c for c in captions)
    buttons = at.get("download_button")
    assert [b.label for b in buttons] == ["GIF: prior samples over 3 epochs", "GIF: reconstructions over the epochs"]
    assert not any(b.proto.disabled for b in buttons)
    assert not at.exception
    # one broken grid (a user's disk, a copy cut short): that button is disabled with the reason, the
    # other still works, and nothing ever serves an error message as a .gif
    from vae_core import VaeError
    from vae_core.jobs import gallery_problem
    (folder / "grids" / "prior_e002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    assert "prior_e002.png cannot be read" in gallery_problem(folder, "prior") and gallery_problem(folder, "recon") is None
    with pytest.raises(VaeError, match="prior_e002.png cannot be read"):
        gallery_gif(folder, "prior")
    at.run()
    prior, recon = at.get("download_button")
    assert prior.proto.disabled and "prior_e002.png cannot be read" in prior.proto.help
    assert not recon.proto.disabled and not at.exception


def test_processes_per_job_starts_a_torchrun_job_from_the_form(runs):
    """The form's "Processes per job" reaches the job: it is recorded, shown on its row, and the
    job runs its ranks under torchrun (tests/test_distributed.py trains such jobs to the end)."""
    at = train_page()
    at.selectbox(key="train_preset").set_value("Quick test (digits, about 10 s)").run()
    knob = next(w for w in at.number_input if w.label == "Processes per job (GPUs on CUDA)")
    assert knob.value == 1 and "global batch is processes × batch size" in knob.help
    knob.set_value(2)
    at.button[0].click().run()
    assert not at.exception and any("started" in s.value for s in at.success), [e.value for e in at.error]
    job = refresh()[0]
    try:
        assert job["processes"] == 2 and job_summary(job).endswith("· 2 processes")
        at.run()
        assert any("2 processes · running" in p.proto.text or "2 processes · queued" in p.proto.text
                   for p in at.get("progress")), [p.proto.text for p in at.get("progress")]
    finally:
        cancel_job(job["id"])
