"""The Traverse page and vae_core.traversal: one row per latent dimension, ordered by KL.

Real models (the shipped checkpoints and tiny untrained ones of the other shapes), real
decodes, no mocks. The library tests run in about a second; the AppTests in about 15 s;
the one browser test opens the page with sprites-z10 in both colour schemes and leaves
screenshots in test-artifacts/ for a person to look at.
"""
import base64
import io
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import REPO
from vae_core.checkpoint import load_checkpoint
from vae_core.gif import gif_info
from vae_core.images import decode
from vae_core.latents import load_cached_latents
from vae_core.losses import kl_per_dim
from vae_core.traversal import (BACKGROUND, CENTRE, COLLAPSED_KL, FONT_SIZE, MUTED, PAD, SEPARATOR, kl_order,
                                row_gif, std_order, tile_block_size, traversal_figure, traversal_grid,
                                traversal_latents, traversal_values, value_label)

PAGE = "pages/traverse.py"


@pytest.fixture(scope="module")
def sprites():
    ck = load_checkpoint(REPO / "checkpoints" / "sprites-z10")
    return ck, load_cached_latents(ck.hash, "test")


# ---------------------------------------------------------------- vae_core.traversal

def test_the_centre_column_is_z0_and_each_row_moves_only_its_dimension(sprites):
    ck, lat = sprites
    z0 = lat.mu[5]
    dims, values = [3, 0, 7], traversal_values(2.5, 7)
    assert values[3] == 0.0 and values[0] == -2.5 and values[-1] == 2.5
    z = traversal_latents(z0, dims, values)
    assert z.shape == (3, 7, 10) and z.dtype == np.float32
    for r, dim in enumerate(dims):
        moved = np.nonzero((z[r] != z0).any(0))[0]
        assert moved.tolist() == [dim]  # every other coordinate stays at z0
    grid = traversal_grid(ck.model, z0, dims, values)
    assert grid.shape == (3, 7, 64, 64) and grid.dtype == np.uint8
    centre = decode(ck.model, z0)
    for r, dim in enumerate(dims):
        assert np.array_equal(grid[r, 3], centre)  # exactly: the centre is decode(z0) itself
        for c, v in enumerate(values):
            want = z0.copy()
            want[dim] += np.float32(v)
            # decoded alone rather than in the grid's batch: a convolution's rounding may move a
            # pixel by one grey level between batch sizes (seen: 1 pixel of 4096 here), no more
            diff = np.abs(grid[r, c].astype(int) - decode(ck.model, want))
            assert diff.max() <= 1 and (diff > 0).sum() <= 8, (r, c, diff.max(), (diff > 0).sum())
        assert np.abs(grid[r, 0].astype(int) - grid[r, -1]).max() > 100  # these dimensions do change the picture
    # and a shift along the wrong dimension would show: row 0 (z[3]) is not row 1 (z[0])
    assert np.abs(grid[0, 0].astype(int) - grid[1, 0]).max() > 100


def test_kl_order_sorts_dimensions_by_their_mean_kl(sprites):
    _, lat = sprites
    dims, kl = kl_order(lat.mu, lat.logvar)
    direct = kl_per_dim(torch.from_numpy(lat.mu).double(), torch.from_numpy(lat.logvar).double()).mean(0).numpy()
    assert sorted(dims.tolist()) == list(range(10))
    assert np.all(np.diff(kl) <= 0) and kl[0] > kl[-1]
    np.testing.assert_allclose(kl, direct[dims], rtol=1e-9)
    assert dims[0] == int(np.argmax(direct)) and dims[-1] == int(np.argmin(direct))
    # a known order: dimension 2 carries most (mean far from 0), 0 nothing (the prior itself)
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(500, 4)) * np.array([0.0, 0.5, 2.0, 1.0])
    logvar = np.log(np.array([1.0, 0.5, 0.1, 0.3]))[None].repeat(500, 0)
    dims, kl = kl_order(mu, logvar)
    assert dims.tolist() == [2, 3, 1, 0] and kl[-1] == pytest.approx(0.0) and kl[-1] < COLLAPSED_KL
    assert std_order(mu)[0].tolist() == [2, 3, 1, 0]


def test_row_gif_plays_there_and_back_at_its_size(sprites):
    ck, lat = sprites
    grid = traversal_grid(ck.model, lat.mu[0], [0], traversal_values(3, 9))
    info = gif_info(row_gif(grid[0], size=128))
    assert info["frames"] == 16 and info["size"] == (128, 128) and info["loop"] == 0  # 9 -> 2*9-2: no end repeated
    colour = np.random.default_rng(1).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    gif = row_gif(colour, size=64)
    assert gif_info(gif)["frames"] == 8
    frames = Image.open(io.BytesIO(gif))
    frames.seek(5)  # the way back: frame 5 is input frame 3 (0 1 2 3 4 3 2 1)
    back = np.asarray(frames.convert("RGB")).astype(int)
    assert np.abs(back - colour[3]).mean() < np.abs(back - colour[4]).mean()


def test_the_figure_is_the_tiles_plus_separators_and_labels_sit_outside_them():
    rng = np.random.default_rng(2)
    grid = rng.integers(0, 256, (3, 5, 28, 28), dtype=np.uint8)
    fig = traversal_figure(grid, scale=2, sep=2)
    bh, bw = tile_block_size(3, 5, 56, 56, 2)
    assert (bh, bw) == (3 * 56 + 4 * 2, 5 * 56 + 6 * 2) and fig.shape == (bh, bw, 3)
    up = grid.repeat(2, 2).repeat(2, 3)
    for r in range(3):
        for c in range(5):
            y, x = 2 + r * 58, 2 + c * 58
            assert np.array_equal(fig[y:y + 56, x:x + 56], np.repeat(up[r, c][..., None], 3, -1))
    assert tuple(fig[0, 0]) == SEPARATOR and tuple(fig[58, 100]) == SEPARATOR  # frame and a row separator
    framed = traversal_figure(grid, scale=2, centre=2)
    assert tuple(framed[0, 2 * 58 + 1]) == CENTRE and tuple(framed[0, 58]) == SEPARATOR  # only the centre column

    labelled = traversal_figure(grid, [f"z[{i}] · KL 1.00" for i in range(3)], ["-1", "0", "+1", "+2", "+3"],
                                scale=2, muted_rows=[2], corner="shift:")
    h, w = labelled.shape[:2]
    assert h == PAD + FONT_SIZE + PAD + bh + PAD and w > bw + 2 * PAD
    assert np.array_equal(labelled[h - PAD - bh:h - PAD, w - PAD - bw:w - PAD], fig)  # the same block, bottom right
    gutter = labelled[:, :w - PAD - bw]
    row2 = gutter[h - PAD - bh + 2 * 58:h - PAD - bh + 3 * 58]
    row0 = gutter[h - PAD - bh:h - PAD - bh + 58]
    has = lambda a, colour: bool((a == colour).all(-1).any())  # noqa: E731
    assert has(row2, MUTED) and not has(row0, MUTED)  # the collapsed row's label is dimmed, the others not
    assert has(row0, (235, 235, 235)) and tuple(labelled[1, 1]) == BACKGROUND

    colour = rng.integers(0, 256, (2, 3, 64, 64, 3), dtype=np.uint8)
    cfig = traversal_figure(colour)
    assert cfig.shape == (*tile_block_size(2, 3, 64, 64), 3) and np.array_equal(cfig[2:66, 2:66], colour[0, 0])
    assert [value_label(v) for v in traversal_values(3, 9)] == ["-3", "-2.25", "-1.5", "-0.75", "0", "+0.75", "+1.5",
                                                                "+2.25", "+3"]


# ---------------------------------------------------------------- the page (AppTest)

def shown_figure(at) -> np.ndarray:
    html = [m.value for m in at.markdown if 'alt="traversal figure"' in m.value]
    assert len(html) == 1
    data = re.search(r'src="data:image/png;base64,([^"]+)"', html[0]).group(1)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def plotly_array(v) -> np.ndarray:
    """A figure's array as plotly's JSON carries it: a list, or a typed array {"dtype", "bdata", "shape"}."""
    if isinstance(v, dict):
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        return a.reshape([int(n) for n in str(v.get("shape", len(a))).split(",")])
    return np.asarray(v)


def block_of(fig: np.ndarray, rows: int, cols: int, tile: int) -> np.ndarray:
    bh, bw = tile_block_size(rows, cols, tile, tile)
    h, w = fig.shape[:2]
    assert h == PAD + FONT_SIZE + PAD + bh + PAD, (h, rows)  # exactly `rows` rows of tiles
    return fig[h - PAD - bh:h - PAD, w - PAD - bw:w - PAD]


def centre_tile(block: np.ndarray, row: int, cols: int, tile: int) -> np.ndarray:
    y, x = 2 + row * (tile + 2), 2 + (cols // 2) * (tile + 2)
    return block[y:y + tile, x:x + tile, 0]


def test_the_page_for_mnist_z2_follows_its_centre():
    from tests.test_app import app, no_errors
    from ui_common import get_test_images
    from vae_core.images import reconstruct
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z2")
    at = app("mnist-z2", PAGE)
    no_errors(at)
    assert at.radio(key="trav_centre").value == "image" and at.number_input(key="trav_index").value == 0
    first = shown_figure(at)
    block = block_of(first, 2, 9, 56)  # both dimensions carry KL: two rows
    images = get_test_images("mnist", 28, 1)
    mu0 = [reconstruct(ck.model, images[i:i + 1])[0][0] for i in range(4)]  # as the page encodes its image
    up = lambda img: img.repeat(2, 0).repeat(2, 1)  # noqa: E731
    assert np.array_equal(centre_tile(block, 0, 9, 56), up(decode(ck.model, mu0[0])))
    assert not at.get("plotly_chart") and any("needs ground-truth factors" in c.value for c in at.caption)
    assert any(b.proto.label.startswith("PNG of the figure") for b in at.get("download_button"))

    at.number_input(key="trav_index").set_value(3).run()
    no_errors(at)
    third = shown_figure(at)
    assert not np.array_equal(third, first)
    assert np.array_equal(centre_tile(block_of(third, 2, 9, 56), 1, 9, 56), up(decode(ck.model, mu0[3])))

    at.radio(key="trav_centre").set_value("prior").run()
    at.select_slider(key="trav_cols").set_value(5).run()
    no_errors(at)
    prior = block_of(shown_figure(at), 2, 5, 56)
    assert np.array_equal(centre_tile(prior, 0, 5, 56), up(decode(ck.model, np.zeros(2, np.float32))))
    assert any(b.proto.label.startswith("GIF of z[") and "8 frames" in b.proto.label for b in at.get("download_button"))


def test_the_page_for_sprites_shows_the_factor_heat_map_in_the_figures_order(sprites):
    from tests.test_app import app, no_errors
    from vae_core.data import load_dataset
    from vae_core.disentanglement import mutual_information_matrix
    ck, lat = sprites
    at = app("sprites-z10", PAGE)
    no_errors(at)
    dims, kl = kl_order(lat.mu, lat.logvar)
    assert kl.min() >= COLLAPSED_KL
    block_of(shown_figure(at), 10, 9, 64)  # all ten dimensions, 64 px tiles
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    heat = spec["data"][0]
    assert heat["type"] == "heatmap" and heat["x"] == ["shape", "scale", "orientation", "x", "y"]
    assert heat["y"] == [f"z[{d}]" for d in dims] and (heat["zmin"], heat["zmax"]) == (0, 1)
    assert "H(factor)" in spec["layout"]["title"]["text"] and heat["texttemplate"]
    factors = load_dataset("sprites", "test", download=False).factors
    np.testing.assert_allclose(plotly_array(heat["z"]), mutual_information_matrix(lat.mu, factors)[dims], atol=1e-12)
    assert [b.proto.label for b in at.get("download_button")][0] == "PNG of the figure (697×699)"


def test_collapsed_dimensions_wait_behind_a_toggle():
    from tests.test_app import app, no_errors
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-bin-z50")
    lat = load_cached_latents(ck.hash, "test")
    dims, kl = kl_order(lat.mu, lat.logvar)
    active = int((kl >= COLLAPSED_KL).sum())
    assert 0 < active < 50
    at = app("mnist-bin-z50", PAGE)
    no_errors(at)
    block_of(shown_figure(at), active, 9, 56)
    assert any(f"{50 - active} collapsed dimensions" in c.value for c in at.caption)
    at.toggle(key="trav_collapsed").set_value(True).run()
    no_errors(at)
    block_of(shown_figure(at), 50, 9, 56)
    labels = at.selectbox(key="trav_gif_row").options
    assert len(labels) == 50 and labels[-1] == f"z[{dims[-1]}] · collapsed (KL {kl[-1]:.2f})"
    assert labels[0] == f"z[{dims[0]}] · KL {kl[0]:.2f}"


def test_colour_64_models_and_autoencoders(tmp_path, cache_root, monkeypatch):
    """Untrained tiny models of the other shapes, their test latents written as a cache:
    colour 64x64 (color-sprites: a heat map) and a grey 28x28 autoencoder (ordered by spread)."""
    from tests.test_app import app, no_errors
    from vae_core.checkpoint import save_checkpoint
    from vae_core.latents import Latents, write_latents
    from vae_core.models import ModelConfig, build_model
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path))
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    for name, cfg, dataset in (
            ("c64", ModelConfig(latent_dim=3, image_channels=3, image_size=64, hidden=16, channels=(8, 8)),
             "color-sprites"),
            ("ae28", ModelConfig(kind="conv-ae", latent_dim=3, hidden=16, channels=(8, 8)), "mnist")):
        h = save_checkpoint(tmp_path / name, build_model(cfg), dataset={"name": dataset})
        mu = rng.normal(size=(10_000, 3)).astype(np.float32) * np.float32([0.5, 2.0, 1.0])
        logvar = None if name == "ae28" else np.full((10_000, 3), -1.0, np.float32)
        write_latents(h, Latents(mu, logvar, np.zeros(10_000, np.int64), "test", dataset))
        at = app(f"runs/{name}", PAGE)
        no_errors(at)
        fig = shown_figure(at)
        tile = 64 if name == "c64" else 56
        block = block_of(fig, 3, 9, tile)
        ck = load_checkpoint(tmp_path / name)
        assert at.selectbox(key="trav_gif_row").options[0].startswith("z[1] · " + ("KL" if name == "c64" else "sd"))
        if name == "c64":
            x = 2 + 4 * 66
            shown = block[2:66, x:x + 64]
            img = get_image(at, ck)
            assert np.array_equal(shown, decode(ck.model, img))
            assert len(at.get("plotly_chart")) == 1
        else:
            assert not at.get("plotly_chart")


def get_image(at, ck) -> np.ndarray:
    """z0 of the page's default centre: the posterior mean of test image 0, as the page encodes it."""
    from ui_common import test_images_for
    from vae_core.images import reconstruct
    return reconstruct(ck.model, test_images_for(ck)[:1])[0][0]


# ---------------------------------------------------------------- a real browser

@pytest.mark.browser
def test_traverse_in_chromium_light_and_dark(server, browser):
    from tests.live_app import wait_for_app
    url = server
    artifacts = REPO / "test-artifacts"
    for scheme in ("light", "dark"):
        # wide enough for the heat map beside the figure (under 1,560 px it wraps under it)
        context = browser.new_context(viewport={"width": 1920, "height": 1400}, color_scheme=scheme)
        page = context.new_page()
        page.goto(f"{url}/traverse?model=sprites-z10")
        wait_for_app(page)
        figure = page.locator('img[alt="traversal figure"]')
        figure.wait_for(timeout=60_000)
        page.locator("[data-testid='stPlotlyChart'] .main-svg").first.wait_for(timeout=60_000)
        page.wait_for_timeout(500)
        box = figure.bounding_box()
        assert box and box["width"] > 600 and 0.8 < box["width"] / box["height"] < 1.3, box
        assert page.locator("[data-testid='stPlotlyChart'] .heatmaplayer, "
                            "[data-testid='stPlotlyChart'] image").count() >= 1
        text = page.locator("[data-testid='stApp']").inner_text()
        assert "Traceback" not in text and "Error running app" not in text
        assert "I(z" in page.locator("[data-testid='stPlotlyChart']").inner_text()
        heat = page.locator("[data-testid='stPlotlyChart']").bounding_box()
        assert heat["x"] > box["x"] + box["width"] and abs(heat["y"] - box["y"]) < 2  # beside, tops level
        bg = page.evaluate("() => getComputedStyle(document.querySelector('[data-testid=\"stApp\"]'))"
                           ".backgroundColor")
        lum = np.mean([int(v) for v in re.findall(r"\d+", bg)[:3]])
        assert (lum < 80) if scheme == "dark" else (lum > 200), bg
        page.screenshot(path=str(artifacts / f"traverse-{scheme}.png"), full_page=True)
        context.close()
