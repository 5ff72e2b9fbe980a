"""The models that ship in checkpoints/ load, decode, carry their command and their latent cache."""
import json
import sys

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from vae_core.checkpoint import load_checkpoint
from vae_core.images import decode
from vae_core.latents import knn_accuracy, load_cached_latents

SHIPPED = {"mnist-z2": ("mnist", 2), "mnist-z16": ("mnist", 16), "fashion-z2": ("fashion-mnist", 2),
           "mnist-bin-z50": ("mnist", 50), "sprites-z10": ("sprites", 10), "color-sprites-z10": ("color-sprites", 10),
           "sprites-tcvae-z10": ("sprites", 10), "mnist-fsq": ("mnist", 4)}
FAMILY = {"sprites-tcvae-z10": "beta-tcvae", "mnist-fsq": "fsq"}     # the others are plain VAEs
KIND = {"mnist-fsq": "conv-ae"}                                       # the others are conv-vaes
SHAPES = {"sprites": (1, 64, 64), "color-sprites": (3, 64, 64)}     # the others are 1x28x28
CLASSES = {"sprites": 3, "color-sprites": 3}                          # the shapes; MNIST-likes have 10


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_loads_decodes_and_has_its_cache(name):
    folder = REPO / "checkpoints" / name
    assert (folder / "model.safetensors").stat().st_size <= 8 * 1024 * 1024
    ck = load_checkpoint(folder)
    dataset, dim = SHIPPED[name]
    assert ck.dataset == dataset and ck.model.latent_dim == dim and ck.model_config.kind == KIND.get(name, "conv-vae")
    assert ck.model_config.family == FAMILY.get(name, "vae")
    assert ck.config["command"].startswith("python -m vae_core.train ")
    assert f"--latent-dim {dim}" in ck.config["command"]
    c, h, w = SHAPES.get(dataset, (1, 28, 28))
    assert ck.model_config.image_shape == (c, h, w)
    assert ck.model_config.likelihood == ("gaussian" if c == 3 else "bernoulli")
    imgs = decode(ck.model, np.random.default_rng(0).standard_normal((8, dim)))
    assert imgs.shape == ((8, h, w) if c == 1 else (8, h, w, 3)) and imgs.std() > 10  # prior samples are not blank
    lat = load_cached_latents(ck.hash, "test", REPO / "cache")
    assert lat is not None, "the shipped test-set latent cache is missing or damaged"
    assert lat.mu.shape == (10_000, dim) and lat.labels.shape == (10_000,)
    assert set(np.unique(lat.labels)) == set(range(CLASSES.get(dataset, 10)))
    x = torch.zeros(1, c, h, w)
    assert torch.isfinite(ck.model.encode(x)[0]).all()


def test_mnist_z2_separates_the_digits_with_both_dimensions_active():
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z2")
    lat = load_cached_latents(ck.hash, "test", REPO / "cache")
    acc = knn_accuracy(lat.mu, lat.labels)
    assert acc >= 0.75, acc
    assert abs(acc - ck.config["evaluation"]["knn5_accuracy"]) < 1e-3  # the recorded figure is honest
    assert (lat.mu.var(0) > 0.01).all()  # both dimensions active


def test_shipped_cache_matches_the_model(data_root):
    """The cached means are what the model gives for the real test images."""
    from vae_core.data import load_dataset
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z2")
    lat = load_cached_latents(ck.hash, "test", REPO / "cache")
    x = load_dataset("mnist", "test", data_root).floats()[:100]
    assert np.allclose(ck.model.encode(x)[0].numpy(), lat.mu[:100], atol=1e-4)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_metrics_json_is_consistent(name):
    """Each shipped model carries its vae_core.evaluate result; the recorded numbers hang together."""
    from vae_core.evaluate import METRIC_KEYS, read_metrics
    folder = REPO / "checkpoints" / name
    m = read_metrics(folder)
    assert m is not None and set(METRIC_KEYS) <= set(m)
    assert m["checkpoint"] == load_checkpoint(folder).hash  # scored on these very weights
    assert m["active_units"] <= SHIPPED[name][1]
    if FAMILY.get(name) == "fsq":  # no posterior: no NLL, and the bar for FSQ's codebook
        assert m["nll"] is None and m["neg_elbo"] is None and m["codebook_usage"] >= 0.9
    else:
        assert m["nll"] <= m["neg_elbo"]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_training_log_is_the_models_own(name):
    """metrics.jsonl (Compare's training curves) is the run that made these weights: one line per
    epoch, ending on the last-epoch metrics recorded in config.json."""
    from vae_core.jobs import read_metrics
    ck = load_checkpoint(REPO / "checkpoints" / name)
    log = read_metrics(REPO / "checkpoints" / name)
    assert [r["epoch"] for r in log] == list(range(1, ck.config["training"]["epochs"] + 1))
    assert log[-1]["test_loss"] == ck.config["metrics"]["test_loss"]
    assert log[-1]["kl_per_dim"] == ck.config["metrics"]["kl_per_dim"]


def test_the_likelihood_model_follows_burda_et_al():
    """mnist-bin-z50: trained on dynamically binarized MNIST, scored on the binarized test set with K = 5000."""
    from vae_core.evaluate import read_metrics
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-bin-z50")
    assert ck.config["training"]["binarize"] == "dynamic"
    m = read_metrics(REPO / "checkpoints" / "mnist-bin-z50")
    assert m["binarized"] is True and m["iw_samples"] == 5000 and m["split"] == "test"
    # the whole test set, as in Burda et al.'s Table 1; the issue's goal is <= 84.0 nats
    assert m["images"] == 10_000 and m["nll"] <= m["neg_elbo"] and m["nll"] <= 84.0
    # the README's likelihood table quotes this very run
    assert f"**{m['nll']:.2f}**" in (REPO / "README.md").read_text()


def test_color_sprites_model_keeps_each_sprites_hue():
    """color-sprites-z10 reconstructs a sprite's colour, not only its brightness: with each
    colour's channel mean removed, the reconstructed hue still follows the true one
    (benchmarks/colour_fidelity.py; a sigmoid-mean model scored 0.03 here, grey sprites)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from colour_fidelity import fidelity
    out = fidelity(load_checkpoint(REPO / "checkpoints" / "color-sprites-z10").model.eval(), n=500)
    assert min(out["hue_r"]) > 0.9 and min(out["slope"]) > 0.8, out
    assert out["mean_abs_error"] < 0.05, out


@pytest.mark.parametrize("name", ["sprites-z10", "color-sprites-z10"])
def test_sprites_models_latents_carry_position_scale_and_shape(name):
    """The sprites models learned the factors the issue asks to see. Their cached test means
    predict x, y and scale linearly and separate the shapes; and walking the principal
    directions of those means (what the PCA page's sliders do) moves the decoded sprite
    across, up and down, and grows it. (Per latent dimension the factors are mixed: a
    beta-VAE after 1.4M images has not axis-aligned them; see the README.)"""
    from sklearn.linear_model import LinearRegression

    from vae_core.data import load_dataset
    ck = load_checkpoint(REPO / "checkpoints" / name)
    lat = load_cached_latents(ck.hash, "test", REPO / "cache")
    ds = load_dataset(SHIPPED[name][0], "test", None)
    f = ds.factors.astype(float)
    r2 = {n: LinearRegression().fit(lat.mu, f[:, i]).score(lat.mu, f[:, i]) for i, n in enumerate(ds.factor_names)}
    assert r2["x"] > 0.55 and r2["y"] > 0.55 and r2["scale"] > 0.6, r2
    assert knn_accuracy(lat.mu, f[:, 0].astype(int)) > 0.8  # shape; chance is 1/3

    centre = lat.mu.mean(0)
    _, s, vt = np.linalg.svd(lat.mu - centre, full_matrices=False)
    sd = s / np.sqrt(len(lat.mu))
    moves = []
    for k in range(4):  # the top four principal directions, -2 sd .. +2 sd
        z = (centre + np.linspace(-2, 2, 5)[:, None] * sd[k] * vt[k]).astype(np.float32)
        imgs = decode(ck.model, z).astype(float) / 255
        ink = imgs if imgs.ndim == 3 else imgs.max(-1)  # a colour sprite: its brightest channel
        mass = ink.sum((1, 2))
        seen = mass > 5  # a sprite drawn (its centre is undefined on a blank frame)
        cx = (ink.sum(1) * np.arange(64)).sum(1)[seen] / mass[seen]
        cy = (ink.sum(2) * np.arange(64)).sum(1)[seen] / mass[seen]
        moves.append((np.ptp(cx), np.ptp(cy), mass.max() / max(mass.min(), 1.0)))
    moves = np.array(moves)
    assert moves[:, 0].max() > 15 and moves[:, 1].max() > 15, moves  # across and up/down by a quarter image
    assert moves[:, 2].max() > 3, moves  # the ink grows threefold: scale


def test_train_page_presets_are_valid_and_the_sprites_ones_are_the_shipped_recipes():
    """Every preset of the Train page passes the trainer's own validation, and the sprites
    presets train exactly what checkpoints/ ships (same flags as its config.json)."""
    from vae_core.jobs import PRESETS, settings_to_flags
    from vae_core.train import config_from_args
    for name, preset in PRESETS.items():
        config_from_args(settings_to_flags(preset)).validate()
    for preset_name, model in (("sprites β-VAE z=10", "sprites-z10"), ("color-sprites σ-VAE z=10", "color-sprites-z10"),
                               ("sprites β-TCVAE z=10", "sprites-tcvae-z10"), ("MNIST FSQ 8,5,5,5", "mnist-fsq")):
        trained = load_checkpoint(REPO / "checkpoints" / model).config["training"]
        preset = config_from_args(settings_to_flags(PRESETS[preset_name])).to_dict()
        differ = {k: (preset[k], trained[k]) for k in preset if k not in ("out", "data_root") and preset[k] != trained[k]}
        assert not differ, differ
