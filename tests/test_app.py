"""AppTest (streamlit.testing.v1): every page with the shipped models, no browser."""
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from vae_core.checkpoint import load_checkpoint
from vae_core.images import decode, png_bytes, reconstruct
from vae_core.interpolate import path

TIMEOUT = 120


def app(model: str | None = None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    if model:
        at.query_params["model"] = model
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def image_urls(at) -> list[str]:
    return [u for img in at.get("image") for u in img.value]


def decoded_pixels(at) -> np.ndarray:
    """The Explore page's decode(z): an inline PNG (data URI) in a markdown element."""
    import base64
    import io
    import re
    from PIL import Image
    html = [m.value for m in at.markdown if 'alt="decode(z)"' in m.value]
    assert len(html) == 1
    data = re.search(r'src="data:image/png;base64,([^"]+)"', html[0]).group(1)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))


def n_points(trace) -> int:
    """Points in a plotly trace; plotly serialises numpy arrays as base64 typed arrays."""
    x = trace["x"]
    if isinstance(x, dict):
        import base64
        return len(base64.b64decode(x["bdata"])) // np.dtype(x["dtype"]).itemsize
    return len(x)


def no_errors(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_explore_renders_the_default_model_and_its_scatter():
    at = app()
    no_errors(at)
    assert at.sidebar.selectbox[0].value == "mnist-z2"
    assert [s.label for s in at.slider] == ["z[0]", "z[1]"]
    assert len(at.get("plotly_chart")) == 2  # the scatter (from the shipped latent cache) and its marker overlay
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sum(n_points(t) for t in spec["data"]) == 10_000
    assert [t["name"] for t in spec["data"]] == [str(d) for d in range(10)]  # a legend of class names
    assert any("Device:" in c.value for c in at.sidebar.caption)


def test_moving_a_slider_changes_the_decoded_image_and_the_url():
    at = app()
    before = decoded_pixels(at)
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z2")
    assert np.array_equal(before, decode(ck.model, [0.0, 0.0]))  # the page shows decode(z) itself
    at.slider(key="z_slider_0").set_value(2.0).run()
    no_errors(at)
    after = decoded_pixels(at)
    assert np.array_equal(after, decode(ck.model, [2.0, 0.0])) and not np.array_equal(after, before)
    assert at.query_params["z"].startswith("2.000,")
    # and the marker over the scatter follows, on the scatter's exact axes
    scatter, overlay = (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
    assert overlay["data"][0]["name"] == "current z" and overlay["data"][0]["x"] == [2.0]
    for axis in ("xaxis", "yaxis"):
        assert overlay["layout"][axis]["range"] == scatter["layout"][axis]["range"]
    for dim in ("width", "height", "margin"):
        assert overlay["layout"][dim] == scatter["layout"][dim]


def test_the_decoded_image_carries_its_z_and_the_decoder_goes_to_the_browser(monkeypatch):
    """The browser decodes slider steps from the weights the page mounts; the server's image says which z it shows."""
    at = app()
    at.slider(key="z_slider_0").set_value(1.5).run()
    html = [m.value for m in at.markdown if 'alt="decode(z)"' in m.value][0]
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z2")
    assert f'data-model="{ck.hash}"' in html and 'data-z="1.500,0.000"' in html
    comps = at.get("bidi_component")
    assert len(comps) == 1 and ck.hash in comps[0].proto.json
    monkeypatch.setenv("VAE_BROWSER_DECODE", "0")  # the server-only path
    at = app()
    no_errors(at)
    assert not at.get("bidi_component")
    assert "data-z" not in [m.value for m in at.markdown if 'alt="decode(z)"' in m.value][0]


def test_buttons_reset_and_sample():
    at = app()
    at.slider(key="z_slider_1").set_value(-1.5).run()
    at.button[1].click().run()  # reset
    assert at.slider(key="z_slider_1").value == 0.0
    at.button[0].click().run()  # sample from the prior
    no_errors(at)
    assert at.session_state["z"] != [0.0, 0.0]


def test_a_link_with_model_and_z_reopens_them():
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["model"] = "fashion-z2"
    at.query_params["z"] = "1.250,-0.500"
    at.run()
    no_errors(at)
    assert at.sidebar.selectbox[0].value == "fashion-z2"
    assert at.slider(key="z_slider_0").value == 1.25 and at.slider(key="z_slider_1").value == -0.5


def test_an_unknown_model_in_the_link_falls_back_with_a_warning():
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["model"] = "no-such-model"
    at.run()
    assert not at.exception
    assert at.sidebar.selectbox[0].value == "mnist-z2"
    assert any("not found" in w.value for w in at.sidebar.warning)


def test_high_dimensional_model_on_explore_picks_slider_dimensions():
    at = app("mnist-z16")
    no_errors(at)
    assert len(at.slider) == 8 and len(at.multiselect) == 1
    at.multiselect[0].set_value([0, 1, 2]).run()
    assert len(at.slider) == 3


def test_grid_size_changes_the_grid():
    at = app(page="pages/grid.py")
    no_errors(at)

    def grid_shape():
        spec = json.loads(at.get("plotly_chart")[0].proto.spec)
        z = spec["data"][0]["z"]  # a typed array: {"dtype", "bdata", "shape": "H, W, 3"}
        return tuple(int(v) for v in z["shape"].split(","))[:2]

    assert grid_shape() == (15 * 28, 15 * 28)
    at.slider(key="grid_n").set_value(7).run()
    no_errors(at)
    assert grid_shape() == (7 * 28, 7 * 28)
    at.radio(key="grid_mode").set_value("quantiles").run()
    no_errors(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    ticks = [float(t) for t in spec["layout"]["xaxis"]["ticktext"]]
    assert ticks[0] == pytest.approx(-1.15, abs=0.01)  # Phi^-1(1/8) for n = 7


def test_grid_over_principal_components_for_z16():
    at = app("mnist-z16", page="pages/grid.py")
    at.radio(key="grid_axes").set_value("two principal components").run()
    no_errors(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["title"]["text"].startswith("PC1")


def media_url(png: bytes) -> str:
    """The URL AppTest's media store gives these PNG bytes (ids are content hashes)."""
    from streamlit.runtime.media_file_storage import MediaFileKind
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    store = MemoryMediaFileStorage("/mock/media")
    return store.get_url(store.load_and_get_id(png, "image/png", MediaFileKind.MEDIA, None))


@pytest.mark.parametrize("method", ["lerp", "slerp"])
def test_interpolation_endpoints_equal_the_decoded_endpoints(method, data_root, monkeypatch):
    monkeypatch.setenv("VAE_DATA_ROOT", str(data_root))
    at = app(page="pages/interpolate.py")
    at.radio(key="src_A").set_value("Test-set image").run()
    at.radio(key="src_B").set_value("Test-set image").run()
    at.number_input(key="index_A").set_value(3).run()
    at.number_input(key="index_B").set_value(2).run()
    at.radio(key="interp_method").set_value(method).run()
    at.slider(key="interp_steps").set_value(9).run()
    no_errors(at)
    assert "9 frames" in at.get("download_button")[0].proto.label

    # what the page must show, computed here through the library
    from vae_core.data import load_dataset
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z2")
    images = load_dataset("mnist", "test", data_root).images.numpy()
    z_a = reconstruct(ck.model, images[3][None])[0][0]
    z_b = reconstruct(ck.model, images[2][None])[0][0]
    zs = path(z_a, z_b, 9, method)
    assert np.array_equal(zs[0], z_a) and np.array_equal(zs[-1], z_b)  # exact endpoints in z
    frames = decode(ck.model, zs)
    for frame, z in ((frames[0], z_a), (frames[-1], z_b)):  # and in pixels (batched decode: <= 1 grey level)
        assert np.abs(frame.astype(int) - decode(ck.model, z).astype(int)).max() <= 1

    at.slider(key="interp_scrub").set_value(0).run()
    assert image_urls(at)[4] == media_url(png_bytes(frames[0], scale=10))
    at.slider(key="interp_scrub").set_value(8).run()
    assert image_urls(at)[4] == media_url(png_bytes(frames[-1], scale=10))
    # the other method gives a different middle frame (unless the two z are parallel)
    other = decode(ck.model, path(z_a, z_b, 9, "slerp" if method == "lerp" else "lerp"))
    at.slider(key="interp_scrub").set_value(4).run()
    assert image_urls(at)[4] == media_url(png_bytes(frames[4], scale=10))
    assert not np.array_equal(other[4], frames[4])


def test_interpolate_without_images_explains_what_to_do():
    at = app(page="pages/interpolate.py")
    no_errors(at)
    assert any("Choose two images" in i.value for i in at.info)


def test_pca_page_with_mnist_z16():
    at = app("mnist-z16", page="pages/pca.py")
    no_errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Latent dimension"] == "16"
    twonn = float(metrics["Intrinsic dimension (TWO-NN)"])
    assert 1.0 < twonn < 16.0
    before = image_urls(at)[0]
    at.slider(key="pc_0").set_value(2.0).run()
    no_errors(at)
    assert image_urls(at)[0] != before
    assert len(at.get("plotly_chart")) == 2  # component scatter + explained variance


def test_pca_page_for_a_2d_model_points_to_explore():
    at = app(page="pages/pca.py")
    no_errors(at)
    assert any("nothing to project" in i.value for i in at.info)


def test_every_shipped_model_renders_every_page():
    for model in ("mnist-z2", "mnist-z16", "fashion-z2", "mnist-bin-z50"):
        for page in ("pages/explore.py", "pages/grid.py", "pages/interpolate.py", "pages/pca.py", "pages/compare.py"):
            at = app(model, page)
            no_errors(at)


def test_the_sidebar_shows_the_models_nll_only_for_its_own_weights(tmp_path, monkeypatch):
    import json
    import shutil
    at = app("mnist-bin-z50")
    m = json.loads((REPO / "checkpoints" / "mnist-bin-z50" / "metrics.json").read_text())
    assert any(f"NLL {m['nll']:.2f} nats (IWAE, K=5000, {m['images']:,} images)" in c.value
               for c in at.sidebar.caption)
    # a run whose metrics.json was written for other weights (retrained in place) shows none
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path))
    shutil.copytree(REPO / "checkpoints" / "mnist-z2", tmp_path / "retrained")
    shutil.copy(REPO / "checkpoints" / "mnist-bin-z50" / "metrics.json", tmp_path / "retrained")
    at = app("runs/retrained")
    assert not any("NLL" in c.value for c in at.sidebar.caption)


def test_a_damaged_run_in_the_picker_gives_a_message_not_a_traceback(tmp_path, monkeypatch):
    import shutil
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path))
    shutil.copytree(REPO / "checkpoints" / "mnist-z2", tmp_path / "broken")
    weights = tmp_path / "broken" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["model"] = "runs/broken"
    at.run()
    assert not at.exception
    assert any("cannot be loaded" in e.value and "model.safetensors" in e.value for e in at.error)
