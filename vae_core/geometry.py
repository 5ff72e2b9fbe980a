"""Shape of the cloud of encoder means: principal axes, traversals, intrinsic dimension.

PCA gives directions worth walking along (the latent dimensions themselves need not
be the axes the data actually uses); TWO-NN estimates how many dimensions the cloud
really occupies, which is often far fewer than the latent size (compare with the
count of active units in losses.active_units).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vae_core import VaeError


@dataclass
class PCAResult:
    mean: np.ndarray            # (D,) centre of the cloud
    components: np.ndarray      # (k, D) unit principal axes, largest variance first
    std: np.ndarray             # (k,) sqrt of the variance along each axis
    explained_ratio: np.ndarray  # (k,) share of the total variance per axis
    projected: np.ndarray       # (N, k) the latents in PCA coordinates, in latent units (not divided by std)

    @property
    def k(self) -> int:
        return len(self.components)


def _as_points(x, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise VaeError(f"{what} must be a 2-D array (points, dimensions), got shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise VaeError(f"{what} contain NaN or infinity: re-encode the dataset with a healthy checkpoint.")
    return x


def fit_pca(latents: np.ndarray, k: int | None = None) -> PCAResult:
    """PCA of (N, D) latents with k components (default: all, i.e. min(N, D))."""
    x = _as_points(latents, "Latents")
    n, d = x.shape
    if n < 2:
        raise VaeError("PCA needs at least 2 latent points: encode more of the dataset.")
    k_max = min(n, d)
    k = k_max if k is None else k
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= k_max:
        raise VaeError(f"The number of principal components must be from 1 to {k_max}, got {k!r}.")
    # Full SVD: D is small (a latent space), so exact is cheap and deterministic;
    # sklearn's svd_flip fixes the sign of each axis so reruns agree.
    from sklearn.decomposition import PCA  # here, not at import: sklearn costs ~1 s of every app start
    pca = PCA(n_components=int(k), svd_solver="full").fit(x)
    return PCAResult(mean=pca.mean_.copy(), components=pca.components_.copy(),
                     std=np.sqrt(np.maximum(pca.explained_variance_, 0.0)),
                     explained_ratio=pca.explained_variance_ratio_.copy(),
                     projected=pca.transform(x))


def pca_to_z(pca: PCAResult, coeffs) -> np.ndarray:
    """z = mean + sum_i a_i * std_i * v_i, coeffs a in units of each axis's std.

    coeffs (k',) -> (D,), or (..., k') -> (..., D); k' <= k, a short vector sets the
    leading components and leaves the rest at the mean.
    """
    a = np.asarray(coeffs, dtype=np.float64)
    if a.ndim == 0:
        a = a[None]
    m = a.shape[-1]
    if m > pca.k:
        raise VaeError(f"Got {m} PCA coefficients but only {pca.k} components were fitted.")
    return pca.mean + a @ (pca.std[:m, None] * pca.components[:m])


def traversal(pca: PCAResult, component: int, base_coeffs=None, n: int = 9, extent: float = 3.0) -> np.ndarray:
    """(n, D) latents from -extent to +extent std along one component, the others at base_coeffs.

    base_coeffs (in std units, default all 0 = the mean) may be shorter than k.
    """
    if isinstance(component, bool) or not isinstance(component, (int, np.integer)) \
            or not 0 <= component < pca.k:
        raise VaeError(f"Component must be from 0 to {pca.k - 1}, got {component!r}.")
    if n < 2:
        raise VaeError("A traversal needs at least 2 points.")
    base = np.zeros(pca.k)
    if base_coeffs is not None:
        b = np.asarray(base_coeffs, dtype=np.float64).ravel()
        if len(b) > pca.k:
            raise VaeError(f"Got {len(b)} base coefficients but only {pca.k} components were fitted.")
        base[:len(b)] = b
    coeffs = np.repeat(base[None], n, axis=0)
    coeffs[:, component] = np.linspace(-extent, extent, n)
    return pca_to_z(pca, coeffs)


def twonn_dimension(points: np.ndarray, discard_fraction: float = 0.1, max_points: int = 10_000,
                    seed: int = 0) -> float:
    """Intrinsic dimension by TWO-NN (Facco, d'Errico, Rodriguez & Laio 2017, Sci. Rep. 7:12140).

    If the density is roughly constant over the distance to a point's second
    neighbour, mu = r2/r1 follows a Pareto law f(mu) = d mu^-(d+1) whatever the
    density is, so -log(1 - F(mu)) = d log(mu): a line through the origin whose
    slope is the dimension. Only the two nearest neighbours are used, which is why it
    copes with curved manifolds and varying density. The largest mu come from
    points in sparse regions or at the edges where the assumption breaks, and the
    paper discards them before fitting (10% by default).
    """
    x = _as_points(points, "Points")
    if not 0.0 <= discard_fraction < 1.0:
        raise VaeError(f"discard_fraction must be in [0, 1), got {discard_fraction!r}.")
    # Duplicates give r1 = 0 and mu = inf; they carry no information about dimension.
    x = np.unique(x, axis=0)
    if len(x) < 3:
        raise VaeError("Intrinsic dimension needs at least 3 distinct points: encode more of the dataset.")
    if len(x) > max_points:
        rng = np.random.default_rng(seed)
        x = x[rng.choice(len(x), size=max_points, replace=False)]
    from sklearn.neighbors import NearestNeighbors
    dist, _ = NearestNeighbors(n_neighbors=3).fit(x).kneighbors(x)
    r1, r2 = dist[:, 1], dist[:, 2]  # column 0 is the point itself
    ok = r1 > 0  # rounding can still make two distinct points coincide in float64 distances
    mu = np.sort(r2[ok] / r1[ok])
    n = len(mu)
    if n < 3:
        raise VaeError("Intrinsic dimension needs at least 3 distinct points: encode more of the dataset.")
    # Empirical CDF F(mu_i) = i/n. The last point has F = 1 and -log(0) = inf, so at
    # least it is always dropped.
    keep = min(n - 1, max(2, int(np.floor(n * (1.0 - discard_fraction)))))
    f = np.arange(1, keep + 1) / n
    xs = np.log(mu[:keep])
    ys = -np.log1p(-f)
    denom = float(xs @ xs)
    if denom == 0.0:
        # every kept point has r2 == r1 (e.g. a regular lattice): the fit is undefined
        raise VaeError("Intrinsic dimension is undefined for these points (all neighbour ratios are 1): add varied data.")
    return float(xs @ ys / denom)
