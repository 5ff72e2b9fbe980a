import numpy as np
import pytest

from vae_core import VaeError
from vae_core.geometry import fit_pca, pca_to_z, traversal, twonn_dimension


def _rotation(d, rng):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def _anisotropic(n=5000, seed=0):
    """Gaussian with stds 3, 1, 0.3 along the columns of a random rotation, offset from 0."""
    rng = np.random.default_rng(seed)
    rot = _rotation(3, rng)
    stds = np.array([3.0, 1.0, 0.3])
    mean = np.array([1.0, -2.0, 0.5])
    x = (rng.normal(size=(n, 3)) * stds) @ rot.T + mean
    return x, rot, stds, mean


def test_pca_recovers_known_axes_and_stds():
    x, rot, stds, mean = _anisotropic()
    pca = fit_pca(x)
    assert pca.components.shape == (3, 3) and pca.k == 3
    assert np.allclose(np.linalg.norm(pca.components, axis=1), 1.0)
    for i in range(3):
        assert abs(pca.components[i] @ rot[:, i]) > 0.995
    assert np.allclose(pca.std, stds, rtol=0.05)
    assert np.allclose(pca.mean, mean, atol=0.1)
    assert np.isclose(pca.explained_ratio.sum(), 1.0)
    assert np.all(np.diff(pca.explained_ratio) <= 0)
    assert pca.projected.shape == (len(x), 3)
    assert np.allclose(pca.projected.std(axis=0, ddof=1), pca.std)


def test_pca_with_fewer_components():
    x, rot, stds, _ = _anisotropic()
    pca = fit_pca(x, k=2)
    assert pca.components.shape == (2, 3) and pca.std.shape == (2,) and pca.projected.shape == (len(x), 2)
    assert abs(pca.components[0] @ rot[:, 0]) > 0.995


def test_pca_to_z():
    x, *_ = _anisotropic()
    pca = fit_pca(x)
    assert np.allclose(pca_to_z(pca, np.zeros(3)), pca.mean)
    assert np.allclose(pca_to_z(pca, [1.0]), pca.mean + pca.std[0] * pca.components[0])
    assert np.allclose(pca_to_z(pca, [0.0, -2.0]), pca.mean - 2 * pca.std[1] * pca.components[1])
    # a batch of coefficient vectors
    batch = pca_to_z(pca, np.eye(3))
    assert batch.shape == (3, 3)
    assert np.allclose(batch, pca.mean + pca.std[:, None] * pca.components)
    # round trip: projecting then rebuilding returns the latent (k = D)
    assert np.allclose(pca_to_z(pca, pca.projected[:10] / pca.std), x[:10])
    with pytest.raises(VaeError):
        pca_to_z(pca, np.zeros(4))


def test_traversal():
    x, *_ = _anisotropic()
    pca = fit_pca(x)
    tr = traversal(pca, 1, n=7, extent=2.0)
    assert tr.shape == (7, 3)
    assert np.allclose(tr[0], pca.mean - 2.0 * pca.std[1] * pca.components[1])
    assert np.allclose(tr[-1], pca.mean + 2.0 * pca.std[1] * pca.components[1])
    assert np.allclose(tr[3], pca.mean)
    # all points on one line along component 1
    steps = np.diff(tr, axis=0)
    assert np.allclose(steps, steps[0])
    assert abs(steps[0] @ pca.components[1]) / np.linalg.norm(steps[0]) > 1 - 1e-12
    # other components held at base_coeffs
    tr2 = traversal(pca, 0, base_coeffs=[0.0, 1.5], n=5)
    assert np.allclose((tr2 - pca.mean) @ pca.components[1], 1.5 * pca.std[1])
    assert np.allclose((tr2 - pca.mean) @ pca.components[2], 0.0)
    for bad in (-1, 3):
        with pytest.raises(VaeError):
            traversal(pca, bad)
    with pytest.raises(VaeError):
        traversal(pca, 0, n=1)


def test_pca_refuses_too_few_points_or_bad_k():
    with pytest.raises(VaeError):
        fit_pca(np.zeros((1, 4)))
    with pytest.raises(VaeError):
        fit_pca(np.zeros((10, 0)))
    with pytest.raises(VaeError):
        fit_pca(np.random.default_rng(0).normal(size=(10, 3)), k=4)
    with pytest.raises(VaeError):
        fit_pca(np.zeros(5))


def test_twonn_plane_in_10d():
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(size=(2000, 2)), np.zeros((2000, 8))] @ _rotation(10, rng).T
    assert abs(twonn_dimension(pts) - 2.0) < 0.2


def test_twonn_gaussian_5d_in_20d():
    rng = np.random.default_rng(1)
    pts = np.c_[rng.normal(size=(2000, 5)), np.zeros((2000, 15))] @ _rotation(20, rng).T
    assert abs(twonn_dimension(pts) - 5.0) < 0.5


def test_twonn_line_and_curve():
    rng = np.random.default_rng(2)
    t = rng.uniform(0, 1, 1500)
    line = np.outer(t, rng.normal(size=6)) + rng.normal(size=6)
    assert abs(twonn_dimension(line) - 1.0) < 0.15
    s = rng.uniform(0, 4 * np.pi, 1500)
    helix = np.c_[np.cos(s), np.sin(s), s / 3]
    assert abs(twonn_dimension(helix) - 1.0) < 0.15


def test_twonn_ignores_duplicates_and_subsamples():
    rng = np.random.default_rng(3)
    pts = np.c_[rng.uniform(size=(1500, 2)), np.zeros((1500, 3))]
    base = twonn_dimension(pts)
    dup = np.concatenate([pts, pts[:700], pts[:50]])  # duplicates would give r1 = 0
    assert twonn_dimension(dup) == pytest.approx(base)
    sub = twonn_dimension(pts, max_points=800, seed=1)
    assert np.isfinite(sub) and abs(sub - 2.0) < 0.35
    assert twonn_dimension(pts, max_points=800, seed=1) == sub  # seeded


def test_twonn_refuses_too_few_distinct_points():
    with pytest.raises(VaeError):
        twonn_dimension(np.ones((100, 3)))
    with pytest.raises(VaeError):
        twonn_dimension(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(VaeError):
        twonn_dimension(np.random.default_rng(0).normal(size=(50, 2)), discard_fraction=1.0)
