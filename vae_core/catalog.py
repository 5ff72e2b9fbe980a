"""Which models the app can show: shipped checkpoints plus finished training runs.

Shipped models live in <repo>/checkpoints/<name>/; training runs in the runs
folder (--runs-dir, else env VAE_RUNS_DIR, else ./runs). A run counts once its
folder holds model.safetensors (at least one epoch completed). Listing the runs
also removes the temp files killed writers left in them (jobs.remove_stale_temp_files).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vae_core import VaeError, parse_json

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DIR = REPO_ROOT / "checkpoints"
DEFAULT_MODEL = "mnist-z2"


def runs_dir(runs_dir=None) -> Path:
    return Path(runs_dir or os.environ.get("VAE_RUNS_DIR") or "runs")


@dataclass
class ModelEntry:
    key: str            # stable id used in the URL: "mnist-z2" or "runs/<id>"
    path: Path
    dataset: str
    latent_dim: int
    kind: str
    test_loss: float | None

    @property
    def label(self) -> str:
        loss = f" · test loss {self.test_loss:.1f}" if self.test_loss is not None else ""
        return f"{self.key} · {self.dataset} · {self.kind} · z={self.latent_dim}{loss}"


def _entry(key: str, path: Path, problems: list | None = None) -> ModelEntry | None:
    """The picker's entry for a checkpoint folder; a damaged or foreign one is not offered
    and, when problems is given, adds one (key, reason) line to it instead."""
    from vae_core.checkpoint import read_config  # here: checkpoint imports torch, and the job CLI needs only runs_dir
    try:
        cfg = read_config(path)
        model = cfg["model"]
        loss = cfg.get("metrics", {}).get("test_loss")
        return ModelEntry(key, path, str(cfg.get("dataset", {}).get("name", "unknown")),
                          int(model["latent_dim"]), str(model.get("family") or model.get("kind", "conv-vae")),
                          float(loss) if isinstance(loss, (int, float)) and not isinstance(loss, bool) else None)
    except VaeError as e:
        reason = str(e)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
        reason = f"its config.json has no usable model section ({type(e).__name__})"
    if problems is not None:
        problems.append((key, reason))
    return None


def _finished(folder: Path) -> bool:
    """CLI runs have no status.json; background jobs count once their state is done."""
    status = folder / "status.json"
    if not status.is_file():
        return True
    try:
        return parse_json(status.read_text()).get("state") == "done"
    except (OSError, ValueError, AttributeError):
        return False


def list_models(runs=None, problems: list | None = None) -> list[ModelEntry]:
    """Shipped models first (the default at the top), then runs, newest first.

    problems, when given, receives (key, reason) for each folder that cannot be offered.
    """
    from vae_core.checkpoint import is_checkpoint
    entries = []
    if SHIPPED_DIR.is_dir():
        names = sorted(p.name for p in SHIPPED_DIR.iterdir() if is_checkpoint(p))
        names.sort(key=lambda n: n != DEFAULT_MODEL)
        entries += [e for n in names if (e := _entry(n, SHIPPED_DIR / n, problems))]
    root = runs_dir(runs)
    if root.is_dir():
        from vae_core.jobs import remove_stale_temp_files  # jobs imports this module
        for p in root.iterdir():  # what killed writers left (a live writer's file is kept)
            remove_stale_temp_files(p)
        # a background job's folder holds weights after its first epoch; offer it once done
        folders = sorted((p for p in root.iterdir() if is_checkpoint(p) and _finished(p)),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        entries += [e for p in folders if (e := _entry(f"runs/{p.name}", p, problems))]
    return entries


def find_model(key: str, runs=None) -> ModelEntry | None:
    return next((e for e in list_models(runs) if e.key == key), None)
