"""What `jobs start` and `jobs delete` refuse (issue 12): too much work for one job, a full
queue, a full disk, a symbolic link. Every refusal is one clear sentence, leaves no job
folder and, from the CLI, exits 2 without a traceback."""
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_jobs import LONG, TINY as TINY_JOB, runs  # noqa: F401 (runs: the fixture)
from vae_core import VaeError
from vae_core.data import load_dataset
from vae_core.jobs import (MAX_JOB_STEPS, QueueFull, cancel_job, check_job_steps, delete_job, read_status,
                           refresh, start_job, train_images, update_status)
from vae_core.train import config_from_args

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "vae_core.jobs"]
TINY = [*TINY_JOB, "--epochs", "1"]


def _job_folders(runs):
    return sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.exists() else []


def _cfg(*flags):
    return config_from_args(list(flags) + ["--out", "unused"])


# ---------------------------------------------------------------- work per job

def test_a_job_asking_for_too_many_steps_is_refused_before_anything_is_written(runs):
    """The reported form submit: MNIST, 500 epochs at batch 1 (30 million steps, 138 hours)."""
    with pytest.raises(VaeError) as e:
        start_job(["--dataset", "mnist", "--epochs", "500", "--batch-size", "1"])
    message = str(e.value)
    assert "30,000,000 optimizer steps" in message and f"{MAX_JOB_STEPS:,}" in message
    assert "fewer epochs" in message and "bigger batch size" in message and "VAE_MAX_JOB_STEPS" in message
    assert not runs.exists()
    # real work passes: the MNIST recipe at 100 epochs is 100 x ceil(60,000 / 128) steps
    assert check_job_steps(_cfg("--dataset", "mnist", "--epochs", "100", "--batch-size", "128")) == 46_900


def test_the_step_limit_follows_the_environment_and_counts_limit_and_batch(runs, monkeypatch):
    monkeypatch.setenv("VAE_MAX_JOB_STEPS", "10")
    assert check_job_steps(_cfg("--dataset", "digits", "--limit", "300", "--batch-size", "64", "--epochs", "2")) == 10
    with pytest.raises(VaeError, match=r"asks for 15 optimizer steps .* at most 10\b"):
        start_job(["--dataset", "digits", "--limit", "300", "--batch-size", "64", "--epochs", "3"])
    assert not runs.exists()
    monkeypatch.setenv("VAE_MAX_JOB_STEPS", "plenty")
    with pytest.raises(VaeError, match="VAE_MAX_JOB_STEPS must be a whole number"):
        start_job(TINY)
    assert not runs.exists()


def test_training_images_are_counted_as_training_loads_them(tmp_path, data_root):
    """train_images() counts without loading; here it is checked against a real load."""
    from PIL import Image
    folder = tmp_path / "shapes"
    for cls, count in (("a", 11), ("b", 23)):
        (folder / cls).mkdir(parents=True)
        for i in range(count):
            Image.new("L", (28, 28), i * 5).save(folder / cls / f"{i:03d}.png")
    (folder / "a" / "readme.txt").write_text("not an image")
    for name in ("digits", "mnist", f"folder:{folder}"):
        cfg = _cfg("--dataset", name, "--data-root", str(data_root))
        assert train_images(cfg) == len(load_dataset(name, "train", data_root)), name
    assert train_images(_cfg("--dataset", "mnist", "--limit", "500")) == 500


# ---------------------------------------------------------------- the queue

def test_the_queue_is_capped_and_parallel_starts_cannot_pass_the_cap(runs, monkeypatch):
    """One long job holds the CPU slot; four `jobs start` processes at once with room for two
    waiting jobs: exactly two are queued, two are refused with the reason, no folder left."""
    running = start_job(LONG)
    monkeypatch.setenv("VAE_MAX_QUEUED_JOBS", "2")
    # the long job holds the slot paused: what is measured is the queue, and the four starts get the CPU
    pid = read_status(runs / running)["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        procs = [subprocess.Popen(CLI + ["start"] + TINY, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(4)]
        results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
        ok = [out.strip() for rc, out, err in results if rc == 0]
        refused = [err for rc, out, err in results if rc == 2]
        assert len(ok) == 2 and len(refused) == 2, results
        assert all("is full: 2 jobs are waiting and the limit is 2" in err and "VAE_MAX_QUEUED_JOBS" in err
                   and "Traceback" not in err for err in refused), refused
        assert _job_folders(runs) == sorted([running, *ok])
        assert [read_status(runs / j)["state"] for j in ok] == ["queued", "queued"]
        with pytest.raises(QueueFull, match=f"The queue in {runs} is full"):
            start_job(TINY)
        assert _job_folders(runs) == sorted([running, *ok])
    finally:
        os.kill(pid, signal.SIGCONT)
        for job in refresh(runs):
            cancel_job(job["id"], runs)


def test_a_sweep_larger_than_the_queue_finishes_cells_before_queueing_more(tmp_path, monkeypatch, cache_root):
    """Three job cells with room for one waiting job: the sweep waits for its oldest cell
    when the queue is full, and every cell is trained and evaluated, in order."""
    from vae_core.sweep import Cell, read_results, run_sweep
    monkeypatch.setenv("VAE_MAX_QUEUED_JOBS", "1")
    monkeypatch.setenv("VAE_CPU_JOBS", "1")
    cells = [Cell("linear-vae", 2, 1.0), Cell("linear-ae", 2), Cell("linear-vae", 2, 0.5)]
    logs = []
    rows = run_sweep(tmp_path / "sweep", cells, {"dataset": "digits", "limit": 300, "epochs": 1, "test_limit": 100},
                     eval_limit=60, iw_samples=5, log=logs.append)
    assert [r["cell"] for r in rows] == [c.id for c in cells] == [r["cell"] for r in read_results(tmp_path / "sweep")]
    waits = [line for line in logs if line.startswith("waiting for")]
    assert [w.split()[2] for w in waits] == [c.id for c in cells]
    states = [j["state"] for j in refresh(tmp_path / "sweep" / "runs")]
    assert states == ["done", "done", "done"]


# ---------------------------------------------------------------- a full disk

def _tmpfs_prefix(tmp_path):
    """The command prefix that lets this (unprivileged or root) user mount a tmpfs in a
    private mount namespace, or None where neither works (a container without the rights)."""
    if not shutil.which("unshare"):
        return None
    probe = tmp_path / "probe"
    probe.mkdir()
    for prefix in (["unshare", "--user", "--map-root-user", "--mount"], ["unshare", "--mount"]):
        r = subprocess.run(prefix + ["sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0"', str(probe)],
                           capture_output=True, timeout=60)
        if r.returncode == 0:
            return prefix
    return None


def test_start_on_a_full_disk_says_so_and_leaves_no_job_folder(tmp_path):
    """A real full disk: the runs folder is a 256 KiB tmpfs, mounted in a private mount
    namespace (`unshare --user --map-root-user --mount`, which works here for root and for
    an unprivileged user; plain `unshare --mount` is tried too) and filled with dd until
    ENOSPC. Then the real CLI starts a job in it. Before the fix this printed a traceback
    and left an empty job folder. The mount lives only inside the namespace, so the
    listing of the runs folder is taken there, after the CLI has exited."""
    prefix = _tmpfs_prefix(tmp_path)
    if prefix is None:
        pytest.skip("cannot mount a tmpfs here (no user or mount namespaces); "
                    "test_start_over_the_file_size_limit covers the write failure")
    runs = tmp_path / "runs"
    runs.mkdir()
    script = ('mount -t tmpfs -o size=256k tmpfs "$RUNS" || exit 99\n'
              'dd if=/dev/zero of="$RUNS/filler" bs=4k 2>/dev/null\n'
              '"$PY" -m vae_core.jobs start --runs-dir "$RUNS" --dataset digits --epochs 1 --device cpu\n'
              'echo "rc=$?"\n'
              'ls -A "$RUNS"\n')
    r = subprocess.run(prefix + ["sh", "-c", script], env={**os.environ, "RUNS": str(runs), "PY": sys.executable},
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = r.stdout.split()
    assert r.returncode == 0 and "rc=2" in lines, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert f"No space left on device in {runs}: free some space there" in r.stderr, r.stderr
    assert "No job was created" in r.stderr
    assert set(lines[lines.index("rc=2") + 1:]) <= {"filler", ".scheduler.lock"}  # no job folder


def test_start_over_the_file_size_limit_says_so_and_leaves_no_job_folder(tmp_path):
    """The route that needs no mount rights: a real `jobs start` process whose file size
    limit (RLIMIT_FSIZE, `ulimit -f`) is 64 bytes, so writing status.json fails for real
    with EFBIG (Python ignores SIGXFSZ, so the write raises instead of killing the process).
    The same cleanup path as a full disk, with its own sentence."""
    runs = tmp_path / "runs"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    r = subprocess.run(CLI + ["start", "--runs-dir", str(runs)] + TINY, cwd=REPO, capture_output=True, text=True,
                       timeout=300, preexec_fn=limit)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "file size limit (ulimit -f)" in r.stderr and str(runs) in r.stderr and "No job was created" in r.stderr
    assert _job_folders(runs) == []


# ---------------------------------------------------------------- a symbolic link

def test_deleting_a_symlinked_job_is_refused_and_touches_neither_link_nor_target(runs, tmp_path):
    target = tmp_path / "elsewhere" / "20261122-000000-11nk"
    target.mkdir(parents=True)
    update_status(target, id=target.name, state="done", pid=None, device="cpu", args=[])
    (target / "metrics.jsonl").write_text("{}\n")
    runs.mkdir()
    link = runs / target.name
    link.symlink_to(target, target_is_directory=True)
    with pytest.raises(VaeError, match="is a symbolic link .* remove the link yourself"):
        delete_job(target.name, runs)
    r = subprocess.run(CLI + ["delete", target.name, "--runs-dir", str(runs)], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"{link} is a symbolic link (to {target})" in r.stderr
    assert link.is_symlink() and (target / "metrics.jsonl").is_file() and read_status(target)["state"] == "done"
