"""vae_core.sweep on sklearn's digits: real training, real evaluation, resume."""
import json

from vae_core.sweep import Cell, grid_cells, main, read_results, run_sweep

TINY = {"dataset": "digits", "limit": 300, "epochs": 1, "test_limit": 100}


def test_grid_gives_autoencoders_one_cell_per_latent_dim():
    cells = grid_cells(["conv-vae", "conv-ae"], [2, 16], [0.1, 1.0], [0.0, 0.5], [0.0])
    ids = [c.id for c in cells]
    assert len(ids) == len(set(ids)) == 2 * 2 * 2 + 2
    assert "conv-ae-z2" in ids and "conv-vae-z16-b0.1-fb0.5-wu0" in ids
    args = Cell("linear-vae", 4, 4.0, 0.5, 2.0).train_args({"limit": 10})
    assert "--beta=4" in args and "--free-bits=0.5" in args and "--warmup-epochs=2" in args
    assert "--beta-schedule=linear" in args and "--extra-decoder-layer" not in args


def test_families_sweep_at_their_own_weights_one_cell_per_latent_dim():
    """A family is weighted by its own flags: no --beta/--free-bits in its cells (train.py would
    refuse them), one cell per latent dim, and the args are ones the trainer accepts."""
    from vae_core.train import config_from_args
    cells = grid_cells(["conv-vae", "beta-tcvae", "factor-vae", "fsq"], [4], [0.1, 1.0], [0.0, 0.5], [0.0, 2.0])
    ids = [c.id for c in cells]
    assert ids.count("beta-tcvae-z4") == ids.count("factor-vae-z4") == ids.count("fsq-z4") == 1
    assert len(ids) == 2 * 2 * 2 + 3
    for c in cells:
        args = c.train_args(TINY)
        assert ("--beta=0.1" in args or "--beta=1" in args) == (c.model == "conv-vae")
        config_from_args(args).validate()
    assert main(["--out", "x", "--models", "fsq,gan"]) == 2


def test_a_sweep_writes_every_metric_and_resumes_without_redoing_cells(tmp_path):
    out = tmp_path / "sweep"
    logs = []
    first = [Cell("conv-vae", 2, 1.0), Cell("linear-ae", 2)]
    rows = run_sweep(out, first, TINY, eval_limit=60, iw_samples=5, use_jobs=False, log=logs.append)
    assert [r["cell"] for r in rows] == [c.id for c in first]
    vae, ae = rows
    for key in ("neg_elbo", "nll", "recon", "kl", "active_units", "mutual_info", "mse", "shuffled_recon",
                "twonn_dim", "train_seconds", "peak_memory_mb"):
        assert vae[key] is not None, key
    assert vae["nll"] <= vae["neg_elbo"] and vae["peak_memory_mb"] > 50 and vae["train_seconds"] > 0
    assert ae["nll"] is None and ae["recon"] > 0
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and "shuffled_recon" in csv_lines[0]
    ckpt = out / "cells" / first[0].id / "model.safetensors"
    mtime = ckpt.stat().st_mtime_ns

    logs.clear()
    more = first + [Cell("conv-vae", 2, 4.0)]
    rows = run_sweep(out, more, TINY, eval_limit=60, iw_samples=5, use_jobs=False, log=logs.append)
    assert "2 already done, 1 to run" in logs[0]
    assert [line for line in logs if line.startswith("training")] == [f"training {more[2].id}"]
    assert ckpt.stat().st_mtime_ns == mtime  # the finished cell was not trained again
    assert [r["cell"] for r in read_results(out)] == [c.id for c in more]


def test_the_cli_runs_cells_through_the_job_runner_and_resumes(tmp_path, capsys, cache_root):
    out = tmp_path / "sweep"
    argv = ["--out", str(out), "--models", "conv-vae", "--latent-dims", "2", "--betas", "1", "--free-bits", "0",
            "--dataset", "digits", "--limit", "300", "--epochs", "1", "--eval-limit", "60", "--iw-samples", "5"]
    assert main(argv) == 0
    jobs = json.loads((out / "jobs.json").read_text())
    job_dir = out / "runs" / jobs["conv-vae-z2-b1-fb0-wu0"]
    assert json.loads((job_dir / "status.json").read_text())["state"] == "done"
    assert len(read_results(out)) == 1
    assert main(argv) == 0
    assert "1 already done, 0 to run" in capsys.readouterr().out
    assert [p for p in (out / "runs").iterdir() if p.is_dir()] == [job_dir]  # no second job


def test_the_cli_refuses_an_unknown_model(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--models", "conv-vae,gan"]) == 2
    assert "gan" in capsys.readouterr().err


def test_compare_helpers_format_rows_flag_collapse_and_find_sweeps(tmp_path):
    from vae_core.compare import find_sweeps, metrics_rows, shared_z
    from vae_core.plots import sweep_nll_figure, sweep_rate_distortion_figure
    ok = {"nll": 90.1234, "neg_elbo": 95.0, "recon": 70.0, "kl": 25.0, "active_units": 16, "mutual_info": 6.9,
          "mse": 0.01234, "shuffled_recon": 200.0, "twonn_dim": 9.04, "images": 1000, "split": "test",
          "binarized": True, "iw_samples": 100}
    dead = {**ok, "active_units": 0, "shuffled_recon": 70.5, "recon": 70.0}
    rows = metrics_rows({"a": (16, ok), "b": (16, dead), "c": (2, None)})
    assert rows[0]["NLL (IWAE)"] == "90.12" and rows[0]["MSE/pixel"] == "0.0123"
    assert rows[0]["latent use"] == "16/16 active"
    assert rows[0]["protocol"] == "1,000 test images, binarized, K=100"
    assert "0/16 active units" in rows[1]["latent use"] and "shuffling z costs 0.5 nats" in rows[1]["latent use"]
    assert metrics_rows({"p": (16, {**ok, "active_units": 9})})[0]["latent use"] == "9/16 active"  # partial use
    assert rows[2]["protocol"] == "not evaluated" and rows[2]["NLL (IWAE)"] == "—"
    capped = metrics_rows({"d": (16, {**ok, "mutual_info": 7.6009, "mi_samples": 2000})})
    assert capped[0]["I(x;z)"] == "≥ 7.60"  # log 2000: the estimator's ceiling reads "at least"
    assert (shared_z(16, 4) == shared_z(16, 4)).all() and shared_z(16, 4).shape == (4, 16)
    (tmp_path / "s1").mkdir()
    (tmp_path / "s1" / "results.json").write_text("[]")
    assert list(find_sweeps(tmp_path)) == [str(tmp_path / "s1")]
    sweep_rows = [{"model": "conv-vae", "latent_dim": d, "beta": b, "free_bits": 0.0, "warmup_epochs": 0.0,
                   "kl": 10.0 * b, "recon": 100 / b, "nll": 100.0 - d} for d in (2, 16) for b in (0.1, 1.0)]
    sweep_rows.append({"model": "conv-ae", "latent_dim": 2, "beta": 1.0, "kl": None, "recon": 80.0, "nll": None})
    rd = sweep_rate_distortion_figure(sweep_rows)
    assert [t.name for t in rd.data] == ["conv-vae z=16", "conv-vae z=2"] and list(rd.data[1].text) == ["β=0.1", "β=1"]
    nll = sweep_nll_figure(sweep_rows)
    assert [list(t.x) for t in nll.data] == [[2, 16], [2, 16]]
