import math

import pytest
import torch

from vae_core import VaeError
from vae_core.losses import active_units, beta_at, capacity_at, kl_per_dim, recon_bce, vae_loss


def test_closed_form_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mu = torch.tensor([[0.5, -1.0, 2.0]])
    logvar = torch.tensor([[-0.5, 0.3, -2.0]])
    closed = kl_per_dim(mu, logvar)[0]
    std = torch.exp(0.5 * logvar)
    z = mu + std * torch.randn(400_000, 3)
    log_q = -0.5 * (((z - mu) / std) ** 2 + logvar + math.log(2 * math.pi))
    log_p = -0.5 * (z ** 2 + math.log(2 * math.pi))
    mc = (log_q - log_p).mean(0)
    assert torch.allclose(closed, mc, atol=0.02), (closed, mc)


def test_kl_is_zero_at_the_prior():
    assert torch.allclose(kl_per_dim(torch.zeros(4, 2), torch.zeros(4, 2)), torch.zeros(4, 2))


def _batch(b=8, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 1, 28, 28, generator=g)
    logits = torch.randn(b, 1, 28, 28, generator=g)
    mu = torch.randn(b, d, generator=g)
    logvar = torch.randn(b, d, generator=g) * 0.3
    return logits, x, mu, logvar


def test_loss_is_per_sample_and_independent_of_batch_size():
    logits, x, mu, logvar = _batch(b=64)
    whole = vae_loss(logits, x, mu, logvar, beta=0.1)["loss"]
    # mean of the losses of four batches of 16 equals the loss of one batch of 64
    parts = torch.stack([vae_loss(logits[i:i + 16], x[i:i + 16], mu[i:i + 16], logvar[i:i + 16],
                                  beta=0.1)["loss"] for i in range(0, 64, 16)])
    assert torch.allclose(whole, parts.mean(), rtol=1e-6)
    # a batch of one image repeated 32 times has the loss of that one image
    one = vae_loss(logits[:1], x[:1], mu[:1], logvar[:1], beta=0.1)["loss"]
    rep = vae_loss(logits[:1].repeat(32, 1, 1, 1), x[:1].repeat(32, 1, 1, 1),
                   mu[:1].repeat(32, 1), logvar[:1].repeat(32, 1), beta=0.1)["loss"]
    assert torch.allclose(one, rep, rtol=1e-6)


def test_terms_are_bce_sum_plus_beta_kl_sum():
    logits, x, mu, logvar = _batch()
    t = vae_loss(logits, x, mu, logvar, beta=0.25)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 8
    kl = kl_per_dim(mu, logvar).sum() / 8
    assert torch.allclose(t["recon"], bce, rtol=1e-5)
    assert torch.allclose(t["kl"], kl, rtol=1e-5)
    assert torch.allclose(t["loss"], bce + 0.25 * kl, rtol=1e-5)
    assert torch.allclose(t["kl_per_dim"].sum(), kl, rtol=1e-5)


def test_free_bits_floor_each_dimension_and_stop_its_gradient():
    mu = torch.tensor([[0.01, 2.0], [-0.01, 2.0]], requires_grad=True)
    logvar = torch.zeros(2, 2, requires_grad=True)
    x = torch.rand(2, 1, 28, 28)
    logits = torch.zeros(2, 1, 28, 28)
    t = vae_loss(logits, x, mu, logvar, beta=1.0, free_bits=0.5)
    kl_dims = kl_per_dim(mu, logvar).mean(0)
    assert kl_dims[0] < 0.5 < kl_dims[1]
    assert torch.allclose(t["kl_term"], 0.5 + kl_dims[1])
    assert torch.allclose(t["kl"], kl_dims.sum())  # the logged KL is the true one
    t["loss"].backward()
    assert torch.all(mu.grad[:, 0] == 0)  # below the floor: no pressure towards the prior
    assert torch.all(mu.grad[:, 1] != 0)


def test_capacity_penalises_distance_to_target():
    logits, x, mu, logvar = _batch()
    t = vae_loss(logits, x, mu, logvar, beta=2.0, capacity=5.0)
    assert torch.allclose(t["kl_term"], (t["kl"] - 5.0).abs())
    assert capacity_at(10.0, 1.0, 4.0) == 2.5 and capacity_at(10.0, 9.0, 4.0) == 10.0
    assert capacity_at(None, 1.0, 4.0) is None


def test_beta_schedules():
    assert beta_at("constant", 0.1, 0.0) == 0.1
    assert beta_at("linear", 1.0, 0.0, warmup_epochs=4) == 0.0
    assert beta_at("linear", 1.0, 1.0, warmup_epochs=4) == 0.25
    assert beta_at("linear", 1.0, 7.0, warmup_epochs=4) == 1.0
    assert beta_at("linear", 0.3, 0.0, warmup_epochs=0) == 0.3
    # cyclical: 4 cycles over 8 epochs -> period 2, ramp over the first half of each
    vals = [beta_at("cyclical", 1.0, t, total_epochs=8, cycles=4) for t in (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)]
    assert vals == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5]
    assert beta_at("cyclical", 1.0, 8.0, total_epochs=8, cycles=4) == 1.0
    with pytest.raises(VaeError):
        beta_at("exponential", 1.0, 0.0)


def test_autoencoder_loss_is_reconstruction_only():
    logits, x, mu, _ = _batch()
    t = vae_loss(logits, x, mu, None, beta=5.0)
    assert torch.equal(t["loss"], t["recon"]) and float(t["kl"]) == 0.0
    assert torch.allclose(t["recon"], recon_bce(logits, x).mean())


def test_active_units_counts_dimensions_that_vary_with_the_input():
    g = torch.Generator().manual_seed(0)
    mu = torch.cat([torch.randn(500, 2, generator=g), 0.01 * torch.randn(500, 3, generator=g)], 1)
    assert active_units(mu) == 2
