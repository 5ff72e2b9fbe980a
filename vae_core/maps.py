"""Maps: a latent space drawn in 2-D by PCA, t-SNE (openTSNE) or UMAP (umap-learn), with
a way back from any map position to a z, and figures for how faithful the map is.

    build_map(mu, "umap")  ->  LatentMap(points (N, 2), lattice (G, G, D), box, figures)

The way back from the map to z, per method:
  pca   exact: z = mean + x·v1 + y·v2 (the map is a linear projection; the lattice is not used)
  umap  umap-learn's inverse_transform. One call costs about 5 s for 10,000 points on two
        cores whatever the number of positions asked for (it triangulates the whole map in
        Python), so it is asked once, at build time, for a G×G lattice over the map; a
        position between lattice nodes gets the bilinear blend of its four nodes' z.
  tsne  t-SNE has no inverse: a lattice node's z is the distance-weighted mean of the z of
        its K nearest map points (weights 1/distance), blended the same way.
An image that is not on the map (an upload) is placed by openTSNE's transform on a t-SNE
map, exactly on a PCA map, and on a UMAP map at the distance-weighted mean of the map
positions of its K nearest latents (the start of UMAP's own transform: its model is not
kept, as it could only be stored by pickling).

Faithfulness: trustworthiness (Venna & Kaski; sklearn.manifold.trustworthiness, 10
neighbours) on a fixed 2,000-point subsample (it needs all pairwise distances), and the
share of each point's 10 nearest latent neighbours that are among its 10 nearest on the map,
over every point (a fixed 10,000-point subsample of a larger map).

Maps are cached beside the latent caches, as plain .npy with a meta file written last that
holds each array's sha256, the parameters and the sha256 of the latents they were built
from: a new checkpoint (another folder), rebuilt latents or other parameters rebuild it.

Two point sets (SPLITS): "test", the 10,000 test latents (seconds to a minute; the shipped
models' maps ship), and "all", the test latents followed by the training latents, up to
ALL_POINTS = 70,000 (MNIST and Fashion-MNIST: 10,000 + 60,000). A t-SNE or UMAP map of
70,000 points takes minutes, so the page starts it as its own process (start_build), which
reports through a status file beside the cache (build_status); the build outlives a reload,
a page switch or a closed tab, and a build that died says so instead of staying "running".
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vae_core import VaeError, parse_json
from vae_core.files import atomic_write_bytes, atomic_write_json, npy_bytes, sha256_hex

METHODS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
LATTICE = 40            # lattice nodes per side (UMAP's and t-SNE's way back to z)
K_BACK = 10             # map neighbours a t-SNE lattice node averages; latents an upload is placed by
TRUST_SAMPLE = 2000     # points trustworthiness is computed on
NEIGHBOURS = 10         # neighbourhood size of both faithfulness figures
KEPT_SAMPLE = 10_000    # points whose kept neighbours are counted (all of a test map)
VERSION = 1             # bump when a method's parameters change: older caches rebuild
SPLITS = {"test": "test", "all": "train + test"}
ALL_POINTS = 70_000     # the most points of the "all" map (the Embedding Projector's t-SNE stops at 10,000)


@dataclass
class LatentMap:
    method: str
    points: np.ndarray          # (N, 2) float32: the map position of each latent
    lattice: np.ndarray | None  # (G, G, D) float32: z at lattice node [row iy, column ix]; None for PCA
    box: np.ndarray             # (2, 2): [[x0, x1], [y0, y1]], the lattice's extent
    mean: np.ndarray | None     # (D,): PCA's centre; None for the others
    basis: np.ndarray | None    # (2, D): PCA's two unit axes; None for the others
    trustworthiness: float
    knn_kept: float
    seconds: float              # time to build it (fit, way back and figures) on the machine that did
    seed: int = 0

    @property
    def name(self) -> str:
        return METHODS[self.method]


# ---------------------------------------------------------------- building

def _box(points: np.ndarray, pad: float = 0.05) -> np.ndarray:
    lo, hi = points.min(0), points.max(0)
    span = np.maximum(hi - lo, 1e-6)
    return np.stack([lo - pad * span, hi + pad * span], axis=1).astype(np.float64)


def lattice_positions(box: np.ndarray, g: int = LATTICE) -> np.ndarray:
    """The (g*g, 2) map positions of the lattice nodes, row by row from y0 (node [iy, ix])."""
    xs = np.linspace(box[0, 0], box[0, 1], g)
    ys = np.linspace(box[1, 0], box[1, 1], g)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def weighted_neighbours(reference: np.ndarray, values: np.ndarray, queries: np.ndarray,
                        k: int = K_BACK) -> np.ndarray:
    """For each query, the 1/distance-weighted mean of `values` at its k nearest `reference`
    rows (a query on a reference point gets that point's value)."""
    from sklearn.neighbors import NearestNeighbors
    k = min(k, len(reference))
    dist, idx = NearestNeighbors(n_neighbors=k).fit(reference).kneighbors(queries)
    w = 1.0 / np.maximum(dist, 1e-9)
    w /= w.sum(1, keepdims=True)
    return np.einsum("nk,nkd->nd", w, values[idx]).astype(np.float32)


def faithfulness(mu: np.ndarray, points: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """(trustworthiness on a TRUST_SAMPLE subsample, share of 10 nearest latent neighbours kept)."""
    from sklearn.manifold import trustworthiness
    from sklearn.neighbors import NearestNeighbors
    n = len(mu)
    k = min(NEIGHBOURS, n - 2)
    if k < 1:
        return float("nan"), float("nan")
    sub = np.random.default_rng(seed).choice(n, min(n, TRUST_SAMPLE), replace=False)
    trust = float(trustworthiness(mu[sub], points[sub], n_neighbors=min(k, (len(sub) - 1) // 2)))
    # over every point up to KEPT_SAMPLE (the shipped test maps); above it, a fixed subsample of
    # queries, whose neighbours are still sought among all points
    q = np.arange(n) if n <= KEPT_SAMPLE else np.sort(np.random.default_rng(seed).choice(n, KEPT_SAMPLE, replace=False))
    near_z = NearestNeighbors(n_neighbors=k + 1).fit(mu).kneighbors(mu[q], return_distance=False)[:, 1:]
    near_m = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points[q], return_distance=False)[:, 1:]
    kept = np.mean([len(np.intersect1d(a, b, assume_unique=True)) for a, b in zip(near_z, near_m)]) / k
    return trust, float(kept)


def build_map(mu: np.ndarray, method: str, seed: int = 0, progress=None) -> LatentMap:
    """Fit a 2-D map of the latents `mu` (N, D) and its way back to z. progress(fraction, text)."""
    if method not in METHODS:
        raise VaeError(f"Unknown map method {method!r}: use one of {', '.join(METHODS)}.")
    mu = np.ascontiguousarray(mu, dtype=np.float32)
    n, d = mu.shape
    if n < 20:
        raise VaeError(f"A map needs at least 20 latents; there are {n}.")
    if d < 2:
        raise VaeError("A 1-D latent space is its own map: there is nothing to project.")
    say = progress or (lambda f, t: None)
    t0 = time.perf_counter()
    mean = basis = lattice = None
    if method == "pca":
        say(0.1, "principal axes")
        from vae_core.geometry import fit_pca  # the PCA page's own fit: the same axes and signs
        pca = fit_pca(mu, 2)
        mean, basis = pca.mean.astype(np.float64), pca.components.astype(np.float64)
        points = pca.projected.astype(np.float32)
        box = _box(points)
    elif method == "tsne":
        points = _tsne(mu, seed, say)
        box = _box(points)
        say(0.85, f"the way back: {K_BACK} nearest map points at {LATTICE}×{LATTICE} lattice nodes")
        lattice = weighted_neighbours(points, mu, lattice_positions(box)).reshape(LATTICE, LATTICE, d)
    else:
        say(0.05, "UMAP: nearest neighbours and layout (numba compiles on first use)")
        reducer = _umap(seed).fit(mu)
        points = np.asarray(reducer.embedding_, dtype=np.float32)
        box = _box(points)
        say(0.75, f"the way back: umap's inverse_transform at {LATTICE}×{LATTICE} lattice nodes")
        lattice = np.asarray(reducer.inverse_transform(lattice_positions(box)), np.float32).reshape(LATTICE, LATTICE, d)
    say(0.92, "faithfulness: trustworthiness and kept neighbours")
    trust, kept = faithfulness(mu, points, seed)
    say(1.0, "done")
    return LatentMap(method, points, lattice, box, mean, basis, trust, kept, time.perf_counter() - t0, seed)


def _tsne(mu: np.ndarray, seed: int, say) -> np.ndarray:
    from openTSNE import TSNE
    iters = {"early": 250, "late": 500}

    class Progress:  # openTSNE calls back every 25 iterations of each phase
        done = 0

        def __call__(self, iteration, error, embedding):
            Progress.done += 25
            say(0.05 + 0.8 * min(Progress.done / (iters["early"] + iters["late"]), 1.0),
                f"t-SNE: iteration {Progress.done} of {iters['early'] + iters['late']}")

    say(0.02, "t-SNE: perplexity-30 affinities")
    emb = TSNE(perplexity=30, n_jobs=_threads(), random_state=seed, early_exaggeration_iter=iters["early"],
               n_iter=iters["late"], callbacks=Progress(), callbacks_every_iters=25, verbose=False).fit(mu)
    return np.asarray(emb, dtype=np.float32)


def _umap(seed: int):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's and umap's import-time notices
        import umap
    return umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, random_state=seed, n_jobs=1)


def _threads() -> int:
    import torch
    return max(1, torch.get_num_threads())


# ---------------------------------------------------------------- using a map

def z_at(m: LatentMap, xy) -> np.ndarray:
    """The z a map position decodes from (exact for PCA; the lattice's bilinear blend otherwise)."""
    x, y = float(xy[0]), float(xy[1])
    if m.method == "pca":
        return (m.mean + x * m.basis[0] + y * m.basis[1]).astype(np.float32)
    g = m.lattice.shape[0]
    fx = np.clip((x - m.box[0, 0]) / (m.box[0, 1] - m.box[0, 0]), 0, 1) * (g - 1)
    fy = np.clip((y - m.box[1, 0]) / (m.box[1, 1] - m.box[1, 0]), 0, 1) * (g - 1)
    ix, iy = min(int(fx), g - 2), min(int(fy), g - 2)
    tx, ty = fx - ix, fy - iy
    L = m.lattice.astype(np.float64)
    z = ((1 - tx) * (1 - ty) * L[iy, ix] + tx * (1 - ty) * L[iy, ix + 1]
         + (1 - tx) * ty * L[iy + 1, ix] + tx * ty * L[iy + 1, ix + 1])
    return z.astype(np.float32)


def place(m: LatentMap, mu_all: np.ndarray, z: np.ndarray, tsne_embedding=None) -> np.ndarray:
    """Map positions (M, 2) of new latents z (M, D): see the module's notes per method."""
    z = np.atleast_2d(np.asarray(z, np.float32))
    if m.method == "pca":
        return ((z - m.mean) @ m.basis.T).astype(np.float32)
    if m.method == "tsne" and tsne_embedding is not None:
        return np.asarray(tsne_embedding.transform(z), np.float32)
    return weighted_neighbours(mu_all, m.points, z)


def tsne_embedding(mu: np.ndarray, m: LatentMap):
    """openTSNE's embedding object for a cached t-SNE map (its affinities recomputed: a few
    seconds), whose transform() places new points among the old ones."""
    from openTSNE import TSNEEmbedding
    from openTSNE.affinity import PerplexityBasedNN
    aff = PerplexityBasedNN(np.ascontiguousarray(mu, np.float32), perplexity=30, n_jobs=_threads(),
                            random_state=m.seed, verbose=False)
    return TSNEEmbedding(m.points.astype(np.float64), aff, random_state=m.seed)


# ---------------------------------------------------------------- the cache

def map_prefix(folder: Path, split: str, method: str) -> Path:
    return Path(folder) / f"map_{split}_{method}"


def latents_digest(mu: np.ndarray) -> str:
    return sha256_hex(np.ascontiguousarray(mu, np.float32).tobytes())


def write_map(folder: Path, split: str, m: LatentMap, mu: np.ndarray) -> None:
    """Write a map's arrays, then its meta file (the commit marker) last."""
    prefix = map_prefix(folder, split, m.method)
    meta_path = Path(f"{prefix}_meta.json")
    meta_path.unlink(missing_ok=True)
    arrays = {"points": m.points.astype(np.float32), "box": m.box.astype(np.float64)}
    if m.lattice is not None:
        arrays["lattice"] = m.lattice.astype(np.float32)
    if m.mean is not None:
        arrays["mean"], arrays["basis"] = m.mean.astype(np.float64), m.basis.astype(np.float64)
    digests = {}
    for name, arr in arrays.items():
        data = npy_bytes(arr)
        atomic_write_bytes(Path(f"{prefix}_{name}.npy"), data)
        digests[name] = sha256_hex(data)
    atomic_write_json(meta_path, {
        "method": m.method, "split": split, "n": int(len(m.points)), "latent_dim": int(mu.shape[1]),
        "seed": m.seed, "version": VERSION, "lattice": LATTICE, "latents_sha256": latents_digest(mu),
        "trustworthiness": m.trustworthiness, "knn_kept": m.knn_kept, "seconds": round(m.seconds, 2),
        "sha256": digests})


def load_map(folder: Path, split: str, method: str, mu: np.ndarray, seed: int = 0) -> LatentMap | None:
    """The cached map, or None when absent, damaged, built from other latents or parameters."""
    prefix = map_prefix(folder, split, method)
    try:
        meta = parse_json(Path(f"{prefix}_meta.json").read_text())
        if (meta.get("version") != VERSION or meta.get("seed") != seed or meta.get("method") != method
                or meta.get("lattice") != LATTICE or meta.get("latents_sha256") != latents_digest(mu)):
            return None
        arrays = {}
        for name, digest in meta["sha256"].items():
            data = Path(f"{prefix}_{name}.npy").read_bytes()
            if sha256_hex(data) != digest:
                return None
            arrays[name] = np.load(io.BytesIO(data), allow_pickle=False)
        n, d = mu.shape
        if arrays["points"].shape != (n, 2) or arrays["box"].shape != (2, 2):
            return None
        if method == "pca":
            if arrays["mean"].shape != (d,) or arrays["basis"].shape != (2, d):
                return None
        elif arrays["lattice"].shape != (LATTICE, LATTICE, d):
            return None
        return LatentMap(method, arrays["points"], arrays.get("lattice"), arrays["box"], arrays.get("mean"),
                         arrays.get("basis"), float(meta["trustworthiness"]), float(meta["knn_kept"]),
                         float(meta["seconds"]), seed)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def get_map(folder: Path, split: str, method: str, mu: np.ndarray, seed: int = 0, progress=None) -> LatentMap:
    """The cached map when intact and current, else built and cached (VaeError if unwritable)."""
    cached = load_map(folder, split, method, mu, seed)
    if cached is not None:
        return cached
    m = build_map(mu, method, seed, progress)
    try:
        write_map(folder, split, m, mu)
    except OSError as e:
        raise VaeError(f"Could not write the map cache under {folder} ({e}).") from e
    return m


# ---------------------------------------------------------------- the 70,000-point maps

def split_latents(ckpt, split: str, data_root=None, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(mu, labels) of a map's point set: the test latents, or (split "all") the test latents
    followed by the training latents, each from its latent cache (encoded once when absent).
    VaeError when the two together exceed ALL_POINTS or the training data is not here."""
    from vae_core.latents import encode_dataset
    if split not in SPLITS:
        raise VaeError(f"Unknown point set {split!r}: use one of {', '.join(SPLITS)}.")
    test = encode_dataset(ckpt, "test", data_root, progress=progress)
    if split == "test":
        return test.mu, test.labels
    n_train = train_size(ckpt, data_root)
    if n_train + len(test.mu) > ALL_POINTS:
        raise VaeError(f"{ckpt.dataset} has {n_train:,} training images: with the test set that is more than "
                       f"the {ALL_POINTS:,} points a train + test map holds. Its map shows the test set.")
    train = encode_dataset(ckpt, "train", data_root, progress=progress)
    return (np.concatenate([test.mu, train.mu]).astype(np.float32),
            np.concatenate([test.labels, train.labels]))


def train_size(ckpt, data_root=None) -> int:
    """How many training images the checkpoint's dataset has (its train latent cache's count
    when there is one, else the dataset's: generated sets are generated once, then cached)."""
    from vae_core.data import load_dataset
    from vae_core.latents import load_cached_latents
    cached = load_cached_latents(ckpt.hash, "train")
    if cached is not None:
        return len(cached.mu)
    shape = ckpt.model_config.image_shape
    return len(load_dataset(ckpt.dataset, "train", data_root, download=False, image_size=shape[1],
                            channels=shape[0]).labels)


def status_path(folder: Path, split: str, method: str) -> Path:
    return Path(f"{map_prefix(folder, split, method)}_build.json")


def build_status(folder: Path, split: str, method: str) -> dict | None:
    """The background build's status file (state: running, done or failed; fraction; text;
    started; error), None when there is none. A "running" build whose process is gone
    reads as failed: it was killed, or the machine restarted."""
    from vae_core.jobs import process_alive
    path = status_path(folder, split, method)
    try:
        status = parse_json(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict):
        return None
    # alive: the pid is still a process whose command line names this status file (start_build's)
    marker = f"{Path(folder).name}/{path.name}"
    if status.get("state") == "running" and not process_alive(int(status.get("pid", -1)), marker):
        status = {**status, "state": "failed",
                  "error": "The build process ended without finishing (killed, out of memory or a restart)."}
    return status


def start_build(ckpt, split: str, method: str) -> dict:
    """Start building a map in its own process (python -m vae_core.maps CKPT --split S
    --methods M --status FILE), unless one is running already. Returns its status."""
    import subprocess
    import sys

    from vae_core.latents import cache_folder
    folder = cache_folder(ckpt.hash)
    current = build_status(folder, split, method)
    if current and current.get("state") == "running":
        return current
    folder.mkdir(parents=True, exist_ok=True)
    status = status_path(folder, split, method)
    log = open(Path(f"{map_prefix(folder, split, method)}_build.log"), "wb")
    with log:
        proc = subprocess.Popen([sys.executable, "-m", "vae_core.maps", str(ckpt.path), "--split", split,
                                 "--methods", method, "--status", str(status)],
                                cwd=Path(__file__).resolve().parent.parent, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    first = {"state": "running", "pid": proc.pid, "fraction": 0.0, "text": "starting", "started": time.time(),
             "split": split, "method": method}
    atomic_write_json(status, first)  # the child overwrites it with its own progress
    return first


def main(argv=None) -> int:
    """Build (or check) the cached maps of checkpoints: python -m vae_core.maps checkpoints/*"""
    import argparse
    import json

    from vae_core.checkpoint import load_checkpoint
    from vae_core.latents import cache_folder
    p = argparse.ArgumentParser(prog="python -m vae_core.maps", description=main.__doc__)
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--split", default="test", choices=list(SPLITS),
                   help="test: the 10,000 test latents; all: test + training latents, up to 70,000")
    p.add_argument("--data-root", default=None)
    p.add_argument("--status", default=None, help="write progress to this JSON file (the Map page's builds)")
    args = p.parse_args(argv)
    started = time.time()

    def report(state: str, fraction: float, text: str, **extra) -> None:
        if args.status:
            import os
            atomic_write_json(Path(args.status), {"state": state, "pid": os.getpid(), "fraction": round(fraction, 4),
                                                  "text": text, "started": started, "split": args.split,
                                                  "method": args.methods, **extra})

    try:
        for path in args.checkpoints:
            ck = load_checkpoint(path)
            report("running", 0.0, f"encoding the {SPLITS[args.split]} images")
            mu, _ = split_latents(ck, args.split, args.data_root)
            for method in args.methods.split(","):
                m = get_map(cache_folder(ck.hash), args.split, method, mu,
                            progress=lambda f, text: report("running", f, text))
                print(json.dumps({"checkpoint": str(path), "split": args.split, "method": method, "n": len(m.points),
                                  "trustworthiness": round(m.trustworthiness, 4), "knn_kept": round(m.knn_kept, 4),
                                  "seconds": round(m.seconds, 1)}), flush=True)
    except VaeError as e:
        report("failed", 0.0, "failed", error=str(e))
        print(f"error: {e}")
        return 2
    except BaseException as e:  # noqa: BLE001 - a build must never be left saying "running"
        report("failed", 0.0, "failed", error=f"{type(e).__name__}: {e}")
        raise
    report("done", 1.0, "done", seconds=round(time.time() - started, 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
