"""The Learn page's 1-D VAE (vae_core.toy) and the page itself (AppTest)."""
import math

import numpy as np
import pytest

from tests.test_app import app, no_errors
from vae_core.toy import ToyConfig, mutual_information, toy_data, train_toy, train_toys


def test_the_data_is_two_seeded_modes():
    x = toy_data(ToyConfig(n=1001, sep=3.0, std=0.5, seed=4))
    assert x.shape == (1001,) and np.array_equal(x, toy_data(ToyConfig(n=1001, sep=3.0, std=0.5, seed=4)))
    assert (x < 0).sum() == 500 and abs(x[x < 0].mean() + 3.0) < 0.1 and abs(x[x > 0].mean() - 3.0) < 0.1
    assert not np.array_equal(x, toy_data(ToyConfig(n=1001, sep=3.0, std=0.5, seed=5)))


def test_mutual_information_estimator_on_known_cases():
    n = 500
    assert mutual_information(np.zeros(n), np.zeros(n)) == pytest.approx(0.0, abs=0.02)  # every q(z|x) the same
    far = mutual_information(np.arange(n) * 10.0, np.full(n, -6.0))  # apart and narrow: z names x
    assert far == pytest.approx(math.log(n), abs=0.01)


def test_beta_4_has_lower_kl_and_information_than_beta_1_and_beta_8_collapses():
    """On the notebook's data (modes at ±2, std 0.5) with σ² = 1: β = 4 keeps far less in z than
    β = 1, and β = 8 (β·σ² past the data variance ≈ 4.25) collapses: KL and I(x;z) ≈ 0 and the
    decoder no longer cares whose z it gets."""
    one, four, eight = (train_toy(ToyConfig(beta=b)).metrics for b in (1.0, 4.0, 8.0))
    assert four["kl"] < 0.5 * one["kl"] and four["mi"] < 0.5 * one["mi"], (one, four)
    assert one["recon_shuffled"] - one["recon"] > 1.0
    assert eight["kl"] < 0.01 and eight["mi"] < 0.02
    assert abs(eight["recon_shuffled"] - eight["recon"]) < 0.02
    assert one["elbo"] > eight["elbo"]  # the β = 1 optimum is the better ELBO


def test_a_batched_sweep_trains_each_beta_as_it_would_alone():
    together = train_toys(ToyConfig(), [1.0, 4.0])
    for got, beta in zip(together, (1.0, 4.0)):
        alone = train_toy(ToyConfig(beta=beta))
        assert got.config.beta == beta
        assert got.metrics["kl"] == pytest.approx(alone.metrics["kl"], abs=1e-4)
        assert np.allclose(got.history["elbo"], alone.history["elbo"], atol=1e-4)


def test_the_learn_page_trains_and_says_when_it_collapsed():
    at = app(page="pages/learn.py")
    no_errors(at)
    metrics = {mt.label: mt.value for mt in at.metric}
    assert float(metrics["KL"]) > 0.3 and not at.warning
    at.slider(key="learn_beta").set_value(8.0).run()
    no_errors(at)
    assert float({mt.label: mt.value for mt in at.metric}["KL"]) < 0.01
    assert any("Collapsed" in w.value for w in at.warning)
    # a larger decoder variance collapses it at β = 1 too (β·σ² = 4 > s² for modes at ±1)
    at.slider(key="learn_beta").set_value(1.0).run()
    at.select_slider(key="learn_dvar").set_value(4.0).run()
    at.slider(key="learn_sep").set_value(1.0).run()
    no_errors(at)
    assert any("Collapsed" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == 5
