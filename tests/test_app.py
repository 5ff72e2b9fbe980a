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


def no_errors(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def explorer_data(at) -> dict:
    """What the page hands the browser's explorer (ui/latent_explorer.js)."""
    comps = at.get("bidi_component")
    assert len(comps) == 1
    return json.loads(comps[0].proto.json)


def data_pixels(data) -> np.ndarray:
    """The server's own picture in the explorer's data (a PNG data URI)."""
    import base64
    import io
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data["image"].split(",", 1)[1]))))


def read_points(url: str):
    """The scatter file the browser fetches: uint32 N, float32 x, float32 y, uint8 labels."""
    raw = (REPO / url.removeprefix("app/")).read_bytes()
    n = int(np.frombuffer(raw[:4], np.uint32)[0])
    return (np.frombuffer(raw, np.float32, n, 4), np.frombuffer(raw, np.float32, n, 4 + 4 * n),
            np.frombuffer(raw, np.uint8, n, 4 + 8 * n))


def test_explore_renders_the_default_model_and_its_scatter():
    at = app()
    no_errors(at)
    assert at.sidebar.selectbox[0].value == "mnist-z2"
    data = explorer_data(at)
    assert [s["label"] for s in data["sliders"]] == ["z[0]", "z[1]"] and data["z"] == [0.0, 0.0]
    assert data["classes"] == [str(d) for d in range(10)] and data["n_points"] == 10_000
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z2")
    from vae_core.latents import load_cached_latents
    lat = load_cached_latents(ck.hash, "test")
    x, y, labels = read_points(data["points_url"])  # the points are the test set's posterior means
    assert np.array_equal(x, lat.mu[:, 0]) and np.array_equal(y, lat.mu[:, 1]) and np.array_equal(labels, lat.labels)
    assert data["model"] == ck.hash and (REPO / data["decoder_url"].removeprefix("app/")).is_file()
    assert np.array_equal(data_pixels(data), decode(ck.model, [0.0, 0.0]))
    assert any("Device:" in c.value for c in at.sidebar.caption)
    assert not at.get("plotly_chart")  # the scatter is the component's canvas, not Plotly


def test_server_side_changes_of_z_bump_its_version_and_reach_url_and_picture():
    """Reset and sample are the server's changes: the browser takes a z only when v grows."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["model"] = "mnist-z2"
    at.query_params["z"] = "1.250,-0.500"
    at.run()
    no_errors(at)
    first = explorer_data(at)
    assert first["z"] == [1.25, -0.5] and at.query_params["z"] == "1.250,-0.500"
    sample = next(b for b in at.button if "Sample" in b.label)
    sample.click().run()
    data = explorer_data(at)
    assert data["v"] > first["v"] and data["z"] != first["z"]
    assert at.query_params["z"] == ",".join(f"{v:.3f}" for v in data["z"])
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z2")
    assert np.array_equal(data_pixels(data), decode(ck.model, data["z"]))
    next(b for b in at.button if "Reset" in b.label).click().run()
    again = explorer_data(at)
    assert again["z"] == [0.0, 0.0] and again["v"] > data["v"] and at.query_params["z"] == "0.000,0.000"


def test_without_browser_decoding_the_page_sends_no_decoder(monkeypatch):
    monkeypatch.setenv("VAE_BROWSER_DECODE", "0")  # the server-only path
    at = app()
    no_errors(at)
    data = explorer_data(at)
    assert data["decoder_url"] is None and data["image"].startswith("data:image/png;base64,")


def test_a_link_with_model_and_z_reopens_them_on_every_page():
    for page in ("pages/explore.py", "pages/grid.py", "pages/compare.py"):
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
        at.query_params["model"] = "fashion-z2"
        at.query_params["z"] = "1.250,-0.500"
        at.run()
        at.switch_page(page).run()
        no_errors(at)
        assert at.session_state["model_key"] == "fashion-z2" and at.session_state["z"] == [1.25, -0.5]
        # a page switch keeps both in the URL (Streamlit's own navigation drops the query string)
        assert at.query_params["model"] == "fashion-z2" and at.query_params["z"] == "1.250,-0.500"


@pytest.mark.parametrize("z,notice,expect", [
    ("1,2,3", "has 3 values but this model has 2", [0.0, 0.0]),
    ("abc,1", "is not a list of numbers", [0.0, 0.0]),
    ("nan,1", "NaN", [0.0, 0.0]),
    ("9,-1", "were clipped", [4.0, -1.0]),
])
def test_a_bad_z_in_a_link_is_a_notice_not_silent_zeros(z, notice, expect):
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["model"] = "mnist-z2"
    at.query_params["z"] = z
    at.run()
    assert not at.exception
    assert any(notice in w.value for w in at.sidebar.warning), [w.value for w in at.sidebar.warning]
    assert at.session_state["z"] == expect


def test_a_model_whose_means_spill_past_four_gets_sliders_that_reach_them():
    """color-sprites-z10 has 24 % of its test means beyond ±4: a link to such a point keeps its z
    whole (it used to be clipped to a z that is not the point's) and the sliders reach every test
    mean; mnist-z2 (2.3 % beyond) keeps ±4, and its out-of-range link is still clipped."""
    from vae_core.latents import load_cached_latents
    ck = load_checkpoint(REPO / "checkpoints" / "color-sprites-z10")
    mu = load_cached_latents(ck.hash, "test", REPO / "cache").mu
    reach = np.abs(mu).max(1)
    assert (reach > 4).mean() > 0.2
    far = mu[int(np.argmax(reach))]  # the test mean farthest out (6.5 in one coordinate)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["model"] = "color-sprites-z10"
    at.query_params["z"] = ",".join(f"{v:.3f}" for v in far)
    at.run()
    at.switch_page("pages/explore.py").run()
    no_errors(at)
    assert not any("clipped" in w.value for w in at.sidebar.warning)
    data = explorer_data(at)
    limit = np.ceil(2 * reach.max()) / 2
    assert data["zmax"] == limit > 6 and all((sl["lo"], sl["hi"]) == (-limit, limit) for sl in data["sliders"])
    z = np.asarray(at.session_state["z"], np.float32)
    assert np.abs(z - far).max() < 1e-3 and np.abs(z).max() > 6
    # the picture is the point's: this z decoded, not a clipped one
    assert np.abs(data_pixels(data).astype(int) - decode(ck.model, z).astype(int)).max() <= 1
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["model"] = "mnist-z2"
    at.query_params["z"] = "5.5,-1"
    at.run()
    at.switch_page("pages/explore.py").run()
    assert explorer_data(at)["zmax"] == 4 and at.session_state["z"] == [4.0, -1.0]


def test_a_model_whose_means_sit_off_the_origin_opens_at_their_centre():
    """color-sprites-z10's test means centre up to 2.35 from 0, where it decodes a dim smear: opened
    without a z it starts at that centre (to 0.05) and says so; Reset goes to 0; a link's z wins;
    mnist-z2 (centre 0.5 out) starts at 0 as before."""
    from vae_core.latents import load_cached_latents
    ck = load_checkpoint(REPO / "checkpoints" / "color-sprites-z10")
    centre = load_cached_latents(ck.hash, "test", REPO / "cache").mu.mean(0)
    assert np.abs(centre).max() > 2
    at = app("color-sprites-z10")
    assert any("centre of this model's test means" in c.value for c in at.sidebar.caption)
    at.switch_page("pages/explore.py").run()
    no_errors(at)
    z = np.asarray(at.session_state["z"])
    assert np.abs(z - centre).max() <= 0.025 + 1e-9 and np.allclose(z / 0.05, np.round(z / 0.05))
    assert np.array_equal(data_pixels(explorer_data(at)), decode(ck.model, z.astype(np.float32)))
    next(b for b in at.button if b.label == "Reset z to 0").click().run()
    assert at.session_state["z"] == [0.0] * 10
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["model"] = "color-sprites-z10"
    at.query_params["z"] = ",".join(["0.5"] * 10)
    at.run()
    assert at.session_state["z"] == [0.5] * 10
    assert not any("centre of this model's test means" in c.value for c in at.sidebar.caption)
    at = app("mnist-z2")
    assert at.session_state["z"] == [0.0, 0.0]
    assert not any("centre of this model's test means" in c.value for c in at.sidebar.caption)


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
    data = explorer_data(at)
    assert len(data["sliders"]) == 8 and len(at.multiselect) == 1
    # the scatter's axes are the two dims of largest variance; a point's position is z projected on them
    assert sum(data["ax"]) == 1.0 and sum(data["ay"]) == 1.0 and data["ax"] != data["ay"]
    at.multiselect[0].set_value([0, 1, 2]).run()
    assert [s["label"] for s in explorer_data(at)["sliders"]] == ["z[0]", "z[1]", "z[2]"]


def test_the_nearest_test_images_follow_z(data_root, monkeypatch):
    monkeypatch.setenv("VAE_DATA_ROOT", str(data_root))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["model"] = "mnist-z2"
    at.query_params["z"] = "0.000,3.500"  # the ones live up there
    at.run()
    no_errors(at)
    caption = next(m.value for m in at.markdown if "nearest test images" in m.value)
    assert caption.count(" 1") >= 6, caption


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


def test_pca_page_with_mnist_z16():
    at = app("mnist-z16", page="pages/pca.py")
    no_errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Latent dimension"] == "16"
    twonn = float(metrics["Intrinsic dimension (TWO-NN)"])
    assert 1.0 < twonn < 16.0
    data = explorer_data(at)
    from vae_core.geometry import fit_pca
    from vae_core.latents import load_cached_latents
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z16")
    pca = fit_pca(load_cached_latents(ck.hash, "test").mu)
    # sliders along the top 8 principal axes in sigma units; the plane is PC1 x PC2 about the mean
    assert [s["label"] for s in data["sliders"]] == [f"PC{c + 1}" for c in range(8)]
    assert np.allclose(data["sliders"][0]["u"], pca.components[0]) and data["sliders"][0]["scale"] == pytest.approx(pca.std[0])
    assert np.allclose(data["origin"], pca.mean) and np.allclose(data["ax"], pca.components[0])
    x, y, _ = read_points(data["points_url"])
    assert np.allclose(x, pca.projected[:, 0], atol=1e-5) and np.allclose(y, pca.projected[:, 1], atol=1e-5)
    # the traversal strip follows the session's z, shared with Explore
    assert any("z moved along PC1" in m.value for m in at.markdown)
    assert any("Open this z on Explore" in b.label for b in at.button)


def test_pca_page_for_a_2d_model_points_to_explore():
    at = app(page="pages/pca.py")
    no_errors(at)
    assert any("nothing to project" in i.value for i in at.info)


def test_every_shipped_model_renders_every_page():
    """Each shipped model opened from a link, then every page in turn, as a person clicks through
    the sidebar (one session per model: the pages see the state the previous ones left)."""
    for model in ("mnist-z2", "mnist-z16", "fashion-z2", "mnist-bin-z50", "sprites-z10", "color-sprites-z10",
                  "sprites-tcvae-z10", "mnist-fsq"):
        at = app(model)
        no_errors(at)
        for page in ("pages/grid.py", "pages/interpolate.py", "pages/pca.py", "pages/traverse.py",
                     "pages/compare.py", "pages/explore.py"):
            at.switch_page(page).run()
            no_errors(at)
            assert at.query_params["model"] == [model] or at.query_params["model"] == model, (model, page)


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
    assert any("cannot be loaded" in e.value and "model.safetensors" in e.value.replace("\\", "") for e in at.error)


def test_a_bad_run_folder_costs_one_line_in_the_picker_never_the_app(tmp_path, monkeypatch):
    """Run folders are untrusted: a deeply nested config.json (once an error box on every
    page) and NaN weights (once black images, silently) each cost one clear line."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path))
    shutil.copytree(REPO / "checkpoints" / "mnist-z2", tmp_path / "nested")
    (tmp_path / "nested" / "config.json").write_text("[" * 100_000)
    shutil.copytree(REPO / "checkpoints" / "mnist-z2", tmp_path / "diverged")
    weights = tmp_path / "diverged" / "model.safetensors"
    state = load_file(weights)
    first = next(iter(state))
    state[first] = torch.full_like(state[first], float("nan"))
    meta = json.loads(weights.read_bytes()[8:8 + int.from_bytes(weights.read_bytes()[:8], "little")]).get("__metadata__")
    save_file(state, weights, metadata=meta)
    at = app()
    assert any("runs/nested cannot be loaded" in c.value.replace("\\", "") for c in at.sidebar.caption)
    for page in ("pages/train.py", "pages/compare.py", "pages/grid.py"):
        no_errors(app(page=page))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["model"] = "runs/diverged"
    at.run()
    assert not at.exception
    assert any("NaN or infinite weights" in e.value.replace("\\", "") for e in at.error)


def test_a_model_name_from_a_link_is_shown_as_plain_text():
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.query_params["model"] = "![x](http://127.0.0.1:9/pixel.png) [click](http://127.0.0.1:9/)"
    at.run()
    assert not at.exception
    warning = next(w.value for w in at.sidebar.warning if "not found" in w.value)
    assert "](" not in warning.replace("\\]\\(", "")  # every bracket escaped: no link, no image
    assert "\\!\\[x\\]" in warning


@pytest.fixture(scope="module")
def shaped_runs(tmp_path_factory):
    """A tiny run of a shape no shipped model has: color-sprites at 32x32 (Gaussian
    likelihood, three stride-2 convolutions). The 64x64 grey and colour shapes are the
    shipped sprites-z10 and color-sprites-z10."""
    from vae_core.train import TrainConfig, train
    runs = tmp_path_factory.mktemp("shaped-runs")
    for name, dataset, size, z in (("colour32", "color-sprites", 32, 3),):
        train(TrainConfig(dataset=dataset, limit=256, test_limit=32, epochs=1, batch_size=64, latent_dim=z,
                          hidden=32, image_size=size, device="cpu", precision="fp32", out=str(runs / name)),
              progress=False)
    return runs


def test_every_page_renders_colour_and_64_pixel_models(shaped_runs, cache_root, monkeypatch):
    """Every page on a 32x32 colour model (the 64x64 shipped ones: test_every_shipped_model_
    renders_every_page); on all three the explorer's picture is the model's decode in colour
    and its size, and an upload is framed for the model's shape."""
    import io

    from PIL import Image
    monkeypatch.setenv("VAE_RUNS_DIR", str(shaped_runs))
    at = app("runs/colour32")
    for page in ("pages/grid.py", "pages/interpolate.py", "pages/pca.py", "pages/compare.py", "pages/explore.py"):
        at.switch_page(page).run()
        no_errors(at)
    for model, shape in (("runs/colour32", (32, 32, 3)), ("sprites-z10", (64, 64)),
                         ("color-sprites-z10", (64, 64, 3))):
        at = app(model, "pages/explore.py")
        ck = load_checkpoint(shaped_runs / "colour32" if model.startswith("runs/") else REPO / "checkpoints" / model)
        data = explorer_data(at)
        assert data_pixels(data).shape == shape
        assert np.array_equal(data_pixels(data), decode(ck.model, np.asarray(data["z"], np.float32)))
        assert data["decoder_url"]  # the browser decodes these too (it draws 3 channels as RGB)
        photo = Image.new("RGB", (300, 200), (30, 160, 220))
        buf = io.BytesIO()
        photo.save(buf, "PNG")
        at.file_uploader(key="explore_upload").upload("photo.png", buf.getvalue(), "image/png")
        at.run()
        no_errors(at)
        captions = [i.caption for el in at.get("image") for i in el.proto.imgs]
        assert f"preprocessed ({shape[1]}×{shape[0]})" in captions, captions


def test_sprites_points_are_coloured_by_any_factor(cache_root):
    """A sprites model's scatter colours its points by a chosen generative factor: the
    labels in the points file are that factor of each test image (x in 10 ordered steps,
    scale by value), the legend names the steps; no training-set toggle (727,280 images)."""
    from vae_core.data import load_dataset
    at = app("sprites-z10", "pages/explore.py")
    assert at.selectbox(key="colour_by").value == "shape"
    assert not [t for t in at.toggle if t.key == "with_train"]
    factors = load_dataset("sprites", "test").factors
    _, _, shapes = read_points(explorer_data(at)["points_url"])
    assert np.array_equal(shapes, factors[:, 0])
    assert explorer_data(at)["classes"] == ["square", "ellipse", "heart"]
    at.selectbox(key="colour_by").set_value("x").run()
    no_errors(at)
    data = explorer_data(at)
    _, _, labels = read_points(data["points_url"])
    assert np.array_equal(labels, factors[:, 3] * 10 // 32)
    assert data["classes"][0] == "x 0–3" and len(data["classes"]) == 10 and len(data["palette"]) == 10
    at.selectbox(key="colour_by").set_value("scale").run()
    data = explorer_data(at)
    assert np.array_equal(read_points(data["points_url"])[2], factors[:, 1])
    assert data["classes"] == [f"scale {i}" for i in range(6)]
