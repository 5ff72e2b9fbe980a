import numpy as np
import pytest

from vae_core import VaeError
from vae_core.interpolate import lerp, path, slerp

T = np.linspace(0, 1, 51)


def _pair(d=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=d) * 2, rng.normal(size=d) * 0.5


@pytest.mark.parametrize("fn", [lerp, slerp])
def test_endpoints_are_exactly_a_and_b(fn):
    a, b = _pair()
    out = fn(a, b, T)
    assert out.shape == (len(T), len(a))
    assert np.array_equal(out[0], a) and np.array_equal(out[-1], b)
    assert np.array_equal(fn(a, b, 0.0), a) and np.array_equal(fn(a, b, 1.0), b)
    assert fn(a, b, 0.3).shape == a.shape


def test_lerp_midpoint():
    a, b = _pair()
    assert np.allclose(lerp(a, b, 0.5), (a + b) / 2, rtol=0, atol=1e-12)


def test_slerp_keeps_unit_vectors_on_the_sphere():
    a, b = _pair(d=16, seed=1)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    out = slerp(a, b, T)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, rtol=0, atol=1e-12)
    # ...whereas the straight line dips inside it
    assert np.linalg.norm(lerp(a, b, 0.5)) < 0.99


def test_slerp_is_a_great_circle_with_linear_norm():
    a, b = _pair(d=5, seed=2)
    out = slerp(a, b, T)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    assert np.allclose(np.linalg.norm(out, axis=1), (1 - T) * na + T * nb, atol=1e-12)
    # the angle to a grows linearly in t (constant angular speed)
    cos = out @ a / (np.linalg.norm(out, axis=1) * na)
    ang = np.arccos(np.clip(cos, -1, 1))
    omega = np.arccos(a @ b / (na * nb))
    assert np.allclose(ang, T * omega, atol=1e-6)
    # stays in the plane spanned by a and b
    basis, _ = np.linalg.qr(np.stack([a, b], axis=1))
    assert np.allclose(out - out @ basis @ basis.T, 0, atol=1e-10)


def test_identical_endpoints_return_a_everywhere():
    a, _ = _pair()
    for fn in (lerp, slerp):
        out = fn(a, a.copy(), T)
        assert np.all(np.isfinite(out)) and np.allclose(out, a, rtol=0, atol=1e-15)


def test_nearly_parallel_is_finite_and_close_to_lerp():
    a = np.array([1.0, 0.0, 0.0])
    b = 2.0 * np.array([np.cos(1e-9), np.sin(1e-9), 0.0])
    out = slerp(a, b, T)
    assert np.all(np.isfinite(out))
    assert np.allclose(out, lerp(a, b, T), rtol=0, atol=1e-12)
    # and a small but resolvable angle still goes round the circle, not the chord
    b2 = np.array([np.cos(1e-3), np.sin(1e-3), 0.0])
    assert np.allclose(np.linalg.norm(slerp(a, b2, T), axis=1), 1.0, atol=1e-14)


@pytest.mark.parametrize("d", [2, 3, 10])
def test_opposite_endpoints_turn_through_a_perpendicular(d):
    rng = np.random.default_rng(d)
    a = rng.normal(size=d)
    t = np.linspace(0, 1, 101)
    out = slerp(a, -a, t)
    assert np.all(np.isfinite(out))
    assert np.array_equal(out[0], a) and np.array_equal(out[-1], -a)
    mid = out[50]
    assert abs(mid @ a) < 1e-10 * (a @ a)
    assert np.isclose(np.linalg.norm(mid), np.linalg.norm(a), rtol=1e-12)
    # continuous: every step moves by one arc length |a| * pi / 100, no jumps
    steps = np.linalg.norm(np.diff(out, axis=0), axis=1)
    assert steps.max() < 1.01 * np.linalg.norm(a) * np.pi / 100
    # deterministic
    assert np.array_equal(out, slerp(a, -a, t))


def test_opposite_endpoints_with_different_norms_midpoint_is_mean_norm():
    a = np.array([3.0, 1.0, -2.0])
    out = slerp(a, -2 * a, 0.5)
    assert abs(out @ a) < 1e-10
    assert np.isclose(np.linalg.norm(out), 1.5 * np.linalg.norm(a))


def test_nearly_opposite_is_finite_and_on_the_sphere():
    a = np.array([1.0, 0.0, 0.0])
    for eps in (1e-12, 1e-8, 1e-5):
        b = np.array([-np.cos(eps), np.sin(eps), 0.0])
        out = slerp(a, b, T)
        assert np.all(np.isfinite(out))
        assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-9)
        assert np.allclose(out[-1], b) and np.array_equal(out[0], a)


def test_zero_endpoint_falls_back_to_lerp():
    a, _ = _pair()
    z = np.zeros_like(a)
    for x, y in ((a, z), (z, a), (z, z)):
        out = slerp(x, y, T)
        assert np.all(np.isfinite(out))
        assert np.allclose(out, lerp(x, y, T), atol=1e-15)


def test_one_dimensional_latents():
    # same sign: direction is constant and the norm linear, i.e. lerp
    assert np.allclose(slerp([2.0], [5.0], T), lerp([2.0], [5.0], T))
    # opposite signs: there is no perpendicular in 1-D, so we pass through zero like lerp
    out = slerp([2.0], [-1.0], T)
    assert out.shape == (len(T), 1) and np.all(np.isfinite(out))
    assert np.allclose(out, lerp([2.0], [-1.0], T))


def test_path_steps_and_methods():
    a, b = _pair()
    for steps in (2, 120):
        for method in ("lerp", "slerp"):
            p = path(a, b, steps, method)
            assert p.shape == (steps, len(a))
            assert np.array_equal(p[0], a) and np.array_equal(p[-1], b)
    assert np.allclose(path(a, b, 3)[1], (a + b) / 2)
    for bad in (1, 121, 0, -5, 2.5, True):
        with pytest.raises(VaeError):
            path(a, b, bad)
    with pytest.raises(VaeError):
        path(a, b, 10, "cubic")


def test_mismatched_shapes_are_refused():
    with pytest.raises(VaeError):
        slerp(np.zeros(3), np.zeros(4), 0.5)
    with pytest.raises(VaeError):
        lerp(np.zeros((2, 3)), np.zeros((2, 3)), 0.5)
