import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vae_core import VaeError
from vae_core import sprites as S

REPO = Path(__file__).resolve().parent.parent
ALL = np.arange(S.NUM_IMAGES)

# Pinned: change these only on purpose, knowing every stored run on sprites changes meaning.
TEST_SPLIT_SHA256 = "a34eb4fb553b8ba0894f923be9aea1b237faa6b66ee8bb27464aaaa958d5e664"
POSES_SHA256 = "2399fd600d665df7e6c5f7d34ae52999d50efa306adec353434264ebf36e6ab7"


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def ink(images: np.ndarray) -> np.ndarray:
    return (images > 0).reshape(len(images), -1).sum(1)


def grid(**ranges) -> np.ndarray:
    """Factor rows for every combination of the given index lists (others 0)."""
    axes = [np.atleast_1d(ranges.get(name, 0)) for name in S.FACTOR_NAMES]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 5)


def run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


# ---------------------------------------------------------------- factors

def test_factor_grid_is_dsprites_grid():
    assert S.FACTOR_NAMES == ("shape", "scale", "orientation", "x", "y")
    assert S.FACTOR_SIZES == (3, 6, 40, 32, 32) and S.NUM_IMAGES == 737_280
    assert S.SHAPES == ("square", "ellipse", "heart")
    assert S.SCALES[0] == 0.5 and S.SCALES[-1] == 1.0 and len(S.SCALES) == 6
    assert S.ORIENTATIONS[0] == 0 and S.ORIENTATIONS[-1] == pytest.approx(2 * np.pi)
    assert S.POSITIONS[0] == 0 and S.POSITIONS[-1] == 1 and len(S.POSITIONS) == 32


def test_index_factor_round_trip_over_the_whole_grid():
    f = S.index_to_factors(ALL)
    assert f.shape == (S.NUM_IMAGES, 5) and f.dtype == np.int64
    assert np.array_equal(S.factors_to_index(f), ALL)
    assert len(np.unique(f, axis=0)) == S.NUM_IMAGES          # every tuple once
    for k, size in enumerate(S.FACTOR_SIZES):                 # each value equally often
        assert np.array_equal(np.bincount(f[:, k]), np.full(size, S.NUM_IMAGES // size))
    # row-major, y fastest (dSprites' file order without its constant colour)
    assert f[1].tolist() == [0, 0, 0, 0, 1] and f[32].tolist() == [0, 0, 0, 1, 0]
    assert f[-1].tolist() == [2, 5, 39, 31, 31]
    v = S.factor_values(f[[0, -1]])
    assert v[0].tolist() == [0, 0.5, 0, 0, 0]
    assert v[1] == pytest.approx([2, 1.0, 2 * np.pi, 1, 1])


def test_out_of_range_factors_and_indices_are_refused():
    with pytest.raises(VaeError):
        S.factors_to_index([[3, 0, 0, 0, 0]])
    with pytest.raises(VaeError):
        S.render([[0, 0, 40, 0, 0]])
    with pytest.raises(VaeError):
        S.index_to_factors([S.NUM_IMAGES])
    with pytest.raises(VaeError):
        S.render(np.zeros((2, 4), dtype=np.int64))


# ---------------------------------------------------------------- determinism

def test_rendering_is_deterministic_within_and_across_processes():
    idx = np.random.default_rng(1).integers(0, S.NUM_IMAGES, 300)
    here = [sha(S.render_indices(idx)), sha(S.render_indices(idx, colour=True))]
    assert here == [sha(S.render_indices(idx)), sha(S.render_indices(idx, colour=True))]
    there = run_python(f"""
        import hashlib, numpy as np
        from vae_core import sprites as S
        idx = np.random.default_rng(1).integers(0, S.NUM_IMAGES, 300)
        for colour in (False, True):
            print(hashlib.sha256(S.render_indices(idx, colour=colour).tobytes()).hexdigest())
    """).split()
    assert there == here


def test_every_pose_renders_the_pinned_pixels():
    # all 720 (shape, scale, orientation) poses at one position: the geometry, pinned
    poses = S.render(grid(shape=range(3), scale=range(6), orientation=range(40)))
    assert sha(poses) == POSES_SHA256


def test_factors_render_the_image_of_their_index():
    ds = S.Sprites("test", limit=500)
    by_index = S.render_indices(ds.indices)
    assert np.array_equal(ds.images(), by_index)
    assert np.array_equal(S.render(S.index_to_factors(ds.indices)), by_index)
    assert np.array_equal(S.render(ds.factors), by_index)
    # the direct evaluation on the canvas from the factor values gives the same pixels
    assert np.array_equal(S.render_values(S.factor_values(ds.factors)), by_index)


# ---------------------------------------------------------------- geometry

def test_every_pose_has_ink_and_is_never_clipped_at_the_extreme_positions():
    poses = dict(shape=range(3), scale=range(6), orientation=range(40))
    centre = S.render(grid(**poses, x=15, y=15))
    assert ink(centre).min() > 50
    assert set(np.unique(centre).tolist()) == {0, 255}
    for x, y in ((0, 0), (0, 31), (31, 0), (31, 31)):
        im = S.render(grid(**poses, x=x, y=y))
        border = np.concatenate([im[:, 0], im[:, -1], im[:, :, 0], im[:, :, -1]], axis=1)
        assert not border.any(), f"ink on the border at x={x}, y={y}"
        assert np.array_equal(ink(im), ink(centre))  # the same area: nothing cut off


def test_x_moves_right_and_y_moves_down_one_pixel_a_step():
    f = grid(shape=range(3), scale=[0, 5], orientation=[0, 7], x=range(31), y=[3, 20])
    step_x = f.copy()
    step_x[:, 3] += 1
    assert np.array_equal(S.render(step_x), np.roll(S.render(f), 1, axis=2))
    f[:, [3, 4]] = f[:, [4, 3]]
    step_y = f.copy()
    step_y[:, 4] += 1
    assert np.array_equal(S.render(step_y), np.roll(S.render(f), 1, axis=1))


def test_shapes_differ_at_the_same_pose():
    f = grid(scale=range(6), orientation=range(0, 40, 3), x=10, y=20)
    masks = []
    for shape in range(3):
        f[:, 0] = shape
        masks.append(S.render(f) > 0)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        inter = (masks[a] & masks[b]).sum((1, 2))
        union = (masks[a] | masks[b]).sum((1, 2))
        assert (inter / union).max() < 0.9, (S.SHAPES[a], S.SHAPES[b])


def test_ellipse_long_axis_follows_orientation():
    im = S.render(grid(shape=1, scale=5, orientation=range(40), x=15, y=15)) > 0
    rows, cols = np.mgrid[:64, :64]
    for k, img in enumerate(im):
        x, y = cols[img] - cols[img].mean(), -(rows[img] - rows[img].mean())  # y up
        cov = np.cov(np.stack([x, y]))
        angle = 0.5 * np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])   # long axis, mod pi
        err = (angle - S.ORIENTATIONS[k] + np.pi / 2) % np.pi - np.pi / 2
        assert abs(np.degrees(err)) < 2, (k, np.degrees(angle))


def test_a_quarter_turn_rotates_the_image_counter_clockwise():
    # at x = y = 0.5 the centre is a pixel corner, so a quarter turn maps pixels to pixels
    for shape in range(3):
        for angle in S.ORIENTATIONS[:10]:
            a, b = S.render_values([[shape, 1.0, angle, 0.5, 0.5],
                                    [shape, 1.0, angle + np.pi / 2, 0.5, 0.5]])
            differ = (np.rot90(a) != b).sum()
            assert differ <= 0.01 * (a > 0).sum(), (shape, angle, differ)


def test_heart_is_upright_at_orientation_0_and_the_ends_of_orientation_coincide():
    heart = S.render([[2, 5, 0, 15, 15]])[0] > 0
    rows = np.nonzero(heart)[0]
    assert rows.mean() < (rows.min() + rows.max()) / 2      # mass in the lobes, tip at the bottom
    # dSprites' linspace(0, 2pi, 40) includes both ends: orientation 39 draws orientation 0
    f = grid(shape=range(3), scale=range(6), x=[0, 31], y=[5])
    last = f.copy()
    last[:, 2] = 39
    assert np.array_equal(S.render(f), S.render(last))


def test_area_grows_with_scale_at_every_orientation():
    for shape in range(3):
        f = grid(shape=shape, scale=range(6), orientation=range(40), x=9, y=22)
        area = ink(S.render(f)).reshape(6, 40)
        assert (np.diff(area, axis=0) > 0).all(), S.SHAPES[shape]
        assert (area[-1] > 3 * area[0]).all()   # scale 1 vs 0.5: about four times the area


# ---------------------------------------------------------------- splits

def test_test_split_is_fixed_disjoint_and_limit_is_a_seeded_nested_subset():
    test, train = S.split_indices("test"), S.split_indices("train")
    assert len(test) == 10_000 and len(train) == S.NUM_IMAGES - 10_000
    assert sha(np.sort(test).astype("<i8")) == TEST_SPLIT_SHA256
    assert np.array_equal(np.sort(np.concatenate([test, train])), ALL)  # disjoint, covering
    assert set(np.bincount(S.index_to_factors(test)[:, 0]) // 100) <= {32, 33, 34}  # ~balanced shapes
    assert set(S.split_indices("test", seed=5).tolist()) == set(test.tolist())  # seed orders only

    small = S.split_indices("train", limit=1000, seed=3)
    assert len(small) == 1000 and len(set(small.tolist())) == 1000
    assert np.isin(small, train).all()
    assert np.array_equal(small, S.split_indices("train", limit=1000, seed=3))
    assert np.array_equal(small[:100], S.split_indices("train", limit=100, seed=3))
    assert np.array_equal(small, S.split_indices("train", seed=3)[:1000])
    other = S.split_indices("train", limit=1000, seed=4)
    assert len(np.intersect1d(small, other)) < 50              # a different seed, another subset
    assert not np.array_equal(np.sort(small), small)           # a random order, not grid order
    assert len(S.split_indices("test", limit=50_000)) == 10_000
    with pytest.raises(VaeError):
        S.split_indices("valid")
    with pytest.raises(VaeError):
        S.split_indices("train", limit=0)


def test_a_subset_renders_only_its_images():
    # Peak allocation, in a fresh process: the whole grid is 3 GB (9 GB in colour), so
    # rendering it, or any sizeable part of it, on the way to a subset shows here.
    # tracemalloc sees numpy's buffers; ru_maxrss would not do: a child starts with its
    # parent's peak RSS (Linux keeps it across fork and exec).
    peak_mb = float(run_python("""
        import tracemalloc
        import numpy as np
        from vae_core import sprites as S
        S.render_indices([0])                                 # warm the imports
        tracemalloc.start()
        ds = S.Sprites("train", limit=1000)
        a = ds.images()
        b = S.Sprites("test", colour=True, limit=1000).images()
        full = S.Sprites("train")                              # the whole split's factors
        c = full[np.arange(0, len(full), 1000)]
        assert a.shape == (1000, 64, 64) and b.shape == (1000, 3, 64, 64) and len(c) == 728
        print(tracemalloc.get_traced_memory()[1] / 2 ** 20)
    """))
    assert peak_mb < 150, f"peak allocation {peak_mb:.0f} MB"


# ---------------------------------------------------------------- the dataset object

def test_dataset_object_holds_factors_and_labels_and_renders_on_demand():
    ds = S.Sprites("test")
    assert len(ds) == 10_000 and ds.name == "sprites" and ds.image_shape == (64, 64)
    assert ds.factors.shape == (10_000, 5) and np.array_equal(ds.labels, ds.factors[:, 0])
    assert ds.class_names == ["square", "ellipse", "heart"]
    assert ds.factor_names == S.FACTOR_NAMES and ds.factor_sizes == S.FACTOR_SIZES
    first = ds.images(0, 10)
    assert first.shape == (10, 64, 64) and first.dtype == np.uint8
    assert np.array_equal(ds[3], first[3]) and np.array_equal(ds[2:5], first[2:5])
    assert np.array_equal(ds[np.array([7, 1])], first[[7, 1]])
    assert np.array_equal(ds[-1], ds.images(9999, 10_000)[0])


def test_sample_factors_holds_the_fixed_factors_and_varies_the_rest():
    f = S.sample_factors(2000, np.random.default_rng(0), fixed={"scale": 2, 4: 7})
    assert f.shape == (2000, 5) and f.dtype == np.int64
    assert (f[:, 1] == 2).all() and (f[:, 4] == 7).all()
    for k in (0, 2, 3):
        assert len(np.unique(f[:, k])) == S.FACTOR_SIZES[k]
    assert np.array_equal(f, S.sample_factors(2000, 0, fixed={"scale": 2, "y": 7}))
    pairs = S.sample_factors(2000, 1, fixed={"orientation": f[:, 2]})   # BetaVAE-style pairs
    assert np.array_equal(pairs[:, 2], f[:, 2]) and not np.array_equal(pairs[:, 0], f[:, 0])
    with pytest.raises(VaeError):
        S.sample_factors(10, 0, fixed={"colour": 1})
    with pytest.raises(VaeError):
        S.sample_factors(10, 0, fixed={"scale": 6})


# ---------------------------------------------------------------- colour

def test_colour_images_are_one_colour_in_the_upper_half_on_black_per_index():
    ds = S.Sprites("test", colour=True, limit=1000)
    im = ds.images()
    assert im.shape == (1000, 3, 64, 64) and im.dtype == np.uint8 and ds.name == "color-sprites"
    mask = S.render_indices(ds.indices) > 0
    assert np.array_equal(im.any(axis=1), mask)                   # black exactly off the shape
    expected = S.colours(ds.indices)
    for img, m, rgb in zip(im, mask, expected):
        assert (img[:, m] == rgb[:, None]).all()                  # every shape pixel one colour
    assert expected.min() >= 128 and expected.max() <= 255        # [0.5, 1] x 255
    assert abs(expected.mean() - 191.5) < 3 and len(np.unique(expected, axis=0)) > 990
    # the colour belongs to the grid index, whichever subset or call renders it
    other = S.Sprites("test", colour=True, seed=9)
    pos = {int(i): p for p, i in enumerate(other.indices)}
    some = [pos[int(i)] for i in ds.indices[:20]]
    assert np.array_equal(other[np.array(some)], im[:20])
    assert np.array_equal(S.render(ds.factors[:20], colour=True), im[:20])
