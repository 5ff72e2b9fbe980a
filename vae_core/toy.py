"""The 1-D VAE of the reference notebook, small enough to train while you watch (the Learn page).

Data: n draws from two Gaussians, ±sep apart with standard deviation `std` (seeded).
Model: a linear Gaussian encoder q(z|x) = N(a·x + b, exp(c·x + e)) and a linear decoder
p(x|z) = N(w·z + v, σ²) whose variance σ² is fixed by the user, prior N(0, 1).
Objective: the β-ELBO, E_q[log p(x|z)] − β·KL(q(z|x) ‖ N(0, 1)), full batch, Adam.

A linear decoder cannot make two modes out of a Gaussian prior: its p(x) is one Gaussian,
which is the notebook's first lesson. The second is the trade-off: with data variance s²
the optimum keeps z informative only while s² > β·σ² (the linear-Gaussian case of
Lucas et al. 2019); past that the posterior collapses to the prior. With the defaults
(s² ≈ 4.25, σ² = 1) β = 4 sits just before that edge, so its KL and I(x;z) are far lower
than at β = 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class ToyConfig:
    n: int = 1000             # data points
    sep: float = 2.0          # the two modes at ±sep
    std: float = 0.5          # each mode's standard deviation
    seed: int = 0             # the data's and the training's seed
    beta: float = 1.0         # weight of the KL term
    decoder_var: float = 1.0  # σ² of p(x|z), fixed
    steps: int = 500          # full-batch Adam steps
    lr: float = 0.05


def toy_data(cfg: ToyConfig) -> np.ndarray:
    """(n,) float32: half the points (rounded down) from N(−sep, std²), the rest from N(+sep, std²)."""
    rng = np.random.default_rng(cfg.seed)
    left = cfg.n // 2
    x = np.concatenate([rng.normal(-cfg.sep, cfg.std, left), rng.normal(cfg.sep, cfg.std, cfg.n - left)])
    return rng.permutation(x).astype(np.float32)


class LinearVAE(torch.nn.Module):
    """B independent linear VAEs side by side (one per β of a sweep): every parameter has
    shape (B,). Their losses are summed, and as no parameter is shared, Adam (elementwise)
    moves each exactly as if it were trained alone: a sweep costs one training."""

    def __init__(self, b: int = 1, seed: int = 0):
        super().__init__()
        # every row starts from the same seeded draw (nn.Linear(1, 1)'s range): a β of a sweep
        # starts where it would alone
        start = torch.empty(6).uniform_(-1.0, 1.0, generator=torch.Generator().manual_seed(seed))
        self.a, self.b, self.c, self.e, self.w, self.v = (torch.nn.Parameter(v.repeat(b)) for v in start)

    def encode(self, x: torch.Tensor):
        """(μ, log σ²), each (B, N), of q(z|x) for x (N,)."""
        return self.a[:, None] * x + self.b[:, None], self.c[:, None] * x + self.e[:, None]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean of p(x|z), (B, N), for z (B, N)."""
        return self.w[:, None] * z + self.v[:, None]


def _terms(model: LinearVAE, x: torch.Tensor, decoder_var: float, eps: torch.Tensor):
    """Per model and point, (B, N): (reconstruction −log p(x|z) at z = μ + σε, KL(q(z|x) ‖ N(0, 1)))."""
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * eps
    recon = 0.5 * (LOG_2PI + math.log(decoder_var) + (x - model.decode(z)) ** 2 / decoder_var)
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar)
    return recon, kl


@dataclass
class ToyResult:
    config: ToyConfig
    x: np.ndarray                  # the data
    model: LinearVAE               # B models; this result's is row `row`
    history: dict                  # per step: "elbo", "recon", "kl" (means over the data, β = 1 ELBO)
    metrics: dict                  # see collapse_check
    row: int = 0


def train_toy(cfg: ToyConfig) -> ToyResult:
    """Train the linear VAE on the toy data (well under a second on a CPU)."""
    return train_toys(cfg, [cfg.beta])[0]


def train_toys(cfg: ToyConfig, betas) -> list[ToyResult]:
    """One linear VAE per β on cfg's data (cfg.beta is not used), trained together."""
    x = torch.from_numpy(toy_data(cfg))
    betas_t = torch.tensor([float(b) for b in betas])
    model = LinearVAE(len(betas_t), cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    curve = torch.empty(cfg.steps, 2, len(betas_t))
    for step in range(cfg.steps):
        eps = torch.randn(len(x), generator=gen)  # the same ε for every β: each trains as it would alone
        recon, kl = _terms(model, x, cfg.decoder_var, eps)
        loss = (recon.mean(1) + betas_t * kl.mean(1)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        curve[step, 0], curve[step, 1] = recon.detach().mean(1), kl.detach().mean(1)  # no sync per step
    out = []
    for i, beta in enumerate(betas_t.tolist()):
        c = replace(cfg, beta=beta)
        recon, kl = curve[:, 0, i].tolist(), curve[:, 1, i].tolist()
        history = {"recon": recon, "kl": kl, "elbo": [-(r + k) for r, k in zip(recon, kl)]}
        out.append(ToyResult(c, x.numpy(), model, history, collapse_check(model, x.numpy(), c, i), i))
    return out


def mutual_information(mu: np.ndarray, logvar: np.ndarray, seed: int = 0) -> float:
    """I(x; z) under q(z|x) and the data, in nats: E[log q(z|x) − log q(z)], z ~ q(z|x), with
    q(z) the mixture of every point's q(z|x) (the estimator of Hoffman & Johnson 2016)."""
    rng = np.random.default_rng(seed)
    mu, logvar = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)
    var = np.exp(logvar)
    z = mu + np.sqrt(var) * rng.standard_normal(len(mu))
    log_q = -0.5 * (LOG_2PI + logvar[None, :] + (z[:, None] - mu[None, :]) ** 2 / var[None, :])  # [i, j]: q(z_i|x_j)
    own = np.diag(log_q)
    m = log_q.max(1, keepdims=True)
    log_qz = (m[:, 0] + np.log(np.exp(log_q - m).sum(1))) - math.log(len(mu))
    return float(max(np.mean(own - log_qz), 0.0))


@torch.no_grad()
def collapse_check(model: LinearVAE, x: np.ndarray, cfg: ToyConfig, row: int = 0) -> dict:
    """For model `row`: KL, I(x;z), and the shuffled-z ablation: the reconstruction term when
    each x is decoded from another point's z. A decoder that uses z does much worse shuffled;
    a collapsed one does the same (the two numbers meet)."""
    xt = torch.from_numpy(np.asarray(x, np.float32))
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    eps = torch.randn(len(xt), generator=gen)
    mu, logvar = (t[row] for t in model.encode(xt))
    recon, kl = (t[row] for t in _terms(model, xt, cfg.decoder_var, eps))
    z = mu + torch.exp(0.5 * logvar) * eps
    shuffled = z[torch.randperm(len(z), generator=gen)]
    recon_shuffled = 0.5 * (LOG_2PI + math.log(cfg.decoder_var)
                            + (xt - (model.w[row] * shuffled + model.v[row])) ** 2 / cfg.decoder_var)
    return {"kl": float(kl.mean()), "recon": float(recon.mean()), "elbo": float(-(recon + kl).mean()),
            "mi": mutual_information(mu.numpy(), logvar.numpy(), cfg.seed),
            "recon_shuffled": float(recon_shuffled.mean()),
            "encoder": {"a": float(model.a[row]), "b": float(model.b[row]),
                        "sigma_at_0": float(torch.exp(0.5 * model.e[row]))},
            "decoder": {"w": float(model.w[row]), "v": float(model.v[row])}}


@torch.no_grad()
def prior_samples(result: ToyResult, n: int = 2000, seed: int = 0) -> np.ndarray:
    """x ~ p(x|z), z ~ N(0, 1): what the trained model generates."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, generator=gen)
    i = result.row
    mean = result.model.w[i] * z + result.model.v[i]
    return (mean + math.sqrt(result.config.decoder_var) * torch.randn(n, generator=gen)).numpy()


@torch.no_grad()
def posterior(result: ToyResult, x) -> tuple[np.ndarray, np.ndarray]:
    """(μ, σ) of q(z|x) for the given x values."""
    mu, logvar = (t[result.row] for t in result.model.encode(torch.as_tensor(np.asarray(x, np.float32))))
    return mu.numpy(), torch.exp(0.5 * logvar).numpy()
