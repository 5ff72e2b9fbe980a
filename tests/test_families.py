"""Model families (vae_core/families.py): each trains and lowers its own objective; each special
term against a direct computation; checkpoints round-trip and old ones read unchanged.

Kept cheap: tiny models (hidden 32, convolutions 8 and 16 wide) on scikit-learn's digits, one
thread (two would spin against the machine's other work), each family trained once per module.
"""
import itertools
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from vae_core import VaeError
from vae_core.checkpoint import list_checkpoints, load_checkpoint, read_config, save_checkpoint
from vae_core.data import load_dataset, to_float
from vae_core.families import (DISCRIMINATOR, FAMILIES, FAMILY_MODELS, Batch, Discriminator, covariance,
                               delta_logvar_ceiling, dip_penalty, gaussian_log_density, kernel_matrix,
                               load_discriminator, log_importance_weights, log_qz_estimates, mmd, permute_dims,
                               resolve_params, save_discriminator, tc_decomposition)
from vae_core.losses import kl_per_dim, optimal_log_sigma
from vae_core.models import ModelConfig, build_model
from vae_core.train import build_parser, config_from_args, main

TINY = ["--dataset", "digits", "--latent-dim", "4", "--hidden", "32", "--conv-channels", "8,16",
        "--batch-size", "32", "--test-limit", "64", "--device", "cpu", "--seed", "0"]
# per family: a discriminator sized for the tiny model (the default is 6 x 256)
EXTRA = {"factor-vae": ["--disc-hidden", "32", "--disc-layers", "2"]}
STEPS_LIMIT, EPOCHS = 1500, 4  # 47 steps an epoch: 188 optimiser steps per family


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cli_in_process(argv):
    """The CLI's own main() (argv parsed by the same parser), without a new interpreter per run."""
    handler = signal.getsignal(signal.SIGTERM)
    try:
        return main(argv)
    finally:
        signal.signal(signal.SIGTERM, handler)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """family -> its run folder, trained once through the CLI for ~190 steps."""
    runs = {}

    def get(name):
        if name not in runs:
            out = tmp_path_factory.mktemp(name) / "run"
            rc = _cli_in_process(["--model", name, *TINY, *EXTRA.get(name, []), "--limit", str(STEPS_LIMIT),
                                  "--epochs", str(EPOCHS), "--out", str(out)])
            assert rc == 0
            runs[name] = out
        return runs[name]
    return get


@pytest.fixture(scope="module")
def held_out():
    return to_float(load_dataset("digits", "test").images[:64], "cpu")


def _objective(model, x, family, hp, dataset_size, aux=None, seed=123):
    """The family's objective on a fixed batch with fixed noise (the same draw before and after)."""
    g = torch.Generator().manual_seed(seed)
    mu, logvar = model.encode(x)
    if model.discrete:  # fsq's encode is on its grid already; vq-vae's codes (no EMA step in eval)
        z = model.quantizer.snap(mu)
    else:
        z = mu + torch.randn(mu.shape, generator=g) * torch.exp(0.5 * logvar)
    torch.manual_seed(seed)  # info-vae's prior draws
    terms = FAMILIES[family].objective(Batch(model.decode(z), x, mu, logvar, z, dataset_size=dataset_size,
                                             aux=aux), hp)
    return {k: float(v) if v.numel() == 1 else v for k, v in terms.items()}


# ---------------------------------------------------------------- every family trains

@pytest.mark.parametrize("family", FAMILY_MODELS)
def test_each_family_trains_through_the_cli_lowers_its_objective_and_round_trips(family, trained, held_out):
    folder = trained(family)
    ck = load_checkpoint(folder)                       # what the app's pages load
    config = json.loads((folder / "config.json").read_text())
    hp = config["training"]["family_params"]
    assert config["model"]["family"] == family == ck.model_config.family
    assert ck.model_config.kind == FAMILIES[family].kind == ("conv-ae" if family in ("fsq", "vq-vae") else "conv-vae")
    assert hp == resolve_params(family, {"disc_hidden": 32, "disc_layers": 2} if family == "factor-vae" else {})
    assert ("delta" in config["model"]) == (family == "delta-vae")

    # its own objective on held-out digits, the same noise before and after ~190 steps
    torch.manual_seed(0)
    untrained = build_model(ck.model_config).eval()
    aux = load_discriminator(folder) if family == "factor-vae" else None
    with torch.no_grad():
        before = _objective(untrained, held_out, family, hp, STEPS_LIMIT, aux)
        after = _objective(ck.model, held_out, family, hp, STEPS_LIMIT, aux)
    assert after["loss"] < before["loss"] - 100, (before["loss"], after["loss"])

    # the loaded model is a plain encoder/decoder
    mu, logvar = ck.model.encode(held_out[:5])
    assert mu.shape == (5, 4) and (logvar is None) == bool(ck.model.discrete)
    assert logvar is None or logvar.shape == (5, 4)
    assert ck.model.decode(torch.zeros(3, 4)).shape == (3, 1, 28, 28)

    # metrics.jsonl keeps its keys and adds the family's own terms, every epoch
    lines = [json.loads(l) for l in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == list(range(1, EPOCHS + 1))
    codebook = ("codebook_usage", "perplexity") if ck.model.discrete else ()
    for key in ("loss", "recon", "kl", "kl_per_dim", "test_loss", "test_kl_per_dim", "active_units",
                *FAMILIES[family].terms, *codebook):
        assert key in lines[-1] and all(math.isfinite(v) for v in np.ravel(lines[-1][key]))
    assert lines[-1]["loss"] < lines[0]["loss"]
    print(f"\n{family}: objective {before['loss']:.1f} -> {after['loss']:.1f}; last epoch "
          + ", ".join(f"{k} {lines[-1][k]:.4g}" for k in ("loss", "kl", *FAMILIES[family].terms)))


def test_the_real_cli_trains_a_factor_vae_and_writes_its_discriminator(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "vae_core.train", "--model", "factor-vae", *TINY, *EXTRA["factor-vae"],
                        "--factor-gamma", "10", "--limit", "64", "--epochs", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
                       cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "done: 1 epochs" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["config.json", DISCRIMINATOR, "grids", "metrics.jsonl",
                                                     "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["model"] == "factor-vae" and config["training"]["family_params"]["factor_gamma"] == 10
    assert config["command"].endswith("--out " + str(out))
    assert list_checkpoints(tmp_path) == [out]
    assert torch.isfinite(load_checkpoint(out).model.decode(torch.randn(2, 4))).all()


@pytest.mark.parametrize("channels,size", [(1, 28), (1, 64), (3, 32), (3, 64)])
def test_every_family_steps_on_every_image_shape(channels, size):
    for family in FAMILY_MODELS:
        torch.manual_seed(0)
        hp = resolve_params(family, {"disc_hidden": 8, "disc_layers": 1} if family == "factor-vae" else {})
        discrete = {"fsq": dict(levels=(5, 4, 3)), "vq-vae": dict(codebook_size=16, code_dim=1)}.get(family, {})
        cfg = ModelConfig(kind=FAMILIES[family].kind, latent_dim=3, hidden=16, channels=(4, 8),
                          image_channels=channels, image_size=size,
                          likelihood="gaussian" if channels == 3 else "bernoulli", family=family,
                          delta=hp.get("delta"), **discrete)
        model = build_model(cfg)
        aux = FAMILIES[family].make_aux(3, hp, "cpu") if FAMILIES[family].make_aux else None
        x = torch.rand(6, channels, size, size)
        logits, mu, logvar, z = model(x)
        log_sigma = optimal_log_sigma(logits, x) if channels == 3 else None
        terms = FAMILIES[family].objective(Batch(logits, x, mu, logvar, z, log_sigma, 100, aux), hp)
        terms["loss"].backward()
        grad = model.encoder.net[0].weight.grad
        assert torch.isfinite(terms["loss"]) and grad is not None and grad.abs().sum() > 0, family


@torch.no_grad()
def test_each_objective_weighs_its_terms_as_its_paper_writes():
    torch.manual_seed(0)
    b, d = 32, 3
    mu, logvar = torch.randn(b, d), torch.randn(b, d) * 0.3 - 1
    z = mu + torch.randn(b, d) * torch.exp(0.5 * logvar)
    x = torch.rand(b, 1, 8, 8)
    batch = Batch(torch.randn(b, 1, 8, 8), x, mu, logvar, z, dataset_size=500)

    def run(family, **given):
        torch.manual_seed(1)  # the same prior draws for info-vae each time
        return FAMILIES[family].objective(batch, resolve_params(family, given))

    base = run("beta-tcvae", tc_alpha=1, tc_beta=1, tc_gamma=1)
    kl_sample = (gaussian_log_density(z, mu, logvar) - gaussian_log_density(z, 0 * z, 0 * z)).sum(1).mean()
    assert float(base["loss"]) == pytest.approx(float(base["recon"] + kl_sample), rel=1e-5)
    t = run("beta-tcvae", tc_alpha=2, tc_beta=7, tc_gamma=0.5)
    want = t["recon"] + 2 * t["mi"] + 7 * t["tc"] + 0.5 * t["dwkl"]
    assert float(t["loss"]) == pytest.approx(float(want), rel=1e-6)
    assert torch.allclose(t["kl"], kl_per_dim(mu, logvar).mean(0).sum())
    for alpha, lam in [(0.0, 1.0), (1.0, 1.0), (0.0, 1000.0), (-1.0, 3.0)]:
        i = run("info-vae", info_alpha=alpha, info_lambda=lam)
        want = i["recon"] + (1 - alpha) * i["kl"] + (alpha + lam - 1) * i["mmd"]
        assert float(i["loss"]) == pytest.approx(float(want), rel=1e-6)
    # DIP: Cov[mu] = I/2 and E[sigma^2] = 1/2: type II sees the identity, type I does not
    half = _whitened(256, 4, scale=0.5).float()
    dip_batch = Batch(torch.zeros(256, 1, 2, 2), torch.zeros(256, 1, 2, 2), half,
                      torch.full((256, 4), math.log(0.5)), half)
    ii = FAMILIES["dip-vae-ii"].objective(dip_batch, resolve_params("dip-vae-ii", {}))
    one = FAMILIES["dip-vae-i"].objective(dip_batch, resolve_params("dip-vae-i", {}))
    assert float(ii["dip"]) < 1e-8 and float(one["dip"]) == pytest.approx(100 * 4 * 0.25, rel=1e-5)
    assert float(one["loss"]) == pytest.approx(float(one["recon"] + one["kl"] + one["dip"]), rel=1e-6)
    for family in ("factor-vae", "delta-vae"):  # the ELBO itself, plus gamma * TC for FactorVAE
        aux = Discriminator(d, 8, 1) if family == "factor-vae" else None
        f = FAMILIES[family].objective(Batch(*[getattr(batch, k) for k in ("logits", "target", "mu", "logvar", "z")],
                                             aux=aux), resolve_params(family, {}))
        extra = 40 * f["tc"] if family == "factor-vae" else 0
        assert float(f["loss"]) == pytest.approx(float(f["recon"] + f["kl"] + extra), rel=1e-6)


# ---------------------------------------------------------------- beta-TCVAE's estimator of log q(z)

def _posteriors(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, d, generator=g, dtype=torch.float64)
    logvar = torch.rand(n, d, generator=g, dtype=torch.float64) - 1.0
    z = mu + torch.randn(n, d, generator=g, dtype=torch.float64) * torch.exp(0.5 * logvar)  # z_n ~ q(z|x_n)
    return z, mu, logvar


def _exact_log_qz(z_point, mu, logvar):
    """log (1/N) sum_n prod_d N(z_d; mu_nd, sigma_nd), with Python floats, one term at a time."""
    total = 0.0
    for n in range(mu.shape[0]):
        p = 1.0
        for d in range(mu.shape[1]):
            var = math.exp(float(logvar[n, d]))
            p *= math.exp(-(float(z_point[d]) - float(mu[n, d])) ** 2 / (2 * var)) / math.sqrt(2 * math.pi * var)
        total += p
    return math.log(total / mu.shape[0])


def test_mss_weights_sum_to_one_and_depend_on_the_dataset_size():
    for b, n in [(2, 2), (2, 50), (3, 5), (64, 1500), (128, 60000)]:
        w = log_importance_weights(b, n, "mss").double().exp()
        assert torch.allclose(w.sum(1), torch.ones(b, dtype=torch.float64), atol=1e-5)
        assert torch.allclose(w.diagonal(), torch.full((b,), 1 / n, dtype=torch.float64))
    assert not torch.allclose(log_importance_weights(8, 100), log_importance_weights(8, 1000))
    assert torch.equal(log_importance_weights(8, 100, "mws"), log_importance_weights(8, 1000, "mws"))
    with pytest.raises(VaeError, match="at least the batch size"):
        log_importance_weights(8, 7)


def test_mss_estimate_of_q_z_is_exact_in_expectation_over_every_batch():
    """N = 5 data points, batches of 3: the point z came from, at each of the 3 positions, with
    every ordered pair of the other 4 around it (all the batches the stratified sampler can
    draw). The mean of the MSS estimate of q(z) over them is q(z) exactly; MWS's is not (it
    over-counts the point z came from). Chen et al.'s code, whose weights land in column 0
    instead of on the diagonal, fails this at positions 1 and 2."""
    n, d, b = 5, 3, 3
    z, mu, logvar = _posteriors(n, d)
    for star in range(n):
        for dims in (list(range(d)), [1]):  # the joint, and one dimension's marginal
            exact = _exact_log_qz(z[star][dims], mu[:, dims], logvar[:, dims])
            for pos in range(b):
                got = {}
                for est in ("mss", "mws"):
                    values = []
                    for others in itertools.permutations([i for i in range(n) if i != star], b - 1):
                        rows = [*others[:pos], star, *others[pos:]]
                        log_qz, _ = log_qz_estimates(z[rows][:, dims], mu[rows][:, dims], logvar[rows][:, dims], n, est)
                        values.append(float(log_qz[pos].exp()))
                    got[est] = sum(values) / len(values)
                assert math.log(got["mss"]) == pytest.approx(exact, abs=1e-5), (star, dims, pos)
                assert abs(math.log(got["mws"]) - exact) > 1e-3


def test_on_a_batch_that_is_the_whole_dataset_mws_is_exact_and_so_is_the_tc():
    n, d = 6, 3
    z, mu, logvar = _posteriors(n, d, seed=1)
    log_qz, log_prod = log_qz_estimates(z, mu, logvar, n, "mws")
    for i in range(n):
        assert float(log_qz[i]) == pytest.approx(_exact_log_qz(z[i], mu, logvar), abs=1e-5)
        marginals = sum(_exact_log_qz(z[i][[k]], mu[:, [k]], logvar[:, [k]]) for k in range(d))
        assert float(log_prod[i]) == pytest.approx(marginals, abs=1e-5)
    parts = tc_decomposition(z, mu, logvar, n, "mws")
    exact_tc = np.mean([_exact_log_qz(z[i], mu, logvar) - sum(_exact_log_qz(z[i][[k]], mu[:, [k]], logvar[:, [k]])
                                                              for k in range(d)) for i in range(n)])
    assert float(parts["tc"]) == pytest.approx(exact_tc, abs=1e-5)
    # the three parts add up to the one-sample KL estimate log q(z|x) - log p(z)
    one_sample_kl = (gaussian_log_density(z, mu, logvar) - gaussian_log_density(z, 0 * z, 0 * z)).sum(1).mean()
    assert float(parts["mi"] + parts["tc"] + parts["dwkl"]) == pytest.approx(float(one_sample_kl), abs=1e-9)


def test_tc_is_zero_for_a_factorial_code_and_log_k_for_a_copied_one():
    """Posteriors on a 4x4 grid of means make q(z) = q(z1) q(z2) exactly: TC 0 at every sample.
    On the diagonal (z2 copies z1), narrow posteriors give TC = log 4 per sample."""
    a = torch.tensor([-3.0, -1.0, 1.0, 3.0], dtype=torch.float64)
    grid = torch.cartesian_prod(a, a)
    logvar = torch.full_like(grid, -1.0)
    z = grid + 0.4 * torch.randn(grid.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    log_qz, log_prod = log_qz_estimates(z, grid, logvar, len(grid), "mws")
    assert (log_qz - log_prod).abs().max() < 1e-9
    diag = torch.stack([a * 10, a * 10], 1)
    tight = torch.full_like(diag, -6.0)
    parts = tc_decomposition(diag + 0.01 * torch.randn_like(diag), diag, tight, 4, "mws")
    assert float(parts["tc"]) == pytest.approx(math.log(4), abs=1e-6)


# ---------------------------------------------------------------- FactorVAE

def test_permute_dims_shuffles_each_dimension_with_its_own_permutation():
    torch.manual_seed(0)
    b, d = 64, 6
    z = torch.arange(b, dtype=torch.float32)[:, None].repeat(1, d) + 1000 * torch.arange(d)  # row i: i everywhere
    p = permute_dims(z)
    for k in range(d):  # each column holds the same values, reordered
        assert torch.equal(p[:, k].sort().values, z[:, k])
        assert not torch.equal(p[:, k], z[:, k])
    rows = (p - 1000 * torch.arange(d)).long()  # which original row each entry came from
    assert len({tuple(rows[:, k].tolist()) for k in range(d)}) == d  # six different permutations
    assert (rows == rows[:, :1]).all(1).sum() < 3  # rows no longer come whole


def test_discriminator_round_trips_through_safetensors_and_learns(tmp_path):
    torch.manual_seed(0)
    disc = Discriminator(latent_dim=3, hidden=16, layers=2, lr=1e-2)
    # codes with dependent dimensions (z2 = z1, z3 = -z1): permuting them is visible
    base = torch.randn(256, 1)
    z = torch.cat([base, base, -base], 1) + 0.05 * torch.randn(256, 3)
    accuracies = [float(disc.update(z)["disc_acc"]) for _ in range(150)]
    with torch.no_grad():
        assert np.mean(accuracies[-20:]) > 0.9 and float(disc.tc(z)) > 1.0
    save_discriminator(tmp_path, disc)
    blob = (tmp_path / DISCRIMINATOR).read_bytes()
    header_len = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + header_len])  # a safetensors header, not a pickle
    assert json.loads(header["__metadata__"]["discriminator"]) == {"latent_dim": 3, "hidden": 16, "layers": 2}
    again = load_discriminator(tmp_path)
    for (k, v), (k2, v2) in zip(disc.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    with torch.no_grad():
        assert torch.equal(again(z), disc(z))
    (tmp_path / DISCRIMINATOR).write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(VaeError, match="not a discriminator"):
        load_discriminator(tmp_path)


def test_factor_vae_run_keeps_its_discriminator_apart_from_the_model(trained):
    folder = trained("factor-vae")
    disc = load_discriminator(folder)
    assert disc.shape == {"latent_dim": 4, "hidden": 32, "layers": 2}
    ck = load_checkpoint(folder)
    plain = build_model(ModelConfig(latent_dim=4, hidden=32, channels=(8, 16)))
    assert set(ck.model.state_dict()) == set(plain.state_dict())  # no discriminator weights in the model
    last = json.loads((folder / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 <= last["disc_acc"] <= 1 and last["disc_loss"] > 0


# ---------------------------------------------------------------- DIP-VAE

def _whitened(b, d, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g, dtype=torch.float64)
    c = covariance(x)
    return (x - x.mean(0)) @ torch.linalg.inv(torch.linalg.cholesky(c)).T * math.sqrt(scale)


def test_dip_penalty_is_zero_at_the_identity_and_the_direct_sum_elsewhere():
    mu = _whitened(256, 4)
    assert torch.allclose(covariance(mu), torch.eye(4, dtype=torch.float64), atol=1e-10)
    assert float(dip_penalty(covariance(mu), 10, 100)["dip"]) < 1e-16
    # type II: Cov[mu] = I/2 plus E[sigma^2] = 1/2 is the identity too
    half = _whitened(256, 4, scale=0.5)
    cov_ii = covariance(half) + torch.diag(torch.full((4,), math.log(0.5), dtype=torch.float64).exp())
    assert float(dip_penalty(cov_ii, 10, 10)["dip"]) < 1e-16
    assert float(dip_penalty(covariance(half), 10, 10)["dip"]) == pytest.approx(10 * 4 * 0.25)
    # elsewhere: lambda_od * sum of squared off-diagonals + lambda_d * sum of (diag - 1)^2, against numpy
    x = torch.randn(100, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x[:, 1] += x[:, 0]
    c = np.cov(x.numpy().T, bias=True)
    want = 3.0 * (c ** 2).sum() - 3.0 * (np.diag(c) ** 2).sum() + 7.0 * ((np.diag(c) - 1) ** 2).sum()
    assert float(dip_penalty(covariance(x), 3.0, 7.0)["dip"]) == pytest.approx(want, rel=1e-10)


# ---------------------------------------------------------------- InfoVAE

@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_mmd_is_zero_for_identical_samples_small_for_one_distribution_large_for_two(kernel):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(400, 4, generator=g), torch.randn(400, 4, generator=g)
    assert abs(float(mmd(x, x.clone(), kernel))) < 1e-6
    same, shifted = float(mmd(x, y, kernel)), float(mmd(x, y + 2.0, kernel))
    assert 0 <= same < 0.01 and shifted > 0.1 and shifted > 20 * same, (same, shifted)
    # against a double loop over the pairs
    a, b = x[:7], y[:5] + 1
    c = 2.0 * 4
    k = (lambda u, v: c / (c + float(((u - v) ** 2).sum()))) if kernel == "imq" else \
        (lambda u, v: math.exp(-float(((u - v) ** 2).sum()) / c))
    direct = (sum(k(u, v) for u in a for v in a) / 49 + sum(k(u, v) for u in b for v in b) / 25
              - 2 * sum(k(u, v) for u in a for v in b) / 35)
    assert float(mmd(a, b, kernel)) == pytest.approx(direct, rel=1e-5)
    assert torch.allclose(kernel_matrix(a, a, kernel).diagonal(), torch.ones(7))


# ---------------------------------------------------------------- delta-VAE

def test_the_delta_ceiling_solves_the_kl_equation():
    for delta in (0.01, 0.1, 1.0, 5.0, 10.0):
        v = delta_logvar_ceiling(delta)
        kl = 0.5 * (math.exp(v) - 1 - v)
        assert delta < kl < delta + 5e-4, (delta, kl)
    for bad in (0, -1, 11, float("nan"), True):
        with pytest.raises(VaeError):
            delta_logvar_ceiling(bad)


def _delta_model(delta, seed=0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(latent_dim=4, hidden=32, channels=(8, 16), family="delta-vae", delta=delta))


@pytest.mark.parametrize("delta", [0.05, 0.5, 3.0])
def test_every_dimensions_kl_stays_over_delta_for_any_input_and_any_weights(delta):
    model = _delta_model(delta)
    x = torch.cat([torch.zeros(8, 1, 28, 28), torch.ones(8, 1, 28, 28), torch.rand(16, 1, 28, 28)])
    head = model.encoder.net[-1]  # its outputs: 4 means, then 4 log variances
    with torch.no_grad():
        for bias in (0.0, 50.0, -50.0):
            head.bias[4:] = bias
            for bf16 in (False, True):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    mu, logvar = model.encode(x)
                assert (kl_per_dim(mu.float(), logvar.float()) >= delta).all(), (bias, bf16)
        # the floor is tight: a posterior at the ceiling with mu = 0 sits just above delta
        head.weight.zero_()
        head.bias.zero_()
        head.bias[4:] = 50.0
        mu, logvar = model.encode(x)
        kl = kl_per_dim(mu, logvar)
        assert (kl >= delta).all() and (kl < delta + 1e-3).all()
    # a conv-vae without the cap goes under delta on the same input
    plain = build_model(ModelConfig(latent_dim=4, hidden=32, channels=(8, 16)))
    with torch.no_grad():
        plain.encoder.net[-1].weight.zero_()
        plain.encoder.net[-1].bias.zero_()
        assert (kl_per_dim(*plain.encode(x)) < delta).all()


def test_the_delta_floor_holds_after_training(trained, held_out):
    folder = trained("delta-vae")
    ck = load_checkpoint(folder)
    delta = ck.model_config.delta
    assert delta == FAMILIES["delta-vae"].defaults()["delta"] == read_config(folder)["model"]["delta"]
    with torch.no_grad():
        for x in (held_out, torch.zeros(16, 1, 28, 28)):
            kl = kl_per_dim(*ck.model.encode(x))
            assert (kl >= delta).all(), float(kl.min())
    lines = [json.loads(l) for l in (folder / "metrics.jsonl").read_text().splitlines()]
    assert min(l["kl_min"] for l in lines) >= delta
    assert min(min(l["test_kl_per_dim"]) for l in lines) >= delta


# ---------------------------------------------------------------- flags, configs, old checkpoints

def test_flags_are_generated_from_the_registry_with_their_defaults(monkeypatch):
    monkeypatch.setenv("COLUMNS", "10000")  # one line per flag: argparse would wrap "dip-vae-i" at its hyphen
    text = " ".join(build_parser().format_help().split())
    for fam in FAMILIES.values():
        for p in fam.params:
            assert p.flag in text
    assert "--tc-beta TC_BETA beta-tcvae: weight of the total correlation (the paper's beta) (default: 6.0)" in text
    assert "(default: 100.0 for dip-vae-i, 10.0 for dip-vae-ii)" in text
    cfg = config_from_args(["--model", "dip-vae-ii", "--dip-lambda-od", "5"])
    assert cfg.family_hparams() == {"dip_lambda_od": 5.0, "dip_lambda_d": 10.0}
    plain = config_from_args([])
    assert plain.family == "vae" and "family_params" not in plain.to_dict()


@pytest.mark.parametrize("args,needle", [
    (["--model", "factor-vae", "--tc-beta", "3"], "--tc-beta belongs to --model beta-tcvae, not to --model factor-vae"),
    (["--dip-lambda-od", "3"], "belongs to --model dip-vae-i or dip-vae-ii, not to --model conv-vae"),
    (["--model", "beta-tcvae", "--beta", "4"], "beta-tcvae is weighted by its own flags (--tc-alpha"),
    (["--model", "info-vae", "--free-bits", "0.5"], "shape the plain VAE objective"),
    (["--model", "info-vae", "--info-alpha", "2"], "KL weight"),
    (["--model", "info-vae", "--info-alpha", "0", "--info-lambda", "0.5"], "MMD weight"),
    (["--model", "delta-vae", "--delta", "0"], "--delta must be a number > 0"),
    (["--model", "delta-vae", "--delta", "11"], "<= 10"),
    (["--model", "factor-vae", "--disc-layers", "0"], "--disc-layers must be a whole number"),
    (["--model", "beta-tcvae", "--tc-beta", "nan"], "--tc-beta must be"),
])
def test_bad_family_flags_are_refused_in_one_sentence(args, needle):
    with pytest.raises(VaeError) as e:
        config_from_args(args).validate()
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_configs_without_a_family_read_and_write_as_before(tmp_path):
    old = {"kind": "conv-vae", "latent_dim": 2, "extra_decoder_layer": False, "batchnorm": False, "hidden": 256,
           "channels": [32, 64], "image_channels": 1, "image_size": 28, "likelihood": "bernoulli"}
    cfg = ModelConfig.from_dict(old)
    assert cfg.family == "vae" and cfg.delta is None and cfg.to_dict() == old
    save_checkpoint(tmp_path / "plain", build_model(cfg))
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["model"] == old
    fam = ModelConfig(latent_dim=2, family="delta-vae", delta=0.5)
    assert ModelConfig.from_dict(json.loads(json.dumps(fam.to_dict()))) == fam
    for bad in ({"family": "gan"}, {"family": "beta-tcvae", "kind": "conv-ae"}, {"delta": 0.5},
                {"family": "delta-vae"}, {"family": "delta-vae", "delta": "a"}, {"family": "delta-vae", "delta": 50},
                {"family": ["x"]}):
        with pytest.raises(VaeError):
            ModelConfig.from_dict({**old, **bad})
    # a version-1 folder cannot name a family
    save_checkpoint(tmp_path / "v1", build_model(ModelConfig(family="info-vae")))
    config = json.loads((tmp_path / "v1" / "config.json").read_text())
    config["format_version"] = 1
    for key in ("image_channels", "image_size", "likelihood"):
        del config["model"][key]
    (tmp_path / "v1" / "config.json").write_text(json.dumps(config))
    with pytest.raises(VaeError, match="damaged"):
        load_checkpoint(tmp_path / "v1")


@pytest.mark.parametrize("folder", sorted((REPO / "checkpoints").iterdir()), ids=lambda p: p.name)
def test_shipped_checkpoints_load_as_their_family_and_would_save_unchanged(folder):
    config = read_config(folder)
    ck = load_checkpoint(folder)
    assert ck.model_config.family == config["model"].get("family", "vae") and ck.model_config.delta is None
    # version 1 wrote no image shape; the rest reads back key for key, and no family key appears
    written = ck.model_config.to_dict()
    assert {k: written[k] for k in config["model"]} == config["model"]
    assert set(written) - set(config["model"]) <= {"image_channels", "image_size", "likelihood"}
