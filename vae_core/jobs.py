"""Background training jobs: one OS process per job, every bit of state on disk.

    python -m vae_core.jobs start --dataset digits --epochs 2     # prints the job id
    python -m vae_core.jobs list [--json]
    python -m vae_core.jobs status ID [--json]
    python -m vae_core.jobs cancel ID
    python -m vae_core.jobs wait ID [--timeout S]                 # exit 0 when done
    python -m vae_core.jobs delete ID
  (all take --runs-dir, before or after the subcommand; default $VAE_RUNS_DIR, else ./runs)

A job is <runs>/<id>/, the run folder of `python -m vae_core.train` plus
status.json (state, pid, device, times, progress, error) and log.txt. The job
list is rebuilt from those folders, so a restarted app or manager sees the same
jobs, and a job marked running whose process has vanished is reported failed
with the tail of its log instead of staying "running" forever.

Scheduling has no daemon: a job that ends starts the next queued one itself (so
the queue drains with no page open), and every manager call (start, list,
status, cancel, wait) also schedules, which covers a job killed with -9. At most
one job per GPU and VAE_CPU_JOBS (default 1) CPU jobs run at once.

A process that launches a job is its parent and must collect its exit status,
or the finished job lingers as a zombie until that process ends (for the app,
until it stops). So each manager keeps the Popen of the jobs it launched and
reaps them on every refresh, cancel and wait; a job launched by another
process is not our child, and its own parent (or init) reaps it.

Limits (a refusal is a VaeError and leaves no job folder):
  VAE_MAX_QUEUED_JOBS  jobs waiting in one runs folder (default 32), counted under
                       the scheduler's lock so parallel starts cannot pass it
  VAE_MAX_JOB_STEPS    optimizer steps one job may ask for, epochs x ceil(training
                       images / batch size) (default 500,000: 100 MNIST epochs at
                       batch 128 are 46,900; 500 epochs at batch 1 are 30 million)

Temporary files: every file of a run is written to .<name>.XXXX.tmp and renamed
(files.atomic_write_bytes); a process killed mid-write leaves its temp file.
remove_stale_temp_files() takes them away when a run is next listed (refresh,
catalog.list_models) and when the job runner starts in the folder; delete takes
the whole folder.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from vae_core import VaeError, parse_json
from vae_core.catalog import runs_dir as default_runs_dir
from vae_core.files import atomic_write_json

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL = ("done", "failed", "cancelled")
STATUS = "status.json"
LOG = "log.txt"
CANCEL_GRACE_S = 15.0      # SIGTERM first (the epoch in flight is dropped, the last one kept), then SIGKILL
PROGRESS_EVERY_S = 1.0     # status.json is rewritten at most this often while training
MAX_QUEUED_JOBS = 32       # jobs waiting per runs folder (env VAE_MAX_QUEUED_JOBS)
MAX_JOB_STEPS = 500_000    # optimizer steps one job may ask for (env VAE_MAX_JOB_STEPS)
# A writer keeps its temp file for one write + fsync + rename: about 30 ms for the
# 6.6 MB model file on this machine's disk. A temp file untouched for 120 s (4,000
# times that) has no writer left; its writer was killed.
STALE_TMP_S = 120.0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def cpu_job_limit() -> int:
    try:
        return max(1, int(os.environ.get("VAE_CPU_JOBS", "1")))
    except ValueError:
        return 1


class QueueFull(VaeError):
    """start_job's refusal when the runs folder already holds VAE_MAX_QUEUED_JOBS waiting jobs."""


def _env_limit(name: str, default: int) -> int:
    """A whole number >= 1 from the environment, else default; a malformed value is refused."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise VaeError(f"{name} must be a whole number of at least 1 (got {text!r}).")
    return value


# ---------------------------------------------------------------- status files

def job_folder(job_id: str, runs=None) -> Path:
    if not job_id or "/" in job_id or job_id.startswith("."):
        raise VaeError(f"{job_id!r} is not a job id.")
    folder = default_runs_dir(runs) / job_id
    if not (folder / STATUS).is_file():
        raise VaeError(f"No job {job_id!r} in {default_runs_dir(runs)}.")
    return folder


def read_status(folder: Path) -> dict | None:
    try:
        status = parse_json((Path(folder) / STATUS).read_text())
        return status if isinstance(status, dict) and status.get("state") in STATES else None
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive flock on path (created if needed): one writer at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def update_status(folder: Path, only_if_state: tuple | None = None, **changes) -> dict | None:
    """Read-modify-write status.json atomically under the job's lock.

    only_if_state: apply the change only while the job is in one of these states
    (so a late progress write never turns a cancelled job back into a running one).
    """
    folder = Path(folder)
    with _locked(folder / ".lock"):
        status = read_status(folder) or {}
        if only_if_state is not None and status.get("state") not in only_if_state:
            return None
        status.update(changes)
        atomic_write_json(folder / STATUS, status)
        return status


def log_tail(folder: Path, lines: int = 12) -> str:
    try:
        text = (Path(folder) / LOG).read_text(errors="replace")
    except OSError:
        return ""
    # tqdm redraws with carriage returns: keep the last state of each line
    clean = [line.split("\r")[-1] for line in text.splitlines()]
    clean = [line for line in clean if line.strip()]
    return "\n".join(clean[-lines:])


def process_alive(pid: int | None, marker: str) -> bool:
    """Whether pid is still a live process whose command line holds marker (a job's folder
    name, a map build's status file): not gone, not a zombie, not a reused pid."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            if "State:\tZ" in (proc / "status").read_text():
                return False
            return marker in (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
    return True


def remove_stale_temp_files(folder, runner: bool = False) -> list[Path]:
    """Remove the temp files (.<name>.XXXX.tmp) that killed writers left in a run folder
    and its grids/ folder; returns what was removed.

    A live writer's temp file must survive (its rename would fail and the training
    crash), so: in the folder of a job that is running with a live runner, nothing
    goes; elsewhere only temp files untouched for STALE_TMP_S go (a plain
    `python -m vae_core.train` run has no status.json: the age alone protects it).
    runner=True is the job runner starting in its own folder, before it trains: no
    training writes there yet, and the status writes of other managers hold the
    folder's lock, taken here, so every temp file goes whatever its age. A symbolic
    link is left alone unless runner is set: the folder it points to is not ours.
    """
    folder = Path(folder)
    if not folder.is_dir() or (folder.is_symlink() and not runner):
        return []
    if not runner:
        status = read_status(folder)
        if status and status["state"] == "running" and process_alive(status.get("pid"), folder.name):
            return []
    removed = []
    with _locked(folder / ".lock") if runner else contextlib.nullcontext():
        cutoff = time.time() - STALE_TMP_S
        for tmp in [*folder.glob(".*.tmp"), *(folder / "grids").glob(".*.tmp")]:
            try:
                if tmp.is_file() and not tmp.is_symlink() and (runner or tmp.stat().st_mtime < cutoff):
                    tmp.unlink()
                    removed.append(tmp)
            except FileNotFoundError:  # its writer renamed it, or another manager removed it
                pass
    return removed


# ---------------------------------------------------------------- what the Train page shows

# The reference recipes; a preset fills the form, every field stays editable.
_SPRITES_RECIPE = dict(dataset="sprites", model="conv-vae", latent_dim=10, beta=4.0, beta_schedule="linear",
                       warmup_epochs=2.0, free_bits=0.0, extra_decoder_layer=False, batchnorm=False, epochs=12,
                       batch_size=128, lr=1e-3, lr_schedule="cosine", conv_channels="32,32", limit=120_000)
PRESETS = {
    "MNIST z=2 recipe": dict(dataset="mnist", model="conv-vae", latent_dim=2, beta=0.1, beta_schedule="linear",
                             warmup_epochs=2.0, free_bits=0.0, extra_decoder_layer=True, batchnorm=False,
                             epochs=20, batch_size=128, lr=2e-3, lr_schedule="cosine"),
    "β-VAE β=4": dict(dataset="mnist", model="conv-vae", latent_dim=10, beta=4.0, beta_schedule="linear",
                      warmup_epochs=2.0, free_bits=0.0, extra_decoder_layer=True, batchnorm=False,
                      epochs=20, batch_size=128, lr=1e-3, lr_schedule="cosine"),
    "AE baseline": dict(dataset="mnist", model="conv-ae", latent_dim=2, beta=0.0, beta_schedule="constant",
                        warmup_epochs=0.0, free_bits=0.0, extra_decoder_layer=True, batchnorm=False,
                        epochs=20, batch_size=128, lr=2e-3, lr_schedule="cosine"),
    # the shipped sprites-z10's recipe (about 17 min on 2 CPU cores): Higgins et al.'s beta = 4, z = 10,
    # with the narrower 32,32,64,128 stack that keeps the model at 5 MB
    "sprites β-VAE z=10": _SPRITES_RECIPE,
    # the shipped color-sprites-z10's recipe: the same on colour sprites, where likelihood auto is the
    # Gaussian decoder (the sigma-VAE) and decoder mean auto its channel-gain head
    "color-sprites σ-VAE z=10": dict(_SPRITES_RECIPE, dataset="color-sprites"),
    # the shipped sprites-tcvae-z10's recipe: the same data and network, beta-TCVAE at the paper's weights
    # (alpha = gamma = 1, tc-beta 6); about 17 min on 2 idle CPU cores
    "sprites β-TCVAE z=10": dict(_SPRITES_RECIPE, model="beta-tcvae", tc_beta=6.0, beta=1.0,
                                 beta_schedule="constant", warmup_epochs=0.0),
    # the shipped mnist-fsq's recipe: FSQ's 1,000-code grid (8,5,5,5) on MNIST; about 4 min on 2 idle cores
    "MNIST FSQ 8,5,5,5": dict(dataset="mnist", model="fsq", latent_dim=4, fsq_levels="8,5,5,5", beta=1.0,
                              beta_schedule="constant", warmup_epochs=0.0, free_bits=0.0, extra_decoder_layer=True,
                              batchnorm=False, epochs=12, batch_size=128, lr=2e-3, lr_schedule="cosine"),
    # 10-12 s from start to done on 2 idle CPU cores (python -m vae_core.jobs start + wait);
    # 50-75 s on the same cores shared with three busy neighbours
    "Quick test (digits, about 10 s)": dict(dataset="digits", model="conv-vae", latent_dim=2, beta=0.5,
                                            beta_schedule="constant", warmup_epochs=0.0, free_bits=0.0,
                                            extra_decoder_layer=False, batchnorm=False, epochs=3, batch_size=64,
                                            lr=2e-3, lr_schedule="constant"),
}


def settings_to_flags(settings: dict) -> list[str]:
    """Form values -> vae_core.train flags (booleans become bare switches)."""
    flags = []
    for name, value in settings.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags += [flag] if value else []
        elif value is not None:
            flags += [flag, str(value)]
    return flags


def job_settings(status: dict) -> dict:
    """What a job trains, from its training flags: dataset, model, latent_dim, beta, epochs.

    The flags go through vae_core.train's own parser, so a flag left out reads as
    the train CLI's default and there is no second copy of those defaults here.
    {} when the flags cannot be read (a status.json written by hand or elsewhere).
    """
    from vae_core.train import build_parser
    if not isinstance(status.get("args"), list):
        return {}
    parser = build_parser()
    parser.error = _refuse  # raise instead of printing usage and exiting: this runs inside the app
    try:
        args, _ = parser.parse_known_args([str(a) for a in status["args"]])
    except (ValueError, TypeError):
        return {}
    from vae_core.families import FAMILIES, family_flags, resolve_params
    out = dict(dataset=args.dataset, model=args.model, latent_dim=args.latent_dim, beta=args.beta,
               epochs=args.epochs, free_bits=args.free_bits, target_kl=args.target_kl)
    if args.model in FAMILIES:  # its own weights (defaults filled in), not the plain ELBO's beta
        given = {k: v for k, v in vars(args).items() if k in family_flags() and v is not None}
        try:
            out["family_params"] = resolve_params(args.model, given)
        except VaeError:  # flags the trainer would refuse: not a job start_job made
            return {}
    return out


def _refuse(message: str):
    raise ValueError(message)


def job_summary(status: dict) -> str:
    """One line for a job row: "digits · conv-vae · z=2 · β=0.5 · 3 epochs"."""
    s = job_settings(status)
    if not s:
        return "settings unknown"
    if "family_params" in s:  # e.g. tc_beta=6, tc_estimator=mss: the numbers only, the flags' names shortened
        weights = " · ".join(f"{k}={v:g}" if isinstance(v, (int, float)) else f"{k}={v}"
                             for k, v in s["family_params"].items() if isinstance(v, (int, float)) or k == "fsq_levels")
    else:
        weights = f"β={s['beta']:g}"
        if s.get("free_bits") == "auto":
            weights += f" · free bits auto → KL {s['target_kl']:g}"
    n = processes_of(status)
    return (f"{s['dataset']} · {s['model']} · z={s['latent_dim']} · {weights} · {s['epochs']} epoch"
            + "s" * (s["epochs"] != 1) + (f" · {n} processes" if n > 1 else ""))


def read_metrics(folder) -> list[dict]:
    """metrics.jsonl as a list (a line being written is skipped)."""
    out = []
    try:
        lines = (Path(folder) / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        with contextlib.suppress(ValueError):
            out.append(parse_json(line))
    return out


def eta_seconds(status: dict) -> float | None:
    """Remaining time of a running job, from its elapsed time and its fractional epoch."""
    p = status.get("progress") or {}
    if status.get("state") != "running" or not status.get("started") or not p.get("epoch"):
        return None
    elapsed = (datetime.now(timezone.utc) - datetime.fromisoformat(status["started"])).total_seconds()
    return max(0.0, elapsed * (p["epochs"] - p["epoch"]) / p["epoch"])


def epoch_grids(folder) -> dict[int, dict]:
    """Every epoch's grids of a run, in epoch order: {epoch: {"recon": path, "prior": path}}.
    train.py writes recon_eNNN.png and prior_eNNN.png after each epoch (the same prior draws
    every epoch, so the prior grids show one set of samples learning)."""
    import re
    grids = Path(folder) / "grids"
    out: dict[int, dict] = {}
    for f in (sorted(grids.glob("*_e*.png")) if grids.is_dir() else []):
        if m := re.fullmatch(r"(recon|prior)_e(\d+)\.png", f.name):
            out.setdefault(int(m.group(2)), {})[m.group(1)] = f
    return dict(sorted(out.items()))


def _gallery_paths(folder, kind: str) -> list[Path]:
    """The run's `kind` grids ("prior" or "recon"), in epoch order."""
    return [g[kind] for g in epoch_grids(folder).values() if kind in g]


def gallery_problem(folder, kind: str = "prior") -> str | None:
    """Why the run's `kind` grids make no GIF (none yet, one unreadable, sizes differ), or None.
    Reads only the PNG headers, so the Train page can ask on every rerun and disable the button
    with the reason instead of serving an error as a .gif."""
    from PIL import Image, UnidentifiedImageError
    paths = _gallery_paths(folder, kind)
    if not paths:
        return f"This run has no {kind} grids yet: they are written after each epoch."
    sizes = set()
    for p in paths:
        try:
            with Image.open(p) as im:
                sizes.add(im.size)
        except (OSError, UnidentifiedImageError) as e:
            return f"The grid {Path(p).name} cannot be read ({e})."
    if len(sizes) != 1:
        return "This run's grids differ in size, so they make no single GIF."
    return None


def gallery_gif(folder, kind: str = "prior", fps: float = 2.0) -> bytes:
    """The run's `kind` grids, epoch after epoch, as one looping GIF labelled "epoch/last".
    VaeError with gallery_problem's reason when there is none to make."""
    from PIL import Image, UnidentifiedImageError

    from vae_core.gif import gif_bytes
    if why := gallery_problem(folder, kind):
        raise VaeError(why)
    frames = []
    try:
        for p in _gallery_paths(folder, kind):
            with Image.open(p) as im:
                frames.append(np.asarray(im.convert("L" if im.mode == "L" else "RGB")))
    except (OSError, UnidentifiedImageError) as e:  # a header that reads but pixels that do not
        raise VaeError(f"A grid of this run cannot be read ({e}).") from e
    if len({f.shape for f in frames}) != 1:
        raise VaeError("This run's grids differ in size, so they make no single GIF.")
    h, w = frames[0].shape[:2]
    if h != w:  # gif_bytes makes square frames: pad the grid onto a square of its grey separator
        side = max(h, w)
        pad = [(0, side - h), (0, side - w)] + ([(0, 0)] if frames[0].ndim == 3 else [])
        frames = [np.pad(f, pad, constant_values=128) for f in frames]
    return gif_bytes(np.stack(frames), size=min(max(h, w), 1024), fps=fps, labels=True)


# ---------------------------------------------------------------- manager side

# The job processes this process launched, by pid. Only a parent can reap its
# child; without this, a job that ends stays a zombie until we exit.
_children: dict[int, subprocess.Popen] = {}


def _reap() -> None:
    """Collect the exit status of every job we launched that has ended (poll: never blocks)."""
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            _children.pop(pid, None)


def _reap_job(pid: int | None, timeout: float) -> None:
    """Wait up to timeout for our job pid to exit, and collect it; another process's job is left alone."""
    proc = _children.get(pid)
    if proc is None:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
        _children.pop(pid, None)


def train_images(cfg) -> int:
    """How many images one epoch of cfg trains on, without loading them: the train split's
    size (MNIST and Fashion-MNIST 60,000, digits 1,500, CIFAR-10 50,000, sprites 727,280,
    a folder every image but each class's every 10th, as data._load_folder splits it; a
    folder without class subfolders is one class), cut to --limit."""
    # here, not at the top: data imports torch, which list/status/wait/cancel never need
    from vae_core.data import DIGITS_TEST_SIZE, IDX_DATASETS, SPRITE_NAMES, _folder_layout
    from vae_core.sprites import NUM_IMAGES as SPRITES_IMAGES
    from vae_core.sprites import TEST_SIZE as SPRITES_TEST_SIZE
    if cfg.dataset in IDX_DATASETS:
        n = 60_000
    elif cfg.dataset == "digits":
        n = 1797 - DIGITS_TEST_SIZE  # scikit-learn's digits hold 1,797 images
    elif cfg.dataset == "cifar10":
        n = 50_000                   # five batches of 10,000
    elif cfg.dataset in SPRITE_NAMES:
        n = SPRITES_IMAGES - SPRITES_TEST_SIZE
    else:
        root = Path(cfg.dataset[len("folder:"):])
        n = 0
        for files in _folder_layout(root)[1]:
            n += len(files) - len(files) // 10
    return min(n, cfg.limit) if cfg.limit else n


def check_job_steps(cfg) -> int:
    """The optimizer steps a job asks for; VaeError when they pass VAE_MAX_JOB_STEPS."""
    n = train_images(cfg)
    per_epoch = math.ceil(n / cfg.batch_size)
    steps = cfg.epochs * per_epoch
    cap = _env_limit("VAE_MAX_JOB_STEPS", MAX_JOB_STEPS)
    if steps > cap:
        raise VaeError(f"This job asks for {steps:,} optimizer steps ({cfg.epochs:,} epochs x {per_epoch:,} "
                       f"batches of {cfg.batch_size} from {n:,} training images); one job may ask for at most "
                       f"{cap:,}. Use fewer epochs or a bigger batch size (or --limit), or raise the limit "
                       f"with the environment variable VAE_MAX_JOB_STEPS.")
    return steps


def _disk_error(e: OSError, root: Path) -> VaeError:
    """A clear sentence for a failed write in the runs folder (nothing was left behind)."""
    if e.errno == errno.ENOSPC:
        why = f"No space left on device in {root}: free some space there"
    elif e.errno == errno.EDQUOT:
        why = f"Disk quota exceeded in {root}: free some space there"
    elif e.errno == errno.EFBIG:
        why = f"A file in {root} would pass this process's file size limit (ulimit -f): raise it"
    else:
        why = f"Could not write the job's files in {root} ({e.strerror or e}): fix that"
    return VaeError(f"{why}, or point --runs-dir / VAE_RUNS_DIR at another folder, and start the job again. "
                    f"No job was created.")


def start_job(train_args: list[str], runs=None, processes: int = 1) -> str:
    """Validate the training flags, create a queued job and schedule. Returns the job id.

    processes > 1 trains the job with that many data-parallel processes under torchrun (on CUDA
    one GPU each); the job takes that many of its device's slots (see schedule).

    Invalid flags, work over VAE_MAX_JOB_STEPS and a queue holding VAE_MAX_QUEUED_JOBS
    raise VaeError before anything is written; a failed write (a full disk) removes the
    job folder again and raises VaeError: no job folder is left.
    """
    from vae_core.device import resolve_device
    from vae_core.train import config_from_args
    if any(a == "--out" or a.startswith("--out=") for a in train_args):
        raise VaeError("Do not pass --out to a job: its folder is <runs-dir>/<job id>.")
    try:
        cfg = config_from_args(list(train_args) + ["--out", "unused"])
    except SystemExit as e:  # argparse refused a flag; it has printed why
        raise VaeError(f"Unknown or malformed training flag in {' '.join(train_args)!r}.") from e
    cfg.validate()
    check_job_steps(cfg)
    processes = check_processes(processes, cfg)
    max_queued = _env_limit("VAE_MAX_QUEUED_JOBS", MAX_QUEUED_JOBS)
    device = resolve_device(cfg.device).type
    root = default_runs_dir(runs)
    job_id = datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    folder = root / job_id
    created = False
    try:
        # the scheduler's lock: two starts never both see room for one more job
        with _locked(root / ".scheduler.lock"):
            queued = sum(1 for p in root.iterdir() if p.is_dir() and (read_status(p) or {}).get("state") == "queued")
            if queued >= max_queued:
                raise QueueFull(f"The queue in {root} is full: {queued} jobs are waiting and the limit is "
                               f"{max_queued}. Wait for some to start, cancel some, or raise the limit with the "
                               f"environment variable VAE_MAX_QUEUED_JOBS.")
            folder.mkdir()
            created = True
            update_status(folder, id=job_id, state="queued", args=list(train_args) + ["--out", str(folder)],
                          device=device, processes=processes, created=_now(), started=None, ended=None, pid=None,
                          progress={"epoch": 0, "epochs": cfg.epochs, "step": 0, "steps": 0}, error=None)
    except OSError as e:
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise _disk_error(e, root) from e
    schedule(root)
    return job_id


def refresh(runs=None) -> list[dict]:
    """All jobs, oldest first; running jobs whose process is gone become failed (with the log tail)."""
    root = default_runs_dir(runs)
    _reap()
    jobs = []
    if not root.is_dir():
        return jobs
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        status = read_status(folder)
        if status is None:
            continue
        if status["state"] == "running" and not process_alive(status.get("pid"), folder.name):
            tail = log_tail(folder)
            status = update_status(folder, only_if_state=("running",), state="failed", ended=_now(),
                                   error="The training process ended without reporting (killed, or the "
                                         "machine restarted). Last lines of its log:\n" + tail) or read_status(folder)
        remove_stale_temp_files(folder)
        status["folder"] = str(folder)
        jobs.append(status)
    return jobs


def processes_of(job: dict) -> int:
    """The slots a job takes: its torchrun processes (1 for an ordinary job)."""
    p = job.get("processes", 1)
    return p if isinstance(p, int) and not isinstance(p, bool) and p >= 1 else 1


def check_processes(processes, cfg) -> int:
    """processes per job: a whole number from 1; on CUDA at most the GPUs there are; mps has no torchrun."""
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise VaeError(f"processes per job must be a whole number from 1, not {processes!r}.")
    if processes > 1:
        from vae_core.device import resolve_device
        kind = resolve_device(cfg.device).type
        if kind == "mps":
            raise VaeError("Apple MPS has no multi-process training: use 1 process per job there.")
        if kind == "cuda":
            import torch
            if processes > torch.cuda.device_count():
                raise VaeError(f"{processes} GPUs per job asked for, but this machine has "
                               f"{torch.cuda.device_count()}.")
        elif processes > (os.cpu_count() or 1):
            raise VaeError(f"{processes} processes per job asked for, but this machine has {os.cpu_count()} CPU "
                           f"cores: more processes than cores only slows training down.")
    return processes


def schedule(runs=None) -> None:
    """Start queued jobs, oldest first, while their device has free slots.

    A job takes as many slots as it has processes (one GPU each on CUDA; on the CPU the
    VAE_CPU_JOBS slots). A job wanting more slots than the device has runs alone, once the
    device is idle, rather than never."""
    root = default_runs_dir(runs)
    with _locked(root / ".scheduler.lock"):
        jobs = refresh(root)
        running = [j for j in jobs if j["state"] == "running"]
        for job in (j for j in jobs if j["state"] == "queued"):
            device = job.get("device", "cpu")
            busy = sum(processes_of(j) for j in running if j.get("device") == device)
            need = processes_of(job)
            if busy + need <= _slots(device) or (busy == 0 and device != "cuda"):
                _launch(Path(job["folder"]), running)
                running.append(read_status(Path(job["folder"])))
            elif busy == 0 and device == "cuda":  # more GPUs than there are: it can never start
                update_status(Path(job["folder"]), only_if_state=("queued",), state="failed", ended=_now(),
                              error=f"This job wants {need} GPUs and this machine has {_slots(device)}.")


def _slots(device: str) -> int:
    if device == "cuda":
        import torch
        return max(1, torch.cuda.device_count())
    return 1 if device == "mps" else cpu_job_limit()


def _launch(folder: Path, running: list[dict]) -> None:
    status = read_status(folder)
    env = dict(os.environ)
    gpu = None
    if status.get("device") == "cuda":
        # GPUs no running job holds, and only those: one per process
        taken = set()
        for j in running:
            if j.get("device") == "cuda":
                taken |= set(j["gpu"] if isinstance(j.get("gpu"), list) else [j.get("gpu")])
        free = [i for i in range(_slots("cuda")) if i not in taken]
        gpus = free[:processes_of(status)]
        gpu = gpus[0] if len(gpus) == 1 else gpus
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
    log = open(folder / LOG, "ab")
    # A new session: the job is its own process group (cancel signals the whole group)
    # and outlives the app or CLI that started it.
    proc = subprocess.Popen([sys.executable, "-m", "vae_core.jobs", "_run", str(folder)], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    log.close()
    _children[proc.pid] = proc
    update_status(folder, only_if_state=("queued",), state="running", pid=proc.pid, started=_now(), gpu=gpu)


def _own_group(pid, folder: Path) -> bool:
    """Whether pid is this job's runner (its command line names the job's folder, see
    process_alive) and the leader of its own process group (jobs start a new session),
    so that killpg(pid) reaches the job and nothing else."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1 or not process_alive(pid, folder.name):
        return False
    try:
        return os.getpgid(pid) == pid
    except (ProcessLookupError, PermissionError):
        return False


def cancel_job(job_id: str, runs=None, grace_s: float = CANCEL_GRACE_S) -> dict:
    folder = job_folder(job_id, runs)
    status = update_status(folder, only_if_state=("queued",), state="cancelled", ended=_now())
    if status:
        return status
    status = read_status(folder)
    if status["state"] != "running":
        return status
    pid = status.get("pid")
    # status.json's pid may be stale (the job died, the pid was reused): signal its group
    # only while that pid is still this job's runner and leads its own process group
    if _own_group(pid, folder):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and process_alive(pid, folder.name):
            time.sleep(0.1)
        if _own_group(pid, folder):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    _reap_job(pid, timeout=5.0)  # it has exited or been killed: collect it now, not at the next refresh
    update_status(folder, only_if_state=("running",), state="cancelled", ended=_now())
    schedule(runs)
    return read_status(folder)


def wait_job(job_id: str, runs=None, timeout: float | None = None) -> dict:
    folder = job_folder(job_id, runs)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        schedule(runs)
        status = read_status(folder)
        if status["state"] in FINAL:
            # the job writes its final state, then schedules and exits: collect it if it is ours
            _reap_job(status.get("pid"), timeout=5.0)
            return status
        if deadline is not None and time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def delete_job(job_id: str, runs=None) -> str | None:
    """Delete a job's folder and its latent cache; returns its weights' hash (None when it
    had no checkpoint) so the app can drop what it serves for it (decoder, points)."""
    from vae_core.catalog import SHIPPED_DIR
    from vae_core.checkpoint import checkpoint_hash, list_checkpoints
    from vae_core.latents import cache_folder
    folder = job_folder(job_id, runs)
    if folder.is_symlink():  # rmtree refuses links; never reach through one to delete its target
        raise VaeError(f"{folder} is a symbolic link (to {os.readlink(folder)}), not a job folder: remove the link "
                       f"yourself; the folder it points to is left alone.")
    if read_status(folder)["state"] == "running":
        raise VaeError(f"Job {job_id} is running: cancel it before deleting it.")
    try:
        ckpt_hash = checkpoint_hash(folder) if (folder / "model.safetensors").is_file() else None
    except VaeError:
        ckpt_hash = None
    shutil.rmtree(folder)
    # the cache goes with the run, unless a shipped model has the very same weights
    if ckpt_hash and ckpt_hash not in {checkpoint_hash(p) for p in list_checkpoints(SHIPPED_DIR)}:
        shutil.rmtree(cache_folder(ckpt_hash), ignore_errors=True)
    return ckpt_hash


# ---------------------------------------------------------------- the job process

def _progress_writer(folder: Path, status: dict):
    """on_step for train(): the job's progress in status.json, at most every PROGRESS_EVERY_S."""
    last_write = [0.0]
    progress = dict(status["progress"])

    def on_step(epoch, step, steps):
        progress.update(epoch=epoch - 1 + step / steps, step=step, steps=steps)
        if time.monotonic() - last_write[0] >= PROGRESS_EVERY_S or step == steps:
            last_write[0] = time.monotonic()
            update_status(folder, only_if_state=("running",), progress=dict(progress))
    return on_step


def _train_outcome(status: dict, on_step, command: str) -> dict:
    """Train the job's flags in this process; its outcome as status fields (never raises)."""
    from vae_core.train import Stop, config_from_args, train
    try:
        cfg = config_from_args(status["args"])
        train(cfg, command=command, on_step=on_step)
        return {"state": "done", "error": None}
    except (Stop, KeyboardInterrupt):
        return {"state": "cancelled", "error": None}
    except VaeError as e:
        return {"state": "failed", "error": str(e)}
    except Exception as e:  # noqa: BLE001 - every failure must end in a final state
        if type(e).__name__ == "OutOfMemoryError":
            msg = "CUDA ran out of memory: try a smaller --batch-size (or a smaller model)."
        else:
            msg = f"Training crashed: {type(e).__name__}: {e}"
        print(msg, file=sys.stderr)
        return {"state": "failed", "error": msg}


def _run(folder: Path) -> int:
    """Body of the job process: train (or supervise the job's torchrun ranks), record the
    outcome, cache latents, start the next job."""
    from vae_core.train import Stop, command_line, config_from_args, raise_stop
    folder = Path(folder)
    status = update_status(folder, state="running", pid=os.getpid())
    remove_stale_temp_files(folder, runner=True)  # the only writer here from now on
    signal.signal(signal.SIGTERM, raise_stop)
    n = processes_of(status)
    if n == 1:
        outcome = _train_outcome(status, _progress_writer(folder, status), command_line(status["args"]))
    else:
        # torchrun starts the ranks (`_rank` below): in this process group, so a cancel's SIGTERM
        # reaches them all; rank 0 writes progress and its error; this process decides the outcome
        env = dict(os.environ)
        if status.get("device") != "cuda":  # the cores shared out, not every rank on all of them
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n))
        proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                 "--nproc_per_node", str(n), "-m", "vae_core.jobs", "_rank", str(folder)], env=env)
        try:
            rc = proc.wait()
            error = (read_status(folder) or {}).get("error")
            outcome = ({"state": "done", "error": None} if rc == 0 else
                       {"state": "failed", "error": error or f"A training process of this {n}-process job failed"
                        f"{_root_cause(folder)} (torchrun exit code {rc}); the log below says more."})
        except (Stop, KeyboardInterrupt):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=CANCEL_GRACE_S)  # the ranks finish their atomic writes
            outcome = {"state": "cancelled", "error": None}
    if outcome["state"] == "done":
        cfg = config_from_args(status["args"])
        update_status(folder, progress={**(read_status(folder) or status)["progress"], "epoch": cfg.epochs})
        try:  # the finished model shows up in the explorer with its scatter ready
            from vae_core.checkpoint import load_checkpoint
            from vae_core.latents import encode_dataset
            encode_dataset(load_checkpoint(folder), "test", data_root=cfg.data_root)
        except (VaeError, OSError) as e:
            print(f"note: latent cache not built ({e})", file=sys.stderr)
    update_status(folder, only_if_state=("running",), ended=_now(), **outcome)
    schedule(folder.parent)
    return 0 if outcome["state"] == "done" else 1


def _root_cause(folder: Path) -> str:
    """torchrun's "Root Cause" of a failed group, from the job's log: ": rank 1 was killed by
    SIGKILL", ": rank 0 exited with code 1", or "" when the log does not say."""
    import re
    text = log_tail(folder, 60)
    cause = text[text.rfind("Root Cause"):] if "Root Cause" in text else ""
    rank, code = re.search(r"rank\s*:\s*(\d+)", cause), re.search(r"exitcode\s*:\s*(-?\d+)", cause)
    if not rank or not code:
        return ""
    c = int(code.group(1))
    if c < 0:
        with contextlib.suppress(ValueError):
            return f": rank {rank.group(1)} was killed by {signal.Signals(-c).name}"
    return f": rank {rank.group(1)} exited with code {c}"


def _rank(folder: Path) -> int:
    """One torchrun rank of a multi-process job. Every rank trains (vae_core.distributed);
    rank 0 alone writes the run folder, the progress, and the error that ends a failed run."""
    from vae_core import distributed
    from vae_core.train import command_line, raise_stop
    folder = Path(folder)
    status = read_status(folder)
    main_rank = distributed.is_main_process()
    signal.signal(signal.SIGTERM, raise_stop)
    try:
        outcome = _train_outcome(status, _progress_writer(folder, status) if main_rank else None,
                                 command_line(status["args"]))
    finally:
        distributed.teardown()
    # a rank whose peer died fails in its next collective call ("gloo ... Read error", "NCCL ...
    # remote process exited"): that is not the cause, so it is left to torchrun's report
    peer_gone = outcome["state"] == "failed" and any(w in outcome["error"] for w in ("gloo", "NCCL", "Connection"))
    if outcome["state"] == "failed" and main_rank and not peer_gone:
        update_status(folder, only_if_state=("running",), error=outcome["error"])
    return {"done": 0, "cancelled": 130}.get(outcome["state"], 1)


# ---------------------------------------------------------------- CLI

def _format(job: dict) -> str:
    p = job.get("progress") or {}
    done = f"{p.get('epoch', 0):.1f}/{p.get('epochs', '?')} epochs"
    line = f"{job['id']}  {job['state']:<9}  {job.get('device', '?'):<4}  {done:<16}  {job_summary(job)}"
    return line + (f"\n    {job['error'].splitlines()[0]}" if job.get("error") else "")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_run"]:
        return _run(Path(argv[1]))
    if argv[:1] == ["_rank"]:
        return _rank(Path(argv[1]))
    p = argparse.ArgumentParser(prog="python -m vae_core.jobs", description="Background training jobs.")
    p.add_argument("--runs-dir", default=None, help="default $VAE_RUNS_DIR, else ./runs")
    # Every subcommand takes --runs-dir too, so it may come before or after the subcommand;
    # SUPPRESS keeps a subcommand that was not given it from resetting the value given before.
    runs_flag = argparse.ArgumentParser(add_help=False)
    runs_flag.add_argument("--runs-dir", default=argparse.SUPPRESS, help="default $VAE_RUNS_DIR, else ./runs")
    sub = p.add_subparsers(dest="cmd", required=True)
    st_ = sub.add_parser("start", parents=[runs_flag], help="start a job; the training flags of vae_core.train follow")
    st_.add_argument("--processes", type=int, default=1, help="data-parallel processes for the job (torchrun; "
                     "on CUDA one GPU each); the job takes that many of its device's slots")
    ls = sub.add_parser("list", parents=[runs_flag])
    ls.add_argument("--json", action="store_true")
    for name in ("status", "cancel", "wait", "delete"):
        sp = sub.add_parser(name, parents=[runs_flag])
        sp.add_argument("id")
        if name == "status":
            sp.add_argument("--json", action="store_true")
        if name == "wait":
            sp.add_argument("--timeout", type=float, default=None)
    args, rest = p.parse_known_args(argv)
    if rest and args.cmd != "start":
        p.error(f"unrecognised arguments: {' '.join(rest)}")
    try:
        if args.cmd == "start":
            print(start_job(rest, args.runs_dir, processes=args.processes))
        elif args.cmd == "list":
            schedule(args.runs_dir)
            jobs = refresh(args.runs_dir)
            print(json.dumps(jobs, indent=2) if args.json else "\n".join(_format(j) for j in jobs) or "no jobs")
        elif args.cmd == "status":
            schedule(args.runs_dir)
            job = read_status(job_folder(args.id, args.runs_dir))
            print(json.dumps(job, indent=2) if args.json else _format(job))
        elif args.cmd == "cancel":
            print(_format(cancel_job(args.id, args.runs_dir)))
        elif args.cmd == "wait":
            job = wait_job(args.id, args.runs_dir, args.timeout)
            print(_format(job))
            return 0 if job["state"] == "done" else 1
        elif args.cmd == "delete":
            delete_job(args.id, args.runs_dir)
    except VaeError as e:
        print(f"jobs: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the runs folder went unwritable or full after the job was created
        print(f"jobs: error: {e.strerror or e}: {e.filename or default_runs_dir(args.runs_dir)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
