"""vae_core.evaluate on closed-form cases and on models trained here on real MNIST."""
import json
import math

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from vae_core import VaeError
from vae_core.checkpoint import checkpoint_hash, load_checkpoint
from vae_core.evaluate import (METRIC_KEYS, bernoulli_log_lik, collapsed, evaluate_checkpoint, evaluate_model,
                               iwae_log_likelihood, latent_use, main, mutual_information, read_metrics)
from vae_core.train import TrainConfig, train


# ---- a linear-Gaussian model: log p(x) is known exactly --------------------------------
# p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I)  =>  p(x) = N(b, W W^T + s^2 I),
# posterior q*(z|x) = N(A W^T (x - b) / s^2, A) with A = (I + W^T W / s^2)^-1.

def linear_gaussian(seed=0, d=2, D=6, s=0.5, n=20):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, d, generator=g, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) @ W.T + b + s * torch.randn(n, D, generator=g, dtype=torch.float64)
    cov = W @ W.T + s ** 2 * torch.eye(D, dtype=torch.float64)
    exact = torch.distributions.MultivariateNormal(b, cov).log_prob(x)
    A = torch.linalg.inv(torch.eye(d, dtype=torch.float64) + W.T @ W / s ** 2)
    post_mu = (x - b) @ W @ A.T / s ** 2
    # A is not diagonal; the diagonal proposal below is the usual mean-field q
    post_logvar = torch.log(torch.diagonal(A)).expand(n, d).clone()

    def log_lik(z):  # (S, n, d) -> (S, n)
        mean = z @ W.T + b
        return (-0.5 * (math.log(2 * math.pi * s ** 2) + (x - mean) ** 2 / s ** 2)).sum(-1)

    return exact, post_mu, post_logvar, log_lik


def test_iwae_matches_the_closed_form_marginal_likelihood():
    exact, mu, logvar, log_lik = linear_gaussian()
    g = torch.Generator().manual_seed(1)
    est = iwae_log_likelihood(mu, logvar, log_lik, k=5000, generator=g)
    assert torch.allclose(est, exact, atol=0.02), (est - exact).abs().max()
    # a proposal 1.5 sigma off and twice too wide: K = 5000 closes the gap that K = 1 leaves
    bad_mu, bad_logvar = mu + 1.5 * torch.exp(0.5 * logvar), logvar + math.log(2.0)
    gap1 = (exact - iwae_log_likelihood(bad_mu, bad_logvar, log_lik, k=1, generator=g)).mean()
    gap5000 = (exact - iwae_log_likelihood(bad_mu, bad_logvar, log_lik, k=5000, generator=g)).mean()
    assert gap1 > 1.0 and -0.02 < gap5000 < 0.05, (gap1, gap5000)


def test_iwae_in_chunks_of_one_sample_agrees_with_one_big_batch():
    exact, mu, logvar, log_lik = linear_gaussian(n=7)
    a = iwae_log_likelihood(mu, logvar, log_lik, k=300, generator=torch.Generator().manual_seed(3), max_batch=10_000)
    b = iwae_log_likelihood(mu, logvar, log_lik, k=300, generator=torch.Generator().manual_seed(3), max_batch=7)
    assert torch.allclose(a, exact, atol=0.03) and torch.allclose(b, exact, atol=0.03)


def test_mutual_information_is_zero_without_information_and_large_with_it():
    g = torch.Generator().manual_seed(0)
    n, d = 1000, 4
    same = torch.zeros(n, d)
    assert abs(mutual_information(same, torch.zeros(n, d), g)) < 1e-6  # every q(z|x) is the prior
    spread = torch.randn(n, d, generator=g) * 3
    mi = mutual_information(spread, torch.full((n, d), math.log(0.01)), g)
    assert 6.0 < mi <= math.log(n) + 1e-6  # capped by log N, as the estimator must be


# ---- real models on real MNIST -----------------------------------------------------------

@pytest.fixture(scope="module")
def test_images(data_root):
    from vae_core.data import load_dataset
    return load_dataset("mnist", "test", data_root).images[:300]


@pytest.mark.parametrize("name", ["mnist-z2", "mnist-z16"])
def test_shipped_models_nll_below_neg_elbo_and_tightening_with_k(name, test_images):
    model = load_checkpoint(REPO / "checkpoints" / name).model
    nll = {k: evaluate_model(model, test_images[:150], iw_samples=k, seed=0)["nll"] for k in (1, 10, 100)}
    m = evaluate_model(model, test_images, iw_samples=50)
    assert set(METRIC_KEYS) <= set(m)
    assert m["nll"] <= m["neg_elbo"]
    assert m["neg_elbo"] == pytest.approx(m["recon"] + m["kl"])
    # the bound does not get worse with more samples (beyond Monte Carlo noise)
    assert nll[10] <= nll[1] + 0.3 and nll[100] <= nll[10] + 0.3, nll
    assert nll[100] < nll[1] - 0.5, nll  # and it does tighten
    assert m["active_units"] == model.latent_dim and m["mutual_info"] > 1.0
    assert m["shuffled_recon"] > 1.5 * m["recon"]  # these latents carry the digit
    assert collapsed(m, model.latent_dim) is None


def test_channels_last_scoring_gives_the_numbers_of_the_model_as_trained(test_images):
    """evaluate scores a channels-last copy on the CPU (3x the decodes per second); the same draws
    must give the same log-likelihoods as the weights in their trained layout."""
    from vae_core.data import to_float
    from vae_core.device import cpu_fast_layout
    plain = load_checkpoint(REPO / "checkpoints" / "mnist-bin-z50").model.eval()
    last = cpu_fast_layout(plain, torch.device("cpu"), keep_original=True)
    convs = [p for p in last.parameters() if p.dim() == 4]
    assert last is not plain and convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    x = to_float(test_images[:20], "cpu").round()
    out = []
    with torch.no_grad():
        for model in (plain, last):
            mu, logvar = model.encode(x)
            out.append(iwae_log_likelihood(mu, logvar, bernoulli_log_lik(model, x), 200,
                                           generator=torch.Generator().manual_seed(3)))
    assert torch.allclose(out[0], out[1], atol=1e-3), (out[0] - out[1]).abs().max()


def _trained(data_root, tmp_path, **kw):
    cfg = TrainConfig(**{**dict(dataset="mnist", data_root=str(data_root), latent_dim=8, epochs=3, limit=6000,
                                batch_size=64, test_limit=200, out=str(tmp_path / "run"), seed=0), **kw})
    train(cfg, progress=False)
    return tmp_path / "run"


def test_a_collapsed_model_is_diagnosed(data_root, tmp_path, test_images):
    """beta = 50 for ~280 steps: the posterior collapses onto the prior."""
    folder = _trained(data_root, tmp_path, beta=50.0)
    m = evaluate_model(load_checkpoint(folder).model, test_images, iw_samples=20)
    assert m["active_units"] == 0
    assert m["mutual_info"] < 0.05
    assert abs(m["shuffled_recon"] - m["recon"]) < 0.01 * m["recon"]
    assert m["nll"] <= m["neg_elbo"] + 0.1
    reason = collapsed(m, 8)
    assert "0/8 active units" in reason and "I(x;z)" in reason and "shuffling z" in reason
    assert latent_use(m, 8) == "0/8 active"


def test_using_some_of_the_latent_dims_is_not_collapse():
    """mnist-bin-z50, the best likelihood here, uses 29 of its 50 dims: partial use, not collapse."""
    m = json.loads((REPO / "checkpoints" / "mnist-bin-z50" / "metrics.json").read_text())
    assert m["active_units"] == 29 and m["mutual_info"] > 7
    assert collapsed(m, 50) is None
    assert latent_use(m, 50) == "29/50 active"
    # each sign of a posterior that says ~nothing about x is enough on its own
    assert collapsed({**m, "active_units": 0}, 50) == "0/50 active units"
    assert collapsed({**m, "mutual_info": 0.01}, 50) == "I(x;z) = 0.01 nats"
    assert collapsed({**m, "shuffled_recon": 1.01 * m["recon"]}, 50) == "shuffling z costs 0.6 nats"
    assert collapsed({**m, "active_units": 1, "mutual_info": None}, 50) is None  # I(x;z) not measured (an AE)


def test_cli_writes_metrics_json_and_prints_json(data_root, tmp_path, capsys):
    folder = _trained(data_root, tmp_path, beta=1.0, binarize="dynamic", epochs=1, limit=1000)  # any trained run
    rc = main(["--checkpoint", str(folder), "--data-root", str(data_root), "--limit", "100",
               "--iw-samples", "20", "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(METRIC_KEYS) <= set(printed)
    assert printed["binarized"] is True and printed["images"] == 100 and printed["iw_samples"] == 20
    assert len(printed["kl_per_dim"]) == 8
    assert read_metrics(folder) == printed  # saved beside the checkpoint
    assert read_metrics(folder, checkpoint_hash(folder)) == printed
    assert read_metrics(folder, "0123456789abcdef") is None  # scores of other weights are not this model's
    assert not list(folder.glob(".metrics.json.*"))  # no temporary file left


def test_an_autoencoder_gets_the_metrics_that_apply(data_root, tmp_path, test_images):
    folder = _trained(data_root, tmp_path, model="conv-ae")
    model = load_checkpoint(folder).model
    m = evaluate_model(model, test_images[:100], iw_samples=5)
    # the scoring runs on a channels-last copy; the caller's model (the app's cached one) is untouched
    assert all(p.is_contiguous() for p in model.parameters())
    for key in ("neg_elbo", "kl", "nll", "kl_per_dim", "mutual_info"):
        assert m[key] is None
    assert m["recon"] > 0 and m["shuffled_recon"] > m["recon"] and 0 < m["mse"] < 0.2
    assert np.isfinite(m["twonn_dim"])


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert main(["--checkpoint", str(REPO / "checkpoints" / "mnist-z2"), "--iw-samples", "0", "--no-save"]) == 2


def test_evaluate_checkpoint_refuses_a_tiny_limit():
    from vae_core import VaeError
    with pytest.raises(VaeError, match="at least 3"):
        evaluate_checkpoint(REPO / "checkpoints" / "mnist-z2", limit=1, save=False)


def test_disentanglement_scores_join_the_evaluation_of_a_sprites_model(tmp_path):
    """On data with ground-truth factors evaluate adds the disentanglement metrics with the
    counts used; a run with fewer points is kept beside a fuller one, never over it; data
    without factors refuses with one sentence."""
    import shutil

    from vae_core.evaluate import evaluate_checkpoint, read_all_metrics
    folder = tmp_path / "sprites"
    shutil.copytree(REPO / "checkpoints" / "sprites-z10", folder)
    small = dict(num_train=100, num_eval=50, num_test=100, num_variance_estimate=100, batch_size=4,
                 dci_regressor="random_forest")
    bigger = dict(small, num_train=150)
    for counts in (bigger, small):  # the smaller one second: it must not replace the other
        m = evaluate_checkpoint(folder, limit=40, iw_samples=2, disentanglement=counts)
    d = m["disentanglement"]
    assert m["disentanglement_samples"] == 100 and d["num_train"] == 100
    for key in ("beta_vae_eval_accuracy", "factor_vae_eval_accuracy", "mig", "sap", "dci_disentanglement",
                "dci_completeness", "dci_informativeness_test"):
        assert 0.0 <= d[key] <= 1.0, (key, d[key])
    assert d["dci_informativeness_test"] > 0.18  # above chance (0.12: the mean of 1/3, 1/6, 1/40, 1/32, 1/32)
    from vae_core.evaluate import format_table
    by_factor = next(line for line in format_table(m).splitlines() if "MIG by factor" in line)
    assert all(f"{name} {gap:.2f}" in by_factor for name, gap in d["mig_per_factor"].items())
    assert list(d["mig_per_factor"]) == ["shape", "scale", "orientation", "x", "y"]
    entries = [e for e in read_all_metrics(folder) if e.get("disentanglement")]
    assert [e["disentanglement_samples"] for e in entries] == [150, 100]  # both kept, the fuller one first
    with pytest.raises(VaeError, match="no ground-truth factors"):
        evaluate_checkpoint(REPO / "checkpoints" / "mnist-z2", limit=5, iw_samples=1, save=False,
                            disentanglement="quick")
    assert "disentanglement" not in evaluate_checkpoint(REPO / "checkpoints" / "mnist-z2", limit=5, iw_samples=1,
                                                        save=False, disentanglement="auto")  # off without factors
