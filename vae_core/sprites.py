"""Sprites: a dSprites-style dataset generated here, with no download.

It follows the factor grid of dSprites (Matthey et al. 2017,
github.com/deepmind/dsprites-dataset): shape {square, ellipse, heart} x scale
(6 values, 0.5..1) x orientation (40 values, 0..2pi) x position x (32) x position
y (32) = 737,280 binary 64x64 images. It is NOT DeepMind's .npz file: the shapes
are drawn by the inside tests below, so sizes and pixels differ from theirs;
the factors, their values and the index order are dSprites' own.

Names (wired into vae_core.data elsewhere):
  sprites        binary images (N, 64, 64) uint8 in {0, 255}
  color-sprites  the same shapes filled with one colour per image, (N, 3, 64, 64)
                 on black: Locatello et al. 2019's colour variant, which draws each
                 channel uniformly in [0.5, 1] (disentanglement_lib's ColorDSprites).
                 There the colour is drawn afresh every time an image is sampled;
                 here it is fixed per grid index, so an image is the same every time.

Conventions (the ones dSprites documents, then ours where it says nothing):
  index       row-major over FACTOR_SIZES, y fastest: dSprites' file order without
              its constant colour factor. index_to_factors / factors_to_index.
  values      scale linspace(0.5, 1, 6); orientation linspace(0, 2pi, 40): both ends
              are included, as in dSprites, so orientation 0 and 39 render alike
              (and a square looks the same a quarter turn on, an ellipse half a
              turn on: orientation is not identifiable over its whole range, a
              dSprites property the disentanglement metrics inherit);
              x, y linspace(0, 1, 32).
  canvas      pixel (row r, column c) has its centre at (c + 0.5, r + 0.5); x runs
              right along columns, y runs down along rows (as an image is shown).
              Position (x, y) puts the shape's centre at 16.5 + 31 * (x, y): on the
              grid that is exactly the centre of pixel 16 + k, so one position step
              is a translation by exactly one whole pixel, and the whole shape stays
              at least one pixel inside the border at every pose.
  orientation the shape turns counter-clockwise on screen by the angle, about its
              centre (the heart about its centroid).
  shapes      at scale 1: a square of side 20.4 px; an ellipse of semi-axes 14.3 x
              7.1 px, long axis horizontal at orientation 0; the heart curve
              (X^2 + Y^2 - 1)^3 - X^2 Y^3 <= 0 at 11 px a unit, lobes up at
              orientation 0. Each reaches at most 14.5 px from its centre, and the
              sizes avoid pixel centres lying exactly on an edge, so no pixel depends
              on the last bit of a sine.
  repeats     681,984 of the 737,280 images are distinct (benchmarks/sprites_gen.py
              counts them): 18,432 are orientation 39 = orientation 0, and at the
              smallest scales a square about a quarter turn on (10 steps, 92 deg)
              or an ellipse about half a turn on (19 steps, 175 deg) rasterises to
              the same pixels (36,864 more). dSprites says its values were chosen
              so that every image differs; on a 64-pixel grid with symmetric
              shapes ours do not quite.

Rendering: a pixel is ink when its centre, taken back through the translation,
rotation and scale, passes the shape's inside test. Because every grid position
is a whole-pixel shift, the 720 poses (shape x scale x orientation) are rendered
once into a small bank and each image is a 64x64 window of its pose's padded
sprite: one numpy gather for any batch of indices, so the whole grid renders in
about a second and nothing is held but the images asked for. render_values()
evaluates the same tests directly on the canvas for any real-valued factors.

Splits: the test split is a fixed 10,000 indices (the smallest of a splitmix64
hash of each index: our own function, so no library's random stream can move it);
the rest is train. A split comes in a fixed pseudo-random order, and `limit` takes
a prefix of a seeded order: a seeded random subset, nested as limit grows.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vae_core import VaeError

FACTOR_NAMES = ("shape", "scale", "orientation", "x", "y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
NUM_IMAGES = math.prod(FACTOR_SIZES)  # 737,280
IMAGE_SIZE = 64
TEST_SIZE = 10_000
SPLITS = ("train", "test")

SCALES = np.linspace(0.5, 1.0, FACTOR_SIZES[1])
ORIENTATIONS = np.linspace(0.0, 2 * np.pi, FACTOR_SIZES[2])
POSITIONS = np.linspace(0.0, 1.0, FACTOR_SIZES[3])

# Geometry in pixels at scale 1 (see the module docstring).
POSITION_MIN_PX, POSITION_SPAN_PX = 16.5, 31.0
SQUARE_HALF_SIDE = 10.2
ELLIPSE_SEMI_AXES = (14.3, 7.1)
HEART_PX_PER_UNIT = 11.0
HEART_CENTROID_Y = 0.2935  # the heart curve's centroid (in its own units) sits above y = 0

_PATCH = 15                        # the bank holds offsets -15..15 around the centre pixel
_PAD = _PATCH + 32                 # padded sprite: 95 x 95, centre pixel at (47, 47)
_POSES = FACTOR_SIZES[0] * FACTOR_SIZES[1] * FACTOR_SIZES[2]      # 720
_PER_POSE = FACTOR_SIZES[3] * FACTOR_SIZES[4]                     # 1,024

# splitmix64 stream tags: one per purpose, so the test split, the orders and the
# colours never reuse each other's hashes.
_TEST_SPLIT_TAG, _ORDER_TAG, _COLOUR_TAG = 1, 2, 3


# ---------------------------------------------------------------- factors and indices

def index_to_factors(idx) -> np.ndarray:
    """Grid indices (N,) -> factor indices (N, 5) int64 (row-major over FACTOR_SIZES)."""
    idx = np.atleast_1d(np.asarray(idx))
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise VaeError("Sprite indices must be a 1-D array of integers.")
    if idx.size and (idx.min() < 0 or idx.max() >= NUM_IMAGES):
        raise VaeError(f"Sprite indices must lie in 0..{NUM_IMAGES - 1}.")
    return np.stack(np.unravel_index(idx.astype(np.int64), FACTOR_SIZES), axis=1).astype(np.int64)


def factors_to_index(factors) -> np.ndarray:
    """Factor indices (N, 5) -> grid indices (N,) int64."""
    f = _check_factors(factors)
    return np.ravel_multi_index(tuple(f.T), FACTOR_SIZES).astype(np.int64)


def factor_values(factors) -> np.ndarray:
    """Factor indices (N, 5) -> values (N, 5) float64: shape index, scale, radians, x, y in [0, 1]."""
    f = _check_factors(factors)
    return np.stack([f[:, 0].astype(np.float64), SCALES[f[:, 1]], ORIENTATIONS[f[:, 2]],
                     POSITIONS[f[:, 3]], POSITIONS[f[:, 4]]], axis=1)


def factor_index(name_or_index) -> int:
    """'scale' or 1 -> 1: the column of a factor."""
    if isinstance(name_or_index, (int, np.integer)) and 0 <= name_or_index < len(FACTOR_NAMES):
        return int(name_or_index)
    if name_or_index in FACTOR_NAMES:
        return FACTOR_NAMES.index(name_or_index)
    raise VaeError(f"Unknown sprite factor {name_or_index!r}: choose one of {', '.join(FACTOR_NAMES)} "
                   f"or 0..{len(FACTOR_NAMES) - 1}.")


def sample_factors(n: int, rng=None, fixed: dict | None = None) -> np.ndarray:
    """n factor rows (n, 5) int64 drawn uniformly from the grid, with some factors held.

    fixed maps a factor (name or column) to one value index, or to n of them: e.g.
    {"scale": 2} holds every row's scale at SCALES[2]; {"shape": f[:, 0]} copies the
    shapes of another batch (the pairs of the BetaVAE score). rng: a numpy Generator
    or a seed.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if n < 0:
        raise VaeError(f"Cannot sample {n} sprite factor rows.")
    f = np.stack([rng.integers(0, size, n) for size in FACTOR_SIZES], axis=1).astype(np.int64)
    for key, value in (fixed or {}).items():
        k = factor_index(key)
        value = np.asarray(value)
        if value.ndim > 1 or (value.ndim == 1 and value.shape[0] != n):
            raise VaeError(f"A fixed value for {FACTOR_NAMES[k]} must be one index or {n} of them.")
        if not np.issubdtype(value.dtype, np.integer) or value.min(initial=0) < 0 \
                or value.max(initial=0) >= FACTOR_SIZES[k]:
            raise VaeError(f"{FACTOR_NAMES[k]} takes indices 0..{FACTOR_SIZES[k] - 1}.")
        f[:, k] = value
    return f


def _check_factors(factors) -> np.ndarray:
    f = np.asarray(factors)
    if f.ndim == 1:
        f = f[None, :]
    if f.ndim != 2 or f.shape[1] != len(FACTOR_SIZES) or not np.issubdtype(f.dtype, np.integer):
        raise VaeError(f"Sprite factors must be an integer array of shape (N, {len(FACTOR_SIZES)}).")
    if f.size and ((f < 0).any() or (f >= np.asarray(FACTOR_SIZES)).any()):
        raise VaeError("Sprite factors out of range: " + ", ".join(
            f"{name} 0..{size - 1}" for name, size in zip(FACTOR_NAMES, FACTOR_SIZES)) + ".")
    return f.astype(np.int64, copy=False)


# ---------------------------------------------------------------- shapes

def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The inside test of one shape at local coordinates in pixels at scale 1 (v points up).

    Plain products rather than powers: np.power can go through libm's pow, whose last
    bit may differ between machines; * and + are exactly rounded everywhere.
    """
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) <= SQUARE_HALF_SIDE
    if shape == 1:
        a = u / ELLIPSE_SEMI_AXES[0]
        b = v / ELLIPSE_SEMI_AXES[1]
        return a * a + b * b <= 1.0
    x = u / HEART_PX_PER_UNIT
    y = v / HEART_PX_PER_UNIT + HEART_CENTROID_Y
    x2, y2 = x * x, y * y
    w = x2 + y2 - 1.0
    return w * w * w - x2 * y2 * y <= 0.0


def _local(dx, dy_up, cos_t, sin_t, scale):
    """Canvas offsets from the centre -> the shape's own frame (undo rotation, then scale)."""
    u = (cos_t * dx + sin_t * dy_up) / scale
    v = (cos_t * dy_up - sin_t * dx) / scale
    return u, v


@lru_cache(maxsize=1)
def _bank() -> np.ndarray:
    """(720, 32, 32, 64, 64) read-only view: [pose, y index, x index] is that image.

    Each pose (shape, scale, orientation) is rendered once on offsets -15..15 around
    a pixel centre and padded to 95 x 95; the image at grid position (kx, ky) is the
    64 x 64 window starting at (31 - ky, 31 - kx). 6.5 MB in all.
    """
    off = np.arange(-_PATCH, _PATCH + 1, dtype=np.float64)
    dx = off[None, :]          # columns: right
    dy_up = -off[:, None]      # rows go down the image; the shape's v goes up
    # math.cos/sin on Python floats: the same on every machine, unlike SIMD array paths
    cos = np.array([math.cos(t) for t in ORIENTATIONS.tolist()])
    sin = np.array([math.sin(t) for t in ORIENTATIONS.tolist()])
    n_sc, n_or = FACTOR_SIZES[1], FACTOR_SIZES[2]
    sprites = np.zeros((_POSES, 2 * _PAD + 1, 2 * _PAD + 1), dtype=np.uint8)
    lo, hi = _PAD - _PATCH, _PAD + _PATCH + 1
    for shape in range(FACTOR_SIZES[0]):
        sc = SCALES[:, None, None, None]
        c, s = cos[None, :, None, None], sin[None, :, None, None]
        u, v = _local(dx, dy_up, c, s, sc)                      # (6, 40, 31, 31)
        ink = _inside(shape, u, v).reshape(n_sc * n_or, 2 * _PATCH + 1, 2 * _PATCH + 1)
        sprites[shape * n_sc * n_or:(shape + 1) * n_sc * n_or, lo:hi, lo:hi] = ink * np.uint8(255)
    sprites.setflags(write=False)
    windows = sliding_window_view(sprites, (IMAGE_SIZE, IMAGE_SIZE), axis=(1, 2))
    return windows[:, ::-1, ::-1]  # start 31 - k -> index k


# ---------------------------------------------------------------- rendering

def render(factors, colour: bool = False, batch: int = 8192) -> np.ndarray:
    """Factor rows (N, 5) -> images: (N, 64, 64) uint8 in {0, 255}, or colour (N, 3, 64, 64).

    The colour of an image belongs to its grid index, so rendering by factors or by
    index gives the same bytes.
    """
    f = _check_factors(factors)
    bank = _bank()
    pose = (f[:, 0] * FACTOR_SIZES[1] + f[:, 1]) * FACTOR_SIZES[2] + f[:, 2]
    if not colour:
        return bank[pose, f[:, 4], f[:, 3]]
    out = np.empty((len(f), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    rgb = colours(factors_to_index(f))
    for i0 in range(0, len(f), batch):  # bounds the mask temporary to batch x 4 KB
        sl = slice(i0, i0 + batch)
        mask = bank[pose[sl], f[sl, 4], f[sl, 3]]
        np.bitwise_and(mask[:, None], rgb[sl, :, None, None], out=out[sl])  # 255 & c = c
    return out


def render_indices(indices, colour: bool = False) -> np.ndarray:
    """Grid indices (N,) -> images, as render()."""
    return render(index_to_factors(indices), colour)


def colours(indices) -> np.ndarray:
    """Grid indices (N,) -> fill colours (N, 3) uint8, each channel uniform in 128..255.

    128..255 are the byte values of [0.5, 1] x 255: Locatello et al.'s range. Drawn
    from a splitmix64 hash of the index, so no generator state and no per-image loop.
    """
    idx = np.atleast_1d(np.asarray(indices)).astype(np.uint64)
    h = _hash(_COLOUR_TAG, 0, idx)
    # three 7-bit fields from well-separated bits of one 64-bit hash
    return np.stack([128 + ((h >> np.uint64(shift)) & np.uint64(127)) for shift in (0, 21, 42)],
                    axis=1).astype(np.uint8)


def render_values(values, batch: int = 512) -> np.ndarray:
    """Real-valued factors (N, 5) as factor_values() gives -> binary images (N, 64, 64).

    Evaluates the inside tests on the whole canvas, so any scale, angle or position
    works (off the grid too). On grid values it matches render(), up to pixels whose
    centre lies within rounding error of an edge. Float work is bounded to batch x 4096.
    """
    val = np.asarray(values, dtype=np.float64)
    if val.ndim == 1:
        val = val[None, :]
    if val.ndim != 2 or val.shape[1] != len(FACTOR_SIZES):
        raise VaeError(f"Sprite factor values must have shape (N, {len(FACTOR_SIZES)}).")
    shapes = val[:, 0]
    if not np.isin(shapes, np.arange(FACTOR_SIZES[0])).all() or (val[:, 1] <= 0).any():
        raise VaeError("Sprite shape values must be 0, 1 or 2 and scales positive.")
    pix = np.arange(IMAGE_SIZE, dtype=np.float64) + 0.5
    out = np.zeros((len(val), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for i0 in range(0, len(val), batch):
        v = val[i0:i0 + batch]
        cx = POSITION_MIN_PX + POSITION_SPAN_PX * v[:, 3]
        cy = POSITION_MIN_PX + POSITION_SPAN_PX * v[:, 4]
        dx = pix[None, None, :] - cx[:, None, None]
        dy_up = cy[:, None, None] - pix[None, :, None]
        c, s = np.cos(v[:, 2])[:, None, None], np.sin(v[:, 2])[:, None, None]
        u, w = _local(dx, dy_up, c, s, v[:, 1][:, None, None])
        for shape in range(FACTOR_SIZES[0]):
            rows = np.flatnonzero(v[:, 0] == shape)
            if rows.size:
                out[i0 + rows] = _inside(shape, u[rows], w[rows]) * np.uint8(255)
    return out


# ---------------------------------------------------------------- splits

def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorised splitmix64 finaliser (Steele et al. 2014): a bijection on uint64."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _hash(tag: int, seed: int, idx: np.ndarray) -> np.ndarray:
    """One uint64 per index for a (purpose, seed) stream; distinct indices never collide."""
    key = _splitmix64(np.array([(tag << 32) | (seed & 0xFFFFFFFF)], dtype=np.uint64))
    return _splitmix64(idx.astype(np.uint64) + key)


@lru_cache(maxsize=1)
def _test_mask() -> np.ndarray:
    h = _hash(_TEST_SPLIT_TAG, 0, np.arange(NUM_IMAGES, dtype=np.uint64))
    mask = h <= np.partition(h, TEST_SIZE - 1)[TEST_SIZE - 1]  # hashes are distinct: exactly 10,000
    mask.setflags(write=False)
    return mask


def split_indices(split: str, limit: int | None = None, seed: int = 0) -> np.ndarray:
    """Grid indices (N,) int64 of a split, in a fixed pseudo-random order for `seed`.

    test: a fixed 10,000 (the same forever, whatever the seed); train: the other
    727,280. limit: the first `limit` of that order, so a seeded random subset of the
    split; a larger limit extends a smaller one. No image is rendered.
    """
    if split not in SPLITS:
        raise VaeError(f"Unknown split {split!r}: choose train or test.")
    if limit is not None and limit < 1:
        raise VaeError(f"limit must be at least 1 (got {limit}).")
    if not 0 <= seed < 2 ** 32:
        raise VaeError(f"seed must lie in 0..{2 ** 32 - 1} (got {seed}).")
    members = np.flatnonzero(_test_mask() if split == "test" else ~_test_mask())
    keys = _hash(_ORDER_TAG, seed, members)
    if limit is not None and limit < len(members):
        first = np.argpartition(keys, limit - 1)[:limit]
        return members[first[np.argsort(keys[first])]].astype(np.int64)
    return members[np.argsort(keys)].astype(np.int64)


# ---------------------------------------------------------------- the dataset object

class Sprites:
    """One split of sprites / color-sprites: factors held, images rendered when asked.

    len(ds); ds.images(i0, i1) or ds[i] / ds[i0:i1] / ds[index array] -> uint8 images;
    ds.indices (N,) grid indices; ds.factors (N, 5); ds.labels (N,) = shape index;
    ds.class_names = the shapes. Holding a split costs 56 bytes an image (its factors,
    indices and labels), not the 4 KB (12 KB in colour) of its pixels.
    """

    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    class_names = list(SHAPES)

    def __init__(self, split: str = "train", colour: bool = False, limit: int | None = None,
                 seed: int = 0):
        self.name = "color-sprites" if colour else "sprites"
        self.split = split
        self.colour = colour
        self.indices = split_indices(split, limit, seed)
        self.factors = index_to_factors(self.indices)
        self.labels = self.factors[:, 0].copy()

    @property
    def image_shape(self) -> tuple[int, ...]:
        return (3, IMAGE_SIZE, IMAGE_SIZE) if self.colour else (IMAGE_SIZE, IMAGE_SIZE)

    def __len__(self) -> int:
        return len(self.indices)

    def images(self, i0: int = 0, i1: int | None = None) -> np.ndarray:
        """Images i0..i1 of this split (in its order)."""
        return render(self.factors[i0:i1], self.colour)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return render(self.factors[[key]], self.colour)[0]
        return render(self.factors[key], self.colour)
