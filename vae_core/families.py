"""Model families: one objective function and one registry row each.

Every family here trains the same ConvVAE (models.py) with a Gaussian posterior
q(z|x) = N(mu, diag sigma^2) and the prior p(z) = N(0, I); what changes is the loss.
pythae gives each model a config class, a model class and a base class above both;
here a family is a function of one training batch plus a row in FAMILIES: its
name, its objective, the hyperparameters it reads (the CLI flags are generated
from them), the terms it logs and its paper. Add a family by adding both.

    name         paper                          the one idea
    vae          Kingma & Welling 2014;         the ELBO, beta-weighted (free bits, capacity and
                 Higgins et al. 2017            schedules live in train.py's generic flags)
    beta-tcvae   Chen et al. 2018               split the KL into index-code MI, total correlation
                                                and dimension-wise KL; weight each on its own
    factor-vae   Kim & Mnih 2018                penalise the total correlation, estimated by a
                                                discriminator between q(z) and its permuted product
    dip-vae-i    Kumar et al. 2018              push Cov[E[z|x]] to the identity
    dip-vae-ii   Kumar et al. 2018              push Cov[q(z)] = Cov[mu] + E[diag sigma^2] to I
    info-vae     Zhao et al. 2019               match the aggregate q(z) to p(z) with an MMD
    delta-vae    Razavi et al. 2019             forbid posteriors within delta nats of the prior
    vq-vae       van den Oord et al. 2017       a conv-ae whose code slots snap to the nearest of K
                                                codebook vectors (EMA-updated), plus commitment
    fsq          Mentzer et al. 2023            a conv-ae whose channels are bounded and rounded to
                                                a few levels each: a fixed grid, no codebook to learn

The checkpoint of every family is a plain encoder/decoder (decode(z), encode(x) ->
(mu, logvar)); only delta-vae changes the encoder's output (its variance ceiling,
applied in models.py), and FactorVAE's discriminator is saved beside the model as
discriminator.safetensors, which the app's loader never reads. vq-vae and fsq train a
conv-ae (no posterior variance, no KL) with a quantizer between encoder and decoder
(quantizers.py): their latents are discrete, and their checkpoints say how (levels, codebook).

The reconstruction and KL are per image (summed over pixels and dimensions, averaged over
the batch) as in losses.vae_loss; TC, MMD and the DIP covariances are statistics of the
batch, estimated from it. Either way a weight means the same at any batch size.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vae_core import VaeError
from vae_core.distributed import average_gradients
from vae_core.files import atomic_write_bytes
from vae_core.losses import kl_per_dim, recon_nll, vae_loss

LOG_2PI = math.log(2 * math.pi)
TC_ESTIMATORS = ("mss", "mws")
MMD_KERNELS = ("imq", "rbf")
MAX_DELTA = 10.0  # nats per dimension; the encoder's logvar floor of -30 allows up to ~14.5
DISCRIMINATOR = "discriminator.safetensors"


@dataclass
class Batch:
    """What an objective sees of one training step (all float32)."""
    logits: torch.Tensor            # decoder output (B, C, H, W)
    target: torch.Tensor            # the images it should reconstruct
    mu: torch.Tensor                # (B, D)
    logvar: torch.Tensor | None     # (B, D); None for an autoencoder
    z: torch.Tensor                 # the reparameterised sample the decoder saw (B, D)
    log_sigma: torch.Tensor | None = None  # Gaussian decoder's log sigma; None for Bernoulli
    dataset_size: int = 1           # N: beta-TCVAE's estimator of q(z) weighs the batch with it
    aux: nn.Module | None = None    # FactorVAE's discriminator
    link: str = "sigmoid"           # how a Gaussian decoder's output is its mean (decoder_mean)


def _elbo_terms(b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """recon (per-image NLL, batch mean) and the analytic KL per dimension (batch mean, (D,))."""
    return recon_nll(b.logits, b.target, b.log_sigma, b.link).mean(), kl_per_dim(b.mu, b.logvar).mean(0)


def _terms(loss, recon, kl_dims, **extra) -> dict:
    """The keys the training loop reads from every family, plus the family's own terms.
    kl is always the analytic KL(q(z|x) || p(z)), so it reads the same for every family."""
    return {"loss": loss, "recon": recon, "kl": kl_dims.sum(), "kl_per_dim": kl_dims, **extra}


# ---------------------------------------------------------------- vae (today's objective)

def elbo_objective(b: Batch, hp: dict) -> dict:
    """beta-VAE with free bits and capacity (losses.vae_loss); the training loop fills hp with
    this step's scheduled beta and capacity. An autoencoder (logvar None) gets recon alone."""
    return vae_loss(b.logits, b.target, b.mu, b.logvar, beta=hp.get("beta", 1.0),
                    free_bits=hp.get("free_bits", 0.0), capacity=hp.get("capacity"), log_sigma=b.log_sigma,
                    link=b.link)


# ---------------------------------------------------------------- beta-TCVAE

def gaussian_log_density(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(x; mu, exp(logvar)) elementwise (broadcasting)."""
    return -0.5 * (LOG_2PI + logvar + (x - mu).pow(2) * torch.exp(-logvar))


def log_importance_weights(batch_size: int, dataset_size: int, estimator: str = "mss",
                           device=None, dtype=torch.float32) -> torch.Tensor:
    """log w[i, j]: how much the posterior of batch element j counts in the estimate of
    q(z_i) = (1/N) sum_n q(z_i | x_n), for the sample z_i drawn from element i.

    mss  minibatch stratified sampling (Chen et al. 2018, appendix): the element z_i came
         from stands for itself (1/N); of the M = B-1 others, M-1 stand for 1/M of the data
         each and one for the rest, (N-M)/(NM). Each row sums to 1, and averaged over batches
         drawn without replacement the estimate of q(z_i) is exact (tests/test_families.py
         enumerates every batch of a small case). Chen's reference code fills this matrix
         through a flat view with stride M+1 = B, which lands on column 0 rather than the
         diagonal (rtqichen/beta-tcvae pull request 1); this is the matrix the paper describes.
    mws  minibatch weighted sampling: every element weighs 1/B. The paper writes 1/(NB); the
         two differ by the constant log N, which moves no gradient, but ours sums to 1, so on
         a batch that is the whole dataset it is exactly q(z) and the logged TC is the true
         one instead of one shifted by (D-1) log N.
    A batch of one has no other element: it falls back to mws, whose MI and TC are then 0.
    """
    B, N = batch_size, dataset_size
    if N < B:
        raise VaeError(f"The dataset size ({N}) must be at least the batch size ({B}) for beta-TCVAE's estimator.")
    if estimator == "mws" or B == 1:
        return torch.full((B, B), -math.log(B), device=device, dtype=dtype)
    if estimator != "mss":
        raise VaeError(f"Unknown total correlation estimator {estimator!r}: choose one of {', '.join(TC_ESTIMATORS)}.")
    M = B - 1
    w = torch.full((B, B), 1.0 / M, dtype=torch.float64)
    i = torch.arange(B)
    w[i, (i + 1) % B] = (N - M) / (N * M)  # the stratum standing for the data not in the batch
    w[i, i] = 1.0 / N                       # the element z_i was drawn from
    return w.log().to(device=device, dtype=dtype)


def log_qz_estimates(z, mu, logvar, dataset_size: int, estimator: str = "mss"):
    """Minibatch estimates of log q(z_i) and of log prod_d q(z_id), each of shape (B,)."""
    log_q = gaussian_log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])  # (B, B, D): [i, j, d]
    log_w = log_importance_weights(z.shape[0], dataset_size, estimator, z.device, z.dtype)
    log_qz = torch.logsumexp(log_w + log_q.sum(2), dim=1)
    log_qz_product = torch.logsumexp(log_w[:, :, None] + log_q, dim=1).sum(1)
    return log_qz, log_qz_product


def tc_decomposition(z, mu, logvar, dataset_size: int, estimator: str = "mss") -> dict:
    """The KL term split three ways (Chen et al. 2018, eq. 2), batch means of:
        mi    log q(z|x) - log q(z)              index-code mutual information
        tc    log q(z) - sum_d log q(z_d)         total correlation
        dwkl  sum_d log q(z_d) - log p(z)         dimension-wise KL
    They add up to this batch's one-sample estimate of KL(q(z|x) || p(z))."""
    log_qz, log_qz_product = log_qz_estimates(z, mu, logvar, dataset_size, estimator)
    log_qz_x = gaussian_log_density(z, mu, logvar).sum(1)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)
    return {"mi": (log_qz_x - log_qz).mean(), "tc": (log_qz - log_qz_product).mean(),
            "dwkl": (log_qz_product - log_pz).mean()}


def beta_tcvae_objective(b: Batch, hp: dict) -> dict:
    # Chen et al. 2018: of the KL, only the total correlation (dependence between latent
    # dimensions) makes codes entangled; weigh it apart from the information kept (MI).
    recon, kl_dims = _elbo_terms(b)
    parts = tc_decomposition(b.z, b.mu, b.logvar, b.dataset_size, hp["tc_estimator"])
    loss = recon + hp["tc_alpha"] * parts["mi"] + hp["tc_beta"] * parts["tc"] + hp["tc_gamma"] * parts["dwkl"]
    return _terms(loss, recon, kl_dims, **parts)


# ---------------------------------------------------------------- FactorVAE

def permute_dims(z: torch.Tensor) -> torch.Tensor:
    """Shuffle each latent dimension across the batch with its own permutation (Kim & Mnih
    2018, Algorithm 1): the marginals stay those of q(z), the dependence between dimensions
    goes, so the rows are draws from prod_d q(z_d)."""
    idx = torch.argsort(torch.rand(z.shape, device=z.device), dim=0)  # an independent permutation per column
    return z.gather(0, idx)


class Discriminator(nn.Module):
    """FactorVAE's critic: logits (B, 2) of "z is a draw from q(z)" (class 0) and "from
    prod_d q(z_d)" (class 1). The paper uses 6 hidden layers of 1000 units with LeakyReLU(0.2)
    and Adam(lr 1e-4, betas (0.5, 0.9)); the width is a flag here (default 256: its input is a
    code of 2..64 numbers, and 1000 wide it would cost more than the VAE per step on a CPU and
    add 20 MB to every run folder)."""

    def __init__(self, latent_dim: int, hidden: int = 256, layers: int = 6, lr: float | None = None):
        super().__init__()
        self.shape = {"latent_dim": int(latent_dim), "hidden": int(hidden), "layers": int(layers)}
        blocks, width = [], latent_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        self.net = nn.Sequential(*blocks, nn.Linear(width, 2))
        # its own optimiser, not the VAE's: the two play opposite sides of the TC estimate
        self.opt = torch.optim.Adam(self.parameters(), lr=lr, betas=(0.5, 0.9)) if lr else None

    def forward(self, z):
        return self.net(z)

    def tc(self, z: torch.Tensor) -> torch.Tensor:
        """The density-ratio estimate of TC(z) = E_q(z)[log q(z) / prod_d q(z_d)]: the mean
        logit of "joint" minus "permuted" (log D/(1-D) under the softmax)."""
        logits = self(z)
        return (logits[:, 0] - logits[:, 1]).mean()

    def update(self, z: torch.Tensor) -> dict:
        """One Adam step on classifying this batch's codes against their permutation.
        The Kim & Mnih algorithm permutes a second minibatch; this permutes the same batch
        (detached), which is also a sample of prod_d q(z_d) and saves a forward pass."""
        z = z.detach()
        logits = self(torch.cat([z, permute_dims(z)]))
        labels = torch.cat([torch.zeros(len(z)), torch.ones(len(z))]).long().to(z.device)
        loss = F.cross_entropy(logits, labels)  # = (CE on the joint + CE on the permuted) / 2
        self.opt.zero_grad(set_to_none=True)    # drops the grads the VAE's backward left here
        loss.backward()
        average_gradients(self)                 # under torchrun: the same step on every rank
        self.opt.step()
        return {"disc_loss": loss.detach(), "disc_acc": (logits.argmax(1) == labels).float().mean()}

    def save(self, folder) -> None:
        save_discriminator(folder, self)


def make_discriminator(latent_dim: int, hp: dict, device) -> Discriminator:
    with torch.device(device):
        return Discriminator(latent_dim, hp["disc_hidden"], hp["disc_layers"], lr=hp["disc_lr"])


def save_discriminator(folder, disc: Discriminator) -> None:
    """discriminator.safetensors beside the model, written atomically; its shape in the header."""
    from safetensors.torch import save as st_save_bytes

    state = {k: v.detach().cpu().contiguous() for k, v in disc.state_dict().items()}
    header = {"family": "factor-vae", "discriminator": json.dumps(disc.shape, sort_keys=True)}
    atomic_write_bytes(Path(folder) / DISCRIMINATOR, st_save_bytes(state, metadata=header))


def load_discriminator(folder, device="cpu") -> Discriminator:
    """The discriminator a factor-vae run saved (safetensors: parsed, never unpickled)."""
    from safetensors import SafetensorError, safe_open
    path = Path(folder) / DISCRIMINATOR
    try:
        with safe_open(str(path), framework="pt") as f:
            shape = json.loads(f.metadata()["discriminator"])
            state = {k: f.get_tensor(k) for k in f.keys()}
        disc = Discriminator(**shape)
        disc.load_state_dict(state, strict=True)
    except FileNotFoundError as e:
        raise VaeError(f"{path} is missing: only a factor-vae run writes one.") from e
    except (SafetensorError, OSError, KeyError, TypeError, ValueError, RuntimeError) as e:
        raise VaeError(f"{path} is not a discriminator this version can read ({str(e)[:200]}).") from e
    return disc.to(device)


def factor_vae_objective(b: Batch, hp: dict) -> dict:
    # Kim & Mnih 2018: keep the ELBO whole and add gamma * TC, with the TC read off a
    # discriminator trained to tell q(z) from the product of its marginals.
    recon, kl_dims = _elbo_terms(b)
    tc = b.aux.tc(b.z)
    return _terms(recon + kl_dims.sum() + hp["factor_gamma"] * tc, recon, kl_dims, tc=tc)


# ---------------------------------------------------------------- DIP-VAE

def covariance(x: torch.Tensor) -> torch.Tensor:
    """Cov over the batch, E[x x^T] - E[x] E[x]^T (divides by B, as Kumar et al. write it)."""
    centred = x - x.mean(0, keepdim=True)
    return centred.T @ centred / x.shape[0]


def dip_penalty(cov: torch.Tensor, lambda_od: float, lambda_d: float) -> dict:
    """lambda_od * sum_{i != j} Cov_ij^2 + lambda_d * sum_i (Cov_ii - 1)^2, and its two sums."""
    diag = cov.diagonal()
    off = (cov - torch.diag(diag)).pow(2).sum()
    on = (diag - 1).pow(2).sum()
    return {"dip": lambda_od * off + lambda_d * on, "dip_off_diag": off, "dip_diag": on}


def dip_vae_objective(b: Batch, hp: dict, variant: str) -> dict:
    # Kumar et al. 2018: a disentangled aggregate posterior has identity covariance, so
    # penalise the moments of q(z) that stray from p(z)'s: type I matches Cov[mu(x)],
    # type II the full Cov_q(z)[z] = Cov[mu(x)] + E[diag sigma^2(x)].
    recon, kl_dims = _elbo_terms(b)
    cov = covariance(b.mu)
    if variant == "ii":
        cov = cov + torch.diag(b.logvar.exp().mean(0))
    dip = dip_penalty(cov, hp["dip_lambda_od"], hp["dip_lambda_d"])
    return _terms(recon + kl_dims.sum() + dip["dip"], recon, kl_dims, **dip)


# ---------------------------------------------------------------- InfoVAE (MMD-VAE)

def kernel_matrix(x: torch.Tensor, y: torch.Tensor, kernel: str = "imq") -> torch.Tensor:
    """k(x_i, y_j) with the scale C = 2 * D * sigma_z^2 of the prior N(0, I) (Tolstikhin et al.
    2018, which Zhao et al.'s MMD follows): imq C / (C + |x-y|^2), rbf exp(-|x-y|^2 / C)."""
    c = 2.0 * x.shape[1]
    sq = (x[:, None, :] - y[None, :, :]).pow(2).sum(-1)  # not cdist: its gradient at distance 0 is NaN
    if kernel == "imq":
        return c / (c + sq)
    if kernel == "rbf":
        return torch.exp(-sq / c)
    raise VaeError(f"Unknown MMD kernel {kernel!r}: choose one of {', '.join(MMD_KERNELS)}.")


def mmd(x: torch.Tensor, y: torch.Tensor, kernel: str = "imq") -> torch.Tensor:
    """Squared MMD between two samples: the V-statistic (means over all pairs, as in Zhao's
    reference code). It is the squared distance of the two empirical mean embeddings, so it is
    never negative and exactly 0 for identical samples (the unbiased U-statistic can go negative)."""
    return (kernel_matrix(x, x, kernel).mean() + kernel_matrix(y, y, kernel).mean()
            - 2 * kernel_matrix(x, y, kernel).mean())


def info_vae_objective(b: Batch, hp: dict) -> dict:
    # Zhao et al. 2019: the per-sample KL both pulls every posterior to the prior and starves
    # the code of information; weigh it down by alpha and match the aggregate q(z) to p(z)
    # with an MMD instead: recon + (1 - alpha) KL + (alpha + lambda - 1) MMD(q(z), p(z)).
    recon, kl_dims = _elbo_terms(b)
    m = mmd(b.z, torch.randn_like(b.z), hp["mmd_kernel"])
    alpha, lam = hp["info_alpha"], hp["info_lambda"]
    return _terms(recon + (1 - alpha) * kl_dims.sum() + (alpha + lam - 1) * m, recon, kl_dims, mmd=m)


# ---------------------------------------------------------------- delta-VAE

def delta_logvar_ceiling(delta: float) -> float:
    """The largest log sigma^2 whose KL to N(0, 1) at mu = 0 is still at least delta nats.

    KL(N(mu, s^2) || N(0, 1)) = (mu^2 + s^2 - 1 - log s^2) / 2 >= f(s) = (s^2 - 1 - log s^2) / 2,
    and f(s) = delta has two roots, s_l < 1 < s_u. KL >= delta for every mu exactly when s <= s_l
    or s >= s_u; models.py keeps s on (0, s_l]: a posterior sharper than the prior, the side an
    informative code lives on. Solved by bisection in float64 and lowered by 1e-3 in log s^2,
    a margin of (1 - s_l^2) / 2000 nats that float32 and bf16 rounding cannot eat.
    """
    if not (isinstance(delta, (int, float)) and not isinstance(delta, bool) and 0 < delta <= MAX_DELTA):
        raise VaeError(f"delta must be a number of nats per dimension in (0, {MAX_DELTA:g}], got {delta!r}.")
    f = lambda v: 0.5 * (math.exp(v) - 1.0 - v)  # KL at mu = 0 as a function of v = log s^2
    lo, hi = -1.0 - 2.0 * delta, 0.0               # f(lo) >= delta (since f(v) >= -(1 + v)/2), f(0) = 0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) >= delta else (lo, mid)
    return lo - 1e-3


def delta_vae_objective(b: Batch, hp: dict) -> dict:
    # Razavi et al. 2019: keep the ELBO, but choose a posterior family that cannot reach the
    # prior: every dimension's variance is capped (models.py) so its KL is at least delta nats
    # for any mu. Posterior collapse is then impossible by construction, not penalised.
    recon, kl_dims = _elbo_terms(b)
    kl_min = kl_per_dim(b.mu, b.logvar).min()
    return _terms(recon + kl_dims.sum(), recon, kl_dims, kl_min=kl_min.detach())


# ---------------------------------------------------------------- VQ-VAE and FSQ

def _no_kl(b: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """recon, and a KL of zero per dimension: a deterministic code has no posterior to compare."""
    return recon_nll(b.logits, b.target, b.log_sigma, b.link).mean(), torch.zeros(b.mu.shape[1], device=b.mu.device)


def vq_vae_objective(b: Batch, hp: dict) -> dict:
    # van den Oord et al. 2017: recon through the straight-through codes, plus beta * |z_e - sg(e)|^2
    # so the encoder commits to its codes. The codebook term of the paper is replaced by the EMA
    # update (its appendix), which quantizers.VectorQuantizer runs in the forward pass.
    recon, kl_dims = _no_kl(b)
    commit = (b.mu - b.z.detach()).pow(2).sum(1).mean()
    return _terms(recon + hp["vq_commitment"] * commit, recon, kl_dims, commit=commit)


def fsq_objective(b: Batch, hp: dict) -> dict:
    # Mentzer et al. 2023: the grid is fixed and every point of it is reachable, so there is no
    # codebook loss, no commitment and no collapse to fight: the reconstruction is the whole loss.
    recon, kl_dims = _no_kl(b)
    return _terms(recon, recon, kl_dims)


def configure_vq(model, hp: dict) -> None:
    """The EMA's decay and the restart threshold are training settings, not part of the model."""
    model.quantizer.decay, model.quantizer.restart = hp["vq_decay"], hp["vq_restart"]


def _levels_text(text) -> str:
    from vae_core.quantizers import parse_levels
    return ",".join(map(str, parse_levels(text)))


# ---------------------------------------------------------------- the registry

@dataclass(frozen=True)
class Param:
    """One hyperparameter: its TrainConfig.family_params key, and the flag --name-with-dashes."""
    name: str
    default: float | int | str
    help: str
    choices: tuple[str, ...] = ()
    low: float | None = 0.0          # the smallest value allowed (inclusive); None: any
    high: float | None = None        # the largest (inclusive)
    above_low: bool = False          # low itself is refused
    parse: Callable[[str], str] | None = None  # a text value's check: its canonical form, or VaeError

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def type(self):
        return type(self.default)

    def check(self, value):
        """The value, converted, or VaeError in one sentence."""
        if self.parse is not None:
            return self.parse(value)
        if self.choices:
            if value not in self.choices:
                raise VaeError(f"{self.flag} must be one of {', '.join(self.choices)} (got {value!r}).")
            return value
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and (self.type is not int or float(value).is_integer())
        if ok:
            value = self.type(value)
            ok = ((self.low is None or value > self.low or (value == self.low and not self.above_low))
                  and (self.high is None or value <= self.high))
        if not ok:
            span = [f"{'>' if self.above_low else '>='} {self.low:g}"] if self.low is not None else []
            span += [f"<= {self.high:g}"] if self.high is not None else []
            kind = "a whole number" if self.type is int else "a number"
            raise VaeError(f"{self.flag} must be {kind} {' and '.join(span)} (got {value!r}).".replace("  ", " "))
        return value


@dataclass(frozen=True)
class Family:
    name: str
    objective: Callable[[Batch, dict], dict]
    paper: str
    idea: str
    params: tuple[Param, ...] = ()
    terms: tuple[str, ...] = ()      # the family's own terms, averaged per epoch into metrics.jsonl
    make_aux: Callable | None = None  # (latent_dim, hp, device) -> a module with update(z) and save(folder)
    check: Callable[[dict], str | None] | None = None  # a rule across params; returns the complaint
    kind: str = "conv-vae"           # the architecture it trains
    configure: Callable | None = None  # (model, hp): set the model's training-only settings

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}


def _info_vae_check(hp: dict) -> str | None:
    if hp["info_alpha"] > 1 or hp["info_alpha"] + hp["info_lambda"] < 1:
        return ("info-vae needs --info-alpha <= 1 and --info-alpha + --info-lambda >= 1: the KL weight "
                "(1 - alpha) and the MMD weight (alpha + lambda - 1) must not be negative.")
    return None


_W = dict(low=0.0)
_DIP = ("lambda_od, weight of the squared off-diagonal covariances",
        "lambda_d, weight of the squared distances of the variances from 1 (disentanglement_lib runs "
        "the paper with 10 x lambda_od for type I, lambda_od for type II)")

def _dip_family(variant: str, idea: str, lambda_d: float) -> Family:
    """DIP-VAE-I or -II: one paper, one penalty, two covariances (and their lambda_d defaults)."""
    return Family(f"dip-vae-{variant}", lambda b, hp: dip_vae_objective(b, hp, variant),
                  paper="Kumar, Sattigeri & Balakrishnan 2018, Variational Inference of Disentangled Latent "
                        "Concepts from Unlabeled Observations",
                  idea=idea,
                  params=(Param("dip_lambda_od", 10.0, "dip-vae: " + _DIP[0], **_W),
                          Param("dip_lambda_d", lambda_d, "dip-vae: " + _DIP[1], **_W)),
                  terms=("dip", "dip_off_diag", "dip_diag"))


# Defaults, and where they come from:
#   tc_*        alpha = gamma = 1 (the paper's beta-TCVAE), beta = 6, inside the 1..10 that
#               disentanglement_lib sweeps (google-research, unsupervised_study_v1). Estimator: mss, though
#               Chen's code defaults to mws (its --mss, "the improved minibatch estimator", is opt-in):
#               mss estimates q(z) without bias (see log_importance_weights), mws over-counts the
#               element z came from.
#   factor_*    gamma = 40, inside disentanglement_lib's sweep (10, 20, 30, 40, 50, 100); the paper's
#               own single pick was not checked here. The discriminator is narrower than the paper's
#               (see Discriminator); its Adam is the paper's.
#   dip_*       lambda_od = 10 with lambda_d = 10 lambda_od (I) or lambda_od (II), as disentanglement_lib.
#   info_*      alpha = 0, lambda = 1000: the full KL plus a strong MMD; alpha = 1 drops the KL
#               altogether (the pure MMD-VAE). Weights of an MMD, so they depend on the kernel scale.
#   delta       0.1 nats per dimension: a floor that rules out collapse without costing much rate.
#   vq_*        commitment 0.25 and EMA decay 0.99 (the paper); K = 512 (the paper's ImageNet codebook);
#               e = 4: this encoder ends in a vector, not a feature map, so a slot is a short piece of it.
#               Restart under 1 encoding per step: Jukebox's threshold (Dhariwal et al. 2020).
#   fsq_levels  8,5,5,5: the paper's 1,000-code configuration (its Table 1, |C| = 2^10).
FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("vae", elbo_objective,
           paper="Kingma & Welling 2014, Auto-Encoding Variational Bayes; Higgins et al. 2017, beta-VAE",
           idea="the ELBO with the KL weighted by --beta (plus free bits, capacity and beta schedules)"),
    Family("beta-tcvae", beta_tcvae_objective,
           paper="Chen, Li, Grosse & Duvenaud 2018, Isolating Sources of Disentanglement in VAEs",
           idea="weigh the KL's three parts apart: index-code MI, total correlation, dimension-wise KL",
           params=(Param("tc_alpha", 1.0, "beta-tcvae: weight of the index-code mutual information I(x; z)", **_W),
                   Param("tc_beta", 6.0, "beta-tcvae: weight of the total correlation (the paper's beta)", **_W),
                   Param("tc_gamma", 1.0, "beta-tcvae: weight of the dimension-wise KL", **_W),
                   Param("tc_estimator", "mss", "beta-tcvae: estimator of log q(z): mss (minibatch stratified "
                         "sampling) or mws (minibatch weighted sampling)", choices=TC_ESTIMATORS)),
           terms=("mi", "tc", "dwkl")),
    Family("factor-vae", factor_vae_objective,
           paper="Kim & Mnih 2018, Disentangling by Factorising",
           idea="add gamma * TC, the TC estimated by a discriminator of z against permuted z",
           params=(Param("factor_gamma", 40.0, "factor-vae: weight of the total correlation", **_W),
                   Param("disc_hidden", 256, "factor-vae: discriminator width (the paper: 1000)", low=1, high=4096),
                   Param("disc_layers", 6, "factor-vae: discriminator hidden layers (the paper: 6)", low=1, high=16),
                   Param("disc_lr", 1e-4, "factor-vae: discriminator Adam learning rate (betas 0.5, 0.9)",
                         above_low=True)),
           terms=("tc", "disc_loss", "disc_acc"), make_aux=make_discriminator),
    _dip_family("i", "push the covariance of the posterior means, Cov[E[z|x]], to the identity", lambda_d=100.0),
    _dip_family("ii", "push the covariance of q(z), Cov[mu] + E[diag sigma^2], to the identity", lambda_d=10.0),
    Family("info-vae", info_vae_objective,
           paper="Zhao, Song & Ermon 2019, InfoVAE: Balancing Learning and Inference in VAEs",
           idea="recon + (1 - alpha) KL + (alpha + lambda - 1) MMD(q(z), p(z))",
           params=(Param("info_alpha", 0.0, "info-vae: alpha; the KL weighs 1 - alpha", low=None),
                   Param("info_lambda", 1000.0, "info-vae: lambda; the MMD weighs alpha + lambda - 1", **_W),
                   Param("mmd_kernel", "imq", "info-vae: MMD kernel, imq (inverse multiquadric) or rbf",
                         choices=MMD_KERNELS)),
           terms=("mmd",), check=_info_vae_check),
    Family("delta-vae", delta_vae_objective,
           paper="Razavi, van den Oord, Poole & Vinyals 2019, Preventing Posterior Collapse with delta-VAEs",
           idea="cap each posterior variance so every dimension's KL is at least delta nats, for any mu",
           params=(Param("delta", 0.1, "delta-vae: committed rate in nats per latent dimension",
                         low=0.0, above_low=True, high=MAX_DELTA),),
           terms=("kl_min",)),
    Family("vq-vae", vq_vae_objective, kind="conv-ae", configure=configure_vq,
           paper="van den Oord, Vinyals & Kavukcuoglu 2017, Neural Discrete Representation Learning",
           idea="z is latent_dim / code_dim slots, each snapped to the nearest of K codebook vectors",
           params=(Param("codebook_size", 512, "vq-vae: K, the number of codebook vectors", low=2, high=8192),
                   Param("code_dim", 4, "vq-vae: e, the length of one code; z has latent_dim / e slots",
                         low=1, high=1024),
                   Param("vq_commitment", 0.25, "vq-vae: beta, weight of the commitment |z_e - sg(e)|^2", **_W),
                   Param("vq_decay", 0.99, "vq-vae: decay of the codebook's exponential moving averages",
                         low=0.0, high=0.9999),
                   Param("vq_restart", 1.0, "vq-vae: restart a code whose average use falls under this many "
                         "encodings per step (0: never)", **_W)),
           terms=("commit",)),
    Family("fsq", fsq_objective, kind="conv-ae",
           paper="Mentzer, Minnen, Agustsson & Tschannen 2023, Finite Scalar Quantization: VQ-VAE Made Simple",
           idea="bound each latent channel with tanh and round it to a few levels: an implicit product codebook",
           params=(Param("fsq_levels", "8,5,5,5", "fsq: levels per latent channel, one per --latent-dim "
                         "(or one number for all); the paper's 8,5,5,5 is 1,000 codes", parse=_levels_text),)),
]}

# the names --model takes besides the four architectures; "vae" is what those four train
FAMILY_MODELS = tuple(name for name in FAMILIES if name != "vae")


def family_flags() -> dict[str, list[tuple[str, Param]]]:
    """Each flag once, with every family that reads it (dip-vae-i and -ii share theirs)."""
    flags: dict[str, list[tuple[str, Param]]] = {}
    for fam in FAMILIES.values():
        for p in fam.params:
            flags.setdefault(p.name, []).append((fam.name, p))
    return flags


def resolve_params(family: str, given: dict, model: str | None = None) -> dict:
    """The family's hyperparameters: its defaults, overridden by `given`, each checked.
    A hyperparameter of another family is refused by name rather than silently ignored;
    model is the --model the message names (the architecture, for the "vae" family)."""
    fam = FAMILIES[family]
    own = {p.name: p for p in fam.params}
    for name in given:
        if name not in own:
            users = [f for f, _ in family_flags().get(name, [])]
            flag = "--" + str(name).replace("_", "-")
            where = f"belongs to --model {' or '.join(users)}" if users else "is not a hyperparameter of any family"
            raise VaeError(f"{flag} {where}, not to --model {model or family}.")
    hp = {name: p.check(given.get(name, p.default)) for name, p in own.items()}
    if fam.check and (complaint := fam.check(hp)):
        raise VaeError(complaint)
    return hp
