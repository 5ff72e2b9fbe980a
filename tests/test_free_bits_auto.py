"""--free-bits auto --target-kl T (vae_core/train.py adapt_free_bits): the floor moves toward the
target rate, and a real training run keeps dimensions alive where a fixed small floor lets them collapse."""
import json

import pytest
import torch

from vae_core import VaeError
from vae_core.jobs import job_summary
from vae_core.train import TrainConfig, adapt_free_bits, config_from_args, train


def test_the_floor_moves_toward_the_target_and_stays_in_its_bounds():
    assert adapt_free_bits(1.0, kl_total=4.0, target=8.0, latent_dim=8) == pytest.approx(2 ** 0.5)  # under: raise
    assert adapt_free_bits(1.0, kl_total=16.0, target=8.0, latent_dim=8) == pytest.approx(2 ** -0.5)  # over: lower
    assert adapt_free_bits(1.0, kl_total=8.0, target=8.0, latent_dim=8) == pytest.approx(1.0)  # on target: keep
    assert adapt_free_bits(0.3, kl_total=1e6, target=8.0, latent_dim=8) == pytest.approx(8 / 32)  # floor T / 4D
    assert adapt_free_bits(5.0, kl_total=0.0, target=8.0, latent_dim=8) == pytest.approx(8.0)  # ceiling T


@pytest.mark.parametrize("args,needle", [
    (["--free-bits", "auto"], "needs --target-kl"),
    (["--target-kl", "5"], "--target-kl needs --free-bits auto"),
    (["--free-bits", "auto", "--target-kl", "-1"], "--target-kl must be"),
    (["--model", "beta-tcvae", "--free-bits", "auto", "--target-kl", "5"], "shape the plain VAE objective"),
])
def test_bad_adaptive_settings_are_refused(args, needle):
    with pytest.raises(VaeError, match=needle):
        config_from_args(args).validate()


def test_adaptive_free_bits_keep_dimensions_alive_where_a_fixed_small_floor_lets_them_collapse(tmp_path):
    """beta = 10 on digits: with a fixed floor of 0.01 nats every dimension collapses (0 active
    units, each KL at the floor); the adaptive floor keeps them active and the total KL near T."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        common = dict(dataset="digits", latent_dim=8, beta=10.0, hidden=32, conv_channels="8,16", batch_size=32,
                      epochs=10, limit=1500, test_limit=256, device="cpu", precision="fp32")
        fixed = train(TrainConfig(free_bits=0.01, out=str(tmp_path / "fixed"), **common), progress=False)
        auto = train(TrainConfig(free_bits="auto", target_kl=8.0, out=str(tmp_path / "auto"), **common),
                     progress=False)
    finally:
        torch.set_num_threads(threads)
    assert fixed["active_units"] == 0 and max(fixed["test_kl_per_dim"]) < 0.05
    assert auto["active_units"] >= 6 and min(auto["test_kl_per_dim"]) > 0.3
    assert 6.0 < sum(auto["test_kl_per_dim"]) < 10.0  # near the target of 8 nats
    log = [json.loads(l) for l in (tmp_path / "auto" / "metrics.jsonl").read_text().splitlines()]
    assert log[0]["free_bits"] == pytest.approx(1.0)  # an even share of the target to start: 8 / 8
    assert all("free_bits" in l for l in log) and "free_bits" not in fixed
    config = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert config["training"]["free_bits"] == "auto" and config["training"]["target_kl"] == 8.0
    summary = job_summary({"args": ["--dataset", "digits", "--free-bits", "auto", "--target-kl", "8"]})
    assert "free bits auto → KL 8" in summary
