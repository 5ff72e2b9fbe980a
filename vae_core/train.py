"""Train a model and write a run folder that is also a checkpoint folder.

    python -m vae_core.train --dataset mnist --latent-dim 2 --epochs 10 --out runs/z2
    python -m vae_core.train --dataset cifar10 --likelihood gaussian --latent-dim 32 --out runs/c32
    python -m vae_core.train --dataset sprites --model beta-tcvae --tc-beta 6 --latent-dim 10 --out runs/tc

--model is an architecture (conv-vae, conv-ae, linear-vae, linear-ae), trained with the
beta-VAE objective and its knobs (--beta, schedules, free bits, capacity), or a model
family from vae_core.families (beta-tcvae, factor-vae, ...): a conv-vae trained with that
family's objective and its own flags (--tc-beta, --factor-gamma, ...), recorded in
config.json as model.family and training.family_params.

The model takes the training data's shape (C, H, W): the dataset's own, or the one
--image-size and --channels ask for. --likelihood auto is Bernoulli for grey data
and the learned-sigma Gaussian (sigma-VAE) for colour.

The run folder holds:
  config.json        format version, model + training config, dataset, metrics summary,
                     and the exact command (rewritten atomically after every epoch)
  model.safetensors  weights of the last completed epoch (atomic)
  metrics.jsonl      one JSON line per epoch (a family adds its own terms: tc, mmd, dip...)
  discriminator.safetensors   factor-vae only: its discriminator (the app never reads it)
  grids/             recon_eNNN.png (test images over their reconstructions) and
                     prior_eNNN.png (decodes of z ~ N(0, I)) per epoch

Speed: the whole dataset sits on the training device as uint8 and each batch is
an index into it, converted to float there (the full sprites train split is the
exception: each batch is rendered on the CPU from its factors, then moved); no DataLoader, no per-sample PIL
work. Losses are accumulated on the device and read once per epoch, so the loop
never waits on a .item() sync. On CUDA, bf16 autocast is on by default.

Ctrl-C or SIGTERM stop after writing nothing partial: the last completed epoch's
checkpoint stays intact because every file is replaced atomically.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import shlex
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from vae_core import VaeError, distributed
from vae_core.checkpoint import FORMAT_VERSION, save_checkpoint
from vae_core.data import (BINARIZE_CHOICES, CHANNEL_CHOICES, LazyImages, binarize_split, load_dataset,
                           parse_channels, to_float, validate_name)
from vae_core.device import DEVICE_CHOICES, cpu_fast_layout, describe_device, resolve_device
from vae_core.files import atomic_write_bytes, atomic_write_json
from vae_core.families import FAMILIES, FAMILY_MODELS, Batch, family_flags, resolve_params
from vae_core.losses import (BETA_SCHEDULES, active_units, beta_at, capacity_at, check_finite, gaussian_mean,
                             optimal_log_sigma, vae_loss)
from vae_core.models import DECODER_MEANS, LIKELIHOODS, MAX_IMAGE_SIZE, MIN_LOG_SIGMA, MODEL_KINDS, AutoEncoder, ModelConfig, build_model
from vae_core.quantizers import parse_levels

LR_SCHEDULES = ("constant", "cosine")
MODEL_CHOICES = MODEL_KINDS + FAMILY_MODELS
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class TrainConfig:
    dataset: str = "mnist"
    data_root: str | None = None
    model: str = "conv-vae"            # an architecture (MODEL_KINDS) or a family (FAMILY_MODELS)
    family_params: dict = field(default_factory=dict)  # the family's flags given, by name (tc_beta: 6)
    latent_dim: int = 2
    beta: float = 1.0
    beta_schedule: str = "constant"
    warmup_epochs: float = 0.0
    cycles: int = 4
    free_bits: float | str = 0.0       # nats per dimension, or "auto": adapted per epoch toward --target-kl
    target_kl: float | None = None     # the total rate (nats per image) --free-bits auto aims at
    capacity: float | None = None      # Burgess et al. C_max in nats; None = off
    capacity_epochs: float = 0.0
    extra_decoder_layer: bool = False
    batchnorm: bool = False
    hidden: int = 256
    conv_channels: str = "32,64"       # widths of the first two convolutions; deeper ones double
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"            # auto: bf16 autocast on CUDA and on CPUs with native bf16
    compile: bool = False
    limit: int | None = None           # first N training images
    test_limit: int | None = None      # first N test images for per-epoch evaluation
    binarize: str = "none"
    likelihood: str = "auto"           # auto: bernoulli for grey data, gaussian (sigma-VAE) for colour
    decoder_mean: str = "auto"         # auto: channel-gain for colour Gaussian models, else sigmoid
    image_size: int | None = None      # None: the dataset's own (a folder: 28 grey, 64 colour)
    channels: str = "auto"             # auto (the dataset's own), "1" or "3"
    out: str = "runs/run"

    def validate(self) -> None:
        """Refuse bad settings before any work, with one clear sentence each."""
        checks = [
            (self.model in MODEL_CHOICES, f"--model must be one of {', '.join(MODEL_CHOICES)} (got {self.model!r})."),
            (self.latent_dim >= 1, f"--latent-dim must be at least 1 (got {self.latent_dim})."),
            (math.isfinite(self.beta) and self.beta >= 0, f"--beta must be a number >= 0 (got {self.beta})."),
            (self.beta_schedule in BETA_SCHEDULES,
             f"--beta-schedule must be one of {', '.join(BETA_SCHEDULES)} (got {self.beta_schedule!r})."),
            (self.warmup_epochs >= 0, f"--warmup-epochs must be >= 0 (got {self.warmup_epochs})."),
            (self.cycles >= 1, f"--cycles must be at least 1 (got {self.cycles})."),
            (self.free_bits == "auto" or (isinstance(self.free_bits, (int, float)) and math.isfinite(self.free_bits)
                                          and self.free_bits >= 0),
             f"--free-bits must be a number >= 0 nats or auto (got {self.free_bits!r})."),
            ((self.free_bits == "auto") == (self.target_kl is not None),
             "--free-bits auto needs --target-kl T (the total KL in nats to aim at), and --target-kl needs "
             "--free-bits auto."),
            (self.target_kl is None or (math.isfinite(self.target_kl) and self.target_kl > 0),
             f"--target-kl must be a number of nats > 0 (got {self.target_kl})."),
            (self.capacity is None or self.capacity >= 0, f"--capacity must be >= 0 nats (got {self.capacity})."),
            (self.capacity_epochs >= 0, f"--capacity-epochs must be >= 0 (got {self.capacity_epochs})."),
            (self.hidden >= 1, f"--hidden must be at least 1 (got {self.hidden})."),
            (_conv_channels(self.conv_channels) is not None,
             f"--conv-channels must be two whole numbers from 1 to 1024, like 32,64 (got {self.conv_channels!r})."),
            (self.epochs >= 1, f"--epochs must be at least 1 (got {self.epochs})."),
            (self.batch_size >= 1, f"--batch-size must be at least 1 (got {self.batch_size})."),
            (math.isfinite(self.lr) and self.lr > 0, f"--lr must be a number > 0 (got {self.lr})."),
            (self.lr_schedule in LR_SCHEDULES, f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}."),
            (self.device in DEVICE_CHOICES, f"--device must be one of {', '.join(DEVICE_CHOICES)} (got {self.device!r})."),
            (self.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}."),
            (self.limit is None or self.limit >= 1, f"--limit must be at least 1 (got {self.limit})."),
            (self.test_limit is None or self.test_limit >= 1, f"--test-limit must be at least 1 (got {self.test_limit})."),
            (self.binarize in BINARIZE_CHOICES, f"--binarize must be one of {', '.join(BINARIZE_CHOICES)} (got {self.binarize!r})."),
            (self.likelihood in ("auto", *LIKELIHOODS),
             f"--likelihood must be auto, {' or '.join(LIKELIHOODS)} (got {self.likelihood!r})."),
            (self.decoder_mean in ("auto", *DECODER_MEANS),
             f"--decoder-mean must be auto, {' or '.join(DECODER_MEANS)} (got {self.decoder_mean!r})."),
            (self.image_size is None or (isinstance(self.image_size, int) and 4 <= self.image_size <= MAX_IMAGE_SIZE),
             f"--image-size must be a whole number from 4 to {MAX_IMAGE_SIZE} (got {self.image_size!r})."),
            (str(self.channels) in CHANNEL_CHOICES, f"--channels must be auto, 1 or 3 (got {self.channels!r})."),
        ]
        for ok, message in checks:
            if not ok:
                raise VaeError(message)
        if self.family != "vae" and (self.beta != 1.0 or self.beta_schedule != "constant" or self.free_bits
                                     or self.capacity is not None):
            own = ", ".join(p.flag for p in FAMILIES[self.family].params)
            raise VaeError(f"--beta, --beta-schedule, --free-bits and --capacity shape the plain VAE objective; "
                           f"{self.family} is weighted by its own flags ({own}).")
        self.family_hparams()
        if self.family in ("fsq", "vq-vae"):  # levels vs --latent-dim, code length vs --latent-dim: now, not mid-job
            self.model_config()
        validate_name(self.dataset)
        resolve_device(self.device)
        if self.image_size is not None and self.architecture.startswith("conv"):
            ModelConfig(image_size=self.image_size)  # a size the conv stack cannot halve is refused now

    @property
    def family(self) -> str:
        """The objective: the --model family, or "vae" (beta-VAE) for the four architectures."""
        return self.model if self.model in FAMILY_MODELS else "vae"

    @property
    def architecture(self) -> str:
        """The network a family trains: the ConvVAE, or the ConvAE for the discrete ones."""
        return FAMILIES[self.model].kind if self.model in FAMILY_MODELS else self.model

    def family_hparams(self) -> dict:
        """The family's hyperparameters, defaults filled in; VaeError for one that is not its own."""
        if not isinstance(self.family_params, dict):
            raise VaeError("family_params must be a mapping of hyperparameter names to values.")
        return resolve_params(self.family, self.family_params, model=self.model)

    def resolved_likelihood(self, image_channels: int) -> str:
        if self.likelihood != "auto":
            return self.likelihood
        return "gaussian" if image_channels == 3 else "bernoulli"

    def resolved_decoder_mean(self, image_channels: int) -> str:
        # auto: colour Gaussian models get the channel-gain head, which learns hue where the
        # sigmoid mean keeps only brightness (models.py); everything else keeps the sigmoid
        if self.decoder_mean != "auto":
            return self.decoder_mean
        colour_gaussian = image_channels == 3 and self.resolved_likelihood(image_channels) == "gaussian"
        return "channel-gain" if colour_gaussian else "sigmoid"

    def model_config(self, image_shape: tuple[int, int, int] = (1, 28, 28)) -> ModelConfig:
        """The model for data of image_shape (C, H, W); the default is MNIST's."""
        c, h, w = image_shape
        if h != w:
            raise VaeError(f"Images must be square; the data is {h}x{w}.")
        hp = self.family_hparams()
        levels = parse_levels(hp["fsq_levels"], self.latent_dim) if "fsq_levels" in hp else None
        return ModelConfig(kind=self.architecture, latent_dim=self.latent_dim,
                           extra_decoder_layer=self.extra_decoder_layer,
                           batchnorm=self.batchnorm, hidden=self.hidden,
                           channels=_conv_channels(self.conv_channels) or (32, 64),
                           image_channels=c, image_size=h, likelihood=self.resolved_likelihood(c),
                           decoder_mean=self.resolved_decoder_mean(c),
                           family=self.family, delta=hp.get("delta"), levels=levels,
                           codebook_size=hp.get("codebook_size"), code_dim=hp.get("code_dim"))

    def to_dict(self) -> dict:
        """The training section of config.json: a family's run records all its hyperparameters
        (defaults included); the four architectures' runs read exactly as before families."""
        d = asdict(self)
        if self.target_kl is None:  # only --free-bits auto has one: other runs' configs read as before
            del d["target_kl"]
        if self.decoder_mean == "auto":  # the resolved head is in the model section
            del d["decoder_mean"]
        if self.family == "vae" and not self.family_params:
            del d["family_params"]
        else:
            d["family_params"] = self.family_hparams()
        return d


# ---------------------------------------------------------------- helpers

def _free_bits(text: str) -> float | str:
    """--free-bits: a number, or "auto" (train.py's adaptive free bits)."""
    return "auto" if str(text).strip().lower() == "auto" else float(text)


def adapt_free_bits(eps: float, kl_total: float, target: float, latent_dim: int) -> float:
    """The next epoch's free-bits floor (nats per dimension) for --free-bits auto.

    Free bits (Kingma et al. 2016) leaves every dimension's KL below eps unpenalised, so the
    encoder may spend up to eps nats on each dimension for free: a dimension under the floor
    feels no pull toward the prior and is not switched off. The floor starts at an even share
    of the target, T / D, and moves each epoch by the square root of target / measured (damped:
    a step that overshoots is not undone the next epoch at full strength). It never goes under
    T / 4D, so no dimension is ever pushed to zero, nor over T. The "adaptive epsilon tuner"
    of the reference work, in one line."""
    ratio = target / max(kl_total, 1e-6)
    return float(min(max(eps * math.sqrt(ratio), target / (4 * latent_dim)), target))


def _conv_channels(text) -> tuple[int, int] | None:
    """'32,64' -> (32, 64); None for anything else (validate() turns that into a message)."""
    parts = str(text).replace(" ", "").split(",")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    c1, c2 = int(parts[0]), int(parts[1])
    return (c1, c2) if 1 <= c1 <= 1024 and 1 <= c2 <= 1024 else None


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 / AMX: oneDNN runs bf16 convolutions natively (about 2x fp32 here)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    """bf16 autocast for the forward pass; the loss and the optimiser stay fp32."""
    if cfg.precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())
    return cfg.precision == "bf16"


def batch_targets(x: torch.Tensor, binarize: str) -> torch.Tensor:
    """dynamic binarization draws fresh pixels every time a batch is seen."""
    return torch.bernoulli(x) if binarize == "dynamic" else x


@torch.no_grad()
def evaluate_loss(model: AutoEncoder, images_u8: torch.Tensor, batch_size: int = 500,
                  beta: float = 1.0, device=None, generator_seed: int = 1234) -> dict:
    """Mean per-image loss terms over a uint8 image tensor (targets = the images).

    With beta = 1 the loss of a VAE is its negative ELBO in nats (one z sample per
    image, drawn from a fixed seed so the number is repeatable). Returns floats plus
    kl_per_dim (list), active units and the means mu as a tensor.
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    g = torch.Generator(device=device).manual_seed(generator_seed)
    sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
    kl_dims = torch.zeros(model.latent_dim, device=device)
    mus = []
    n = images_u8.shape[0]
    log_sigma = model.decoder_log_sigma()
    log_sigma = None if log_sigma is None else log_sigma.float()
    for i in range(0, n, batch_size):
        x = to_float(images_u8[i:i + batch_size], device)
        mu, logvar = model.encode(x)
        if logvar is None:
            z = mu
        else:
            eps = torch.randn(mu.shape, generator=g, device=device)
            z = mu + eps * torch.exp(0.5 * logvar)
        terms = vae_loss(model.decode(z).float(), x, mu.float(), None if logvar is None else logvar.float(),
                         beta=beta, log_sigma=log_sigma, link=model.config.decoder_mean)
        b = x.shape[0]
        for k in sums:
            sums[k] += float(terms[k]) * b
        kl_dims += terms["kl_per_dim"] * b
        mus.append(mu.float().cpu())
    model.train(was_training)
    mu_all = torch.cat(mus)
    out = {k: v / n for k, v in sums.items()}
    out["kl_per_dim"] = (kl_dims / n).tolist()
    out["active_units"] = active_units(mu_all) if model.variational else model.latent_dim
    out["mu"] = mu_all
    return out


def save_grid_png(path: Path, images: torch.Tensor, nrow: int) -> None:
    """images (N, C, H, W) in [0,1] -> one PNG grid (grey or RGB), written atomically."""
    from PIL import Image
    from torchvision.utils import make_grid
    grid = make_grid(images.float().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=0.5)
    arr = (grid * 255).round().to(torch.uint8)
    arr = arr[0].numpy() if images.shape[1] == 1 else arr.permute(1, 2, 0).contiguous().numpy()
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L" if arr.ndim == 2 else "RGB").save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


@torch.no_grad()
def write_grids(model: AutoEncoder, out: Path, epoch: int, test_u8: torch.Tensor, device) -> None:
    was_training = model.training
    model.eval()
    x = to_float(test_u8[:16], device)
    mu, _ = model.encode(x)
    recon = model.pixels(model.decode(mu).float())
    save_grid_png(out / "grids" / f"recon_e{epoch:03d}.png", torch.cat([x, recon]), nrow=16)
    g = torch.Generator(device="cpu").manual_seed(0)  # the same prior draws every epoch
    z = torch.randn(64, model.latent_dim, generator=g).to(device)
    save_grid_png(out / "grids" / f"prior_e{epoch:03d}.png", model.pixels(model.decode(z).float()), nrow=8)
    model.train(was_training)


class Stop(Exception):
    """Raised by the SIGTERM/SIGINT handler so a kill stops the loop like Ctrl-C."""


_stop_asked = False


def raise_stop(signum, frame):
    """The SIGTERM (and the CLI's SIGINT) handler of a training process (this CLI, a job, a
    job's torchrun rank). It also sets a flag the step loop reads: a signal that arrives while
    Python runs a finalizer (a tqdm bar's __del__, a weakref callback) has its exception
    printed and dropped there, and the run must stop all the same."""
    global _stop_asked
    _stop_asked = True
    raise Stop()


def command_line(argv: list[str]) -> str:
    """How to run this training again, for config.json: `python -m vae_core.train ARGS`, or under
    torchrun the torchrun command of the same group shape."""
    world = distributed.world_size()
    if world == 1:
        return "python -m vae_core.train " + shlex.join(argv)
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return (f"torchrun {f'--nnodes={world // per_node} ' if world > per_node else ''}"
            f"--nproc_per_node={per_node} -m vae_core.train " + shlex.join(argv))


# ---------------------------------------------------------------- the loop

def train(cfg: TrainConfig, command: str | None = None, progress: bool = True,
          on_epoch=None, on_step=None) -> dict:
    """Run training; returns the last epoch's metrics. Raises VaeError on bad input or divergence.

    on_epoch(metrics) after each epoch; on_step(epoch, step, steps_per_epoch) after each
    optimiser step (the job runner uses it for the progress bar, rate-limited there).
    """
    cfg.validate()
    # under torchrun: join the group (gloo on CPU, NCCL with one GPU per process); else a group of one
    group, device = distributed.setup(resolve_device(cfg.device))
    main_rank = group.main  # rank 0 alone writes the run folder and prints
    progress = progress and main_rank
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    out = Path(cfg.out)
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)

    channels = parse_channels(cfg.channels)
    train_set = load_dataset(cfg.dataset, "train", cfg.data_root, image_size=cfg.image_size,
                             channels=channels, limit=cfg.limit)
    # the test split in the training data's shape (a colour folder's default size is its own)
    shape = train_set.image_shape
    test_set = load_dataset(cfg.dataset, "test", cfg.data_root, image_size=shape[1], channels=shape[0],
                            limit=cfg.test_limit)
    train_u8, test_u8 = train_set.images, test_set.images
    if cfg.binarize != "none":
        # the test set is binarized once with a fixed seed (Burda et al. 2015)
        test_u8 = binarize_split(test_u8, "test")
    if cfg.binarize == "static":
        train_u8 = binarize_split(train_u8, "train")
    lazy = isinstance(train_u8, LazyImages)  # the full sprites split: rendered batch by batch
    if not lazy:
        train_u8 = train_u8.to(device)  # resident on the device; batches are slices
    test_u8 = test_u8.to(device)
    n = train_u8.shape[0]
    steps_per_epoch = distributed.steps_per_epoch(n, cfg.batch_size, group)
    total_steps = steps_per_epoch * cfg.epochs
    global_batch = cfg.batch_size * group.world

    model_config = cfg.model_config(shape)
    gaussian = model_config.likelihood == "gaussian"
    link = model_config.decoder_mean
    family = FAMILIES[cfg.family]
    hp = cfg.family_hparams()
    model = build_model(model_config).to(device)
    if family.configure:
        family.configure(model, hp)
    model = cpu_fast_layout(model, device)
    step_fn = torch.compile(model) if cfg.compile else model
    if group.world > 1:
        # gradients averaged over the ranks after each backward (every parameter of every model kind
        # and family takes part in its loss; the Gaussian decoder's log sigma is a buffer)
        from torch.nn.parallel import DistributedDataParallel
        step_fn = DistributedDataParallel(step_fn, device_ids=[device.index] if device.type == "cuda" else None)
    # fused: one kernel over every parameter (CPU and CUDA); the for-loop Adam was a fifth of a small MLP's step
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=device.type in ("cpu", "cuda"))
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
             if cfg.lr_schedule == "cosine" else None)
    bf16 = use_bf16(cfg, device)
    perm_gen = torch.Generator().manual_seed(cfg.seed)
    # FactorVAE's discriminator: trained in this loop with its own optimiser, saved beside the model
    aux = family.make_aux(cfg.latent_dim, hp, device) if family.make_aux else None
    extra_keys = family.terms  # logged per epoch beside loss, recon and kl

    dataset_info = {"name": cfg.dataset, "class_names": train_set.class_names,
                    "train_size": int(n), "test_size": int(test_u8.shape[0]), "binarize": cfg.binarize,
                    "image_shape": list(shape)}
    base_config = {"model": model_config.to_dict(), "training": cfg.to_dict(),
                   "dataset": dataset_info, "command": command}
    metrics_path = out / "metrics.jsonl"
    if main_rank:
        atomic_write_json(out / "config.json", {"format_version": FORMAT_VERSION, **base_config, "metrics": {}})
        metrics_path.write_text("")  # a fresh run starts a fresh log
    if progress:
        ranks = (f"; {group.world} processes (torchrun, {'NCCL' if device.type == 'cuda' else 'gloo'}), global batch "
                 f"{group.world} x {cfg.batch_size} = {global_batch}" if group.world > 1 else "")
        print(f"training {cfg.model} z={cfg.latent_dim} on {cfg.dataset} ({n} images of "
              f"{'x'.join(map(str, shape))}, {model_config.likelihood} decoder"
              f"{', channel-gain mean' if link == 'channel-gain' else ''}) "
              f"on {describe_device(device)}{' with bf16 autocast' if bf16 else ''}{ranks}", file=sys.stderr)

    if group.world > 1:  # every network is built (the same on every rank): now each rank its own noise
        torch.manual_seed(cfg.seed + 1000 * group.rank)
    last = {}
    adaptive = cfg.free_bits == "auto"
    free_bits = cfg.target_kl / cfg.latent_dim if adaptive else cfg.free_bits  # auto: an even share to start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        sums = torch.zeros(3, device=device)        # loss, recon, kl (summed over images)
        kl_dims = torch.zeros(cfg.latent_dim, device=device)
        sq_err = torch.zeros((), device=device)    # Gaussian decoder: summed square error of the epoch
        extras = torch.zeros(len(extra_keys), device=device)  # the family's own terms (tc, mmd, ...)
        seen = 0                                   # images this rank trained on (a host count: no op per step)
        perm = torch.randperm(n, generator=perm_gen)
        perm = perm if lazy else perm.to(device)
        bar = _progress_bar(steps_per_epoch, f"epoch {epoch}/{cfg.epochs}", progress)
        for step in range(steps_per_epoch):
            if _stop_asked:  # the handler's exception was swallowed (see raise_stop)
                raise Stop()
            idx = distributed.shard(perm[step * global_batch:(step + 1) * global_batch], group)
            x = to_float(train_u8[idx], device)  # a lazy split renders these rows on the CPU here
            target = batch_targets(x, cfg.binarize)
            t = epoch - 1 + step / steps_per_epoch  # fractional epoch for the schedules
            beta = beta_at(cfg.beta_schedule, cfg.beta, t, cfg.warmup_epochs, cfg.epochs, cfg.cycles)
            capacity = capacity_at(cfg.capacity, t, cfg.capacity_epochs)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits, mu, logvar, z = step_fn(target if cfg.binarize != "none" else x)
            log_sigma = None
            if gaussian:  # this batch's optimal sigma (sigma-VAE); its square error feeds the epoch's
                log_sigma = optimal_log_sigma(logits.float(), target, MIN_LOG_SIGMA, link)
                sq_err += (gaussian_mean(logits.detach().float(), link) - target).pow(2).sum()
            batch = Batch(logits.float(), target, mu.float(), None if logvar is None else logvar.float(),
                          z.float(), log_sigma=log_sigma, link=link, dataset_size=n, aux=aux)
            # the plain objective takes this step's scheduled beta and capacity; a family its own flags
            step_hp = {"beta": beta, "free_bits": free_bits, "capacity": capacity} if family.name == "vae" else hp
            terms = family.objective(batch, step_hp)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            if aux is not None:  # after the VAE's step, on the codes it was given
                terms.update(aux.update(batch.z))
            if sched:
                sched.step()
            b = x.shape[0]
            seen += b
            sums += torch.stack([terms["loss"], terms["recon"], terms["kl"]]).detach() * b
            kl_dims += terms["kl_per_dim"].detach() * b
            if extra_keys:
                extras += torch.stack([terms[k].detach().float() for k in extra_keys]) * b
            if bar:
                bar.update(1)
            if on_step and main_rank:
                on_step(epoch, step + 1, steps_per_epoch)
        if bar:
            bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        # the epoch over every rank's shard (a no-op for one process)
        for t in (sums, kl_dims, sq_err, extras):
            distributed.all_sum(t)
        seconds = time.perf_counter() - t0
        # n, less a dropped last batch under torchrun (on the device: NCCL reduces CUDA tensors only)
        n_seen = float(distributed.all_sum(torch.tensor(float(seen), device=device)))
        loss, recon, kl = (sums / n_seen).tolist()
        check_finite(loss, "training loss", epoch, cfg.lr, cfg.beta)
        if gaussian:
            # the sigma evaluation uses: the optimum over this epoch's reconstructions
            mse = sq_err / (n_seen * math.prod(shape))
            model.log_sigma.fill_(float((0.5 * torch.log(mse.clamp(min=1e-30))).clamp(min=MIN_LOG_SIGMA)))

        # fsq / vq-vae: how much of the codebook this epoch's training batches used
        codebook = model.quantizer.epoch_stats() if model.discrete else {}
        if not main_rank:  # the next epoch's first backward waits for rank 0's evaluation and files
            last = {"epoch": epoch, "loss": loss}
            if adaptive:
                free_bits = adapt_free_bits(free_bits, kl, cfg.target_kl, cfg.latent_dim)
            continue
        test = evaluate_loss(model, test_u8, device=device)
        check_finite(test["loss"], "test loss", epoch, cfg.lr, cfg.beta)
        last = {
            "epoch": epoch, "beta": beta, "lr": opt.param_groups[0]["lr"],
            "loss": loss, "recon": recon, "kl": kl, "kl_per_dim": (kl_dims / n_seen).tolist(),
            "test_loss": test["loss"], "test_recon": test["recon"], "test_kl": test["kl"],
            "test_kl_per_dim": test["kl_per_dim"], "active_units": test["active_units"],
            "seconds": seconds, "images_per_s": n_seen / seconds,
            **({"processes": group.world, "global_batch": global_batch} if group.world > 1 else {}),
            **({"sigma": float(model.decoder_log_sigma().exp())} if gaussian else {}),
            **dict(zip(extra_keys, (extras / n_seen).tolist())), **codebook,
            **({"free_bits": free_bits} if adaptive else {}),
        }
        if adaptive:  # the floor the next epoch trains with, from this epoch's KL
            free_bits = adapt_free_bits(free_bits, kl, cfg.target_kl, cfg.latent_dim)
        if device.type == "cuda":
            last["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        last["peak_rss_mb"] = peak_rss_mb()
        write_grids(model, out, epoch, test_u8, device)
        save_checkpoint(out, model, training=cfg.to_dict(), dataset=dataset_info,
                        metrics=last, command=command)
        if aux is not None:
            aux.save(out)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(last) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if progress:
            sigma = f" | sigma {last['sigma']:.3f}" if "sigma" in last else ""
            sigma += "".join(f" | {k} {last[k]:.3g}" for k in extra_keys)
            if adaptive:
                sigma += f" | free bits {last['free_bits']:.3f} -> {free_bits:.3f}"
            if codebook:
                sigma += f" | codebook usage {codebook['codebook_usage']:.0%}, perplexity {codebook['perplexity']:.1f}"
            print(f"epoch {epoch}: loss {loss:.2f} (recon {recon:.2f}, kl {kl:.2f}){sigma} | test "
                  f"{test['loss']:.2f} | active units {test['active_units']}/{cfg.latent_dim} | "
                  f"{last['images_per_s']:.0f} img/s", file=sys.stderr)
        if on_epoch:
            on_epoch(last)
    distributed.barrier()  # under torchrun the other ranks leave once rank 0 has written the last epoch
    return last


def _progress_bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, disable=None, unit="batch")


# ---------------------------------------------------------------- CLI

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vae-train", description="Train a VAE or AE and write a checkpoint folder.")
    d = TrainConfig()
    p.add_argument("--dataset", default=d.dataset, help="mnist, fashion-mnist, digits, cifar10, sprites, "
                   "color-sprites or folder:<path>")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/raw, FashionMNIST/raw, "
                   "cifar-10-batches-bin (default: $VAE_DATA_ROOT, else ./data)")
    p.add_argument("--model", default=d.model, help=f"an architecture ({', '.join(MODEL_KINDS)}) or a model "
                   f"family trained on the conv-vae ({', '.join(FAMILY_MODELS)}); see vae_core/families.py")
    p.add_argument("--latent-dim", type=int, default=d.latent_dim)
    p.add_argument("--beta", type=float, default=d.beta, help="weight of the KL term")
    p.add_argument("--beta-schedule", default=d.beta_schedule, help="constant, linear (warm-up) or cyclical")
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--cycles", type=int, default=d.cycles, help="cycles for the cyclical schedule")
    p.add_argument("--free-bits", type=_free_bits, default=d.free_bits, help="per-dimension KL floor in nats, or "
                   "auto: adapted each epoch so no dimension collapses and the total KL approaches --target-kl")
    p.add_argument("--target-kl", type=float, default=None, help="with --free-bits auto: the total KL (nats per "
                   "image) to aim at")
    p.add_argument("--capacity", type=float, default=None, help="KL capacity target C_max in nats (Burgess et al.)")
    p.add_argument("--capacity-epochs", type=float, default=d.capacity_epochs)
    p.add_argument("--extra-decoder-layer", action="store_true", help='"dec+1": one more ConvTranspose k3 s1')
    p.add_argument("--batchnorm", action="store_true", help="BatchNorm in the encoder")
    p.add_argument("--hidden", type=int, default=d.hidden)
    p.add_argument("--conv-channels", default=d.conv_channels, help="widths of the first two convolutions, "
                   "e.g. 32,64 (deeper convolutions double the last: 64x64 images get 32,64,128,256)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--lr-schedule", default=d.lr_schedule, help="constant or cosine")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or mps")
    p.add_argument("--precision", default=d.precision, help="auto (bf16 on CUDA and CPUs with native bf16), fp32 or bf16")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--limit", type=int, default=None, help="use the first N training images")
    p.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test images")
    p.add_argument("--binarize", default=d.binarize, help="none, dynamic or static")
    p.add_argument("--likelihood", default=d.likelihood, help="decoder likelihood: auto (bernoulli for grey data, "
                   "gaussian for colour), bernoulli (BCE) or gaussian (learned sigma, the sigma-VAE)")
    p.add_argument("--decoder-mean", default=d.decoder_mean, help="how a Gaussian decoder's output becomes "
                   "its mean: auto (channel-gain for colour, else sigmoid), sigmoid, or channel-gain (the output "
                   "times a per-channel gain from z, no sigmoid: learns hue, see models.py)")
    p.add_argument("--image-size", type=int, default=None, help="resize the square images to this size "
                   "(default: the dataset's own; a folder: 28 grey, 64 colour)")
    p.add_argument("--channels", default=d.channels, help="auto (the dataset's own), 1 (grey) or 3 (colour)")
    p.add_argument("--out", default=d.out, help="run folder to write")
    _add_family_flags(p)
    return p


def _add_family_flags(p: argparse.ArgumentParser) -> None:
    """One flag per hyperparameter in the families registry, with its defaults per family. A flag
    left out is absent from the parsed args (SUPPRESS), so only the flags given are checked
    against the --model (a --tc-beta with --model factor-vae is refused, not ignored)."""
    papers = {}
    for f in FAMILIES.values():
        if f.params:
            papers.setdefault(f.paper, []).append(f.name)
    group = p.add_argument_group("model families (vae_core/families.py)", "each flag is read by the --model "
                                 "it names: " + "; ".join(f"{' and '.join(names)}: {paper}"
                                                         for paper, names in papers.items()))
    for name, users in family_flags().items():
        p0 = users[0][1]
        defaults = sorted({str(p.default) for _, p in users})
        default = (defaults[0] if len(defaults) == 1
                   else ", ".join(f"{p.default} for {fam}" for fam, p in users))
        group.add_argument(p0.flag, dest=name, type=p0.type, choices=p0.choices or None,
                           default=argparse.SUPPRESS, help=f"{p0.help} (default: {default})")


def config_from_args(argv: list[str]) -> TrainConfig:
    args = vars(build_parser().parse_args(argv))
    names = {f.name for f in fields(TrainConfig)}
    family_params = {k: args[k] for k in family_flags() if k in args}
    return TrainConfig(**{k: v for k, v in args.items() if k in names}, family_params=family_params)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg = config_from_args(argv)
        cfg.validate()
    except VaeError as e:
        print(f"vae-train: error: {e}", file=sys.stderr)
        return 2
    quiet = not distributed.is_main_process()  # under torchrun rank 0 speaks for the group
    signal.signal(signal.SIGTERM, raise_stop)
    signal.signal(signal.SIGINT, raise_stop)
    try:
        last = train(cfg, command=command_line(argv))
    except VaeError as e:
        print(f"vae-train: error: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Stop):
        if not quiet:
            print(f"vae-train: stopped; the last completed epoch's checkpoint is in {cfg.out}", file=sys.stderr)
        return 130
    finally:
        distributed.teardown()
    if not quiet:
        print(f"done: {cfg.epochs} epochs, test loss {last['test_loss']:.2f}, "
              f"active units {last['active_units']}/{cfg.latent_dim}, checkpoint in {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
