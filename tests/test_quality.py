"""Sample-quality metrics (vae_core/quality.py) on inputs whose answers are known, the shipped
classifiers whose features they compare, and both together on a shipped VAE."""
import shutil

import numpy as np
import pytest
import scipy.linalg

from tests.conftest import REPO
from vae_core.data import to_float
from vae_core.quality import (class_histogram, fit_latent_mixture, frechet_distance, precision_recall,
                              sample_latent_mixture)


def _reference_fd(a, b):
    """The reference implementation's formula (pytorch-fid): scipy's sqrtm, imaginary round-off dropped."""
    m1, m2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)


def test_frechet_distance_is_zero_for_one_set_and_matches_the_closed_form_and_the_reference():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 8))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # N(0, I) against N(m, 4 I) in D = 8: |m|^2 + D (1 + 4 - 2 * 2) = |m|^2 + 8, up to sampling error
    m = np.full(8, 0.5)
    b = m + 2 * rng.normal(size=(4000, 8))
    assert frechet_distance(a, b) == pytest.approx(8 * 0.25 + 8, rel=0.05)
    # larger shifts give larger distances, and the result is pytorch-fid's formula
    near, far = a + 0.1, a + 1.0
    assert frechet_distance(a, near) < frechet_distance(a, far)
    correlated = a @ rng.normal(size=(8, 8))
    assert frechet_distance(a, correlated) == pytest.approx(_reference_fd(a, correlated), rel=1e-6)
    with pytest.raises(ValueError):
        frechet_distance(a, a[:, :4])
    # fewer rows than dimensions (20 sample images against 2048 Inception features): rank-
    # deficient covariances, where the distance comes from the small Gram form
    few, other = rng.normal(size=(20, 256)), 0.2 + 0.3 * rng.normal(size=(30, 256)) @ rng.normal(size=(256, 256))
    assert frechet_distance(few, other) == pytest.approx(_reference_fd(few, other), rel=1e-6)
    assert frechet_distance(few, few) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(few, other[:20]) == pytest.approx(_reference_fd(few, other[:20]), rel=1e-6)


def test_precision_and_recall_on_known_toy_distributions():
    rng = np.random.default_rng(1)
    modes = np.array([[-6.0, 0.0], [6.0, 0.0]])
    real = modes[rng.integers(0, 2, 2000)] + rng.normal(size=(2000, 2))
    same = modes[rng.integers(0, 2, 2000)] + rng.normal(size=(2000, 2))
    one_mode = modes[0] + rng.normal(size=(2000, 2))        # realistic, but half the data is never drawn
    elsewhere = np.array([0.0, 30.0]) + rng.normal(size=(2000, 2))
    pr = precision_recall(real, same)
    assert pr["precision"] > 0.9 and pr["recall"] > 0.9 and pr["k"] == 3
    pr = precision_recall(real, one_mode)
    assert pr["precision"] > 0.9 and 0.4 < pr["recall"] < 0.6
    pr = precision_recall(real, elsewhere)
    assert pr["precision"] == 0.0 and pr["recall"] == 0.0
    # chunking changes nothing
    assert precision_recall(real, one_mode, chunk=97) == precision_recall(real, one_mode)


def test_class_histogram_names_a_dropped_mode():
    logits = np.eye(10)[[0, 1, 1, 2, 3, 4, 5, 6, 8, 9, 9, 9]]
    h = class_histogram(logits)
    assert h["counts"] == [1, 2, 1, 1, 1, 1, 1, 0, 1, 3] and h["missing"] == [7]
    assert h["max_share"] == pytest.approx(3 / 12) and h["min_share"] == 0.0


def test_a_mixture_fitted_to_the_latents_samples_where_they_are_and_is_seeded():
    rng = np.random.default_rng(2)
    centres = rng.normal(scale=5, size=(10, 3))
    mu = centres[rng.integers(0, 10, 5000)] + 0.1 * rng.normal(size=(5000, 3))
    mix = fit_latent_mixture(mu, components=10, seed=0)
    z = sample_latent_mixture(mix, 2000, seed=3)
    assert z.shape == (2000, 3) and z.dtype == np.float32
    # every draw lies near one of the clusters (N(0, I) draws mostly would not)
    nearest = np.linalg.norm(z[:, None] - centres[None], axis=2).min(1)
    assert np.quantile(nearest, 0.99) < 0.6
    prior = rng.normal(size=(2000, 3))
    assert np.median(np.linalg.norm(prior[:, None] - centres[None], axis=2).min(1)) > 1.0
    assert np.array_equal(sample_latent_mixture(mix, 2000, seed=3), z)
    with pytest.raises(ValueError):
        fit_latent_mixture(mu[:5], components=10)


# ---------------------------------------------------------------- the shipped classifiers

def test_the_shipped_mnist_classifier_scores_99_percent_and_loads_without_pickle(mnist_test):
    from vae_core.classifier import FEATURES, classifier_folder, classify, load_classifier
    folder = classifier_folder("mnist")
    assert folder is not None and classifier_folder("no-such-dataset") is None
    model, config = load_classifier(folder)
    feats, logits = classify(model, mnist_test.images)
    accuracy = (logits.argmax(1) == mnist_test.labels).float().mean().item()
    assert accuracy >= 0.99 and abs(accuracy - config["test_accuracy"]) < 1e-3
    assert feats.shape == (10_000, FEATURES) and (feats >= 0).all()  # after the ReLU


@pytest.mark.parametrize("dataset", ["sprites", "color-sprites"])
def test_the_shipped_shape_classifiers_score_what_their_config_says(dataset):
    """The sprites shape classifiers (64x64, first conv at stride 2): at least 97 % on the
    generated test split, the figure their config.json records, and a small file."""
    from vae_core.classifier import classifier_folder, classify, load_classifier
    from vae_core.data import load_dataset
    folder = classifier_folder(dataset)
    model, config = load_classifier(folder)
    assert config["model"]["stride"] == 2 and config["model"]["image_size"] == 64
    assert (folder / "model.safetensors").stat().st_size < 3_000_000
    test = load_dataset(dataset, "test")
    _, logits = classify(model, test.images)
    accuracy = (logits.argmax(1) == test.labels).float().mean().item()
    assert accuracy >= 0.97 and abs(accuracy - config["test_accuracy"]) < 1e-3


def test_a_damaged_classifier_folder_is_a_clear_error(tmp_path):
    from vae_core import VaeError
    from vae_core.classifier import load_classifier
    shutil.copytree(REPO / "classifiers" / "mnist", tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(VaeError, match="cannot be loaded"):
        load_classifier(tmp_path / "c")


def test_real_images_score_better_than_a_models_samples_and_the_mixture_helps_a_2d_vae(mnist_test):
    """End to end on the shipped mnist-z2: test images against another half of the test set
    (the floor), against the model's prior samples and against samples from a mixture
    fitted to its posterior means. The classifier distance orders them."""
    import torch

    from vae_core.checkpoint import load_checkpoint
    from vae_core.classifier import classifier_folder, classify, load_classifier
    clf, _ = load_classifier(classifier_folder("mnist"))
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z2")
    real_a, real_b = mnist_test.images[:1000], mnist_test.images[5000:6000]
    fa, _ = classify(clf, real_a)
    fb, _ = classify(clf, real_b)
    with torch.no_grad():
        mu = ck.model.encode(to_float(mnist_test.images[:3000]))[0].numpy()
        prior = torch.sigmoid(ck.model.decode(torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))))
        z = sample_latent_mixture(fit_latent_mixture(mu, 10, seed=0), 1000, seed=0)
        mixture = torch.sigmoid(ck.model.decode(torch.from_numpy(z)))
    fp, lp = classify(clf, prior)
    fm, _ = classify(clf, mixture)
    floor = frechet_distance(fa.numpy(), fb.numpy())
    from_prior, from_mixture = frechet_distance(fa.numpy(), fp.numpy()), frechet_distance(fa.numpy(), fm.numpy())
    assert floor < from_mixture < from_prior, (floor, from_mixture, from_prior)
    assert precision_recall(fa.numpy(), fb.numpy())["recall"] > precision_recall(fa.numpy(), fp.numpy())["recall"]
    assert sum(class_histogram(lp.numpy())["counts"]) == 1000


def test_evaluate_adds_the_four_columns_with_the_shipped_classifier(data_root, tmp_path, cache_root):
    """vae_core.evaluate on 500 MNIST test images of mnist-z16: reconstructions are nearest the
    data, the mixture fitted to training latents beats N(0, I), every number is in range, and
    the table says the distance is not FID."""
    from vae_core.compare import metrics_rows
    from vae_core.evaluate import evaluate_checkpoint, format_table
    folder = tmp_path / "mnist-z16"
    shutil.copytree(REPO / "checkpoints" / "mnist-z16", folder)
    shipped = (folder / "metrics.json").read_bytes()
    m = evaluate_checkpoint(folder, data_root=data_root, limit=500, iw_samples=2, save=False, quality="on")
    assert m["fd_recon"] < m["fd_mixture"] < m["fd_prior"], m
    for col in ("recon", "prior", "mixture", "interp"):
        assert 0.0 <= m[f"precision_{col}"] <= 1.0 and 0.0 <= m[f"recall_{col}"] <= 1.0
        assert sum(m["quality"]["classes"][col]["counts"]) == 500
    assert m["quality"]["mixture_fit"] == "training images" and m["quality"]["mixture_fit_images"] == 500
    assert "fd_classifier is not FID" in format_table(m)
    row = metrics_rows({"mnist-z16": (16, m)})[0]
    assert row["FD-clf N(0,I)"] == f"{m['fd_prior']:.1f}" and row["FD-clf GMM"] == f"{m['fd_mixture']:.1f}"
    assert (folder / "metrics.json").read_bytes() == shipped  # save=False: nothing written


def _untrained_digits_checkpoint(folder):
    """A checkpoint of scikit-learn's 8x8 digits, for which the project ships no classifier."""
    import torch

    from vae_core.checkpoint import save_checkpoint
    from vae_core.models import ModelConfig, build_model
    torch.manual_seed(0)
    save_checkpoint(folder, build_model(ModelConfig(latent_dim=3, hidden=16, channels=(8, 8))),
                    dataset={"name": "digits"})
    return folder


def test_quality_where_there_is_no_classifier_is_skipped_or_refused(tmp_path):
    from vae_core import VaeError
    from vae_core.evaluate import evaluate_checkpoint
    folder = _untrained_digits_checkpoint(tmp_path / "digits")
    with pytest.raises(VaeError, match="No shipped feature classifier for 'digits'.*mnist at 1x28x28"):
        evaluate_checkpoint(folder, limit=50, iw_samples=1, save=False, quality="on")
    m = evaluate_checkpoint(folder, limit=50, iw_samples=1, save=False, quality="auto")
    assert "fd_prior" not in m and "quality" not in m
    with pytest.raises(VaeError, match="at least 20 images"):
        evaluate_checkpoint(REPO / "checkpoints" / "mnist-z2", limit=10, iw_samples=1, save=False, quality="on")


# ---------------------------------------------------------------- Inception FID (--fid-weights)

def test_the_fid_inception_blocks_are_torchvisions_wiring_with_tensorflows_pools():
    """With torchvision's own pool in their side branch, the FID blocks compute exactly what
    torchvision's blocks compute (same weights): only the pool differs, as the FID graph needs.
    And the TensorFlow pools do change the output (so the patch is not a no-op)."""
    import torch
    import torch.nn.functional as F
    from torchvision.models.inception import InceptionA, InceptionC, InceptionE

    from vae_core.inception import _BlockA, _BlockC, _BlockE
    torchvision_avg = lambda x: F.avg_pool2d(x, 3, 1, 1)  # noqa: E731 - torchvision's side-branch pool
    torch.manual_seed(0)
    for ours, theirs, args, shape in ((_BlockA, InceptionA, (8, 4), (2, 8, 9, 9)), (_BlockC, InceptionC, (16, 8), (2, 16, 9, 9)),
                                      (_BlockE, InceptionE, (16,), (2, 16, 9, 9))):
        reference = theirs(*args).eval()
        mine = ours(*args, pool=torchvision_avg).eval()
        mine.load_state_dict(reference.state_dict(), strict=False)
        x = torch.randn(shape)
        with torch.no_grad():
            assert torch.allclose(mine(x), reference(x), atol=1e-5), ours.__name__
            mine.pool = ours(*args).pool  # the FID graph's pool
            assert not torch.allclose(mine(x), reference(x), atol=1e-3), ours.__name__


def test_evaluate_with_fid_weights_reports_fid_beside_the_classifier_distance(tmp_path):
    """--fid-weights with a randomly initialised network the test saves as a plain state dict:
    the file loads with weights_only=True, FID of every column is there under fid_*, apart from
    the classifier's fd_*, and the table names the weights as not the standard file."""
    import subprocess
    import sys

    import torch

    from vae_core.evaluate import evaluate_checkpoint, format_table
    from vae_core.inception import fid_inception, inception_features
    torch.manual_seed(0)
    net = fid_inception()
    for mod in net.modules():  # init_weights=False leaves the conv weights at PyTorch's default init
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_var.fill_(1.0)
    weights = tmp_path / "pt_inception-random.pth"
    torch.save(net.state_dict(), weights)
    folder = tmp_path / "mnist-z2"
    shutil.copytree(REPO / "checkpoints" / "mnist-z2", folder)
    m = evaluate_checkpoint(folder, limit=20, iw_samples=1, save=False, quality="on", fid_weights=weights)
    for col in ("recon", "prior", "mixture", "interp"):
        assert m[f"fid_{col}"] > 0 and m[f"fd_{col}"] > 0 and m[f"fid_{col}"] != m[f"fd_{col}"]
    fid = m["quality"]["fid"]
    assert fid["file"] == weights.name and not fid["standard"] and len(fid["sha256"]) == 64
    table = format_table(m)
    assert "NOT the standard file" in table and "FID" in table and "fd_classifier is not FID" in table
    from vae_core.compare import metrics_rows
    row = metrics_rows({"mnist-z2": (2, m)})[0]
    assert row["FID N(0,I)"] == f"{m['fid_prior']:.1f}" and row["FD-clf N(0,I)"] == f"{m['fd_prior']:.1f}"
    # FID of a set against itself is 0 with these features too
    from vae_core.data import load_dataset
    feats = inception_features(net, load_dataset("mnist", "test", download=False).images[:8]).numpy()
    assert feats.shape == (8, 2048)
    from vae_core.quality import frechet_distance
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    # the CLI passes the path on: a missing file is an error naming it, before any slow work
    out = subprocess.run([sys.executable, "-m", "vae_core.evaluate", "--checkpoint", str(folder), "--no-save",
                          "--fid-weights", str(tmp_path / "absent.pth")], capture_output=True, text=True, cwd=REPO,
                         timeout=600)
    assert out.returncode == 2 and "No Inception weights file at" in out.stderr and "absent.pth" in out.stderr


def test_fid_weights_that_are_missing_pickled_or_another_networks_are_refused_by_name(tmp_path):
    """Nothing a user points --fid-weights at is unpickled: a file holding a Python object is
    refused by weights_only=True, and a state dict of another network by its keys; each message
    names the file, and the checkpoint's metrics.json is untouched."""
    import torch

    from vae_core import VaeError
    from vae_core.evaluate import evaluate_checkpoint
    folder = tmp_path / "mnist-z2"
    shutil.copytree(REPO / "checkpoints" / "mnist-z2", folder)
    before = (folder / "metrics.json").read_bytes()

    class Payload:
        def __reduce__(self):  # would create a file if it were ever unpickled
            return (open, (str(tmp_path / "PWNED"), "w"))
    pickled = tmp_path / "evil.pth"
    torch.save({"x": Payload()}, pickled, pickle_protocol=2)
    other = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), other)
    with pytest.raises(VaeError, match="No Inception weights file at .*nowhere.pth"):
        evaluate_checkpoint(folder, limit=20, save=False, fid_weights=tmp_path / "nowhere.pth")
    with pytest.raises(VaeError, match="evil.pth is not a tensors-only weights file"):
        evaluate_checkpoint(folder, limit=20, save=False, fid_weights=pickled)
    assert not (tmp_path / "PWNED").exists()
    with pytest.raises(VaeError, match="other.pth does not hold the FID Inception-v3 weights"):
        evaluate_checkpoint(folder, limit=20, save=False, fid_weights=other)
    assert (folder / "metrics.json").read_bytes() == before
