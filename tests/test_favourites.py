"""Favourites on disk, one file per model (vae_core.favourites), and the shipped server config."""
import json
import tomllib

import pytest

from tests.conftest import REPO
from vae_core import VaeError
from vae_core.favourites import (export_favourites, favourites_dir, favourites_file, load_favourites,
                                 save_favourites)


def test_favourites_round_trip_per_model_and_a_delete_is_final(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("VAE_FAVOURITES_DIR", raising=False)
    assert favourites_dir() == tmp_path / "runs" / ".favourites"
    a, b = favourites_file("mnist-z2"), favourites_file("runs/20261122-1530-ab12")
    assert a != b and a.parent == b.parent and b.name == "runs_20261122-1530-ab12.json"
    assert favourites_file("../../etc/passwd").parent == a.parent  # a key never leaves the folder
    assert load_favourites(a, 2) == {}  # none yet
    save_favourites(a, {"fat zero": [0.1, -1.2], "seven": [2.0, 0.5]}, "mnist-z2", 2)
    assert load_favourites(a, 2) == {"fat zero": [0.1, -1.2], "seven": [2.0, 0.5]}
    favs = load_favourites(a, 2)
    favs.pop("seven")
    save_favourites(a, favs, "mnist-z2", 2)
    assert load_favourites(a, 2) == {"fat zero": [0.1, -1.2]}
    assert not b.exists()  # another model's favourites are another file
    assert [p.name for p in a.parent.iterdir()] == [a.name]  # no temporary file left behind
    assert json.loads(a.read_text()) == json.loads(export_favourites({"fat zero": [0.1, -1.2]}, "mnist-z2", 2))


def test_a_damaged_or_foreign_favourites_file_is_a_clear_error(tmp_path):
    f = tmp_path / "m.json"
    f.write_text('{"format": "vae-explorer-favourites", "version": 1, "latent_dim": 2, "favourites": {"x": [1')
    with pytest.raises(VaeError, match="unusable"):
        load_favourites(f, 2)
    save_favourites(f, {"x": [1.0, 2.0]}, "m", 2)
    with pytest.raises(VaeError, match="16-dimensional|2-dimensional"):
        load_favourites(f, 16)  # the file is for a 2-D model


def test_the_favourites_folder_can_be_set(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_FAVOURITES_DIR", str(tmp_path / "favs"))
    assert favourites_file("mnist-z2") == tmp_path / "favs" / "mnist-z2.json"


def test_the_shipped_server_config_binds_to_localhost():
    cfg = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "localhost"
    assert "base" not in cfg.get("theme", {})  # the theme follows the browser's light/dark preference
    run_app = (REPO / "scripts" / "run-app.sh").read_text()
    assert "server.address" not in run_app and "0.0.0.0" not in run_app  # the run script does not widen it


@pytest.mark.parametrize("payload", [b"[" * 100_000, b'{"format": "vae-explorer-favourites", "latent_dim": ' + b"9" * 5000 + b"}"])
def test_hostile_json_in_user_and_disk_files_is_a_clear_refusal_or_a_rebuild(tmp_path, payload):
    """Deep nesting and huge integers: once uncaught RecursionError/ValueError, on every rerun."""
    from vae_core.favourites import import_favourites
    from vae_core.jobs import read_status
    from vae_core.latents import load_cached_latents
    with pytest.raises(VaeError, match="not valid JSON"):
        import_favourites(payload, 2)
    cache = tmp_path / "cache" / "0123456789abcdef"
    cache.mkdir(parents=True)
    (cache / "test_meta.json").write_bytes(payload)
    assert load_cached_latents("0123456789abcdef", "test", tmp_path / "cache") is None  # rebuilt, not a crash
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "status.json").write_bytes(payload)
    assert read_status(tmp_path / "job") is None
