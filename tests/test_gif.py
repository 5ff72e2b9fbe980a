import io

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from vae_core import VaeError
from vae_core.gif import frame_duration_ms, gif_bytes, gif_info


def _frames(t=6, seed=0):
    """Blobs that move, so neighbouring frames differ."""
    yy, xx = np.mgrid[:28, :28]
    out = []
    for i in range(t):
        cx = 6 + 16 * i / max(t - 1, 1)
        out.append((255 * np.exp(-((xx - cx) ** 2 + (yy - 14) ** 2) / 18)).astype(np.uint8))
    return np.stack(out)


def _read(data):
    im = Image.open(io.BytesIO(data))
    out = []
    for i in range(im.n_frames):
        im.seek(i)
        out.append(np.asarray(im.convert("L")))
    return np.stack(out)


def test_basic_gif_header_count_loop_size_duration():
    f = _frames(6)
    data = gif_bytes(f, size=128, fps=10)
    assert data.startswith(b"GIF89a")
    info = gif_info(data)
    assert info["frames"] == 6
    assert info["loop"] == 0
    assert info["size"] == (128, 128)
    assert abs(info["duration_ms"] - 100) <= 5
    assert info["total_ms"] == 600


def test_frames_survive_losslessly_nearest():
    # grayscale through an identity palette: what comes back is the nearest upscale, exactly
    f = _frames(4)
    back = _read(gif_bytes(f, size=56, fps=5))
    assert np.array_equal(back, np.repeat(np.repeat(f, 2, axis=1), 2, axis=2))
    # and other readers agree
    assert iio.imread(gif_bytes(f, size=56), index=None).shape[:3] == (4, 56, 56)


@pytest.mark.parametrize("t", [1, 2, 7])
def test_identical_consecutive_frames_are_kept(t):
    data = gif_bytes(np.zeros((t, 28, 28), np.uint8), size=64)
    assert gif_info(data)["frames"] == t
    mixed = _frames(5)
    mixed[2] = mixed[1]
    mixed[3] = mixed[1]
    back = _read(gif_bytes(mixed, size=28))
    assert len(back) == 5 and np.array_equal(back, mixed)


def test_pingpong_gives_2t_minus_2_frames_in_order():
    f = _frames(5)
    data = gif_bytes(f, size=28, pingpong=True)
    assert gif_info(data)["frames"] == 8
    back = _read(data)
    assert np.array_equal(back, f[[0, 1, 2, 3, 4, 3, 2, 1]])
    assert gif_info(gif_bytes(np.zeros((5, 28, 28), np.uint8), pingpong=True))["frames"] == 8
    assert gif_info(gif_bytes(f[:2], pingpong=True))["frames"] == 2
    assert gif_info(gif_bytes(f[:1], pingpong=True))["frames"] == 1


@pytest.mark.parametrize("fps,ms", [(10, 100), (4, 250), (0.5, 2000), (25, 40), (30, 30), (60, 20)])
def test_duration_follows_fps(fps, ms):
    assert frame_duration_ms(fps) == ms
    info = gif_info(gif_bytes(_frames(3), size=32, fps=fps))
    assert info["duration_ms"] == ms
    assert abs(info["duration_ms"] - max(1000 / fps, 20)) <= 5


def test_labels_change_pixels_in_the_corner_only():
    f = _frames(3)
    plain = _read(gif_bytes(f, size=256))
    labelled = _read(gif_bytes(f, size=256, labels=True))
    assert labelled.shape == plain.shape
    changed = np.any(labelled != plain, axis=0)
    assert changed.any()
    ys, xs = np.nonzero(changed)
    assert ys.max() < 64 and xs.max() < 128  # a small box in the top-left corner
    # light text on a dark box
    corner = labelled[0, :ys.max() + 1, :xs.max() + 1]
    assert corner.max() >= 200 and np.median(corner) < 100
    # each frame carries its own step number
    assert not np.array_equal(labelled[0, :40, :80], labelled[1, :40, :80])
    # labelled identical frames are still distinct frames
    assert gif_info(gif_bytes(np.zeros((4, 28, 28), np.uint8), labels=True))["frames"] == 4


def test_bicubic_differs_from_nearest():
    f = _frames(2)
    near = _read(gif_bytes(f, size=100, resample="nearest"))
    cubic = _read(gif_bytes(f, size=100, resample="bicubic"))
    assert near.shape == cubic.shape == (2, 100, 100)
    assert not np.array_equal(near, cubic)
    # nearest only uses the source's gray levels, bicubic invents in-between ones
    assert set(np.unique(near)) <= set(np.unique(f))
    assert len(np.unique(cubic)) > len(np.unique(near))


def test_list_input_and_other_frame_sizes():
    frames = [np.full((20, 30), v, np.uint8) for v in (0, 128, 255)]
    back = _read(gif_bytes(frames, size=40))
    assert back.shape == (3, 40, 40)
    assert [int(b.mean()) for b in back] == [0, 128, 255]


@pytest.mark.parametrize("kwargs", [
    dict(size=15), dict(size=1025), dict(size=64.5),
    dict(fps=0.4), dict(fps=61), dict(fps=0),
    dict(resample="lanczos"),
])
def test_bad_parameters_are_refused(kwargs):
    with pytest.raises(VaeError):
        gif_bytes(_frames(2), **kwargs)


def test_bad_frames_are_refused():
    with pytest.raises(VaeError):
        gif_bytes(np.zeros((0, 28, 28), np.uint8))
    with pytest.raises(VaeError):
        gif_bytes([])
    with pytest.raises(VaeError):
        gif_bytes(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(VaeError):
        gif_bytes(np.zeros((2, 28, 28, 4), np.uint8))  # RGBA: colour GIFs take (T, H, W, 3)
    with pytest.raises(VaeError):
        gif_info(b"not a gif at all")
