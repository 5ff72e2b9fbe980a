"""Issue 13: images of any (C, H, W) with C in {1, 3} through models, checkpoints, losses and data."""
import json

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from vae_core import VaeError
from vae_core.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from vae_core.models import MODEL_KINDS, ModelConfig, build_model, conv_depth

SHAPES = [(1, 28), (1, 64), (3, 32), (3, 64)]


# ---------------------------------------------------------------- models

@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("channels,size", SHAPES)
def test_every_model_kind_encodes_and_decodes_every_shape(kind, channels, size):
    torch.manual_seed(0)
    cfg = ModelConfig(kind=kind, latent_dim=3, image_channels=channels, image_size=size, hidden=32,
                      channels=(8, 16), extra_decoder_layer=True, batchnorm=True)
    model = build_model(cfg)
    x = torch.rand(5, channels, size, size)
    mu, logvar = model.encode(x)
    assert mu.shape == (5, 3)
    assert (logvar is None) != kind.endswith("-vae")
    assert model.decode(mu).shape == (5, channels, size, size)
    logits, *_ = model(x)
    assert logits.shape == x.shape


def test_conv_depth_follows_the_size_and_keeps_the_reference_at_28():
    assert [conv_depth(s) for s in (8, 14, 16, 28, 32, 48, 64, 128)] == [1, 1, 2, 2, 3, 3, 4, 5]
    assert ModelConfig(image_size=28).widths == (32, 64)   # the reference recipe, unchanged
    assert ModelConfig(image_size=64).widths == (32, 64, 128, 256)
    enc = build_model(ModelConfig(image_size=64, image_channels=3)).encoder.net
    convs = [m for m in enc if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2)] * 4 and convs[0].in_channels == 3
    assert any(isinstance(m, torch.nn.LeakyReLU) and m.negative_slope == 0.2 for m in enc)
    for bad in (30, 100, 9):
        with pytest.raises(VaeError, match="halves exactly"):
            ModelConfig(image_size=bad)
    ModelConfig(kind="linear-vae", image_size=30)  # an MLP takes any size
    with pytest.raises(VaeError, match="1 \\(grey\\) or 3"):
        ModelConfig(image_channels=2)
    with pytest.raises(VaeError, match="likelihood"):
        ModelConfig(likelihood="poisson")


# ---------------------------------------------------------------- checkpoints

def test_new_checkpoints_record_the_shape_and_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(image_channels=3, image_size=32, likelihood="gaussian", latent_dim=4))
    with torch.no_grad():
        model.log_sigma.fill_(-1.5)
    save_checkpoint(tmp_path / "ck", model)
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert cfg["format_version"] == FORMAT_VERSION == 2
    assert (cfg["model"]["image_channels"], cfg["model"]["image_size"], cfg["model"]["likelihood"]) == (3, 32, "gaussian")
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.model.image_shape == (3, 32, 32) and float(ck.model.log_sigma) == -1.5
    z = torch.randn(2, 4)
    assert torch.equal(ck.model.decode(z), model.eval().decode(z))


def test_version_1_folders_load_as_1x28x28_bernoulli(tmp_path):
    """A shipped folder is version 1 with no shape: it loads unchanged, and reading does not rewrite it."""
    import shutil
    shutil.copytree(REPO / "checkpoints" / "mnist-z2", tmp_path / "old")
    before = {p.name: p.read_bytes() for p in (tmp_path / "old").iterdir()}
    cfg = json.loads(before["config.json"])
    assert cfg["format_version"] == 1 and "image_size" not in cfg["model"]
    ck = load_checkpoint(tmp_path / "old")
    assert ck.model.image_shape == (1, 28, 28) and ck.model.likelihood == "bernoulli"
    assert not hasattr(ck.model, "log_sigma")
    assert {p.name: p.read_bytes() for p in (tmp_path / "old").iterdir()} == before
    # a version-1 config that names version-2 fields is damaged, not guessed at
    cfg["model"]["image_size"] = 64
    (tmp_path / "old" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(VaeError, match="version 1"):
        load_checkpoint(tmp_path / "old")
    cfg["format_version"] = 3
    (tmp_path / "old" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(VaeError, match="Upgrade the app"):
        load_checkpoint(tmp_path / "old")


def test_a_config_whose_shape_does_not_fit_the_weights_is_refused(tmp_path):
    save_checkpoint(tmp_path / "ck", build_model(ModelConfig(image_size=32)))
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    cfg["model"]["image_channels"] = 3
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(VaeError, match="does not fit"):
        load_checkpoint(tmp_path / "ck")
