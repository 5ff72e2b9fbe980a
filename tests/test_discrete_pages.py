"""The explorer for discrete latents (fsq, vq-vae): every page with tiny trained models (AppTest),
FSQ's sliders step through levels and its grid enumerates level pairs, VQ-VAE's code pickers set
z to codebook vectors, the codebook's usage is shown, Traverse walks levels and codes."""
import json

import numpy as np
import pytest
import torch

from tests.test_app import app, data_pixels, explorer_data, no_errors, read_points
from vae_core.checkpoint import load_checkpoint
from vae_core.images import decode
from vae_core.train import TrainConfig, train

PAGES = ("pages/explore.py", "pages/grid.py", "pages/interpolate.py", "pages/pca.py", "pages/traverse.py",
         "pages/compare.py")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("discrete-runs")
    common = dict(dataset="digits", epochs=2, batch_size=64, hidden=32, conv_channels="8,16", device="cpu",
                  precision="fp32", test_limit=128)
    train(TrainConfig(model="fsq", latent_dim=2, family_params={"fsq_levels": "8,5"}, out=str(root / "fsq"),
                      **common), progress=False)
    train(TrainConfig(model="vq-vae", latent_dim=4, family_params={"codebook_size": 16, "code_dim": 2},
                      out=str(root / "vq"), **common), progress=False)
    return root


@pytest.fixture()
def env(runs, cache_root, monkeypatch):
    monkeypatch.setenv("VAE_RUNS_DIR", str(runs))
    return runs


def test_every_page_renders_both_discrete_families(env):
    for model in ("runs/fsq", "runs/vq"):
        at = app(model)
        for page in PAGES:
            at.switch_page(page).run()
            no_errors(at)
            if page == "pages/interpolate.py":  # the path runs in z (z_e for VQ); frames change code in steps
                assert any("changes of code along these 12 frames" in c.value or "change of code" in c.value
                           for c in at.caption), [c.value for c in at.caption]


def test_fsq_sliders_step_through_levels_and_every_z_decodes_as_a_grid_point(env):
    ck = load_checkpoint(env / "fsq")
    at = app("runs/fsq", "pages/explore.py")
    data = explorer_data(at)
    assert data["decoder_url"] is None  # the browser does not snap: the server decodes
    assert [(s["lo"], s["hi"], s["step"]) for s in data["sliders"]] == [(-1.0, 0.75, 0.25), (-1.0, 1.0, 0.5)]
    assert any("FSQ code #" in c.value and "of 40" in c.value for c in at.caption)
    # the scatter spreads each grid cell's points over the cell (they would all sit on its point)
    from vae_core.latents import load_cached_latents
    mu = load_cached_latents(load_checkpoint(env / "fsq").hash, "test").mu
    x, y, _ = read_points(data["points_url"])
    off = np.abs(np.stack([x, y], 1) - mu[:, [0, 1]]) / np.array([0.25, 0.5])
    assert off.max() <= 0.3 + 1e-6 and off.mean() > 0.1
    assert any("codes used by the test set" in c.value for c in at.caption)
    for _ in range(3):  # a random code is a grid point, and the picture is its decode
        at.button[0].click().run()
        z = np.asarray(explorer_data(at)["z"], np.float32)
        assert z[0] in ck.model.quantizer.values(0) and z[1] in ck.model.quantizer.values(1)
        assert np.array_equal(data_pixels(explorer_data(at)), decode(ck.model, z))


def test_fsq_grid_enumerates_level_pairs(env):
    at = app("runs/fsq", "pages/grid.py")
    no_errors(at)
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert fig["layout"]["xaxis"]["ticktext"] == ["-1.00", "-0.75", "-0.50", "-0.25", "0.00", "0.25", "0.50", "0.75"]
    assert fig["layout"]["yaxis"]["ticktext"] == ["1.00", "0.50", "0.00", "-0.50", "-1.00"]
    assert any("level pairs" in c.value for c in at.caption)
    assert any("40×" not in b.label and "Download PNG" in b.label for b in at.get("download_button"))


def test_vq_code_pickers_set_z_to_codebook_vectors(env):
    ck = load_checkpoint(env / "vq")
    q = ck.model.quantizer
    at = app("runs/vq", "pages/explore.py")
    pickers = [n for n in at.number_input if n.key and n.key.startswith("vq_code_")]
    assert len(pickers) == 2 and all(p.max == 15 for p in pickers)
    z = np.asarray(explorer_data(at)["z"], np.float32)
    assert [p.value for p in pickers] == q.codes(torch.tensor(z[None]))[0].tolist()
    pickers[0].set_value(7).run()
    pickers = [n for n in at.number_input if n.key and n.key.startswith("vq_code_")]
    pickers[1].set_value(3).run()
    no_errors(at)
    z = np.asarray(explorer_data(at)["z"], np.float32)
    want = q.codebook[[7, 3]].reshape(-1).numpy()
    assert np.allclose(z, want, atol=2e-3)
    assert np.array_equal(data_pixels(explorer_data(at)), decode(ck.model, z))
    assert [n.value for n in at.number_input if n.key and n.key.startswith("vq_code_")] == [7, 3]
    assert any("of 16 codes used by the test set" in c.value for c in at.caption)


def test_a_vq_code_beyond_four_is_picked_whole_not_clipped_into_another_code(env):
    """z of a VQ-VAE is the encoder's unbounded output: a codebook vector at 5.5 must set z to 5.5
    (the sliders reach it), where a ±4 clip would snap the picture to a different code."""
    import shutil

    from safetensors.torch import load_file, save_file
    far = env / "vq-far"
    shutil.copytree(env / "vq", far)
    weights = load_file(far / "model.safetensors")
    key = next(k for k in weights if k.endswith("quantizer.codebook"))
    weights[key][9] = torch.tensor([5.5, -5.2])
    save_file(weights, far / "model.safetensors")
    ck = load_checkpoint(far)
    at = app("runs/vq-far", "pages/explore.py")
    data = explorer_data(at)
    reach = np.ceil(2 * float(weights[key].abs().max())) / 2  # trained codebooks already pass 4 (this one ~14)
    assert reach >= 5.5 and data["zmax"] == reach
    assert all((s["lo"], s["hi"]) == (-reach, reach) for s in data["sliders"])
    next(n for n in at.number_input if n.key and n.key.endswith("_0")).set_value(9).run()
    no_errors(at)
    z = np.asarray(explorer_data(at)["z"], np.float32)
    assert np.allclose(z[:2], [5.5, -5.2], atol=2e-3)
    assert [n.value for n in at.number_input if n.key and n.key.startswith("vq_code_")][0] == 9
    assert np.array_equal(data_pixels(explorer_data(at)), decode(ck.model, z))
    shutil.rmtree(far)


def test_traverse_walks_fsq_levels_and_vq_codes(env):
    at = app("runs/fsq", "pages/traverse.py")
    no_errors(at)
    gif = [b for b in at.get("download_button") if "GIF of" in b.label][0]
    assert "frames" in gif.label and ("14 frames" in gif.label or "8 frames" in gif.label)
    assert any("through its levels" in c.value for c in at.caption)
    at = app("runs/vq", "pages/traverse.py")
    no_errors(at)
    assert [o for o in at.selectbox(key="trav_gif_row").options][0].startswith("slot 0 · code ")
    assert any("codes the test set uses most" in c.value for c in at.caption)


def test_evaluate_and_compare_report_codebook_use_and_dead_codes(env):
    from vae_core.compare import latent_badge, metrics_rows
    from vae_core.evaluate import evaluate_checkpoint, format_table
    m = {name: evaluate_checkpoint(env / name, iw_samples=2, save=True) for name in ("fsq", "vq")}
    for name, got in m.items():
        assert 0 < got["codebook_usage"] <= 1 and got["codebook_size"] == (40 if name == "fsq" else 16)
        assert got["dead_codes"] == round((1 - got["codebook_usage"]) * got["codebook_size"])
        assert 1 <= got["perplexity"] <= got["codebook_size"] - got["dead_codes"] + 1e-6
        assert got["neg_elbo"] is None and got["kl"] is None  # no posterior, no KL: never a made-up number
        assert "codebook usage" in format_table(got)
    assert m["vq"]["code_rate"] == pytest.approx(2 * np.log(16)) and m["fsq"]["code_rate"] == pytest.approx(np.log(40))
    rows = metrics_rows({"fsq": (2, m["fsq"]), "vq": (4, m["vq"])})
    assert rows[0]["codebook use"] == f"{m['fsq']['codebook_usage']:.0%}" and "code perplexity" in rows[1]
    plain = metrics_rows({"a": (2, {"recon": 1.0})})
    assert "codebook use" not in plain[0]  # the columns come only with a discrete model
    healthy = {"recon": 100.0, "shuffled_recon": 150.0, "active_units": 4, "codebook_size": 16}
    text, colour = latent_badge({**healthy, "dead_codes": 5, "codebook_usage": 11 / 16}, 4)
    assert text.startswith("dead codes — 5 of 16") and colour == "orange"
    assert latent_badge({**healthy, "dead_codes": 0, "codebook_usage": 1.0}, 4) == ("every one of 16 codes used", "green")
    # collapse outranks dead codes: a code the decoder ignores is the worse news
    assert latent_badge({**healthy, "shuffled_recon": 100.5, "dead_codes": 5, "codebook_usage": 0.7}, 4)[1] == "red"
    at = app("runs/vq", "pages/compare.py")
    at.multiselect(key="compare_models").set_value(["runs/fsq", "runs/vq"]).run()
    no_errors(at)
    df = at.dataframe[0].value
    assert "codebook use" in df.columns and "code perplexity" in df.columns


@pytest.mark.parametrize("family", ["beta-tcvae", "factor-vae", "delta-vae"])
def test_gaussian_family_checkpoints_open_on_the_pages_and_name_their_family(family, tmp_path, cache_root,
                                                                             monkeypatch):
    """A family's checkpoint is a conv-vae with model.family set (FactorVAE's also has its
    discriminator beside it): the pages explore it like any VAE, and the picker names the family."""
    from vae_core.checkpoint import save_checkpoint
    from vae_core.families import make_discriminator, resolve_params
    from vae_core.models import ModelConfig, build_model
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path))
    torch.manual_seed(0)
    cfg = ModelConfig(latent_dim=3, hidden=16, channels=(8, 8), family=family,
                      delta=0.5 if family == "delta-vae" else None)
    save_checkpoint(tmp_path / family, build_model(cfg), dataset={"name": "digits"})
    if family == "factor-vae":
        make_discriminator(3, resolve_params(family, {"disc_hidden": 8, "disc_layers": 1}), "cpu").save(tmp_path / family)
    at = app(f"runs/{family}")
    assert any(f"· {family} · z=3" in c.value.replace("\\", "") for c in at.sidebar.caption)
    for page in (PAGES if family == "beta-tcvae" else ("pages/explore.py", "pages/traverse.py")):
        no_errors(app(f"runs/{family}", page))
