"""Paths between two latents: straight (lerp) or along a great circle (slerp).

Why slerp at all: under a Gaussian prior in D dimensions almost all the mass lies
in a thin shell of radius ~sqrt(D), and the straight line between two typical
samples cuts through the middle, where |z| is smaller than anything the decoder
saw in training. White (2016), "Sampling Generative Networks", proposes walking
the great circle instead. Encoder means mu are not prior samples, so their norms
differ; we therefore slerp the *direction* and interpolate the *norm* linearly,
which keeps the endpoints exactly a and b and reduces to White's slerp when
|a| == |b|.

Latents are float64 (D,) vectors here; decode() casts to float32 itself.
"""
from __future__ import annotations

import numpy as np

from vae_core import VaeError

METHODS = ("lerp", "slerp")
MIN_STEPS, MAX_STEPS = 2, 120

# Below this sin(angle) the plane of the great circle is numerically undefined:
# either a and b point the same way (lerp is then slerp to O(angle^2)) or they
# point opposite ways (any perpendicular will do, so we pick one on purpose).
_DEGENERATE_SIN = 1e-7


def _endpoints(a, b, t):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise VaeError(f"Interpolation needs two latents of the same length, got shapes {a.shape} and {b.shape}.")
    t = np.asarray(t, dtype=np.float64)
    if t.ndim > 1:
        raise VaeError("Interpolation positions t must be a number or a 1-D list of numbers.")
    return a, b, t


def lerp(a, b, t) -> np.ndarray:
    """(1 - t) a + t b. t scalar -> (D,), t of shape (T,) -> (T, D).

    Written as a weighted sum rather than a + t (b - a) so that t = 0 and t = 1
    give a and b bit for bit.
    """
    a, b, t = _endpoints(a, b, t)
    return (1 - t)[..., None] * a + t[..., None] * b


def _perpendicular(u: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to unit u, chosen deterministically.

    Gram-Schmidt of the basis vector on u's smallest |component|: that axis is the
    one least aligned with u (|u_i| <= 1/sqrt(D)), so the residual has norm
    >= sqrt(1 - 1/D) and the division is well conditioned. Ties go to the first axis.
    """
    e = np.zeros_like(u)
    e[np.argmin(np.abs(u))] = 1.0
    p = e - (e @ u) * u
    return p / np.linalg.norm(p)


def slerp(a, b, t) -> np.ndarray:
    """Spherical interpolation of vectors: direction on the great circle, norm linear.

    t scalar -> (D,), t of shape (T,) -> (T, D). Degenerate cases:
      identical a, b        -> a for every t
      a or b is zero        -> lerp (a zero vector has no direction)
      D == 1                -> lerp (the 'sphere' is the two points +-1; for equal signs
                               lerp already is slerp, for opposite signs there is no
                               perpendicular to turn through, so we pass through 0)
      nearly parallel       -> lerp (differs from slerp by O(angle^2))
      exactly opposite      -> rotate through the fixed perpendicular of _perpendicular(a),
                               so the path is continuous and its midpoint has norm (|a|+|b|)/2
    """
    a, b, t = _endpoints(a, b, t)
    if np.array_equal(a, b):
        return np.broadcast_to(a, t.shape + a.shape).copy()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0 or a.size == 1:
        return lerp(a, b, t)
    u, w = a / na, b / nb
    # Orthonormal basis (u, v) of the plane through a and b. The angle comes from
    # atan2(sin, cos) rather than arccos(u.w): arccos loses half the digits near 0 and pi.
    cos = float(u @ w)
    perp = w - cos * u
    sin = float(np.linalg.norm(perp))
    if sin < _DEGENERATE_SIN:
        if cos > 0:
            return lerp(a, b, t)
        v, omega = _perpendicular(u), np.pi
    else:
        v, omega = perp / sin, float(np.arctan2(sin, cos))
    theta = (t * omega)[..., None]
    norm = ((1 - t) * na + t * nb)[..., None]
    out = norm * (np.cos(theta) * u + np.sin(theta) * v)
    # cos(omega) u + sin(omega) v equals w only up to rounding; pin the endpoints
    # so a path starts and ends on exactly the latents the user picked.
    out[t == 0] = a
    out[t == 1] = b
    return out


def path(a, b, steps: int, method: str = "lerp") -> np.ndarray:
    """steps latents from a to b inclusive, evenly spaced in t: (steps, D)."""
    if method not in METHODS:
        raise VaeError(f"Unknown interpolation {method!r}: choose lerp or slerp.")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not MIN_STEPS <= steps <= MAX_STEPS:
        raise VaeError(f"An interpolation needs between {MIN_STEPS} and {MAX_STEPS} steps, got {steps!r}.")
    t = np.linspace(0.0, 1.0, int(steps))
    return (lerp if method == "lerp" else slerp)(a, b, t)
