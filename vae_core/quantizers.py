"""Discrete bottlenecks: FSQ (Mentzer et al. 2023) and VQ-VAE's codebook (van den Oord et al. 2017).

Both sit between the encoder and the decoder of a conv-ae (models.py) and keep the
model's one interface: encode(x) -> (z, None) and decode(z) -> logits, so every page
that works on z works on them. What z is:

    fsq     d scalar channels, each snapped to its L_i levels in [-1, 1]; encode returns
            the snapped values (they lie on the grid), decode snaps whatever it is given,
            so a slider or a click anywhere decodes the nearest grid point. The implicit
            codebook is the product of the levels (8,5,5,5 -> 1,000 codes) and has no
            parameters: nothing can die, there is nothing to learn.
    vq      M code slots of e numbers each (z has M * e dimensions); each slot is replaced
            by the nearest of K codebook vectors. encode returns the encoder's output before
            that replacement (z_e: continuous, so the scatter and interpolation have room to
            move), decode quantises first: interpolating in z_e shows the quantised decode.

Gradients pass straight through the rounding / nearest-code step (z + (q - z).detach():
the forward pass sees q, the backward pass the identity). VQ's codebook is not learned by
gradient: it follows the exponential moving average of the encodings assigned to each code
(van den Oord et al. 2017, appendix A.1), and a code that no encoding has chosen lately is
restarted at a random encoding of the batch (Dhariwal et al. 2020, Jukebox), so the
codebook does not collapse onto a few codes.

Both count the codes they hand out while training; the training loop reads and resets the
counts once per epoch (epoch_stats) for codebook usage and perplexity.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from vae_core import VaeError
from vae_core.distributed import all_sum

MAX_FSQ_CODES = 2 ** 16   # the product of the levels; the paper goes up to 2^16 (8,8,8,5,5,5 is 64,000)
MAX_LEVEL = 256
MAX_CODEBOOK = 8192


def parse_levels(text, latent_dim: int | None = None) -> tuple[int, ...]:
    """'8,5,5,5' -> (8, 5, 5, 5); one number means that many levels for every one of
    latent_dim channels. VaeError in one sentence for anything else."""
    parts = [p for p in str(text).replace(" ", "").split(",") if p]
    if not parts or not all(p.isdigit() for p in parts):
        raise VaeError(f"--fsq-levels must be whole numbers separated by commas, like 8,5,5,5 (got {text!r}).")
    levels = tuple(int(p) for p in parts)
    if len(levels) == 1 and latent_dim:
        levels = levels * latent_dim
    if not all(2 <= n <= MAX_LEVEL for n in levels):
        raise VaeError(f"Each FSQ channel needs from 2 to {MAX_LEVEL} levels (got {text!r}).")
    if math.prod(levels) > MAX_FSQ_CODES:
        raise VaeError(f"FSQ levels {','.join(map(str, levels))} make {math.prod(levels):,} codes; at most "
                       f"{MAX_FSQ_CODES:,} (2^16) are allowed here.")
    return levels


def straight_through(z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """q in the forward pass, the identity's gradient in the backward pass."""
    return z + (q - z).detach()


def usage_and_perplexity(counts) -> tuple[float, float]:
    """(share of codes used at least once, exp(entropy of the code histogram)) of a histogram
    of code uses (a tensor or an array); (0, 0) for an empty one. In float64."""
    counts = torch.as_tensor(counts).double()
    total = counts.sum()
    if total <= 0:
        return 0.0, 0.0
    p = counts[counts > 0] / total
    return float((counts > 0).double().mean()), float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def code_histogram(quantizer, z, chunk: int = 4096) -> torch.Tensor:
    """How often the rows of z (N, D) use each code (VQ: over every slot; FSQ: grid points), (K,)
    int64, counted a chunk at a time."""
    z = torch.as_tensor(z)
    codes = torch.cat([quantizer.codes(z[i:i + chunk].float()).reshape(-1).cpu() for i in range(0, len(z), chunk)])
    return torch.bincount(codes, minlength=quantizer.codebook_size)


def _pop_epoch_stats(counts: torch.Tensor) -> dict:
    """The epoch's codebook usage and perplexity from a quantizer's running counts, which it resets."""
    usage, perplexity = usage_and_perplexity(counts)
    counts.zero_()
    return {"codebook_usage": usage, "perplexity": perplexity}


class FSQ(nn.Module):
    """Finite scalar quantisation: bound each channel with tanh to L_i values, round.

    Follows the paper's reference (google-research/google-research, fsq.py): an even L
    is offset by half a step so that rounding yields exactly L integers, -L//2 .. L//2 - 1;
    dividing by L//2 puts them in [-1, 1]. 5 levels: -1, -0.5, 0, 0.5, 1; 8: -1 .. 0.75.

    One addition: the encoder's output is batch-normalised per channel (no affine) before the
    bound. Without it, on this encoder (a Linear at the end of a conv stack), Adam moved every
    channel of every image the same way into tanh's flat tails within 20 steps on MNIST:
    one code for every image, no gradient left to leave it (measured at lr 1e-3, 3e-4 and 1e-4).
    Normalised, the channels stay spread over their levels across the batch.
    """

    def __init__(self, levels: tuple[int, ...], eps: float = 1e-3):
        super().__init__()
        self.levels = tuple(int(n) for n in levels)
        L = torch.tensor(self.levels, dtype=torch.float32)
        self.register_buffer("_L", L, persistent=False)
        self.register_buffer("_half_width", torch.floor(L / 2), persistent=False)
        self.register_buffer("_lo", -torch.floor(L / 2), persistent=False)          # lowest integer level
        half_l = (L - 1) * (1 + eps) / 2
        offset = torch.where(L % 2 == 0, 0.5, 0.0)
        self.register_buffer("_half_l", half_l, persistent=False)
        self.register_buffer("_offset", offset, persistent=False)
        self.register_buffer("_shift", torch.atanh(offset / half_l), persistent=False)
        basis = [1]
        for n in self.levels[:-1]:
            basis.append(basis[-1] * n)
        self.register_buffer("_basis", torch.tensor(basis, dtype=torch.long), persistent=False)
        self.register_buffer("_counts", torch.zeros(self.codebook_size), persistent=False)
        self.norm = nn.BatchNorm1d(len(self.levels), affine=False)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def step(self, dim: int) -> float:
        """The distance between neighbouring levels of channel `dim` (1 / (L // 2))."""
        return 1.0 / (self.levels[dim] // 2)

    def values(self, dim: int) -> list[float]:
        """The grid values channel `dim` can take, lowest first."""
        n, hw = self.levels[dim], self.levels[dim] // 2
        return [(k - hw) / hw for k in range(n)]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """The encoder's raw output -> grid values, straight-through (training counts codes)."""
        h = h.float()
        if self.training and h.shape[0] == 1:  # a batch of one has no spread: use the running statistics
            h = nn.functional.batch_norm(h, self.norm.running_mean, self.norm.running_var, training=False)
        else:
            h = self.norm(h)
        bounded = torch.tanh(h + self._shift) * self._half_l - self._offset
        z = straight_through(bounded, torch.round(bounded)) / self._half_width
        if self.training:
            self._count(z.detach())
        return z

    def snap(self, z: torch.Tensor) -> torch.Tensor:
        """Any z (already in [-1, 1] units) -> the nearest grid point, straight-through.
        Grid points are fixed points, so decoding an encoded z changes nothing."""
        z = z.float()
        q = torch.maximum(torch.minimum(torch.round(z * self._half_width), self._lo + self._L - 1), self._lo)
        return straight_through(z, q / self._half_width)

    def level_indices(self, z: torch.Tensor) -> torch.Tensor:
        """Any z (B, d) -> the index of each channel's nearest level, 0 .. L_i - 1 (B, d)."""
        q = torch.round(z.float() * self._half_width) - self._lo
        return torch.minimum(q.clamp(min=0), self._L - 1).long()

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, d) -> the index of its nearest grid point in the implicit codebook (B,)."""
        return (self.level_indices(z) * self._basis).sum(-1)

    def _count(self, z: torch.Tensor) -> None:
        self._counts += torch.bincount(self.codes(z), minlength=self.codebook_size).float()

    def epoch_stats(self) -> dict:
        return _pop_epoch_stats(self._counts)


class VectorQuantizer(nn.Module):
    """M slots of e numbers, each replaced by the nearest of K codebook vectors.

    The codebook (K, e) is a buffer, updated by EMA while training (decay gamma): per code,
    N_k <- gamma N_k + (1 - gamma) n_k and m_k <- gamma m_k + (1 - gamma) sum of its
    encodings, e_k = m_k / N_k (with Laplace smoothing of N, as in Sonnet's VectorQuantizerEMA).
    A code whose N_k falls under `restart` encodings is set to a random encoding of the batch.
    Before the first training step every code is unused, so that first step initialises the
    codebook from the data.
    """

    def __init__(self, codebook_size: int, code_dim: int, slots: int, decay: float = 0.99,
                 restart: float = 1.0, eps: float = 1e-5):
        super().__init__()
        self.K, self.e, self.M = int(codebook_size), int(code_dim), int(slots)
        self.decay, self.restart, self.eps = float(decay), float(restart), eps
        self.register_buffer("codebook", torch.randn(self.K, self.e))
        self.register_buffer("ema_count", torch.zeros(self.K))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("_counts", torch.zeros(self.K), persistent=False)

    @property
    def codebook_size(self) -> int:
        return self.K

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, M * e) -> the index of each slot's nearest code (B, M)."""
        flat = z.float().reshape(-1, self.e)
        d = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.T + self.codebook.pow(2).sum(1)[None])
        return d.argmin(1).view(z.shape[0], self.M)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, M) -> the z they stand for (B, M * e)."""
        return self.codebook[codes.long()].reshape(codes.shape[0], self.M * self.e)

    def snap(self, z: torch.Tensor) -> torch.Tensor:
        """z -> its quantised version, straight-through."""
        z = z.float()
        return straight_through(z, self.embed(self.codes(z)))

    def forward(self, z_e: torch.Tensor) -> torch.Tensor:
        z_e = z_e.float()
        codes = self.codes(z_e)
        q = self.embed(codes)  # the codebook before this step's update, as Sonnet's VectorQuantizerEMA
        if self.training:
            with torch.no_grad():
                self._update(z_e.detach().reshape(-1, self.e), codes.reshape(-1))
        return straight_through(z_e, q)

    def _update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        onehot = torch.nn.functional.one_hot(codes, self.K).float()
        # under torchrun the statistics of every rank's batch: the same codebook update everywhere
        n = all_sum(onehot.sum(0))
        sums = all_sum(onehot.T @ flat)
        self._counts += n
        g = self.decay
        self.ema_count.mul_(g).add_(n, alpha=1 - g)
        self.ema_sum.mul_(g).add_(sums, alpha=1 - g)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (total + self.K * self.eps) * total
        self.codebook.copy_(self.ema_sum / smoothed.clamp(min=self.eps)[:, None])
        if self.restart > 0:
            dead = self.ema_count < self.restart
            if dead.any():
                k = int(dead.sum())
                pick = flat[torch.randint(len(flat), (k,), device=flat.device)]
                pick = pick + 0.01 * pick.std() * torch.randn_like(pick)  # two restarts never coincide
                self.codebook[dead] = pick
                self.ema_sum[dead] = pick
                self.ema_count[dead] = 1.0

    def epoch_stats(self) -> dict:
        return _pop_epoch_stats(self._counts)


def build_quantizer(cfg) -> nn.Module | None:
    """The bottleneck a ModelConfig asks for (None for the Gaussian and plain models)."""
    if cfg.levels is not None:
        return FSQ(cfg.levels)
    if cfg.codebook_size is not None:
        # decay and restart are training settings: train.py sets them from the run's flags
        return VectorQuantizer(cfg.codebook_size, cfg.code_dim, cfg.latent_dim // cfg.code_dim)
    return None
