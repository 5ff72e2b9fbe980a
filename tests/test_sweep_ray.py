"""vae_core.sweep --ray on a real local Ray instance (ray.init(num_cpus=2)): 4 cells as Ray
tasks write the local runner's results keys, a rerun skips them, a cell whose node lacks
its data fails alone with the message, and the cells' folders are ordinary checkpoints."""
import json
from pathlib import Path

import pytest
import ray  # pinned in requirements.txt: a missing ray fails here, it is never skipped

from vae_core.sweep import Cell, read_results, run_sweep

TINY = {"dataset": "digits", "limit": 200, "epochs": 1, "test_limit": 60}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_four_cells_as_ray_tasks_write_the_local_runners_keys_and_resume(local_ray, tmp_path):
    cells = [Cell("conv-vae", 2, 1.0), Cell("linear-vae", 2, 4.0), Cell("linear-vae", 2, 1.0), Cell("linear-ae", 2)]
    out, logs = tmp_path / "sweep", []
    rows = run_sweep(out, cells, TINY, eval_limit=60, iw_samples=5, ray="auto", log=logs.append)
    assert sorted(r["cell"] for r in rows) == sorted(c.id for c in cells), logs
    assert any("4 Ray tasks submitted (1 CPU, 0 GPU each; the cluster has 2 CPUs" in line for line in logs), logs

    # the same keys, in the same order, as a cell of the local runner
    local = run_sweep(tmp_path / "local", cells[:1], TINY, eval_limit=60, iw_samples=5, use_jobs=False,
                      log=lambda *_: None)[0]
    by_id = {r["cell"]: r for r in read_results(out)}
    assert list(by_id[cells[0].id]) == list(local)
    vae, ae = by_id[cells[0].id], by_id[cells[3].id]
    assert vae["nll"] <= vae["neg_elbo"] and vae["train_seconds"] > 0 and vae["epochs"] == 1
    assert ae["nll"] is None and ae["recon"] > 0
    # each cell's folder came back from its worker whole: it loads, and it says what trained it
    from vae_core.checkpoint import load_checkpoint
    for c in cells:
        folder = Path(by_id[c.id]["checkpoint"])
        assert folder == out / "cells" / c.id
        ck = load_checkpoint(folder)
        assert ck.model.latent_dim == 2 and ck.config["dataset"]["name"] == "digits"
        assert json.loads((folder / "metrics.json").read_text())
    assert len((out / "results.csv").read_text().splitlines()) == 5

    # rerun: every cell is done, no task is submitted, nothing is rewritten
    mtime = (out / "cells" / cells[0].id / "model.safetensors").stat().st_mtime_ns
    logs.clear()
    rows = run_sweep(out, cells, TINY, eval_limit=60, iw_samples=5, ray="auto", log=logs.append)
    assert "4 already done, 0 to run" in logs[0] and len(rows) == 4
    assert (out / "cells" / cells[0].id / "model.safetensors").stat().st_mtime_ns == mtime


def test_a_cell_whose_node_lacks_the_data_fails_alone_with_the_message(local_ray, tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    cells = [Cell("linear-vae", 2, 1.0), Cell("linear-ae", 2)]
    out, logs = tmp_path / "sweep", []
    # the AE cell reads digits (scikit-learn's, always there); the VAE cell asks for MNIST in an empty folder
    rows = run_sweep(out, cells[1:], TINY, eval_limit=60, iw_samples=5, ray="auto", log=logs.append)
    rows = run_sweep(out, cells[:1], {**TINY, "dataset": "mnist"}, eval_limit=60, iw_samples=5, ray="auto",
                     data_root=empty, log=logs.append)
    assert [r["cell"] for r in rows] == [cells[1].id]  # the failed cell is not a row: a rerun retries it
    failed = [line for line in logs if line.strip().startswith(cells[0].id)]
    assert len(failed) == 1 and "failed on" in failed[0] and str(empty) in failed[0], logs
    assert "rerun the sweep to retry it" in failed[0] and "Traceback" not in failed[0]
    assert not (out / "cells" / cells[0].id).exists()


def test_the_cli_says_which_cells_failed_and_exits_1(local_ray, tmp_path, capsys):
    from vae_core.sweep import main
    empty = tmp_path / "no-data"
    empty.mkdir()
    argv = ["--out", str(tmp_path / "s"), "--models", "linear-vae", "--latent-dims", "2", "--betas", "1",
            "--dataset", "mnist", "--data-root", str(empty), "--limit", "100", "--epochs", "1", "--ray", "auto"]
    assert main(argv) == 1
    said = capsys.readouterr().out
    assert "1 of the grid's cells failed: rerun the same command to retry them" in said
    assert ray.is_initialized()  # the caller's Ray instance is left running for the caller
