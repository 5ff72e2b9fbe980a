"""Sample quality: how close a model's images are to the data, beside its likelihood.

A likelihood says how well a model explains the test set; it says little about what its
samples look like (Theis et al. 2016, "A note on the evaluation of generative models").
These metrics compare two sets of image *features* (a classifier's penultimate layer, or
Inception's pool layer when a user has its weights): one of real test images, one of
model images (prior samples, mixture samples, reconstructions, interpolation midpoints).

  frechet_distance   Heusel et al. 2017: the Fréchet distance between Gaussians fitted to
                     the two feature sets. With our classifier's features it is fd_classifier,
                     never "FID": FID means Inception-v3 features, and the numbers differ.
  precision_recall   Kynkäänniemi et al. 2019: the share of model images inside the real
                     images' k-NN balls (precision: realism) and of real images inside the
                     model images' balls (recall: coverage), k = 3.
  class_histogram    how a classifier labels the model's images: a model that drops a mode
                     (never draws a 7) shows it here before it shows in any distance.

Sampling from the aggregate posterior instead of the prior (Ghosh et al. 2020, "From
Variational to Deterministic Autoencoders"): fit_latent_mixture fits a 10-component
Gaussian mixture to posterior means (evaluate: of training images), and sample_latent_mixture
draws z from it; a VAE whose q(z) does not fill N(0, I) gives better samples this way.

Every function takes arrays and returns numbers or a dict; none keeps state, and the
random ones take a seed.
"""
from __future__ import annotations

import numpy as np
import torch


def _centred_factor(x: np.ndarray) -> np.ndarray:
    """R with R^T R = (x - mean)^T (x - mean), with at most D rows: the centred rows
    themselves when N <= D, else the triangular factor of their QR decomposition."""
    c = x - x.mean(0)
    return c if len(c) <= c.shape[1] else np.linalg.qr(c, mode="r")


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """||m1 - m2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2) for features (N, D) of each set.

    With S1 = A^T A / (n1 - 1) and S2 = B^T B / (n2 - 1), the eigenvalues of S1 S2 are the
    squared singular values of A B^T / sqrt((n1 - 1)(n2 - 1)), so Tr (S1 S2)^1/2 is the sum
    of those singular values: exact, real, and no matrix square root (scipy.linalg.sqrtm's
    complex round-off, which the reference implementation has to strip). A and B are
    reduced to at most D rows first (their QR factor), so the SVD is at most min(N, D)
    square: 20 Inception features of 2048 dimensions take milliseconds, not the two
    2048 x 2048 eigendecompositions of S1^1/2 S2 S1^1/2. float64 throughout."""
    a, b = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each feature set needs at least 2 rows for a covariance")
    ra, rb = _centred_factor(a), _centred_factor(b)
    c1, c2 = len(a) - 1, len(b) - 1
    tr_sqrt = np.linalg.svd(ra @ rb.T, compute_uv=False).sum() / np.sqrt(c1 * c2)
    mean_term = ((a.mean(0) - b.mean(0)) ** 2).sum()
    return float(max(mean_term + (ra ** 2).sum() / c1 + (rb ** 2).sum() / c2 - 2 * tr_sqrt, 0.0))


def _kth_neighbour_radii(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Each row's distance to its k-th nearest other row (the row itself excluded)."""
    radii = torch.empty(len(x), dtype=x.dtype)
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i:i + chunk], x)
        radii[i:i + chunk] = d.kthvalue(k + 1, dim=1).values  # the 1st is the row itself (0)
    return radii


def _inside_any_ball(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int) -> torch.Tensor:
    inside = torch.empty(len(points), dtype=torch.bool)
    for i in range(0, len(points), chunk):
        inside[i:i + chunk] = (torch.cdist(points[i:i + chunk], centres) <= radii[None]).any(1)
    return inside


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3, chunk: int = 1024) -> dict:
    """Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
    Generative Models": the real manifold is the union of balls around each real feature
    reaching its k-th nearest real neighbour, and likewise for the model's.

    precision: share of model features inside the real manifold (are samples realistic?)
    recall:    share of real features inside the model's manifold (is the data covered?)
    Their protocol uses k = 3 and equal set sizes (the paper's 50,000 each; ours 10,000)."""
    a = torch.as_tensor(np.asarray(real, np.float32))
    b = torch.as_tensor(np.asarray(fake, np.float32))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D, got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(len(a), len(b)) <= k:
        raise ValueError(f"each set needs more than k = {k} rows")
    ra, rb = _kth_neighbour_radii(a, k, chunk), _kth_neighbour_radii(b, k, chunk)
    return {"precision": float(_inside_any_ball(b, a, ra, chunk).float().mean()),
            "recall": float(_inside_any_ball(a, b, rb, chunk).float().mean()),
            "k": k, "real": len(a), "fake": len(b)}


def class_histogram(logits: np.ndarray, num_classes: int | None = None) -> dict:
    """A classifier's labels for model images: the count per class, the share of the most and
    least drawn class, and the classes never drawn (a dropped mode)."""
    logits = np.asarray(logits)
    n = num_classes or logits.shape[1]
    counts = np.bincount(logits.argmax(1), minlength=n)[:n]
    share = counts / max(counts.sum(), 1)
    return {"counts": counts.tolist(), "max_share": float(share.max()), "min_share": float(share.min()),
            "missing": [int(c) for c in np.flatnonzero(counts == 0)]}


def fit_latent_mixture(mu: np.ndarray, components: int = 10, seed: int = 0):
    """A Gaussian mixture (full covariances) fitted to posterior means: the aggregate
    posterior q(z) that Ghosh et al. sample from instead of the prior."""
    from sklearn.mixture import GaussianMixture
    mu = np.asarray(mu, np.float64)
    if len(mu) < components:
        raise ValueError(f"{components} components need at least {components} latents, got {len(mu)}")
    # reg_covar keeps a collapsed (constant) dimension from making a covariance singular
    return GaussianMixture(components, covariance_type="full", reg_covar=1e-4, random_state=seed).fit(mu)


def sample_latent_mixture(mixture, n: int, seed: int = 0) -> np.ndarray:
    """n draws of z from a fitted mixture (float32, in a seeded, shuffled order)."""
    rng = np.random.default_rng(seed)
    comp = rng.choice(len(mixture.weights_), size=n, p=mixture.weights_)
    z = np.empty((n, mixture.means_.shape[1]))
    for c in np.unique(comp):
        rows = np.flatnonzero(comp == c)
        z[rows] = rng.multivariate_normal(mixture.means_[c], mixture.covariances_[c], size=len(rows))
    return z.astype(np.float32)


# ---------------------------------------------------------------- a checkpoint's four columns

QUALITY_SAMPLES = 10_000  # model images per column (and at most this many real images)
COLUMNS = ("recon", "prior", "mixture", "interp")
QUALITY_KEYS = tuple(f"{what}_{col}" for col in COLUMNS for what in ("fd", "precision", "recall"))
FID_KEYS = tuple(f"fid_{col}" for col in COLUMNS)  # only with --fid-weights: Inception features


@torch.no_grad()
def _images_of(model, z: np.ndarray, batch: int = 1000) -> torch.Tensor:
    """The decoder's pixel means (N, C, H, W) in [0, 1] for z (N, D): what evaluate scores."""
    z_t = torch.as_tensor(np.asarray(z, np.float32))
    return torch.cat([model.pixels(model.decode(z_t[i:i + batch]).float()) for i in range(0, len(z_t), batch)])


def quality_classifier(ckpt):
    """(classifier, its config) for the checkpoint's dataset at the model's image shape, or None."""
    from vae_core.classifier import classifier_folder, load_classifier
    folder = classifier_folder(ckpt.dataset)
    if folder is None:
        return None
    clf, config = load_classifier(folder)
    m = config["model"]
    if (m["channels"], m["image_size"], m["image_size"]) != tuple(ckpt.model_config.image_shape):
        return None
    return clf, config


def sample_quality(ckpt, real_u8: torch.Tensor, fit_u8: torch.Tensor | None = None, seed: int = 0,
                   n: int = QUALITY_SAMPLES, classifier=None, inception=None) -> dict:
    """The RAE paper's four columns against the real images real_u8 (N, C, H, W):
    reconstructions of them, N(0, I) samples, samples of a 10-component mixture fitted to the
    posterior means of fit_u8 (training images; the real images when None), and midpoints of
    random pairs of them. m = min(n, N) model images per column.

    classifier: quality_classifier(ckpt) (None: no classifier scores); inception: (network,
    description) from inception.load_fid_inception (None: no FID). At least one is given.
    Returns flat keys for the metrics table, fd_* / precision_* / recall_* from the classifier
    and fid_* from Inception, and "quality": the protocol and each column's class shares."""
    from vae_core.latents import encode_images
    if classifier is None and inception is None:
        raise ValueError("sample_quality needs a classifier, Inception weights or both")
    model = ckpt.model
    real_u8 = real_u8[:n]
    m = len(real_u8)
    if m < 4:
        raise ValueError(f"sample quality needs at least 4 images, got {m}")
    mu, _ = encode_images(model, real_u8)
    fit_mu = mu if fit_u8 is None else encode_images(model, fit_u8)[0]
    rng = np.random.default_rng(seed)
    pairs = rng.permutation(m), rng.permutation(m)
    columns = {"recon": mu, "interp": (mu[pairs[0]] + mu[pairs[1]]) / 2,
               "mixture": sample_latent_mixture(fit_latent_mixture(fit_mu, 10, seed), m, seed)}
    if model.discrete is None:  # a discrete model's prior is over codes, not N(0, I)
        columns["prior"] = rng.standard_normal((m, model.latent_dim)).astype(np.float32)
    out = {}
    info = {"images": m, "mixture_fit": "training images" if fit_u8 is not None else "the evaluated images",
            "mixture_fit_images": int(len(fit_mu))}
    scorers = []
    if classifier is not None:
        from vae_core.classifier import classify
        clf, config = classifier
        real_f = classify(clf, real_u8)[0].numpy()
        info.update(features=f"classifiers/{config['dataset']} penultimate layer (128), test accuracy "
                             f"{config['test_accuracy']:.2%}", classes={})

        def by_classifier(name, images):
            feats, logits = classify(clf, images)
            out[f"fd_{name}"] = frechet_distance(real_f, feats.numpy())
            pr = precision_recall(real_f, feats.numpy(), k=3)
            out[f"precision_{name}"], out[f"recall_{name}"] = pr["precision"], pr["recall"]
            info["classes"][name] = class_histogram(logits.numpy(), len(config["class_names"]))
        scorers.append(by_classifier)
    if inception is not None:
        from vae_core.inception import inception_features
        net, about = inception
        real_i = inception_features(net, real_u8).numpy()
        info["fid"] = {**about, "features": "Inception-v3 pool3 (2048), images resized to 299x299"}

        def by_inception(name, images):
            out[f"fid_{name}"] = frechet_distance(real_i, inception_features(net, images).numpy())
        scorers.append(by_inception)
    for name, z in columns.items():
        images = _images_of(model, z)
        for score in scorers:
            score(name, images)
    out["quality"] = info
    return out
