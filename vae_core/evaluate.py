"""How good is a checkpoint, and is its posterior collapsed? One function, one CLI.

    python -m vae_core.evaluate --checkpoint DIR [--data-root R] [--split test]
                                [--limit N] [--iw-samples K] [--json]

Every number is in nats per image (Bernoulli decoder, summed over the 784 pixels)
on the chosen split, binarized the way the model was trained: a model trained on
binarized MNIST is scored on the split binarized once with a fixed seed (Burda et
al. 2015); a model trained on grey levels is scored with grey-level targets (then
the "likelihood" is the cross-entropy the loss uses, not a density of real images).

  neg_elbo        recon + kl: the loss at beta = 1, one z sample per image
  recon, kl       its two terms (kl in closed form)
  nll             -log p(x) by importance sampling with K samples from q(z|x):
                  -log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x), the IWAE bound (Burda
                  et al. 2015). It tightens as K grows and is <= neg_elbo on average.
  kl_per_dim      mean KL per latent dimension; active_units: Var_x(E_q[z_i]) > 0.01
  mutual_info     I(x;z) under the aggregate posterior. Hoffman & Johnson (2016):
                  E_x KL(q(z|x)||p(z)) = I(x;z) + KL(q(z)||p(z)); q(z) is estimated
                  as the mixture of the posteriors of N = 2000 images, so the figure
                  cannot exceed log N = 7.6 nats: a value at the cap reads "at least"
  mse             mean squared pixel error of decode(mu) against the input in [0,1]
  shuffled_recon  recon when each image is decoded from another image's z. A model
                  that ignores z (collapsed) loses nothing; a useful latent loses a lot.
  twonn_dim       intrinsic dimension of the posterior means (TWO-NN)
For autoencoders the terms that need a posterior (neg_elbo, kl, nll, kl_per_dim,
mutual_info) are None.

The result is saved beside the checkpoint as metrics.json (atomic write).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vae_core import VaeError
from vae_core.checkpoint import atomic_write_json, load_checkpoint
from vae_core.data import binarize_split, load_dataset, to_float
from vae_core.device import cpu_fast_layout
from vae_core.geometry import twonn_dimension
from vae_core.losses import active_units, kl_per_dim, recon_bce

METRIC_KEYS = ("neg_elbo", "recon", "kl", "nll", "kl_per_dim", "active_units", "mutual_info",
               "mse", "shuffled_recon", "twonn_dim")
LOG_2PI = math.log(2 * math.pi)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def iwae_log_likelihood(mu: torch.Tensor, logvar: torch.Tensor, log_lik, k: int,
                        max_batch: int = 500, generator: torch.Generator | None = None) -> torch.Tensor:
    """log p(x) >= log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x): shape (B,).

    mu, logvar (B, D) are q's parameters; log_lik(z) maps z (S, B, D) to log p(x|z)
    (S, B). Samples go through log_lik in chunks of at most max_batch decodes, so
    K = 5000 needs no more memory than K = 50. The log weights of all K samples are
    kept (K x B floats) and reduced with one logsumexp: exact, no running rescaling.
    """
    b, d = mu.shape
    per_chunk = max(1, min(k, max_batch // max(b, 1)))
    std = torch.exp(0.5 * logvar)
    log_w = []
    done = 0
    while done < k:
        s = min(per_chunk, k - done)
        eps = torch.randn((s, b, d), generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + std * eps
        log_prior = -0.5 * (LOG_2PI + z.pow(2)).sum(-1)
        log_q = log_normal(z, mu, logvar)
        log_w.append(log_lik(z) + log_prior - log_q)
        done += s
    return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)


def bernoulli_log_lik(model, x: torch.Tensor):
    """log_lik for iwae_log_likelihood: z (S, B, D) -> log p(x|z) (S, B) under the model's
    Bernoulli decoder, for the images x (B, 1, 28, 28) with targets in [0, 1]."""
    flat = x.flatten(1)

    def log_lik(z):
        s, b, d = z.shape
        logits = model.decode(z.reshape(s * b, d)).float().reshape(s, b, -1)
        return -torch.nn.functional.binary_cross_entropy_with_logits(
            logits, flat.expand(s, b, -1), reduction="none").sum(-1)
    return log_lik


def mutual_information(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None,
                       chunk: int = 256) -> float:
    """I(x;z) = E_x E_q(z|x)[log q(z|x)] - E_q(z)[log q(z)] over these N posteriors.

    Each image contributes one z_i ~ q(z|x_i); q(z_i) is the mixture
    (1/N) sum_j q(z_i|x_j): the minibatch estimate of Hoffman & Johnson (2016) and
    He et al. (2019), capped at log N. Both terms use the same z_i, so when every
    posterior is the same (a collapsed model) the estimate is exactly 0, not noise.
    """
    n, d = mu.shape
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
    log_q_own = log_normal(z, mu, logvar)
    log_qz = []
    for i in range(0, n, chunk):
        lq = log_normal(z[i:i + chunk, None, :], mu[None], logvar[None])  # (c, N)
        log_qz.append(torch.logsumexp(lq, dim=1) - math.log(n))
    return float((log_q_own - torch.cat(log_qz)).mean())


@torch.no_grad()
def evaluate_model(model, images_u8: torch.Tensor, *, iw_samples: int = 100, seed: int = 0,
                   batch_size: int = 500, iw_batch: int = 50, mi_samples: int = 2000,
                   progress=None) -> dict:
    """Every metric of the module docstring for uint8 images (N, 28, 28); floats in nats.

    The images are the targets as given (binarize them first for a binarized model).
    progress(fraction) is called while the importance-sampled NLL runs (the slow part).
    """
    if iw_samples < 1:
        raise VaeError(f"--iw-samples must be >= 1, got {iw_samples}.")
    n = images_u8.shape[0]
    if n < 3:
        raise VaeError("Evaluation needs at least 3 images.")
    model.eval()
    device = next(model.parameters()).device
    model = cpu_fast_layout(model, device, keep_original=True)  # the caller's (the app's cached) model stays as is
    g = torch.Generator(device=device).manual_seed(seed)
    variational = model.variational

    mus, logvars, recon, recon_shuf, kls, se = [], [], [], [], [], []
    for i in range(0, n, batch_size):
        x = to_float(images_u8[i:i + batch_size], device)
        mu, logvar = model.encode(x)
        mu = mu.float()
        z = mu if logvar is None else mu + torch.exp(0.5 * logvar.float()) * torch.randn(mu.shape, generator=g, device=device)
        recon.append(recon_bce(model.decode(z).float(), x))
        # another image's z: a fixed derangement (roll by one) within the batch
        recon_shuf.append(recon_bce(model.decode(z.roll(1, 0)).float(), x))
        se.append((torch.sigmoid(model.decode(mu).float()) - x).pow(2).flatten(1).mean(1))
        mus.append(mu)
        if variational:
            logvars.append(logvar.float())
            kls.append(kl_per_dim(mu, logvar.float()))
    mu_all = torch.cat(mus)
    out = {
        "recon": float(torch.cat(recon).mean()),
        "shuffled_recon": float(torch.cat(recon_shuf).mean()),
        "mse": float(torch.cat(se).mean()),
        "active_units": active_units(mu_all),
        "twonn_dim": twonn_dimension(mu_all.cpu().numpy()),
        "neg_elbo": None, "kl": None, "nll": None, "kl_per_dim": None, "mutual_info": None,
    }
    if not variational:
        return out

    lv_all = torch.cat(logvars)
    kl_dims = torch.cat(kls)
    out["kl_per_dim"] = kl_dims.mean(0).tolist()
    out["kl"] = float(kl_dims.sum(1).mean())
    out["neg_elbo"] = out["recon"] + out["kl"]
    pick = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:mi_samples]
    out["mutual_info"] = mutual_information(mu_all[pick].cpu(), lv_all[pick].cpu(),
                                            torch.Generator().manual_seed(seed + 1))
    out["mi_samples"] = len(pick)  # the estimate cannot exceed log(mi_samples)

    nll = []
    for i in range(0, n, iw_batch):
        x = to_float(images_u8[i:i + iw_batch], device)
        nll.append(-iwae_log_likelihood(mu_all[i:i + iw_batch], lv_all[i:i + iw_batch], bernoulli_log_lik(model, x),
                                        iw_samples, generator=g))
        if progress:
            progress(min(1.0, (i + iw_batch) / n))
    out["nll"] = float(torch.cat(nll).mean())
    return out


def evaluation_images(ckpt, split: str = "test", data_root=None, limit: int | None = None) -> tuple[torch.Tensor, bool]:
    """The split the checkpoint is scored on, binarized as its training was: (uint8 images, binarized)."""
    images = load_dataset(ckpt.dataset, split, data_root, download=False).images
    if ckpt.binarized:
        images = binarize_split(images, split)  # the whole split, then the limit: the same pixels as the cache
    return (images[:limit] if limit else images), ckpt.binarized


def evaluate_checkpoint(folder, *, split: str = "test", data_root=None, limit: int | None = None,
                        iw_samples: int = 100, seed: int = 0, save: bool = True, progress=None) -> dict:
    """Load, score and (by default) write metrics.json beside the checkpoint."""
    folder = Path(folder)
    if limit is not None and limit < 3:
        raise VaeError(f"--limit must be at least 3, got {limit}.")
    if iw_samples < 1:
        raise VaeError(f"--iw-samples must be >= 1, got {iw_samples}.")
    ckpt = load_checkpoint(folder)
    images, binarized = evaluation_images(ckpt, split, data_root, limit)
    t0 = time.time()
    result = evaluate_model(ckpt.model, images, iw_samples=iw_samples, seed=seed, progress=progress)
    result.update({"checkpoint": ckpt.hash, "dataset": ckpt.dataset, "split": split, "images": int(images.shape[0]),
                   "iw_samples": iw_samples, "binarized": binarized, "seed": seed,
                   "latent_dim": ckpt.model.latent_dim, "kind": ckpt.model_config.kind,
                   "seconds": round(time.time() - t0, 1)})
    if save:
        atomic_write_json(folder / "metrics.json", result)
    return result


def read_metrics(folder, checkpoint: str | None = None) -> dict | None:
    """metrics.json of a checkpoint folder, or None when absent or unreadable.

    With checkpoint (the weights' content hash) given, scores written for other
    weights (a run retrained into the same folder) count as absent, not as this
    model's numbers.
    """
    try:
        data = json.loads((Path(folder) / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or (checkpoint is not None and data.get("checkpoint") != checkpoint):
        return None
    return data


def collapsed(metrics: dict, latent_dim: int) -> str | None:
    """Why a model looks collapsed, or None: fewer active units than dimensions, or a
    shuffled-z ablation that costs under 2% of the reconstruction (z barely matters)."""
    reasons = []
    au = metrics.get("active_units")
    if au is not None and au < latent_dim:
        reasons.append(f"{au}/{latent_dim} active units")
    r, s = metrics.get("recon"), metrics.get("shuffled_recon")
    if r and s is not None and (s - r) < 0.02 * abs(r):
        reasons.append(f"shuffling z costs {s - r:.1f} nats")
    return "; ".join(reasons) or None


def format_table(m: dict) -> str:
    rows = [("neg_elbo", "negative ELBO (nats)"), ("recon", "  reconstruction"), ("kl", "  KL"),
            ("nll", f"NLL, IWAE K={m.get('iw_samples')}"), ("active_units", "active units"),
            ("mutual_info", "mutual information I(x;z)"), ("mse", "MSE per pixel"),
            ("shuffled_recon", "recon with shuffled z"), ("twonn_dim", "TWO-NN intrinsic dim")]
    lines = [f"{m.get('dataset')} {m.get('split')}, {m.get('images')} images"
             f"{' (binarized)' if m.get('binarized') else ''}, {m.get('kind')} z={m.get('latent_dim')}"]
    for key, label in rows:
        v = m.get(key)
        text = "n/a (autoencoder)" if v is None else (f"{v:.4f}" if key == "mse" else
                                                     f"{v}" if isinstance(v, int) else f"{v:.2f}")
        lines.append(f"  {label:<28} {text}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m vae_core.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (model.safetensors + config.json)")
    p.add_argument("--data-root", default=None, help="folder holding MNIST/raw, FashionMNIST/raw")
    p.add_argument("--split", default="test", choices=["test", "train"])
    p.add_argument("--limit", type=int, default=None, help="score the first N images")
    p.add_argument("--iw-samples", type=int, default=100, help="importance samples K for the NLL (5000 in Burda et al.)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--no-save", action="store_true", help="do not write metrics.json")
    args = p.parse_args(argv)
    from tqdm import tqdm
    bar = None

    def progress(f):  # the bar appears once the slow part starts, after the input checks
        nonlocal bar
        if bar is None:
            bar = tqdm(total=100, desc=f"NLL, K={args.iw_samples}", unit="%", disable=args.json, file=sys.stderr)
        bar.n = round(100 * f)
        bar.refresh()

    try:
        m = evaluate_checkpoint(args.checkpoint, split=args.split, data_root=args.data_root, limit=args.limit,
                                iw_samples=args.iw_samples, seed=args.seed, save=not args.no_save, progress=progress)
    except VaeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(m))
    else:
        print(format_table(m))
        print(f"{m['images']} images in {m['seconds']} s; saved {Path(args.checkpoint) / 'metrics.json'}"
              if not args.no_save else f"{m['images']} images in {m['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
