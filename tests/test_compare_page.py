"""AppTest of the Compare page: metrics, badges, reconstructions, the same z, curves, sweeps."""
import json
import shutil

from tests.conftest import REPO
from tests.test_app import app, no_errors


def test_compare_page_metrics_badges_reconstructions_same_z_curves_and_sweeps(tmp_path, monkeypatch, data_root):
    from vae_core.evaluate import evaluate_checkpoint
    from vae_core.sweep import Cell, run_sweep
    from vae_core.train import TrainConfig, train
    runs = tmp_path / "runs"
    for name in ("copy-z2", "other-z2"):  # two 2-D models (copies, so nothing is written under checkpoints/)
        shutil.copytree(REPO / "checkpoints" / "mnist-z2", runs / name)
        (runs / name / "metrics.json").unlink()  # the shipped evaluation; these get their own
    evaluate_checkpoint(runs / "other-z2", data_root=data_root, limit=100, iw_samples=10)
    evaluate_checkpoint(runs / "other-z2", data_root=data_root, limit=50, iw_samples=10)  # a second, smaller one
    # a posterior-collapsed model: beta = 50 for ~140 steps on real MNIST
    train(TrainConfig(dataset="mnist", data_root=str(data_root), latent_dim=8, epochs=3, limit=3000, batch_size=64,
                      test_limit=200, beta=50.0, out=str(runs / "collapsed")), progress=False)
    evaluate_checkpoint(runs / "collapsed", data_root=data_root, limit=200, iw_samples=10)
    run_sweep(runs / "sweep", [Cell("conv-vae", 2, 1.0), Cell("conv-vae", 2, 4.0), Cell("linear-ae", 2)],
              {"dataset": "digits", "limit": 300, "epochs": 1, "test_limit": 100}, eval_limit=60, iw_samples=5,
              use_jobs=False, log=lambda *_: None)
    monkeypatch.setenv("VAE_RUNS_DIR", str(runs))
    monkeypatch.setenv("VAE_DATA_ROOT", str(data_root))
    at = app("mnist-z2", "pages/compare.py")
    no_errors(at)
    picked = ["runs/other-z2", "runs/copy-z2", "runs/collapsed"]
    at.multiselect(key="compare_models").set_value(picked).run()
    no_errors(at)
    table = at.dataframe[0].value
    assert list(table["model"]) == picked and table["protocol"].iloc[1] == "not evaluated"
    assert table["protocol"].iloc[0] == "100 test images, K=10"  # the larger of other-z2's two evaluations
    assert table["active units"].iloc[2] == "0" and "0/8 active units" in table["latent use"].iloc[2]
    assert table["latent use"].iloc[0] == "2/2 active"
    # the protocol column is as wide as its longest value needs (it was cut off mid-word)
    widths = json.loads(at.dataframe[0].proto.columns)
    assert widths["protocol"]["width"] >= 8 * max(map(len, table["protocol"]))
    assert any("collapsed" in m.value for m in at.markdown)  # the badge
    # every saved evaluation of a model, the one the table uses marked
    assert at.expander[0].label == "All saved evaluations (3)"
    saved = at.dataframe[1].value
    assert list(saved["protocol"]) == ["100 test images, K=10", "50 test images, K=10", "200 test images, K=10"]
    assert list(saved["used above"]) == ["✓", "", "✓"]
    # the sweep picker names sweeps by short names, never by a server path
    assert at.selectbox(key="compare_sweep").options == ["runs/sweep", "benchmarks/sweep-default"]
    # evaluate the copy from the page: its metrics.json appears and the table fills in
    at.button[0].click().run()
    no_errors(at)
    assert (runs / "copy-z2" / "metrics.json").is_file()
    table = at.dataframe[0].value
    nll, elbo = float(table["NLL (IWAE)"].iloc[1]), float(table["−ELBO"].iloc[1])
    assert 100 < nll <= elbo
    images = at.get("image")
    assert len(images) == 1 + 3 + 2  # test images, 3 reconstructions, the same z for the two 2-D models
    assert len(at.get("plotly_chart")) == 3  # training curves (the collapsed run has a log), two sweep plots
    assert len(at.dataframe[-1].value) == 3  # the sweep's cells


def test_public_mode_shows_no_evaluate_button(tmp_path, monkeypatch):
    """VAE_PUBLIC=1: evaluating writes beside a model and holds the CPU for minutes: a caption instead."""
    shutil.copytree(REPO / "checkpoints" / "mnist-z2", tmp_path / "fresh")
    (tmp_path / "fresh" / "metrics.json").unlink()
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("VAE_PUBLIC", "1")
    at = app("mnist-z2", "pages/compare.py")
    at.multiselect(key="compare_models").set_value(["mnist-z2", "runs/fresh"]).run()
    no_errors(at)
    assert at.dataframe[0].value["protocol"].iloc[1] == "not evaluated"
    assert not [b for b in at.button if "Evaluate" in b.label]
    assert any("evaluation is off in this shared demo" in c.value for c in at.caption)
    assert not (tmp_path / "fresh" / "metrics.json").exists()


def test_badges_keep_red_for_collapse_and_the_plot_names_beta_by_marker_shape(tmp_path):
    from vae_core.compare import evaluations_rows, latent_badge, named_sweeps, text_width
    from vae_core.plots import sweep_rate_distortion_figure
    z50 = json.loads((REPO / "checkpoints" / "mnist-bin-z50" / "metrics.json").read_text())
    assert latent_badge(z50, 50) == ("29/50 active", "blue")  # the best likelihood here: partial use, no warning
    assert latent_badge({**z50, "active_units": 50}, 50) == ("50/50 active", "green")
    assert latent_badge({**z50, "active_units": 0}, 50) == ("collapsed — 0/50 active units", "red")
    assert latent_badge(None, 50) == ("not evaluated", "gray")
    rows = evaluations_rows({"z50": [z50]})
    assert rows[0]["protocol"] == "10,000 test images, binarized, K=5000" and rows[0]["used above"] == "✓"
    assert text_width(["10,000 test images, binarized, K=5000"], "protocol") >= 8 * 37
    # sweeps are named by where they are under each root, not by an absolute path
    for sub in ("sweep", "other"):
        (tmp_path / "runs" / sub).mkdir(parents=True, exist_ok=True)
        (tmp_path / "runs" / sub / "results.json").write_text("[]")
    (tmp_path / "bench" / "sweep-default").mkdir(parents=True)
    (tmp_path / "bench" / "sweep-default" / "results.json").write_text("[]")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "results.json").write_text("[]")
    named = named_sweeps({"runs": tmp_path / "runs", "benchmarks": tmp_path / "bench", "flat": tmp_path / "flat"})
    assert list(named) == ["runs/other", "runs/sweep", "benchmarks/sweep-default", "flat"]
    # rate-distortion: beta by marker shape (keyed in the axis title), no text drawn beside points
    sweep = [{"model": m, "latent_dim": 2, "beta": b, "kl": 5.0 / b, "recon": 150 + b}
             for m in ("conv-vae", "linear-vae") for b in (0.1, 1.0, 4.0)]
    fig = sweep_rate_distortion_figure(sweep)
    assert all(t.mode == "lines+markers" for t in fig.data)  # was lines+markers+text: labels collided
    assert [list(t.marker.symbol) for t in fig.data] == [["diamond", "square", "circle"]] * 2  # sorted by KL
    assert fig.layout.xaxis.title.text == "KL (rate, nats) — ● β=0.1 · ■ β=1 · ◆ β=4"
    assert list(fig.data[0].text) == ["β=4", "β=1", "β=0.1"]  # shown on hover
