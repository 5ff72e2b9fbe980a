"""How good is a checkpoint, and is its posterior collapsed? One function, one CLI.

    python -m vae_core.evaluate --checkpoint DIR [--data-root R] [--split test]
                                [--limit N] [--iw-samples K] [--json]

Every number is in nats per image under the model's own decoder likelihood (Bernoulli,
or the learned-sigma Gaussian of a sigma-VAE; summed over all C x H x W pixels) on the chosen split, binarized the way the model was trained: a model trained on
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
  disentanglement on data with ground-truth factors (sprites, color-sprites) only:
                  BetaVAE and FactorVAE scores, MIG, SAP and DCI of the posterior means
                  (vae_core/disentanglement.py, disentanglement_lib's protocols), under
                  "disentanglement" with the sample counts used. --disentanglement full
                  uses disentanglement_lib's counts (10,000 train points; about 35 min on
                  2 CPU cores, most of it encoding the BetaVAE score's 1.9M images);
                  quick (the default there) a tenth of them, a few minutes
For autoencoders the terms that need a posterior (neg_elbo, kl, nll, kl_per_dim,
mutual_info) are None.

The result is saved beside the checkpoint in metrics.json (atomic write), which keeps
one entry per protocol, so a quick run never replaces a fuller one:

    {"format": "vae-explorer-metrics", "version": 2,
     "entries": [{...one result, as evaluate_checkpoint returns it...}, ...]}

  protocol       (checkpoint hash, split, images, iw_samples K, binarized, seed): saving
                 a result replaces the entry of the same protocol and keeps all others
  order          most complete first: the test split before train, then more images,
                 then larger K, then the newest (evaluated_at, UTC); read_metrics gives
                 the first entry for these weights, read_all_metrics all of them
  version 1      the older file, one flat result dict (the shipped checkpoints/*/
                 metrics.json): read as a list of one entry, upgraded (entry kept) the
                 next time a result is saved beside it
  unreadable     a file that is not JSON or not in either format reads as absent; saving
                 moves it aside to metrics.json.unreadable-<time> rather than over-
                 writing it, so nobody's numbers are destroyed without a trace
Two saves at the same instant can lose one entry (read, add, rename; no lock): the
evaluations that matter take minutes, the window is milliseconds.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from vae_core import VaeError, parse_json
from vae_core.checkpoint import load_checkpoint
from vae_core.files import atomic_write_json
from vae_core.data import binarize_split, load_dataset, to_float
from vae_core.device import cpu_fast_layout
from vae_core.geometry import twonn_dimension
from vae_core.losses import active_units, kl_per_dim, recon_nll

METRIC_KEYS = ("neg_elbo", "recon", "kl", "nll", "kl_per_dim", "active_units", "mutual_info",
               "mse", "shuffled_recon", "twonn_dim")
LOG_2PI = math.log(2 * math.pi)
METRICS_FILE = "metrics.json"
METRICS_FORMAT, METRICS_VERSION = "vae-explorer-metrics", 2
PROTOCOL_KEYS = ("checkpoint", "split", "images", "iw_samples", "binarized", "seed", "disentanglement_samples")
# disentanglement_lib's sample counts ("full") and a tenth of them ("quick")
DISENTANGLEMENT_COUNTS = {"full": dict(num_train=10_000, num_eval=5_000, num_test=5_000, num_variance_estimate=10_000),
                          "quick": dict(num_train=1_000, num_eval=500, num_test=500, num_variance_estimate=1_000)}
# collapse thresholds: below these the posterior says ~nothing about x
MI_COLLAPSED = 0.05       # nats of I(x;z)
SHUFFLE_COLLAPSED = 0.02  # extra reconstruction loss from another image's z, as a fraction of recon


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


def decoder_log_lik(model, x: torch.Tensor):
    """log_lik for iwae_log_likelihood: z (S, B, D) -> log p(x|z) (S, B) under the model's
    decoder (Bernoulli, or Gaussian with its learned sigma), for images x (B, C, H, W) in [0, 1]."""
    flat = x.flatten(1)
    log_sigma, link = _log_sigma(model), _link(model)

    def log_lik(z):
        s, b, d = z.shape
        logits = model.decode(z.reshape(s * b, d)).float().reshape(s * b, -1)
        return -recon_nll(logits, flat.repeat(s, 1), log_sigma, link).reshape(s, b)
    return log_lik


bernoulli_log_lik = decoder_log_lik  # the name before issue 13 (a Bernoulli model gives the same numbers)


def _log_sigma(model):
    get = getattr(model, "decoder_log_sigma", None)
    ls = get() if get else None
    return None if ls is None else ls.float()


def _link(model) -> str:
    """How the model's Gaussian decoder output is its mean (models.py's decoder_mean)."""
    return getattr(getattr(model, "config", None), "decoder_mean", "sigmoid")


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
    """Every metric of the module docstring for uint8 images (N, C, H, W), or (N, H, W) grey; floats in nats.

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
    log_sigma, link = _log_sigma(model), _link(model)

    mus, logvars, recon, recon_shuf, kls, se = [], [], [], [], [], []
    for i in range(0, n, batch_size):
        x = to_float(images_u8[i:i + batch_size], device)
        mu, logvar = model.encode(x)
        mu = mu.float()
        z = mu if logvar is None else mu + torch.exp(0.5 * logvar.float()) * torch.randn(mu.shape, generator=g, device=device)
        recon.append(recon_nll(model.decode(z).float(), x, log_sigma, link))
        # another image's z: a fixed derangement (roll by one) within the batch
        recon_shuf.append(recon_nll(model.decode(z.roll(1, 0)).float(), x, log_sigma, link))
        se.append((model.pixels(model.decode(mu).float()) - x).pow(2).flatten(1).mean(1))
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
    if getattr(model, "discrete", None):
        out.update(codebook_stats(model, mu_all))
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
        nll.append(-iwae_log_likelihood(mu_all[i:i + iw_batch], lv_all[i:i + iw_batch], decoder_log_lik(model, x),
                                        iw_samples, generator=g))
        if progress:
            progress(min(1.0, (i + iw_batch) / n))
    out["nll"] = float(torch.cat(nll).mean())
    return out


@torch.no_grad()
def codebook_stats(model, z: torch.Tensor) -> dict:
    """A discrete model's codes over the evaluated images: the share of the codebook they use,
    its perplexity (the number of equally used codes with the same entropy), the codes left
    unused ("dead") and the rate the code can carry at most, in nats per image (M ln K for
    vq-vae's M slots of K codes, ln prod L for fsq's grid)."""
    from vae_core.quantizers import code_histogram, usage_and_perplexity
    q = model.quantizer
    counts = code_histogram(q, z)
    usage, perplexity = usage_and_perplexity(counts)
    return {"codebook_usage": usage, "perplexity": perplexity, "dead_codes": int((counts == 0).sum()),
            "codebook_size": int(q.codebook_size), "code_rate": getattr(q, "M", 1) * math.log(q.codebook_size)}


def evaluation_images(ckpt, split: str = "test", data_root=None, limit: int | None = None) -> tuple[torch.Tensor, bool]:
    """The split the checkpoint is scored on, binarized as its training was: (uint8 images, binarized)."""
    shape = ckpt.model_config.image_shape  # the split as the model saw it (1x28x28 for every older model)
    images = load_dataset(ckpt.dataset, split, data_root, download=False, image_size=shape[1],
                          channels=shape[0]).images
    if ckpt.binarized:
        images = binarize_split(images, split)  # the whole split, then the limit: the same pixels as the cache
    return (images[:limit] if limit else images), ckpt.binarized


def has_factors(dataset: str) -> bool:
    """Datasets whose images come with ground-truth generative factors."""
    from vae_core.data import SPRITE_NAMES
    return dataset in SPRITE_NAMES


def takes_factor_images(ckpt) -> bool:
    """Whether the model takes the sprites as the factors describe them: 64x64, the dataset's own channels."""
    return ckpt.model_config.image_shape == (3 if ckpt.dataset == "color-sprites" else 1, 64, 64)


def disentanglement_scores(ckpt, counts: dict, seed: int = 0) -> dict:
    """The metrics of vae_core.disentanglement on the checkpoint's factor dataset."""
    from vae_core.disentanglement import all_metrics, representation_of, sprites_factor_data
    if not has_factors(ckpt.dataset):
        raise VaeError(f"{ckpt.dataset} has no ground-truth factors: disentanglement needs sprites or color-sprites.")
    if not takes_factor_images(ckpt):
        raise VaeError(f"Disentanglement is scored on the sprites at their own 64x64 shape; this model takes "
                       f"{'x'.join(map(str, ckpt.model_config.image_shape))}.")
    data = sprites_factor_data(colour=ckpt.dataset == "color-sprites")
    return all_metrics(data, representation_of(ckpt.model), seed, **counts)


def evaluate_checkpoint(folder, *, split: str = "test", data_root=None, limit: int | None = None,
                        iw_samples: int = 100, seed: int = 0, save: bool = True, progress=None,
                        disentanglement: str | dict = "off", quality: str = "off", fid_weights=None) -> dict:
    """Load, score and (by default) save the result into metrics.json beside the checkpoint.

    disentanglement: "off" (the default here: the metrics take minutes), "auto" (quick on
    data with factors at their own shape, else off: the CLI's default), "quick", "full",
    or a dict of all_metrics sample counts (tests use small ones).

    quality: "off" (the default here), "auto" (on where the project ships a classifier for the
    dataset at the model's image shape: the CLI's default) or "on" (VaeError where it has none):
    vae_core.quality.sample_quality on the evaluated images, the mixture fitted to as many
    training images (at most 10,000).

    fid_weights: a local Inception-v3 weights file (vae_core.inception): FID of the same four
    columns (fid_*) beside the classifier's fd_*, on any dataset, whatever quality says."""
    folder = Path(folder)
    if limit is not None and limit < 3:
        raise VaeError(f"--limit must be at least 3, got {limit}.")
    if iw_samples < 1:
        raise VaeError(f"--iw-samples must be >= 1, got {iw_samples}.")
    if quality not in ("auto", "on", "off"):
        raise VaeError(f"--quality must be auto, on or off (got {quality!r}).")
    if isinstance(disentanglement, str) and disentanglement not in ("auto", "off", *DISENTANGLEMENT_COUNTS):
        raise VaeError(f"--disentanglement must be auto, off, quick or full (got {disentanglement!r}).")
    inception = None
    if fid_weights is not None:  # checked before the slow part
        from vae_core.inception import load_fid_inception
        inception = load_fid_inception(fid_weights)
    ckpt = load_checkpoint(folder)
    if disentanglement == "auto":
        disentanglement = "quick" if has_factors(ckpt.dataset) and takes_factor_images(ckpt) else "off"
    counts = (disentanglement if isinstance(disentanglement, dict) else
              DISENTANGLEMENT_COUNTS.get(disentanglement))  # None: off
    images, binarized = evaluation_images(ckpt, split, data_root, limit)
    t0 = time.time()
    result = evaluate_model(ckpt.model, images, iw_samples=iw_samples, seed=seed, progress=progress)
    if quality != "off" or inception is not None:
        from vae_core.classifier import shipped_classifiers
        from vae_core.quality import QUALITY_SAMPLES, quality_classifier, sample_quality
        n = min(QUALITY_SAMPLES, int(images.shape[0]))
        classifier = quality_classifier(ckpt) if quality != "off" else None
        if quality == "on" and classifier is None:
            raise VaeError(f"No shipped feature classifier for {ckpt.dataset!r} at "
                           f"{'x'.join(map(str, ckpt.model_config.image_shape))} (there are: "
                           f"{', '.join(shipped_classifiers())}; `python -m vae_core.classifier --dataset NAME` "
                           f"trains one).")
        if n < 20:  # a 10-component mixture and 3-NN balls need a few more images than that
            if quality == "on" or inception is not None:
                raise VaeError(f"Sample quality needs at least 20 images; {n} are evaluated.")
        elif classifier is not None or inception is not None:
            fit, _ = evaluation_images(ckpt, "train", data_root, n)
            result.update(sample_quality(ckpt, images, fit, seed, n, classifier, inception))
    if counts:
        scores = disentanglement_scores(ckpt, counts, seed)
        result["disentanglement"] = scores
        result["disentanglement_samples"] = scores["num_train"]
    result.update({"checkpoint": ckpt.hash, "dataset": ckpt.dataset, "split": split, "images": int(images.shape[0]),
                   "iw_samples": iw_samples, "binarized": binarized, "seed": seed,
                   "latent_dim": ckpt.model.latent_dim, "kind": ckpt.model_config.kind,
                   "seconds": round(time.time() - t0, 1),
                   "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    if save:
        save_metrics(folder, result)
    return result


# ---- metrics.json: one entry per protocol (format in the module docstring) -------------

def protocol(entry: dict) -> tuple:
    """What makes two results comparable: the same weights scored the same way."""
    return tuple(entry.get(k) for k in PROTOCOL_KEYS)


def completeness(entry: dict) -> tuple:
    """Sort key, larger = more complete: the test split, more images, larger K, newer."""
    def number(v):
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else 0
    return (entry.get("split") == "test", number(entry.get("images")), number(entry.get("iw_samples")),
            number(entry.get("disentanglement_samples")), str(entry.get("evaluated_at") or ""))  # version-1 entries have no time: the oldest


def _is_entry(e) -> bool:
    return isinstance(e, dict) and isinstance(e.get("checkpoint"), str) and "recon" in e


def _load_entries(path: Path) -> list[dict] | None:
    """The entries of a metrics.json in either version; [] when there is none, None when it
    cannot be read or is not ours (the caller must not take that for "no evaluations")."""
    try:
        data = parse_json(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("format") == METRICS_FORMAT:
        entries = data.get("entries")
        ok = data.get("version") == METRICS_VERSION and isinstance(entries, list) and all(map(_is_entry, entries))
        return entries if ok else None  # a newer version is not guessed at
    return [data] if _is_entry(data) else None  # version 1: one flat result


def image_count(m: dict) -> str:
    """How many images an evaluation scored, written for people: 10,000."""
    n = m.get("images")
    return f"{n:,}" if isinstance(n, int) else str(n)


def read_all_metrics(folder, checkpoint: str | None = None) -> list[dict]:
    """Every saved evaluation in a checkpoint folder, most complete first ([] when none or unreadable).

    With checkpoint (the weights' content hash) given, scores written for other weights
    (a run retrained into the same folder) are left out: they are not this model's numbers.
    """
    entries = _load_entries(Path(folder) / METRICS_FILE) or []
    if checkpoint is not None:
        entries = [e for e in entries if e["checkpoint"] == checkpoint]
    return sorted(entries, key=completeness, reverse=True)


def read_metrics(folder, checkpoint: str | None = None) -> dict | None:
    """The most complete saved evaluation (what the sidebar and Compare show), or None."""
    entries = read_all_metrics(folder, checkpoint)
    return entries[0] if entries else None


@dataclass
class SavedMetrics:
    path: Path
    entries: list[dict]     # this checkpoint's evaluations after the save, most complete first
    set_aside: Path | None  # where an unreadable metrics.json was moved, if there was one

    def summary(self, entry: dict) -> str:
        """Whether `entry` is now the evaluation the app shows, for the CLI's last line."""
        n, best = len(self.entries), self.entries[0]
        if protocol(best) != protocol(entry):
            return (f"kept as one of {n} evaluations; the app shows the fuller K={best.get('iw_samples')}, "
                    f"{image_count(best)}-image {best.get('split')} one")
        return "the app shows it" + (f" (the fullest of {n} evaluations)" if n > 1 else "")


def save_metrics(folder, entry: dict) -> SavedMetrics:
    """Add `entry` to metrics.json, replacing only an entry of the same protocol (atomic write)."""
    path = Path(folder) / METRICS_FILE
    entries = _load_entries(path)
    set_aside = None
    try:
        if entries is None:  # not ours or damaged: keep it under another name, do not overwrite it
            set_aside = path.with_name(f"{METRICS_FILE}.unreadable-{datetime.now():%Y%m%d-%H%M%S}")
            path.replace(set_aside)
            entries = []
        # the new entry first: the sort is stable, so it wins a tie with an older one
        entries = sorted([entry] + [e for e in entries if protocol(e) != protocol(entry)],
                         key=completeness, reverse=True)
        atomic_write_json(path, {"format": METRICS_FORMAT, "version": METRICS_VERSION, "entries": entries})
    except OSError as e:
        raise VaeError(f"Cannot save the evaluation beside the checkpoint ({e.strerror}); "
                       "check that the folder is writable.") from e
    return SavedMetrics(path, [e for e in entries if e["checkpoint"] == entry["checkpoint"]], set_aside)


# ---- collapse ----------------------------------------------------------------------------

def collapsed(metrics: dict, latent_dim: int) -> str | None:
    """Why a model's posterior looks collapsed (carries ~no information about x), or None.

    Collapse is z being ignored: no active units, I(x;z) under MI_COLLAPSED nats (when
    measured), or decoding from another image's z costing under SHUFFLE_COLLAPSED of the
    reconstruction. Using only some dimensions is not collapse: a VAE with more latent
    dims than it needs switches the rest off (Burda et al. 2015 count "active units"
    for this reason); mnist-bin-z50, the best likelihood here, uses 29 of 50.
    latent_use reports that neutrally.
    """
    reasons = []
    au = metrics.get("active_units")
    if au == 0:
        reasons.append(f"0/{latent_dim} active units")
    mi = metrics.get("mutual_info")
    if mi is not None and mi < MI_COLLAPSED:
        reasons.append(f"I(x;z) = {mi:.2f} nats")
    r, s = metrics.get("recon"), metrics.get("shuffled_recon")
    if r and s is not None and (s - r) < SHUFFLE_COLLAPSED * abs(r):
        reasons.append(f"shuffling z costs {s - r:.1f} nats")
    return "; ".join(reasons) or None


def latent_use(metrics: dict, latent_dim: int) -> str:
    """How many latent dimensions the model uses: "29/50 active" ("—" when not measured)."""
    au = metrics.get("active_units")
    return "—" if au is None else f"{au}/{latent_dim} active"


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
    if m.get("codebook_usage") is not None:
        lines.append(f"  {'codebook usage':<28} {m['codebook_usage']:.1%} of {m['codebook_size']:,} codes "
                     f"({m['dead_codes']:,} unused), perplexity {m['perplexity']:.1f}")
        lines.append(f"  {'rate of the code, at most':<28} {m['code_rate']:.2f} nats per image")
    if d := m.get("disentanglement"):
        lines.append(f"  disentanglement ({d['num_train']:,} points, seed {d['rng_seed']})")
        for key, label in (("beta_vae_eval_accuracy", "BetaVAE score"), ("factor_vae_eval_accuracy", "FactorVAE score"),
                           ("mig", "MIG"), ("sap", "SAP"), ("dci_disentanglement", "DCI disentanglement"),
                           ("dci_completeness", "DCI completeness"), ("dci_informativeness_test", "DCI informativeness")):
            lines.append(f"    {label:<26} {d[key]:.3f}")
            if key == "mig" and d.get("mig_per_factor"):  # evaluations before it have no such key
                lines.append(f"    {'MIG by factor':<26} "
                             + ", ".join(f"{name} {gap:.2f}" for name, gap in d["mig_per_factor"].items()))
    if q := m.get("quality"):
        if "features" in q:
            lines.append(f"  sample quality, {q['images']:,} images per column ({q['features']}); "
                         f"fd_classifier is not FID")
        if fid := q.get("fid"):
            lines.append(f"  FID, {q['images']:,} images per column, weights {fid['file']} "
                         + ("(the standard file)" if fid["standard"] else
                            f"(sha256 {fid['sha256'][:8]}…, NOT the standard file: not comparable with papers)"))
        head = (f"{'fd_classifier':>14}{'precision':>11}{'recall':>8}" if "features" in q else "") \
            + (f"{'FID':>9}" if "fid" in q else "")
        lines.append(f"    {'':<16}{head}")
        for key, label in (("recon", "reconstruction"), ("prior", "N(0, I)"), ("mixture", "mixture of q(z)"),
                           ("interp", "interpolation")):
            row = ""
            if m.get(f"fd_{key}") is not None:
                row += f"{m[f'fd_{key}']:>14.2f}{m[f'precision_{key}']:>11.3f}{m[f'recall_{key}']:>8.3f}"
            if m.get(f"fid_{key}") is not None:
                row += f"{m[f'fid_{key}']:>9.2f}"
            if row:
                lines.append(f"    {label:<16}{row}")
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
    p.add_argument("--disentanglement", default="auto", choices=["auto", "off", "quick", "full"],
                   help="BetaVAE/FactorVAE scores, MIG, SAP, DCI on data with factors (sprites): full = "
                        "disentanglement_lib's sample counts (~35 min on 2 cores), quick = a tenth; auto: quick "
                        "where the data has factors, else off")
    p.add_argument("--quality", default="auto", choices=["auto", "on", "off"],
                   help="sample quality with the shipped classifier's features: fd_classifier, precision and "
                        "recall of reconstructions, N(0, I) samples, samples of a mixture fitted to q(z) and "
                        "interpolation midpoints (min(10,000, images) each); auto: where a classifier exists")
    p.add_argument("--fid-weights", default=None, metavar="PATH",
                   help="a local Inception-v3 FID weights file (pytorch-fid's pt_inception-2015-12-05-6726825d.pth): "
                        "adds FID of the same four columns; never downloaded. Slow on a CPU (about 6 GFLOP an image)")
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
                                iw_samples=args.iw_samples, seed=args.seed, save=False, progress=progress,
                                disentanglement=args.disentanglement, quality=args.quality,
                                fid_weights=args.fid_weights)
        saved = None if args.no_save else save_metrics(args.checkpoint, m)
    except VaeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    if saved and saved.set_aside:
        print(f"{saved.path} was not a readable metrics file; moved it to {saved.set_aside.name}", file=sys.stderr)
    if args.json:
        print(json.dumps(m))
    else:
        print(format_table(m))
        done = f"{m['images']} images in {m['seconds']} s"
        print(f"{done}; saved {saved.path}, {saved.summary(m)}" if saved else done)
    return 0

if __name__ == "__main__":
    sys.exit(main())
