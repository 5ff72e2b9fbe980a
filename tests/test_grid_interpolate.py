"""The Grid and Interpolate pages: what they draw, and what they do not redo on a rerun.

AppTest (streamlit.testing.v1), no browser; the app() helper is tests/test_app.py's.
"""
import base64
import io
import json

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from tests.test_app import TIMEOUT, app, no_errors
from vae_core.checkpoint import load_checkpoint
from vae_core.images import decode, decode_grid, grid_axes
from vae_core.plots import grid_figure


def png_of(source: str) -> np.ndarray:
    """The pixels of a data:image/png;base64 URI."""
    head, data = source.split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))


def grid_spec(at) -> dict:
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)


def grid_pixels(at) -> np.ndarray:
    trace = grid_spec(at)["data"][0]
    assert trace["type"] == "image" and "z" not in trace  # the mosaic travels as a PNG, not as numbers
    return png_of(trace["source"])


@pytest.fixture(scope="module")
def z2():
    return load_checkpoint(REPO / "checkpoints" / "mnist-z2")


# ------------------------------------------------------------------ grid_figure

def test_grid_figure_carries_the_mosaic_as_a_png_with_z_ticks(z2):
    axis = grid_axes(5, 2.0)
    mosaic = decode_grid(z2.model, np.zeros(2), axis, axis, (np.eye(2)[0], np.eye(2)[1]))
    fig = grid_figure(mosaic, axis, axis, ("z[0]", "z[1]"))
    trace = fig.data[0]
    assert trace.z is None
    assert np.array_equal(png_of(trace.source), mosaic)  # lossless, at the mosaic's own size
    # a tick at the centre of every cell, labelled with its z; the top row is the largest y
    assert list(fig.layout.xaxis.tickvals) == [14, 42, 70, 98, 126]
    assert list(fig.layout.xaxis.ticktext) == ["-2.00", "-1.00", "0.00", "1.00", "2.00"]
    assert list(fig.layout.yaxis.ticktext) == ["2.00", "1.00", "0.00", "-1.00", "-2.00"]
    assert not trace.zsmooth  # plotly.js draws the PNG with image-rendering: pixelated


# ------------------------------------------------------------------ Grid page

def test_grid_size_changes_the_grid():
    """Replaces tests/test_app.py's test of the same name (which read the old z array)."""
    at = app(page="pages/grid.py")
    no_errors(at)
    assert grid_pixels(at).shape == (15 * 28, 15 * 28)
    assert "Download PNG (1680×1680)" in at.get("download_button")[0].proto.label
    at.slider(key="grid_n").set_value(7).run()
    no_errors(at)
    assert grid_pixels(at).shape == (7 * 28, 7 * 28)
    at.radio(key="grid_mode").set_value("quantiles").run()
    no_errors(at)
    ticks = [float(t) for t in grid_spec(at)["layout"]["xaxis"]["ticktext"]]
    assert len(ticks) == 7
    assert ticks[0] == pytest.approx(-1.15, abs=0.01)  # Phi^-1(1/8) for n = 7
    assert ticks == pytest.approx(-np.array(ticks[::-1]))  # symmetric about 0


def test_grid_shows_the_decodes_of_the_z_on_its_axes(z2):
    """The mosaic is decode_grid's, and its cells are the z the ticks name, wherever z is
    on Explore (for d = 2 both dimensions are the axes; the current z does not shift them)."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["z"] = "1.000,-1.500"
    at.run()
    at.switch_page("pages/grid.py").run()
    no_errors(at)
    at.slider(key="grid_n").set_value(5).run()
    pixels = grid_pixels(at)
    axis = grid_axes(5, 3.0)
    assert np.array_equal(pixels, decode_grid(z2.model, np.zeros(2), axis, axis, (np.eye(2)[0], np.eye(2)[1])))
    # top left is (x, y) = (-3, 3); a batched decode may differ by a grey level from a single one
    assert np.abs(pixels[:28, :28].astype(int) - decode(z2.model, [-3.0, 3.0]).astype(int)).max() <= 1


def test_grid_over_principal_components_draws_their_mosaic():
    """tests/test_app.py's test_grid_over_principal_components_for_z16, and the mosaic too."""
    at = app("mnist-z16", page="pages/grid.py")
    at.radio(key="grid_axes").set_value("two principal components").run()
    no_errors(at)
    spec = grid_spec(at)
    assert spec["layout"]["xaxis"]["title"]["text"].startswith("PC1")
    assert spec["layout"]["yaxis"]["title"]["text"].startswith("PC2")
    assert grid_pixels(at).shape == (15 * 28, 15 * 28)


def test_a_rerun_of_the_grid_page_does_not_decode_again(monkeypatch):
    import vae_core.images
    calls = []
    real = vae_core.images.decode_grid
    monkeypatch.setattr(vae_core.images, "decode_grid", lambda *a, **k: calls.append(1) or real(*a, **k))
    at = app(page="pages/grid.py")
    at.slider(key="grid_n").set_value(11).run()  # a size no other test uses: decoded here
    no_errors(at)
    assert len(calls) == 1
    at.run()                                     # a rerun, as a switch back to the page is
    at.slider(key="grid_n").set_value(15).run()
    at.slider(key="grid_n").set_value(11).run()
    no_errors(at)
    assert len(calls) <= 2  # 15 may have been decoded here or by an earlier test; 11 never again
    assert grid_pixels(at).shape == (11 * 28, 11 * 28)


# ------------------------------------------------------------------ Interpolate page

def test_interpolate_opens_on_two_test_images(data_root, monkeypatch):
    monkeypatch.setenv("VAE_DATA_ROOT", str(data_root))
    at = app(page="pages/interpolate.py")
    no_errors(at)
    assert at.radio(key="src_A").value == "Test-set image" and at.radio(key="src_B").value == "Test-set image"
    assert (at.number_input(key="index_A").value, at.number_input(key="index_B").value) == (3, 2)
    assert not any("Choose two images" in i.value for i in at.info)
    assert "Upload" in at.radio(key="src_A").options  # an upload is one click away
    label = at.get("download_button")[0].proto.label
    assert label.startswith("Download GIF (12 frames, 256×256")
    # inputs and reconstructions of both ends, the scrubbed frame, the strip and the GIF preview
    assert len(at.get("image")) == 7


def test_interpolate_without_the_dataset_asks_for_two_uploads(tmp_path, monkeypatch):
    """Replaces tests/test_app.py's test_interpolate_without_images_explains_what_to_do."""
    from ui_common import get_test_images
    monkeypatch.setenv("VAE_DATA_ROOT", str(tmp_path))  # an empty folder: no dataset here
    get_test_images.clear()  # the test images are cached per dataset name, across tests
    try:
        at = app(page="pages/interpolate.py")
        no_errors(at)
        assert any(i.value == "Choose two images to interpolate between." for i in at.info)
        assert not at.get("download_button")
        assert len(at.get("file_uploader")) == 2
    finally:
        get_test_images.clear()


def test_path_and_gif_options_redo_neither_the_encoding_nor_the_path(data_root, monkeypatch):
    import streamlit as st
    import vae_core.gif
    import vae_core.images
    import vae_core.interpolate
    monkeypatch.setenv("VAE_DATA_ROOT", str(data_root))
    calls = {"reconstruct": 0, "path": 0, "gif_bytes": 0}

    def counted(module, name):
        real = getattr(module, name)

        def wrapper(*a, **k):
            calls[name] += 1
            return real(*a, **k)
        monkeypatch.setattr(module, name, wrapper)

    counted(vae_core.images, "reconstruct")
    counted(vae_core.interpolate, "path")
    counted(vae_core.gif, "gif_bytes")
    st.cache_data.clear()  # a clean start, so the first run does the work once
    at = app(page="pages/interpolate.py")
    no_errors(at)
    assert calls == {"reconstruct": 2, "path": 1, "gif_bytes": 1}  # two ends, one path, one GIF

    at.slider(key="interp_scrub").set_value(5).run()
    at.slider(key="gif_fps").set_value(20).run()
    at.checkbox(key="gif_pingpong").check().run()
    no_errors(at)
    assert calls == {"reconstruct": 2, "path": 1, "gif_bytes": 3}  # scrubbing made nothing; two new GIFs
    assert "22 frames" in at.get("download_button")[0].proto.label  # ping-pong: 2 * 12 - 2

    at.slider(key="interp_steps").set_value(20).run()
    at.radio(key="interp_method").set_value("slerp").run()
    no_errors(at)
    assert calls["reconstruct"] == 2  # the ends were encoded once
    assert calls["path"] == 3         # one path per (steps, method)
    at.slider(key="interp_steps").set_value(12).run()
    assert calls["path"] == 4         # (12, slerp) is new
    at.radio(key="interp_method").set_value("lerp").run()
    no_errors(at)
    assert calls["path"] == 4         # (12, lerp) comes from the cache


def _digit_photo(w: int, h: int, seed: int) -> bytes:
    """A w×h PNG photo of a dark '1'-like stroke on light grey paper with a little noise."""
    import io
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(seed)
    im = Image.fromarray((200 + rng.integers(0, 20, (h, w))).astype(np.uint8))
    ImageDraw.Draw(im).line([(w // 2, h // 5), (w // 2 + w // 20, 4 * h // 5)], fill=20, width=max(3, w // 25))
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def test_uploads_are_decoded_once_whatever_changes_afterwards(data_root, monkeypatch):
    """Two large uploads on Interpolate: each is decoded once, then scrubbing, the path,
    the GIF's options, the other endpoint and even its Invert choice decode nothing again
    (a 40 Mpx pair once cost 2 s of server CPU per scrub step); a refused upload is not
    retried on every rerun either."""
    import ui_common
    import vae_core.preprocess
    monkeypatch.setenv("VAE_DATA_ROOT", str(data_root))
    decodes = []
    real = vae_core.preprocess.decode_upload

    def counted(data, name="upload", colour=False):
        decodes.append(name)
        return real(data, name, colour=colour)
    monkeypatch.setattr(vae_core.preprocess, "decode_upload", counted)
    ui_common._decoded_upload.clear()
    ui_common._framed_upload.clear()
    at = app(page="pages/interpolate.py")
    for side, seed in (("A", 1), ("B", 2)):
        at.radio(key=f"src_{side}").set_value("Upload").run()
        at.file_uploader(key=f"upload_{side}").upload(f"photo-{side}.png", _digit_photo(4000, 3000, seed), "image/png")
        at.run()
    no_errors(at)
    assert sorted(decodes) == ["photo-A.png", "photo-B.png"]
    assert any("decoded reduced" in c.value for c in at.caption)  # the page says what it did
    frames_before = at.get("download_button")[0].proto.label
    at.slider(key="interp_scrub").set_value(4).run()
    at.slider(key="interp_steps").set_value(20).run()
    at.radio(key="interp_method").set_value("slerp").run()
    at.slider(key="gif_fps").set_value(20).run()
    at.radio(key="invert_A").set_value("no").run()   # framing redone from the decoded picture
    at.radio(key="invert_A").set_value("auto").run()
    no_errors(at)
    assert sorted(decodes) == ["photo-A.png", "photo-B.png"]
    assert at.get("download_button")[0].proto.label != frames_before  # the page did follow the changes

    broken = _digit_photo(400, 300, 3)[:5000]  # a truncated PNG
    at.file_uploader(key="upload_B").clear().upload("broken.png", broken, "image/png")
    at.run()
    assert any("broken.png" in e.value and "could not be decoded" in e.value for e in at.error)
    at.radio(key="invert_A").set_value("yes").run()
    at.radio(key="invert_B").set_value("no").run()
    assert decodes.count("broken.png") == 1
    assert any("broken.png" in e.value for e in at.error)
