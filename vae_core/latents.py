"""Latent caches: a dataset split encoded once per checkpoint, stored as plain .npy.

    cache/<checkpoint hash>/<split>_mu.npy       float32 (N, D)
    cache/<checkpoint hash>/<split>_logvar.npy   float32 (N, D)   VAEs only
    cache/<checkpoint hash>/<split>_labels.npy   int64   (N,)
    cache/<checkpoint hash>/<split>_meta.json    sha256 of each file, N, D, dataset

The folder name is the checkpoint's content hash, so retraining (new weights)
misses the old cache by construction. The meta file is written last and lists a
sha256 per array: a truncated or edited array fails the check and is rebuilt.
Arrays load with allow_pickle=False: nothing in a cache can execute code.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vae_core import VaeError, parse_json
from vae_core.checkpoint import Checkpoint
from vae_core.files import atomic_write_bytes, atomic_write_json, npy_bytes, sha256_hex
from vae_core.data import binarize_split, load_dataset, to_float

REPO_ROOT = Path(__file__).resolve().parent.parent
ARRAYS = ("mu", "logvar", "labels")


def default_cache_root() -> Path:
    return Path(os.environ.get("VAE_CACHE_DIR") or REPO_ROOT / "cache")


@dataclass
class Latents:
    mu: np.ndarray                 # (N, D) float32: the posterior means, used for display
    logvar: np.ndarray | None      # (N, D) float32, None for autoencoders
    labels: np.ndarray             # (N,) int64
    split: str
    dataset: str

    def __len__(self) -> int:
        return len(self.labels)


def cache_folder(ckpt_hash: str, cache_root=None) -> Path:
    return Path(cache_root or default_cache_root()) / ckpt_hash


def load_cached_latents(ckpt_hash: str, split: str = "test", cache_root=None) -> Latents | None:
    """The cached latents, or None when absent or failing any integrity check."""
    folder = cache_folder(ckpt_hash, cache_root)
    try:
        meta = parse_json((folder / f"{split}_meta.json").read_text())  # a damaged cache is rebuilt
        arrays = {}
        for name, digest in meta["sha256"].items():
            if name not in ARRAYS:
                return None
            data = (folder / f"{split}_{name}.npy").read_bytes()
            if sha256_hex(data) != digest:
                return None
            arrays[name] = np.load(io.BytesIO(data), allow_pickle=False)
        n, d = meta["n"], meta["latent_dim"]
        if arrays["mu"].shape != (n, d) or arrays["labels"].shape != (n,):
            return None
        logvar = arrays.get("logvar")
        if logvar is not None and logvar.shape != (n, d):
            return None
        return Latents(arrays["mu"], logvar, arrays["labels"], split, meta.get("dataset", "unknown"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_latents(ckpt_hash: str, latents: Latents, cache_root=None) -> Path:
    folder = cache_folder(ckpt_hash, cache_root)
    split = latents.split
    # The meta file is the commit marker: drop it first so a crash mid-write leaves
    # a cache that reads as missing, never a mix of old and new arrays.
    (folder / f"{split}_meta.json").unlink(missing_ok=True)
    arrays = {"mu": latents.mu.astype(np.float32), "labels": latents.labels.astype(np.int64)}
    if latents.logvar is not None:
        arrays["logvar"] = latents.logvar.astype(np.float32)
    digests = {}
    for name, arr in arrays.items():
        data = npy_bytes(arr)
        atomic_write_bytes(folder / f"{split}_{name}.npy", data)
        digests[name] = sha256_hex(data)
    n, d = latents.mu.shape
    atomic_write_json(folder / f"{split}_meta.json",
                      {"n": int(n), "latent_dim": int(d), "dataset": latents.dataset,
                       "split": split, "sha256": digests})
    return folder


@torch.no_grad()
def encode_images(model, images_u8: torch.Tensor, batch_size: int = 1000, progress=None):
    """Posterior means and log-variances of uint8 images (N, C, H, W) as numpy arrays."""
    device = next(model.parameters()).device
    mus, logvars = [], []
    n = images_u8.shape[0]
    for i in range(0, n, batch_size):
        x = to_float(images_u8[i:i + batch_size], device)
        mu, logvar = model.encode(x)
        mus.append(mu.float().cpu())
        if logvar is not None:
            logvars.append(logvar.float().cpu())
        if progress:
            progress(min(i + batch_size, n) / n)
    mu = torch.cat(mus).numpy()
    return mu, (torch.cat(logvars).numpy() if logvars else None)


def encode_dataset(ckpt: Checkpoint, split: str = "test", data_root=None, cache_root=None,
                   progress=None) -> Latents:
    """Latents of a split for a checkpoint: from the cache when intact, else encoded and cached.

    Raises VaeError (naming the folder to fill) when the cache is missing and the
    dataset is not available.
    """
    cached = load_cached_latents(ckpt.hash, split, cache_root)
    if cached is not None:
        return cached
    shape = ckpt.model_config.image_shape  # the split as the model saw it (1x28x28 for every older model)
    data = load_dataset(ckpt.dataset, split, data_root, download=False, image_size=shape[1], channels=shape[0])
    images = data.images
    if ckpt.binarized:
        # models trained on binarized data see the fixed-seed binarized split, as in training
        images = binarize_split(images, split)
    mu, logvar = encode_images(ckpt.model, images, progress=progress)
    latents = Latents(mu, logvar, data.labels.numpy(), split, ckpt.dataset)
    try:
        write_latents(ckpt.hash, latents, cache_root)
    except OSError as e:
        raise VaeError(f"Could not write the latent cache under {cache_folder(ckpt.hash, cache_root)} ({e}).") from e
    return latents


def knn_accuracy(mu: np.ndarray, labels: np.ndarray, k: int = 5, folds: int = 3, seed: int = 0) -> float:
    """How well classes separate in latent space: k-NN accuracy, stratified k-fold CV."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(KNeighborsClassifier(n_neighbors=k), mu, labels, cv=cv).mean())


def nearest_indices(points: np.ndarray, z, k: int = 8) -> np.ndarray:
    """Indices of the k points nearest to z (Euclidean), nearest first."""
    d = np.linalg.norm(np.asarray(points, dtype=np.float32) - np.asarray(z, dtype=np.float32)[None], axis=1)
    k = min(k, len(d))
    idx = np.argpartition(d, k - 1)[:k]
    return idx[np.argsort(d[idx])]
