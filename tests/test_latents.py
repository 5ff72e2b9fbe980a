import numpy as np
import pytest
import torch

from vae_core import VaeError
from vae_core.checkpoint import load_checkpoint, save_checkpoint
from vae_core.latents import cache_folder, encode_dataset, knn_accuracy, load_cached_latents
from vae_core.models import ModelConfig, build_model


def _checkpoint(folder, seed=0, dataset="digits"):
    torch.manual_seed(seed)
    save_checkpoint(folder, build_model(ModelConfig(latent_dim=2)), dataset={"name": dataset})
    return load_checkpoint(folder)


def test_cache_is_written_then_reused(tmp_path, cache_root):
    ck = _checkpoint(tmp_path / "ck")
    lat = encode_dataset(ck, "test")
    assert lat.mu.shape == (297, 2) and lat.logvar.shape == (297, 2) and lat.labels.shape == (297,)
    folder = cache_folder(ck.hash)
    assert sorted(p.name for p in folder.iterdir()) == ["test_labels.npy", "test_logvar.npy",
                                                        "test_meta.json", "test_mu.npy"]
    mtimes = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = encode_dataset(ck, "test")
    assert np.array_equal(again.mu, lat.mu)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == mtimes
    # the arrays are the model's posterior means
    from vae_core.data import load_dataset
    x = load_dataset("digits", "test").floats()[:5]
    assert np.allclose(ck.model.encode(x)[0].numpy(), lat.mu[:5], atol=1e-5)


def test_new_checkpoint_gets_a_new_cache(tmp_path, cache_root):
    ck1 = _checkpoint(tmp_path / "ck", seed=0)
    lat1 = encode_dataset(ck1, "test")
    ck2 = _checkpoint(tmp_path / "ck", seed=1)  # retrained in place: new weights, new hash
    assert ck2.hash != ck1.hash
    lat2 = encode_dataset(ck2, "test")
    assert not np.allclose(lat1.mu, lat2.mu)
    assert cache_folder(ck2.hash).is_dir() and cache_folder(ck1.hash).is_dir()


@pytest.mark.parametrize("damage", ["truncate", "flip", "pickle", "delete_meta", "garbage_meta"])
def test_corrupted_cache_is_detected_and_rebuilt(tmp_path, cache_root, damage):
    ck = _checkpoint(tmp_path / "ck")
    good = encode_dataset(ck, "test")
    folder = cache_folder(ck.hash)
    mu_file = folder / "test_mu.npy"
    if damage == "truncate":
        mu_file.write_bytes(mu_file.read_bytes()[:100])
    elif damage == "flip":
        data = bytearray(mu_file.read_bytes())
        data[-1] ^= 0xFF
        mu_file.write_bytes(bytes(data))
    elif damage == "pickle":
        np.save(mu_file, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif damage == "delete_meta":
        (folder / "test_meta.json").unlink()
    else:
        (folder / "test_meta.json").write_text("{]")
    assert load_cached_latents(ck.hash, "test") is None
    rebuilt = encode_dataset(ck, "test")
    assert np.array_equal(rebuilt.mu, good.mu)
    assert load_cached_latents(ck.hash, "test") is not None


def test_missing_cache_and_missing_dataset_is_a_clear_error(tmp_path, cache_root, monkeypatch):
    monkeypatch.setenv("VAE_DATA_ROOT", str(tmp_path / "nodata"))
    ck = _checkpoint(tmp_path / "ck", dataset="mnist")
    with pytest.raises(VaeError, match="nodata"):
        encode_dataset(ck, "test")


def test_knn_accuracy_separates_clusters_from_noise():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 100)
    centres = rng.normal(size=(5, 2)) * 10
    clustered = centres[labels] + rng.normal(size=(500, 2)) * 0.5
    noise = rng.normal(size=(500, 2))
    assert knn_accuracy(clustered, labels) > 0.95
    assert knn_accuracy(noise, labels) < 0.4
