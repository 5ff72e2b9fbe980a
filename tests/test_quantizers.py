"""The discrete bottlenecks (vae_core/quantizers.py): FSQ's grid and VQ-VAE's EMA codebook,
checked against direct computations, and the models built on them."""
import math

import pytest
import torch

from vae_core import VaeError
from vae_core.models import ModelConfig, build_model
from vae_core.quantizers import FSQ, VectorQuantizer, parse_levels
from vae_core.train import config_from_args
from vae_core.webdecoder import decoder_blob


def test_fsq_outputs_only_grid_values_and_passes_gradients():
    torch.manual_seed(0)
    q = FSQ((8, 5, 5, 5)).train()
    h = (torch.randn(4096, 4) * 3).requires_grad_()       # far into tanh's tails too
    z = q(h)
    for d, n in enumerate(q.levels):
        allowed = torch.tensor(q.values(d))
        assert len(allowed) == n and allowed.min() == -1 and allowed.max() <= 1
        assert torch.isin(z[:, d].detach(), allowed).all()
        assert len(z[:, d].unique()) == n               # 4096 spread inputs reach every level
    assert q.values(0) == [-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75] and q.values(1) == [-1, -0.5, 0, 0.5, 1]
    (z * torch.arange(1.0, 5.0)).sum().backward()      # straight-through: the rounding passes gradients
    assert torch.isfinite(h.grad).all() and (h.grad.abs() > 0).float().mean() > 0.9
    assert (h.grad[:, 3].abs().mean() > h.grad[:, 0].abs().mean())  # and keeps each channel's own weight


def test_fsq_snap_codes_and_counts():
    q = FSQ((4, 3)).eval()
    grid = torch.tensor([[a, b] for a in q.values(0) for b in q.values(1)])
    assert torch.equal(q.snap(grid), grid)                       # grid points are fixed points
    assert sorted(q.codes(grid).tolist()) == list(range(12))     # one index per grid point, all of them
    got = q.snap(torch.tensor([[0.3, 0.3], [-5.0, 5.0], [0.74, -0.2]]))
    assert got.tolist() == [[0.5, 0.0], [-1.0, 1.0], [0.5, 0.0]]
    q.train()
    q(torch.randn(64, 2))
    stats = q.epoch_stats()
    assert 0 < stats["codebook_usage"] <= 1 and 1 <= stats["perplexity"] <= 12
    assert q.epoch_stats() == {"codebook_usage": 0.0, "perplexity": 0.0}  # read once, reset
    q(torch.randn(1, 2))  # a batch of one trains on the running statistics instead of failing


def test_vq_ema_moves_codes_toward_their_encodings_and_restarts_dead_ones():
    torch.manual_seed(0)
    vq = VectorQuantizer(codebook_size=3, code_dim=2, slots=1, decay=0.5, restart=0.1)
    vq.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0], [-50.0, -50.0]]))
    vq.ema_sum.copy_(vq.codebook)
    vq.ema_count.fill_(1.0)
    near0 = torch.tensor([[1.0, 1.0], [1.0, 3.0]])   # both nearest code 0; mean (1, 2)
    near1 = torch.tensor([[9.0, 9.0]])
    vq.train()
    out = vq(torch.cat([near0, near1]))
    # the output is each encoding's code before this step's update
    assert out.tolist() == [[0.0, 0.0], [0.0, 0.0], [10.0, 10.0]]
    # EMA with decay 0.5: N0 = 0.5 + 0.5 * 2 = 1.5, m0 = 0.5 * (0, 0) + 0.5 * (2, 4) = (1, 2)
    assert vq.ema_count[0].item() == pytest.approx(1.5) and vq.ema_sum[0].tolist() == pytest.approx([1.0, 2.0])
    total, K, eps = float(vq.ema_count.sum()), 3, vq.eps
    smoothed0 = (1.5 + eps) / (total + K * eps) * total
    assert vq.codebook[0].tolist() == pytest.approx([1.0 / smoothed0, 2.0 / smoothed0], rel=1e-5)
    assert torch.dist(vq.codebook[0], near0.mean(0)) < torch.dist(torch.zeros(2), near0.mean(0))
    assert torch.dist(vq.codebook[1], near1[0]) < torch.dist(torch.tensor([10.0, 10.0]), near1[0])
    # code 2 was chosen by nobody: its average use halves each step (1 -> 0.5 -> ... -> 0.0625)
    assert vq.ema_count[2].item() == pytest.approx(0.5) and torch.dist(vq.codebook[2], torch.tensor([-50.0, -50.0])) < 0.1
    for _ in range(2):  # 0.25, 0.125
        vq(torch.cat([near0, near1]))
    assert torch.dist(vq.codebook[2], torch.tensor([-50.0, -50.0])) < 0.1  # (Laplace smoothing nudges it)
    vq(torch.cat([near0, near1]))  # 0.0625 < 0.1: restarted at one of the batch's encodings
    assert torch.cdist(vq.codebook[2:3], torch.cat([near0, near1])).min() < 0.5
    assert vq.ema_count[2].item() == 1.0
    vq(torch.cat([near0, near1]))
    assert vq.epoch_stats()["codebook_usage"] == pytest.approx(1.0)  # the restarted code got used too


def test_vq_snap_is_nearest_code_and_straight_through():
    torch.manual_seed(0)
    vq = VectorQuantizer(codebook_size=8, code_dim=2, slots=3).eval()
    z = torch.randn(5, 6, requires_grad=True)
    q = vq.snap(z)
    codes = vq.codes(z)
    direct = torch.cdist(z.detach().view(-1, 2), vq.codebook).argmin(1).view(5, 3)
    assert torch.equal(codes, direct) and torch.allclose(q.detach(), vq.embed(codes), atol=1e-6)
    q.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))


def test_discrete_models_decode_any_z_as_its_snapped_z_and_keep_the_browser_out():
    torch.manual_seed(0)
    for cfg in (ModelConfig(kind="conv-ae", latent_dim=4, family="fsq", levels=(8, 5, 5, 5)),
                ModelConfig(kind="conv-ae", latent_dim=8, family="vq-vae", codebook_size=16, code_dim=2)):
        m = build_model(cfg).eval()
        z = torch.randn(3, cfg.latent_dim)
        assert torch.equal(m.decode(z), m.decoder(m.quantizer.snap(z)))
        assert not torch.equal(m.decode(z), m.decoder(z))
        x = torch.rand(2, 1, 28, 28)
        mu, logvar = m.encode(x)
        assert logvar is None and mu.shape == (2, cfg.latent_dim)
        with pytest.raises(VaeError, match="does not quantise"):
            decoder_blob(m)
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("args,needle", [
    (["--model", "fsq", "--latent-dim", "3"], "make 4 channels, not --latent-dim 3"),
    (["--model", "fsq", "--fsq-levels", "8,x"], "whole numbers separated by commas"),
    (["--model", "fsq", "--fsq-levels", "1", "--latent-dim", "2"], "from 2 to 256 levels"),
    (["--model", "fsq", "--fsq-levels", "256,256,256", "--latent-dim", "3"], "at most 65,536"),
    (["--model", "vq-vae", "--latent-dim", "6"], "must be a multiple of it"),
    (["--model", "vq-vae", "--latent-dim", "8", "--codebook-size", "1"], "--codebook-size must be"),
    (["--model", "vq-vae", "--latent-dim", "8", "--vq-decay", "1"], "--vq-decay must be"),
    (["--model", "fsq", "--latent-dim", "4", "--beta", "2"], "fsq is weighted by its own flags"),
    (["--model", "conv-vae", "--fsq-levels", "5"], "--fsq-levels belongs to --model fsq"),
])
def test_bad_discrete_flags_are_refused_in_one_sentence(args, needle):
    with pytest.raises(VaeError) as e:
        cfg = config_from_args(args)
        cfg.validate()
        cfg.model_config()
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_one_level_count_serves_every_channel():
    assert parse_levels("5", 3) == (5, 5, 5) and parse_levels(" 8, 5 ") == (8, 5)
    cfg = config_from_args(["--model", "fsq", "--fsq-levels", "5", "--latent-dim", "6"])
    assert cfg.model_config().levels == (5,) * 6 and math.prod(cfg.model_config().levels) == 5 ** 6
