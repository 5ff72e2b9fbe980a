import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from vae_core import VaeError
from vae_core.catalog import DEFAULT_MODEL, find_model, list_models
from vae_core.checkpoint import save_checkpoint
from vae_core.favourites import export_favourites, import_favourites
from vae_core.images import decode, decode_grid, grid_axes, grid_latents, png_bytes, tile, upscale
from vae_core.latents import nearest_indices
from vae_core.models import ModelConfig, build_model
from vae_core.plots import square_ranges


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(latent_dim=2)).eval()


def test_decode_shapes_and_range(model):
    one = decode(model, [0.0, 0.0])
    many = decode(model, np.zeros((5, 2)))
    assert one.shape == (28, 28) and one.dtype == np.uint8
    assert many.shape == (5, 28, 28) and np.array_equal(many[0], one)
    with pytest.raises(VaeError, match="latent space has 2"):
        decode(model, [0.0, 0.0, 0.0])


def test_png_is_crisp_nearest_upscale():
    img = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    out = np.asarray(Image.open(io.BytesIO(png_bytes(img, scale=10))))
    assert out.shape == (20, 20) and set(np.unique(out)) == {0, 255}  # no blended grey
    assert not set(np.unique(upscale(img, 20, "bicubic"))) <= {0, 255}


def test_grid_axes_linear_and_quantiles():
    assert np.allclose(grid_axes(5, 3.0), [-3, -1.5, 0, 1.5, 3])
    q = grid_axes(3, mode="quantiles")
    assert np.allclose(q, [-0.6745, 0.0, 0.6745], atol=1e-4)  # Phi^-1 of 1/4, 1/2, 3/4
    with pytest.raises(VaeError):
        grid_axes(1)
    with pytest.raises(VaeError):
        grid_axes(5, mode="log")


def test_grid_latents_orientation_and_other_dims_kept():
    base = np.array([0.5, 9.0, -1.0])
    dirs = (np.eye(3)[0], np.eye(3)[2])
    lat = grid_latents(base, np.array([-1.0, 1.0]), np.array([-2.0, 2.0]), dirs)
    assert lat.shape == (2, 2, 3)
    assert np.allclose(lat[..., 1], 9.0)                      # untouched dimension
    assert np.allclose(lat[0, :, 2], -1.0 + 2.0)              # top row: largest y
    assert np.allclose(lat[:, 0, 0], 0.5 - 1.0)               # left column: smallest x


def test_decode_grid_tiles_every_cell(model):
    axis = grid_axes(4, 2.0)
    mosaic = decode_grid(model, np.zeros(2), axis, axis, (np.eye(2)[0], np.eye(2)[1]))
    assert mosaic.shape == (4 * 28, 4 * 28)
    assert np.array_equal(mosaic[:28, :28], decode(model, [-2.0, 2.0]))  # top-left: x=-a, y=+a
    assert tile(np.zeros((2, 3, 28, 28), np.uint8), pad=2).shape == (58, 88)


def test_square_ranges_hold_every_point_with_equal_units():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(300, 2)) * [1.0, 3.0]
    (x0, x1), (y0, y1) = square_ranges(pts)
    assert x1 - x0 == pytest.approx(y1 - y0)  # equal units on both axes
    assert x0 <= pts[:, 0].min() and pts[:, 0].max() <= x1 and y0 <= pts[:, 1].min() and pts[:, 1].max() <= y1


def test_nearest_indices():
    pts = np.array([[0, 0], [5, 5], [1, 0], [0.5, 0]], dtype=np.float32)
    assert list(nearest_indices(pts, [0.4, 0], k=3)) == [3, 0, 2]
    assert len(nearest_indices(pts, [0, 0], k=10)) == 4


def test_favourites_round_trip_and_bad_files():
    favs = {"thin one": [0.5, -1.0], "zero": [2.0, 2.0]}
    data = export_favourites(favs, "mnist-z2", 2)
    assert import_favourites(data, 2) == favs
    with pytest.raises(VaeError, match="3 dimensions"):
        import_favourites(data, 3)
    bad = [b"", b"\x80\x81", b"[1, 2]", json.dumps({"format": "other"}).encode(),
           export_favourites({"x": [1.0]}, "m", 2), json.dumps({"format": "vae-explorer-favourites", "latent_dim": 2,
                                                                 "favourites": {"x": [1.0, "nan"]}}).encode(),
           b"{" * 2_000_000]
    for blob in bad:
        with pytest.raises(VaeError):
            import_favourites(blob, 2)


def test_catalog_lists_shipped_models_first_and_finished_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path))
    save_checkpoint(tmp_path / "myrun", build_model(ModelConfig(latent_dim=3)), dataset={"name": "digits"},
                    metrics={"test_loss": 123.4})
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.json").write_text("{}")
    keys = [e.key for e in list_models()]
    assert keys[0] == DEFAULT_MODEL and "runs/myrun" in keys and "runs/unfinished" not in keys
    entry = find_model("runs/myrun")
    assert entry.latent_dim == 3 and entry.dataset == "digits" and "123.4" in entry.label


# --- the decoder as data for the browser (vae_core.webdecoder) ---

@pytest.mark.parametrize("kind", ["conv-vae", "conv-ae", "linear-vae"])
@pytest.mark.parametrize("dec_plus_one", [False, True])
def test_decoder_layers_reproduce_the_pytorch_decoder(kind, dec_plus_one):
    import torch
    from vae_core.models import AutoEncoder, ModelConfig
    from vae_core.webdecoder import decoder_layers, run_layers
    torch.manual_seed(0)
    model = AutoEncoder(ModelConfig(kind=kind, latent_dim=3, extra_decoder_layer=dec_plus_one)).eval()
    layers = decoder_layers(model)
    assert {"linear", "lrelu", "reshape"} <= {L["op"] for L in layers}
    for z in np.random.default_rng(1).normal(size=(4, 3)) * 2:
        with torch.no_grad():
            ref = model.decode(torch.tensor(z, dtype=torch.float32)[None])[0].numpy()
        out = run_layers(layers, z)
        assert out.shape == ref.shape == (1, 28, 28)
        assert np.abs(out - ref).max() < 1e-4


def test_decoder_layers_refuse_what_the_browser_cannot_run():
    import torch.nn as nn
    from vae_core import VaeError
    from vae_core.models import AutoEncoder, ModelConfig
    from vae_core.webdecoder import decoder_layers
    model = AutoEncoder(ModelConfig(latent_dim=2))
    model.decoder.deconv.append(nn.BatchNorm2d(1))
    with pytest.raises(VaeError, match="BatchNorm2d"):
        decoder_layers(model)


def test_the_decoder_blob_round_trips_and_keeps_weights_aligned():
    import struct
    from vae_core.checkpoint import load_checkpoint
    from vae_core.webdecoder import decoder_blob, decoder_layers, read_blob, run_layers
    from tests.conftest import REPO
    model = load_checkpoint(REPO / "checkpoints" / "mnist-z2").model
    blob = decoder_blob(model)
    (n,) = struct.unpack("<I", blob[:4])
    assert (4 + n) % 4 == 0  # a Float32Array over the rest needs 4-byte alignment
    assert len(blob) < 3.5e6  # raw float32, no base64
    layers = read_blob(blob)
    assert layers == decoder_layers(model)
    z = [0.3, -1.2]
    with torch.no_grad():
        ref = model.decode(torch.tensor([z]))[0].numpy()
    assert np.abs(run_layers(layers, z) - ref).max() < 1e-4
