import json

import pytest
import torch

from vae_core import VaeError
from vae_core.models import (MODEL_KINDS, ConvAE, ConvVAE, LinearAE, LinearVAE, ModelConfig,
                             build_model)


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("latent_dim", [1, 2, 16, 50])
def test_shapes_of_all_models(kind, latent_dim):
    model = build_model(ModelConfig(kind=kind, latent_dim=latent_dim))
    x = torch.rand(5, 1, 28, 28)
    mu, logvar = model.encode(x)
    assert mu.shape == (5, latent_dim)
    if kind.endswith("-vae"):
        assert logvar.shape == (5, latent_dim)
    else:
        assert logvar is None
    logits = model.decode(torch.randn(3, latent_dim))
    assert logits.shape == (3, 1, 28, 28)
    out, mu2, _, z = model(x)
    assert out.shape == x.shape and z.shape == (5, latent_dim)


@pytest.mark.parametrize("extra,bn", [(True, False), (False, True), (True, True)])
def test_options_change_the_network_and_keep_shapes(extra, bn):
    plain = build_model(ModelConfig(latent_dim=2))
    model = build_model(ModelConfig(latent_dim=2, extra_decoder_layer=extra, batchnorm=bn))
    assert model.decode(torch.zeros(2, 2)).shape == (2, 1, 28, 28)
    assert model.encode(torch.rand(4, 1, 28, 28))[0].shape == (4, 2)
    n_plain = sum(p.numel() for p in plain.parameters())
    assert sum(p.numel() for p in model.parameters()) != n_plain
    if extra:  # dec+1: the last decoder layer is a ConvTranspose with kernel 3, stride 1
        last = model.decoder.deconv[-1]
        assert isinstance(last, torch.nn.ConvTranspose2d)
        assert last.kernel_size == (3, 3) and last.stride == (1, 1)
    if bn:
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.encoder.modules())


def test_named_classes_share_one_interface():
    for cls, variational in [(ConvVAE, True), (ConvAE, False), (LinearVAE, True), (LinearAE, False)]:
        m = cls(latent_dim=3)
        assert m.variational is variational
        assert m.decode(torch.zeros(1, 3)).shape == (1, 1, 28, 28)


def test_leaky_relu_slope_is_0_2():
    model = ConvVAE()
    slopes = {m.negative_slope for m in model.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.2}


def test_config_round_trips_through_json():
    cfg = ModelConfig(kind="linear-ae", latent_dim=7, extra_decoder_layer=True, batchnorm=True, hidden=64)
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


@pytest.mark.parametrize("bad", [{"latent_dim": 0}, {"kind": "gan"}, {"hidden": 0}])
def test_bad_config_is_refused(bad):
    with pytest.raises(VaeError):
        ModelConfig(**bad)


def test_unknown_config_key_is_refused():
    with pytest.raises(VaeError, match="unknown keys"):
        ModelConfig.from_dict({"kind": "conv-vae", "latent_dim": 2, "dropout": 0.5})
