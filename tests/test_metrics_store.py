"""metrics.json keeps one entry per protocol: a quick run never hides the full-protocol result."""
import json
import shutil

import pytest

from tests.conftest import REPO
from vae_core.evaluate import (METRICS_FORMAT, main, protocol, read_all_metrics, read_metrics, save_metrics)

SHIPPED = REPO / "checkpoints" / "mnist-bin-z50"


@pytest.fixture()
def z50(tmp_path):
    """A copy of the shipped z = 50 model with its version-1 metrics.json (K = 5000, all
    10,000 test images, NLL 83.52): tests write into the copy, never under checkpoints/."""
    folder = tmp_path / "z50"
    shutil.copytree(SHIPPED, folder)
    return folder


def quick_run(folder, data_root) -> int:
    # --limit 20 --iw-samples 10 keeps the test fast; it is the same code path (evaluate,
    # then save beside the checkpoint) as the issue's --limit 1000 --iw-samples 1000
    return main(["--checkpoint", str(folder), "--data-root", str(data_root), "--limit", "20", "--iw-samples", "10"])


def test_a_quick_run_is_kept_beside_the_full_protocol_result_not_over_it(z50, data_root, capsys):
    full = json.loads((SHIPPED / "metrics.json").read_text())
    assert read_all_metrics(z50) == [full]  # the version-1 file reads as one entry, unchanged

    assert quick_run(z50, data_root) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "kept as one of 2 evaluations; the app shows the fuller K=5000, 10,000-image test one" in last

    m = read_metrics(z50, full["checkpoint"])
    assert m["nll"] == pytest.approx(83.5225, abs=1e-4) and m["images"] == 10_000 and m["iw_samples"] == 5000
    assert m == full  # the old entry is kept verbatim
    entries = read_all_metrics(z50)
    assert [(e["images"], e["iw_samples"]) for e in entries] == [(10_000, 5000), (20, 10)]
    on_disk = json.loads((z50 / "metrics.json").read_text())
    assert on_disk["format"] == METRICS_FORMAT and on_disk["version"] == 2 and len(on_disk["entries"]) == 2

    # the same quick protocol again replaces its own entry and adds none
    assert quick_run(z50, data_root) == 0
    assert len(read_all_metrics(z50)) == 2 and read_metrics(z50) == full
    assert not list(z50.glob(".metrics.json.*"))  # no temporary file left


def test_the_sidebar_still_shows_the_full_protocol_nll_after_a_quick_run(z50, data_root, tmp_path, monkeypatch):
    from tests.test_app import app
    assert quick_run(z50, data_root) == 0
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path))
    at = app("runs/z50")
    captions = [c.value for c in at.sidebar.caption]
    assert any("NLL 83.52 nats (IWAE, K=5000, 10,000 images)" in c for c in captions), captions


def entry(**kw):
    base = {"checkpoint": "aaaa", "split": "test", "images": 1000, "iw_samples": 100, "binarized": True,
            "seed": 0, "recon": 80.0, "nll": 90.0}
    return {**base, **kw}


def test_the_most_complete_entry_wins_test_split_then_images_then_k_then_newest(tmp_path):
    order = [entry(split="test", images=10_000, iw_samples=100, evaluated_at="2026-01-01T00:00:00+00:00"),
             entry(split="test", images=1000, iw_samples=5000),
             entry(split="test", images=1000, iw_samples=100, seed=1, evaluated_at="2026-02-01T00:00:00+00:00"),
             entry(split="test", images=1000, iw_samples=100, seed=0, evaluated_at="2026-01-01T00:00:00+00:00"),
             entry(split="train", images=60_000, iw_samples=5000)]
    for e in reversed(order):  # saved least complete first: the order on reading is not the order of saving
        save_metrics(tmp_path, e)
    assert read_all_metrics(tmp_path) == order
    assert read_metrics(tmp_path) == order[0]
    # another checkpoint's entry (weights retrained in place) is kept but never read as these weights'
    saved = save_metrics(tmp_path, entry(checkpoint="bbbb", images=10, iw_samples=1))
    assert [protocol(e) for e in saved.entries] == [protocol(entry(checkpoint="bbbb", images=10, iw_samples=1))]
    assert saved.summary(saved.entries[0]) == "the app shows it"
    assert read_metrics(tmp_path, "aaaa") == order[0] and read_metrics(tmp_path, "bbbb")["images"] == 10
    assert len(read_all_metrics(tmp_path)) == 6 and read_metrics(tmp_path, "cccc") is None


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"hello": 1}',
                                     '{"format": "vae-explorer-metrics", "version": 3, "entries": []}'])
def test_an_unreadable_or_foreign_metrics_json_reads_as_absent_and_is_set_aside_on_save(tmp_path, content):
    (tmp_path / "metrics.json").write_text(content)
    assert read_metrics(tmp_path) is None and read_all_metrics(tmp_path) == []
    saved = save_metrics(tmp_path, entry())
    assert saved.set_aside.name.startswith("metrics.json.unreadable-")
    assert saved.set_aside.read_text() == content  # kept, not destroyed
    assert read_all_metrics(tmp_path) == [entry()]


def test_the_cli_sets_an_unreadable_file_aside_with_a_line_not_a_traceback(z50, data_root, capsys):
    (z50 / "metrics.json").write_text("\0\0 garbage")
    assert quick_run(z50, data_root) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "moved it to metrics.json.unreadable-" in err
    assert out.strip().splitlines()[-1].endswith("the app shows it")
    assert [e["images"] for e in read_all_metrics(z50)] == [20]
