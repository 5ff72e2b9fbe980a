"""AppTest of the Compare page: metrics, badges, reconstructions, the same z, curves, sweeps."""
from tests.conftest import REPO
from tests.test_app import app, no_errors


def test_compare_page_metrics_badges_reconstructions_same_z_curves_and_sweeps(tmp_path, monkeypatch, data_root):
    import shutil
    from vae_core.evaluate import evaluate_checkpoint
    from vae_core.sweep import Cell, run_sweep
    from vae_core.train import TrainConfig, train
    runs = tmp_path / "runs"
    for name in ("copy-z2", "other-z2"):  # two 2-D models (copies, so nothing is written under checkpoints/)
        shutil.copytree(REPO / "checkpoints" / "mnist-z2", runs / name)
        (runs / name / "metrics.json").unlink()  # the shipped evaluation; these get their own
    evaluate_checkpoint(runs / "other-z2", data_root=data_root, limit=100, iw_samples=10)
    # a posterior-collapsed model: beta = 50 for ~280 steps on real MNIST
    train(TrainConfig(dataset="mnist", data_root=str(data_root), latent_dim=8, epochs=3, limit=6000, batch_size=64,
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
    assert table["active units"].iloc[2] == "0" and "0/8 active units" in table["collapsed"].iloc[2]
    assert any("collapsed" in m.value for m in at.markdown)  # the badge
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
    assert len(at.dataframe[1].value) == 3  # the sweep's cells
