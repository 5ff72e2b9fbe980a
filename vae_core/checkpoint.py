"""Checkpoints: a folder with model.safetensors + config.json. Never a pickle.

config.json holds the format version, the model config, the training config,
the dataset, a metrics summary and the exact command that trained the model.
The model config is also stored in the safetensors header, so the weights file
alone says what it is.

Writes are atomic: each file goes to a temporary name in the same folder, is
fsynced and renamed over the old one, so a process killed at any instant leaves
either the previous checkpoint or the new one, never half a file.

A checkpoint's identity is the sha256 of its weights file (which includes the
model config in its header); latent caches are keyed on it.

Format versions:
  1  every checkpoint written before issue 13: the model section has no image shape
     and no likelihood, which means a 1x28x28 Bernoulli model. Read unchanged, forever.
  2  the model section records image_channels, image_size and likelihood. The number
     moved so that an older app refuses a colour or 64x64 checkpoint with "upgrade
     the app" rather than misreading it or failing on unknown keys.
A version-1 folder is never rewritten to version 2 by reading it; only a save writes 2.

Model families (families.py) stay version 2: a family's model section adds "family" (and
delta-vae's "delta"), which an app from before families refuses as unknown keys "written by
a newer version", and a section without them is today's objective. A factor-vae folder also
holds discriminator.safetensors; loading a model never reads it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load_bytes
from safetensors.torch import save as st_save_bytes

from vae_core import VaeError, parse_json
from vae_core.files import atomic_write_bytes, atomic_write_json
from vae_core.models import AutoEncoder, ModelConfig, build_model

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
# the model fields version 1 did not have: a version-1 config that holds them is damaged
_V2_MODEL_KEYS = ("image_channels", "image_size", "likelihood", "family", "delta")
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


@dataclass
class Checkpoint:
    path: Path
    model: AutoEncoder
    config: dict                      # the whole config.json
    model_config: ModelConfig
    hash: str                         # sha256 of model.safetensors, 16 hex chars
    extra: dict = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        return self.config.get("dataset", {}).get("name", "unknown")

    @property
    def binarized(self) -> bool:
        """Trained on binarized images: it is encoded and scored on the fixed binarized split."""
        return self.config.get("dataset", {}).get("binarize", "none") != "none"

    @property
    def class_names(self) -> list[str]:
        return self.config.get("dataset", {}).get("class_names") or [str(i) for i in range(10)]


def save_checkpoint(folder, model: AutoEncoder, *, training: dict | None = None,
                    dataset: dict | None = None, metrics: dict | None = None,
                    command: str | None = None) -> str:
    """Write model.safetensors then config.json atomically. Returns the content hash."""
    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {"format_version": str(FORMAT_VERSION),
              "model_config": json.dumps(model.config.to_dict(), sort_keys=True)}
    weights = st_save_bytes(state, metadata=header)
    atomic_write_bytes(folder / WEIGHTS, weights)
    config = {
        "format_version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "training": training or {},
        "dataset": dataset or {},
        "metrics": metrics or {},
        "command": command,
    }
    atomic_write_json(folder / CONFIG, config)
    return content_hash(weights)


def content_hash(weights: bytes) -> str:
    return hashlib.sha256(weights).hexdigest()[:16]


def checkpoint_hash(folder) -> str:
    path = Path(folder) / WEIGHTS
    try:
        return content_hash(path.read_bytes())
    except OSError as e:
        raise VaeError(f"{path} could not be read ({e}).") from e


def read_config(folder) -> dict:
    path = Path(folder) / CONFIG
    try:
        config = parse_json(path.read_text())
    except FileNotFoundError as e:
        raise VaeError(f"{path} is missing: a checkpoint folder needs {WEIGHTS} and {CONFIG}.") from e
    except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise VaeError(f"{path} is not valid JSON ({e}); the checkpoint is damaged.") from e
    if not isinstance(config, dict):
        raise VaeError(f"{path} does not hold a JSON object; the checkpoint is damaged.")
    version = config.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise VaeError(f"{path} has checkpoint format version {version!r}; this version of the "
                       f"app reads versions {' and '.join(map(str, READABLE_VERSIONS))}. Upgrade the app or retrain.")
    return config


def load_checkpoint(folder, device: torch.device | str = "cpu") -> Checkpoint:
    """Load a checkpoint folder for inference (eval mode). Raises VaeError naming the bad file."""
    folder = Path(folder)
    config = read_config(folder)
    weights_path = folder / WEIGHTS
    try:
        blob = weights_path.read_bytes()
    except FileNotFoundError as e:
        raise VaeError(f"{weights_path} is missing: a checkpoint folder needs {WEIGHTS} and {CONFIG}.") from e
    except OSError as e:
        raise VaeError(f"{weights_path} could not be read ({e}).") from e
    try:
        # safetensors parses a JSON header and raw tensor bytes: nothing is executed,
        # so a pickle renamed to model.safetensors is refused here, never unpickled.
        state = st_load_bytes(blob)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as e:
        raise VaeError(f"{weights_path} is not a valid safetensors file (truncated or corrupt: {e}). "
                       f"Retrain or restore the checkpoint.") from e
    model_config = _model_config(config, folder / CONFIG)
    _check_fits(model_config, state, weights_path, folder / CONFIG)
    bad = [k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise VaeError(f"{weights_path} holds NaN or infinite weights ({', '.join(bad[:3])}): the training "
                       f"diverged. Retrain with a lower --lr or restore an earlier checkpoint.")
    model = build_model(model_config)
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Checkpoint(folder, model, config, model_config, content_hash(blob))


def _model_config(config: dict, config_path: Path) -> ModelConfig:
    """The model section of config.json as a ModelConfig, or VaeError: a run folder is
    untrusted input ("channels": ["a", 1], a 5,000-digit latent_dim, a list for a dict)."""
    try:
        section = config["model"]
        if config.get("format_version") == 1 and any(k in section for k in _V2_MODEL_KEYS):
            raise VaeError(f"{config_path} says format version 1 but its model section names an image shape, "
                           f"likelihood or family (version 2 fields); the checkpoint is damaged.")
        cfg = ModelConfig.from_dict(section)
        numbers = [cfg.latent_dim, cfg.hidden, *cfg.channels, cfg.image_size]
        ok = all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1 << 20 for v in numbers)
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise VaeError(f"{config_path} has no usable 'model' section ({str(e)[:200]}).") from e
    if not ok or len(cfg.channels) != 2:
        raise VaeError(f"{config_path} describes an impossible model (latent_dim, hidden and two channels must be "
                       f"whole numbers from 1 to {1 << 20}).")
    return cfg


def _check_fits(model_config: ModelConfig, state: dict, weights_path: Path, config_path: Path) -> None:
    """The model config.json describes must match the weights tensor for tensor, checked on
    PyTorch's meta device (shapes only, no memory) before a real model is allocated: a
    config that claims latent_dim 2e6 is refused in milliseconds, not after 7 GB."""
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build_model(model_config).state_dict().items()}
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise VaeError(f"{config_path} describes a model this app cannot build ({str(e)[:200]}).") from e
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        diff = sorted(set(expected) ^ set(got)) or [k for k in expected if expected[k] != got[k]]
        k = diff[0]
        raise VaeError(f"{weights_path} does not fit the model described in {config_path} (shape or key mismatch "
                       f"at {k}: the config wants {expected.get(k)}, the weights hold {got.get(k)}).")


def is_checkpoint(folder) -> bool:
    folder = Path(folder)
    return (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file()


def list_checkpoints(*roots) -> list[Path]:
    """Checkpoint folders directly under each root (sorted by name), plus roots that are one."""
    found = []
    for root in roots:
        root = Path(root)
        if is_checkpoint(root):
            found.append(root)
        elif root.is_dir():
            found += sorted(p for p in root.iterdir() if p.is_dir() and is_checkpoint(p))
    return found
