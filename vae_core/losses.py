"""The objective, in one place.

    loss = NLL(sum over pixels)/B + beta * KL(sum over dims)/B

Both terms are summed per image and averaged over the batch, so the loss is a
per-sample quantity: changing the batch size does not rescale beta (dividing
the NLL by the number of pixels, as some examples do, silently multiplies beta by 784).

The NLL is the decoder's likelihood, in nats per image:
  bernoulli  BCE of sigmoid(logits) against targets in [0, 1] (grey or binary data)
  gaussian   -log N(x; sigmoid(logits), sigma^2) per pixel with one shared sigma:
             the sigma-VAE (Rybkin et al. 2021). With a fixed sigma the MSE weight
             is a hidden beta; calibrating sigma to the data fixes it, which colour
             data needs (BCE on colour is not a likelihood of the data and blurs).
             Training uses each batch's analytic optimum, sigma^2 = the batch's mean
             squared error per pixel (the paper's "optimal sigma", which it found
             better than a gradient-learned sigma: a learned log sigma starting at 0
             moves by ~lr a step, so for the first thousands of steps the KL term
             dominates). The model keeps the optimum over the last epoch for
             evaluation. It is a density on [0, 1]^D, so it can be negative once
             sigma is small. link "channel-gain" (models.py's decoder_mean): the
             output is the mean itself, N(x; output, sigma^2), no sigmoid.

Knobs against posterior collapse:
  free bits (Kingma et al. 2016)  each latent dimension's batch-mean KL is floored
                                   at eps, so the optimiser gains nothing by pushing
                                   a dimension's KL below eps and leaves it alone
  beta schedules                   constant; linear warm-up from 0 (Bowman et al. 2016);
                                   cyclical (Fu et al. 2019): repeated ramps
  capacity (Burgess et al. 2018)   beta * |KL - C| with C raised linearly to C_max
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vae_core import VaeError

BETA_SCHEDULES = ("constant", "linear", "cyclical")
ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2015: Cov_x(E_q[z_i]) > 0.01


def recon_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Bernoulli negative log-likelihood per image, summed over pixels: shape (B,)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


LOG_2PI = math.log(2 * math.pi)


def gaussian_mean(out: torch.Tensor, link: str = "sigmoid") -> torch.Tensor:
    """The Gaussian decoder's mean: sigmoid(out), or out itself for the channel-gain link."""
    return torch.sigmoid(out) if link == "sigmoid" else out


def recon_gaussian(logits: torch.Tensor, target: torch.Tensor, log_sigma: torch.Tensor,
                   link: str = "sigmoid") -> torch.Tensor:
    """Gaussian negative log-likelihood per image, summed over pixels: shape (B,).

    The mean is sigmoid(logits) (link "sigmoid"), so every decoder's output reads as a
    picture the same way, or the output itself (link "channel-gain"); log_sigma is one
    scalar shared by all pixels (sigma-VAE, Rybkin et al. 2021).
    """
    mean = gaussian_mean(logits, link)
    sq = (target - mean).pow(2).flatten(1)
    d = sq.shape[1]
    return 0.5 * sq.sum(1) * torch.exp(-2 * log_sigma) + d * (log_sigma + 0.5 * LOG_2PI)


def optimal_log_sigma(logits: torch.Tensor, target: torch.Tensor, floor: float = -6.0,
                      link: str = "sigmoid") -> torch.Tensor:
    """The sigma-VAE's analytic optimum for a batch: log sqrt(mean squared error per pixel),
    detached (a statistic of the batch, not a path for gradients) and floored so a perfect
    reconstruction of flat images does not send the NLL to minus infinity."""
    mse = (gaussian_mean(logits.detach(), link) - target).pow(2).mean()
    return (0.5 * torch.log(mse.clamp(min=1e-30))).clamp(min=floor)


def recon_nll(logits: torch.Tensor, target: torch.Tensor, log_sigma: torch.Tensor | None = None,
              link: str = "sigmoid") -> torch.Tensor:
    """The decoder's negative log-likelihood per image (B,): Bernoulli when log_sigma is
    None (what every model before issue 13 uses), Gaussian with that log sigma otherwise
    (link: the model's decoder_mean)."""
    if log_sigma is None:
        return recon_bce(logits, target)
    return recon_gaussian(logits, target, log_sigma, link)


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) in closed form, per image and dimension: shape (B, D)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def beta_at(schedule: str, beta: float, epoch: float, warmup_epochs: float = 0.0,
            total_epochs: float = 1.0, cycles: int = 4, ratio: float = 0.5) -> float:
    """beta at a fractional epoch (epoch 0.5 = halfway through the first epoch).

    linear:   beta * min(1, epoch / warmup_epochs)
    cyclical: `cycles` equal periods over the run; in each, beta ramps from 0 to its
              full value over the first `ratio` of the period, then holds (Fu et al. 2019).
    """
    if schedule == "constant":
        return beta
    if schedule == "linear":
        return beta if warmup_epochs <= 0 else beta * min(1.0, epoch / warmup_epochs)
    if schedule == "cyclical":
        period = max(total_epochs / max(cycles, 1), 1e-9)
        tau = (epoch % period) / period
        # the last step of the run lands exactly on a period boundary: keep it at full beta
        if epoch >= total_epochs:
            tau = 1.0
        return beta * min(1.0, tau / ratio)
    raise VaeError(f"Unknown beta schedule {schedule!r}: choose one of {', '.join(BETA_SCHEDULES)}.")


def capacity_at(capacity_max: float | None, epoch: float, capacity_epochs: float) -> float | None:
    if capacity_max is None:
        return None
    if capacity_epochs <= 0:
        return capacity_max
    return capacity_max * min(1.0, epoch / capacity_epochs)


def vae_loss(logits, target, mu, logvar, beta: float = 1.0, free_bits: float = 0.0,
             capacity: float | None = None, log_sigma: torch.Tensor | None = None, link: str = "sigmoid") -> dict:
    """Per-sample loss and every term, as tensors.

    log_sigma: the Gaussian decoder's (model.decoder_log_sigma()); None for Bernoulli.
    link: the model's decoder_mean (how a Gaussian decoder's output is its mean).

    Returns loss (what is minimised), recon, kl (the true KL, not floored),
    kl_per_dim (batch mean, shape (D,)) and kl_term (what beta multiplies).
    For an autoencoder (logvar None) the loss is the reconstruction alone.
    """
    recon = recon_nll(logits, target, log_sigma, link).mean()
    if logvar is None:
        zero = recon.new_zeros(())
        return {"loss": recon, "recon": recon, "kl": zero, "kl_term": zero,
                "kl_per_dim": recon.new_zeros(mu.shape[1])}
    kl_dims = kl_per_dim(mu, logvar).mean(0)  # (D,) batch mean per dimension
    kl = kl_dims.sum()
    kl_term = kl_dims.clamp(min=free_bits).sum() if free_bits > 0 else kl
    if capacity is not None:
        kl_term = (kl_term - capacity).abs()
    return {"loss": recon + beta * kl_term, "recon": recon, "kl": kl, "kl_term": kl_term,
            "kl_per_dim": kl_dims}


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """How many latent dimensions vary with the input: Var_x(E_q[z_i]) > threshold."""
    if mu.shape[0] < 2:
        return 0
    return int((mu.float().var(0) > threshold).sum())


def check_finite(value: float, what: str, epoch: int, lr: float, beta: float) -> None:
    """Stop a diverging run with a message that says what to change."""
    if not math.isfinite(value):
        raise VaeError(f"The {what} became {value} at epoch {epoch}: training diverged. "
                       f"Try a lower learning rate (now {lr:g}) or a lower beta (now {beta:g}).")
