"""Maps (vae_core.maps and the Map page): the way back from a map position to z, the
faithfulness figures, the on-disk cache, and the page for every shipped model."""
import shutil

import numpy as np
import pytest

from tests.conftest import REPO
from tests.test_app import app, explorer_data, no_errors
from vae_core import VaeError, maps
from vae_core.checkpoint import load_checkpoint
from vae_core.images import decode
from vae_core.latents import cache_folder, load_cached_latents

SHIPPED = ("mnist-z2", "mnist-z16", "fashion-z2", "mnist-bin-z50", "sprites-z10", "color-sprites-z10",
           "sprites-tcvae-z10", "mnist-fsq")


def shipped_latents(name: str, n: int | None = None):
    ck = load_checkpoint(REPO / "checkpoints" / name)
    lat = load_cached_latents(ck.hash, "test")
    return ck, (lat.mu if n is None else lat.mu[:n]), (lat.labels if n is None else lat.labels[:n])


def test_pca_goes_back_exactly():
    """A PCA map is a linear projection: a position's z projects back onto that position, and
    latents that lie in a plane come back exactly from their map points."""
    rng = np.random.default_rng(0)
    plane = np.linalg.qr(rng.standard_normal((12, 2)))[0].T  # two orthonormal 12-D axes
    mu = (rng.standard_normal((300, 2)) * [3.0, 1.0]) @ plane + rng.standard_normal(12)
    m = maps.build_map(mu.astype(np.float32), "pca")
    assert m.lattice is None and m.trustworthiness == pytest.approx(1.0) and m.knn_kept == pytest.approx(1.0)
    for i in (0, 17, 299):
        assert np.allclose(maps.z_at(m, m.points[i]), mu[i], atol=1e-4)
    for xy in ([0.3, -2.0], [5.0, 1.5]):
        assert np.allclose(maps.place(m, mu, maps.z_at(m, xy))[0], xy, atol=1e-4)
    # the map's axes are the PCA page's (same signs): a point's position is its PC1/PC2 score
    from vae_core.geometry import fit_pca
    assert np.allclose(m.points, fit_pca(mu.astype(np.float32), 2).projected, atol=1e-4)


def test_umap_inverse_decodes_like_the_clicked_region():
    """mnist-z16, 1,500 test latents, seed 0: a click on the map (a map point's position) goes
    back through umap's inverse_transform lattice to a z whose picture looks like the pictures
    of the map points around the click, far more than like random test pictures."""
    ck, mu, labels = shipped_latents("mnist-z16", 1500)
    m = maps.build_map(mu, "umap", seed=0)
    assert m.lattice.shape == (maps.LATTICE, maps.LATTICE, 16)
    assert m.trustworthiness > 0.85
    rng = np.random.default_rng(1)
    closer, same_class = 0, 0
    clicks = rng.choice(len(mu), 12, replace=False)
    for i in clicks:
        z = maps.z_at(m, m.points[i])
        region = np.argsort(np.linalg.norm(m.points - m.points[i], axis=1))[:10]  # the clicked region
        far = rng.choice(len(mu), 10, replace=False)
        img = decode(ck.model, z).astype(float)
        near_err = np.mean([np.abs(img - decode(ck.model, mu[j]).astype(float)).mean() for j in region])
        far_err = np.mean([np.abs(img - decode(ck.model, mu[j]).astype(float)).mean() for j in far])
        closer += near_err < far_err
        # the z lands among latents of the region's majority class
        nearest = np.argsort(np.linalg.norm(mu - z, axis=1))[:5]
        same_class += np.bincount(labels[nearest]).argmax() == np.bincount(labels[region]).argmax()
    assert closer >= 11, closer
    assert same_class >= 9, same_class


def test_tsne_way_back_and_upload_placement():
    """t-SNE has no inverse: a lattice node averages its nearest map points' z, so a click on a
    tight cluster gives a z inside that cluster; openTSNE's transform places a new latent next
    to its neighbours."""
    ck, mu, labels = shipped_latents("mnist-z16", 800)
    m = maps.build_map(mu, "tsne", seed=0)
    assert m.lattice.shape == (maps.LATTICE, maps.LATTICE, 16) and m.trustworthiness > 0.9
    hits = 0
    for i in range(0, 800, 80):
        z = maps.z_at(m, m.points[i])
        region = np.argsort(np.linalg.norm(m.points - m.points[i], axis=1))[:10]
        nearest = np.argsort(np.linalg.norm(mu - z, axis=1))[:5]
        hits += np.bincount(labels[nearest]).argmax() == np.bincount(labels[region]).argmax()
    assert hits >= 8, hits
    emb = maps.tsne_embedding(mu, m)
    _, more, more_labels = shipped_latents("mnist-z16", 900)
    new = more[800:900]
    xy = maps.place(m, mu, new, emb)
    assert xy.shape == (100, 2)
    # each placed latent lands where its class is on the map: its 5 nearest map points vote its class
    votes = [np.bincount(labels[np.argsort(np.linalg.norm(m.points - p, axis=1))[:5]]).argmax() for p in xy]
    assert np.mean(np.array(votes) == more_labels[800:900]) > 0.8


def test_faithfulness_is_one_for_a_copy_and_lower_for_a_shuffle():
    rng = np.random.default_rng(0)
    mu = rng.standard_normal((500, 2)).astype(np.float32)
    assert maps.faithfulness(mu, mu.copy()) == (pytest.approx(1.0), pytest.approx(1.0))
    trust, kept = maps.faithfulness(mu, mu[rng.permutation(500)])
    assert trust < 0.6 and kept < 0.1


def test_the_cache_round_trips_and_rebuilds_when_stale(tmp_path):
    """Written arrays come back bit for bit; other latents (a new checkpoint or a rebuilt latent
    cache), a damaged array, a missing meta file or another seed all read as missing."""
    rng = np.random.default_rng(0)
    mu = rng.standard_normal((200, 4)).astype(np.float32)
    m = maps.build_map(mu, "tsne", seed=0)
    maps.write_map(tmp_path, "test", m, mu)
    back = maps.load_map(tmp_path, "test", "tsne", mu)
    assert np.array_equal(back.points, m.points) and np.array_equal(back.lattice, m.lattice)
    assert back.trustworthiness == pytest.approx(m.trustworthiness)
    other = mu.copy()
    other[0, 0] += 1e-3  # the checkpoint changed: its latents did
    assert maps.load_map(tmp_path, "test", "tsne", other) is None
    assert maps.load_map(tmp_path, "test", "tsne", mu, seed=1) is None
    assert maps.load_map(tmp_path, "test", "umap", mu) is None
    # get_map rebuilds for the new latents and overwrites the old files
    rebuilt = maps.get_map(tmp_path, "test", "tsne", other)
    assert maps.load_map(tmp_path, "test", "tsne", other) is not None and rebuilt.points.shape == (200, 2)
    lattice = tmp_path / "map_test_tsne_lattice.npy"
    data = bytearray(lattice.read_bytes())
    data[-1] ^= 0xFF
    lattice.write_bytes(bytes(data))
    assert maps.load_map(tmp_path, "test", "tsne", other) is None
    (tmp_path / "map_test_tsne_meta.json").unlink()
    assert maps.load_map(tmp_path, "test", "tsne", other) is None
    with pytest.raises(VaeError, match="1-D latent"):
        maps.build_map(mu[:, :1], "pca")
    with pytest.raises(VaeError, match="Unknown map method"):
        maps.build_map(mu, "isomap")


def test_a_retrained_checkpoint_gets_its_own_map(tmp_path, monkeypatch, cache_root):
    """The cache lives under the checkpoint's content hash: new weights, new latents, new map."""
    import torch
    from safetensors.torch import load_file, save_file

    from vae_core.latents import encode_images
    run = tmp_path / "run"
    shutil.copytree(REPO / "checkpoints" / "mnist-z2", run)
    weights = load_file(run / "model.safetensors")
    name = next(k for k in weights if k.endswith("weight"))
    weights[name] = weights[name] * 1.01
    save_file(weights, run / "model.safetensors")
    old = load_checkpoint(REPO / "checkpoints" / "mnist-z2")
    new = load_checkpoint(run)
    assert new.hash != old.hash
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (120, 1, 28, 28), dtype=np.uint8))
    mu_new, _ = encode_images(new.model, images)
    m = maps.get_map(cache_folder(new.hash), "test", "pca", mu_new)
    assert (cache_root / new.hash / "map_test_pca_meta.json").is_file()
    assert maps.load_map(cache_folder(old.hash, REPO / "cache"), "test", "pca", mu_new) is None
    assert m.points.shape == (120, 2)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_has_its_maps_in_cache(name):
    """The shipped maps load (hash-checked, built from the shipped latents) for every method."""
    ck, mu, _ = shipped_latents(name)
    for method in maps.METHODS:
        m = maps.load_map(cache_folder(ck.hash, REPO / "cache"), "test", method, mu)
        assert m is not None, (name, method)
        assert 0.5 < m.trustworthiness <= 1.0 and 0.0 < m.knn_kept <= 1.0


def test_the_map_page_for_every_shipped_model_and_method():
    """AppTest: each shipped model on each method opens from the shipped cache (no build),
    hands the browser the map's points and, for t-SNE and UMAP, its lattice and a marker."""
    import streamlit as st
    # this process's AppTests share Streamlit's caches: drop latents another test encoded into a
    # cache of its own (on another CPU their last bits differ from the shipped ones)
    st.cache_resource.clear()
    for name in SHIPPED:
        at = app(name, "pages/map.py")
        no_errors(at)
        for method in maps.METHODS:
            at.radio(key="map_method").set_value(method).run()
            no_errors(at)
            assert not at.get("progress"), (name, method)  # shipped: nothing was built
            data = explorer_data(at)
            assert data["n_points"] == len(shipped_latents(name)[1])
            if method == "pca":
                assert data["lattice_url"] is None and data["marker"] is None
            else:
                assert data["lattice_url"] and len(data["marker"]) == 2, (name, method)
            assert any(mt.label == "Trustworthiness" for mt in at.metric)


def test_the_map_page_builds_a_missing_map_into_the_cache_folder(tmp_path, monkeypatch):
    """A model with no map yet: the page builds it into VAE_CACHE_DIR, never into the clone."""
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "cache"))
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z16")
    shutil.copytree(REPO / "cache" / ck.hash, tmp_path / "cache" / ck.hash, ignore=shutil.ignore_patterns("map_*"))
    import streamlit as st
    st.cache_resource.clear()  # this process's AppTests share Streamlit's caches: forget the shipped maps
    at = app("mnist-z16", "pages/map.py")  # PCA: built in a few seconds
    no_errors(at)
    assert (tmp_path / "cache" / ck.hash / "map_test_pca_meta.json").is_file()
    assert explorer_data(at)["n_points"] == 10000
    assert any(mt.label == "Trustworthiness" and mt.value.startswith("0.") for mt in at.metric)


# ---------------------------------------------------------------- the 70,000-point maps

def test_the_train_plus_test_point_set_is_test_first_and_capped(data_root, cache_root):
    """split "all": the 10,000 test latents (as on the test map) followed by the 60,000 training
    latents; sprites' 727,280 training images are more than a 70,000-point map holds: refused
    by name, before anything is encoded."""
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z2")
    mu, labels = maps.split_latents(ck, "all", data_root)
    test = load_cached_latents(ck.hash, "test", REPO / "cache")
    assert mu.shape == (70_000, 2) and labels.shape == (70_000,)
    np.testing.assert_allclose(mu[:10_000], test.mu, atol=1e-5)
    assert (labels[:10_000] == test.labels).all()
    sprites = load_checkpoint(REPO / "checkpoints" / "sprites-z10")
    with pytest.raises(VaeError, match="727,280 training images.*70,000"):
        maps.split_latents(sprites, "all")
    assert not (cache_root / sprites.hash / "train_meta.json").exists()


def _wait_for(folder, split, method, states, timeout_s=300):
    import time
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = maps.build_status(folder, split, method)
        if status and status["state"] in states:
            return status
        time.sleep(0.5)
    raise AssertionError(f"the build never reached {states}: {maps.build_status(folder, split, method)}")


def test_a_train_plus_test_map_builds_in_the_background_from_the_page(data_root, tmp_path, monkeypatch):
    """The Map page with "train + test" on a model with no such map: a Build button (no build
    on opening), then a build in its own process that reports progress while the page
    reruns, and the 70,000-point map on the page once it is done; the URL carries points=all."""
    import streamlit as st
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "cache"))
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z2")
    shutil.copytree(REPO / "cache" / ck.hash, tmp_path / "cache" / ck.hash)
    folder = cache_folder(ck.hash, tmp_path / "cache")
    st.cache_resource.clear()
    at = app("mnist-z2", "pages/map.py")
    at.radio(key="map_points").set_value("all").run()
    no_errors(at)
    assert at.query_params["points"] in ("all", ["all"])
    build = [b for b in at.button if b.label.startswith("Build the PCA map of 70,000 points")]
    assert build and maps.build_status(folder, "all", "pca") is None  # nothing started by opening
    build[0].click().run()
    status = maps.build_status(folder, "all", "pca")
    assert status is not None and status["state"] in ("running", "done")
    assert _wait_for(folder, "all", "pca", ("done", "failed"))["state"] == "done"
    at.run()
    no_errors(at)
    assert explorer_data(at)["n_points"] == 70_000
    assert any(mt.label == "Points" and mt.value == "70,000" for mt in at.metric)
    # the test map is still there, and the shipped test maps were not touched
    at.radio(key="map_points").set_value("test").run()
    assert explorer_data(at)["n_points"] == 10_000


def test_a_killed_build_reads_as_failed_and_can_be_started_again(data_root, tmp_path, monkeypatch):
    """Kill the build process mid-way (as a crash or an out-of-memory kill would): its status
    says failed, with why, instead of "running" for ever; the page shows the error and the
    Build button again, and no half-written map is ever loaded."""
    import os
    import signal

    import streamlit as st
    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "cache"))
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z2")
    shutil.copytree(REPO / "cache" / ck.hash, tmp_path / "cache" / ck.hash)
    folder = cache_folder(ck.hash, tmp_path / "cache")
    first = maps.start_build(ck, "all", "tsne")
    assert maps.start_build(ck, "all", "tsne")["pid"] == first["pid"]  # one build at a time
    _wait_for(folder, "all", "tsne", ("running",), 60)
    os.kill(first["pid"], signal.SIGKILL)
    status = _wait_for(folder, "all", "tsne", ("failed",), 60)
    assert "ended without finishing" in status["error"]
    assert maps.load_map(folder, "all", "tsne", maps.split_latents(ck, "all", data_root)[0]) is None
    st.cache_resource.clear()
    at = app("mnist-z2", "pages/map.py")
    at.radio(key="map_method").set_value("tsne").run()
    at.radio(key="map_points").set_value("all").run()
    assert any("The last build of this map failed" in e.value for e in at.error)
    assert [b for b in at.button if b.label.startswith("Build the t-SNE map of 70,000 points")]
