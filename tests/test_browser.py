"""Real browser: `streamlit run app.py` on localhost driven through Debian's Chromium.

Screenshots land in test-artifacts/ (ignored by git) for a person to look at.
In CI (CI=true) these tests must run: a missing Chromium fails them, never skips.
"""
import io
import os
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.conftest import IN_CI, REPO
from tests.live_app import CHROMIUM, app_server, decoded_image, launch_chromium, wait_for_app, wait_for_url

pytestmark = pytest.mark.browser
ARTIFACTS = REPO / "test-artifacts"

if not os.path.exists(CHROMIUM):
    if IN_CI:
        raise RuntimeError(f"{CHROMIUM} is missing in CI: scripts/run-tests.sh installs it with apt-get")
    pytest.skip(f"{CHROMIUM} not installed (scripts/run-tests.sh installs it as root)", allow_module_level=True)


@pytest.fixture(scope="module")
def server():
    ARTIFACTS.mkdir(exist_ok=True)
    with app_server() as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    yield pg
    context.close()


def digit_png(kind: str, size=(120, 160)) -> bytes:
    """A photo-like dark digit on white paper, as a user would upload."""
    im = Image.new("RGB", size, (235, 232, 225))
    d = ImageDraw.Draw(im)
    w, h = size
    if kind == "zero":
        d.ellipse([w * 0.25, h * 0.15, w * 0.75, h * 0.85], outline=(20, 20, 30), width=12)
    else:  # a one
        d.line([w * 0.5, h * 0.12, w * 0.5, h * 0.88], fill=(20, 20, 30), width=12)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def assert_no_traceback(page):
    text = page.locator("[data-testid='stApp']").inner_text()
    assert "Traceback" not in text and "Error running app" not in text


def test_explore_slider_changes_the_image(server, page):
    page.goto(f"{server}/")  # Explore is the default page, served at the root
    wait_for_app(page)
    img = decoded_image(page)
    img.wait_for(timeout=30_000)
    before = img.get_attribute("src")
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)  # the scatter, beside the image
    # what a person sees: the digit fills the 420 px box (not a 28 px thumbnail in its middle)
    box = img.bounding_box()
    assert box["width"] > 300 and abs(box["width"] - box["height"]) < 2, box
    shot = np.asarray(Image.open(io.BytesIO(img.screenshot())).convert("L"))
    ink_cols = np.flatnonzero(shot.max(0) > 60)
    assert ink_cols.size and (ink_cols[-1] - ink_cols[0]) > 0.4 * shot.shape[1], (ink_cols[:3], shot.shape)
    assert img.evaluate("e => getComputedStyle(e).imageRendering") == "pixelated"  # crisp pixels
    page.screenshot(path=str(ARTIFACTS / "explore-before.png"), full_page=True)
    slider = page.get_by_role("slider", name="z[0]")
    slider.focus()
    src = before
    for step in range(5):  # as a person does: press, watch the image change, press again
        slider.press("ArrowRight")
        page.wait_for_function("(src) => { const i = document.querySelector('img[alt=\"decode(z)\"]');"
                               " return i && i.src !== src; }", arg=src, timeout=30_000)
        src = img.get_attribute("src")
    assert src != before
    # the slider, the URL and the server's image settle on one z, 0.05 per press. Streamlit
    # can undo a press that lands as a fragment rerun ends (about 1 in 100; README, Known
    # issues), so this asserts the three agree and moved on, not that all five counted.
    value = settled_z0(page)
    assert 0 < value <= 0.25 and round(value / 0.05) * 0.05 == pytest.approx(value)
    page.screenshot(path=str(ARTIFACTS / "explore-after.png"), full_page=True)
    assert_no_traceback(page)


def settled_z0(page, timeout_s: float = 15.0) -> float:
    """Wait until the z[0] slider, the URL and the server's image agree for a second; return that z[0]."""
    read = """() => {
      const img = document.querySelector('img[alt="decode(z)"]');
      const m = /[?&]z=([^%&]+)/.exec(location.search);
      return [document.querySelector('input[type=range][aria-label="z[0]"]').value,
              m && m[1], img && (img.getAttribute('data-z') || '').split(',')[0]];
    }"""
    deadline, stable_since, last = time.time() + timeout_s, None, None
    while True:
        slider, url, img = page.evaluate(read)
        agree = url is not None and img and abs(float(slider) - float(url)) < 1e-6 and abs(float(url) - float(img)) < 1e-6
        now = time.time()
        if agree and last == (slider, url, img):
            if now - stable_since >= 1.0:
                return float(url)
        else:
            stable_since = now
        last = (slider, url, img) if agree else None
        assert now < deadline, (slider, url, img)
        page.wait_for_timeout(100)


def shown_pixels(page) -> np.ndarray:
    """The 28x28 pixels the decoded <img> holds now (a PNG data URI, from the browser or the server)."""
    import base64
    src = decoded_image(page).get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("L")).astype(int)


def test_the_browser_decoder_matches_pytorch(server, page):
    """ui/client_decoder.js against PyTorch on the same weights: every pixel within one grey level."""
    from vae_core.checkpoint import load_checkpoint
    from vae_core.images import decode
    page.goto(f"{server}/")
    wait_for_app(page)
    decoded_image(page).wait_for(timeout=30_000)
    page.wait_for_function("() => window.__vaeDecoders && Object.keys(window.__vaeDecoders).length > 0", timeout=30_000)
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z2")
    assert page.evaluate("() => Object.keys(window.__vaeDecoders)") == [ck.hash]
    rng = np.random.default_rng(0)
    zs = [[0.0, 0.0], [3.9, -3.9], *rng.uniform(-4, 4, (6, 2)).tolist()]
    for z in zs:
        js = np.array(page.evaluate("([h, z]) => Array.from(window.__vaeDecodePixels(h, z).px)", [ck.hash, z]))
        torch_px = decode(ck.model, z).astype(int).ravel()
        assert np.abs(js - torch_px).max() <= 1, z
        assert (js == torch_px).mean() > 0.99, z


def test_fast_presses_end_on_the_image_of_the_last_z(server, page):
    """Eight presses without waiting: the browser draws each step, the server's replies
    arrive late; the picture left on screen is decode(z) of the last step, not a stale one."""
    from vae_core.checkpoint import load_checkpoint
    from vae_core.images import decode
    page.goto(f"{server}/?model=mnist-z2&z=-1.000,0.500")
    wait_for_app(page)
    decoded_image(page).wait_for(timeout=30_000)
    page.wait_for_function("() => window.__vaeDecoders && Object.keys(window.__vaeDecoders).length > 0", timeout=30_000)
    slider = page.get_by_role("slider", name="z[0]")
    slider.focus()
    for _ in range(8):
        page.keyboard.press("ArrowRight")
    value = settled_z0(page)
    # it moved, never past the eight presses; how many of a burst Streamlit keeps varies
    # (README, Known issue), what is asserted is that nothing stale stays on screen
    assert -1.0 < value <= -0.6
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-z2")
    # what is on screen is decode(z) of the z the slider shows, not a stale step
    assert np.abs(shown_pixels(page) - decode(ck.model, [value, 0.5]).astype(int)).max() <= 1
    assert_no_traceback(page)


def test_a_box_on_the_scatter_moves_z_to_its_centre(server, page):
    page.goto(f"{server}/")  # Explore is the default page, served at the root
    wait_for_app(page)
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    # plotly has laid out its axes and the script is idle: a drag now is a selection
    page.wait_for_function("() => { const gd = document.querySelector('.js-plotly-plot');"
                           " return gd && gd._fullLayout && gd._fullLayout.xaxis && gd._fullLayout.xaxis._offset; }",
                           timeout=30_000)
    wait_for_app(page)
    page.wait_for_timeout(500)
    before = decoded_image(page).get_attribute("src")
    # screen position of z = (0, 3) from plotly's own axis mapping
    at = page.evaluate("""() => {
      const gd = document.querySelector('.js-plotly-plot'), fl = gd._fullLayout, r = gd.getBoundingClientRect();
      return [r.left + fl.xaxis._offset + fl.xaxis.l2p(0), r.top + fl.yaxis._offset + fl.yaxis.l2p(3)];
    }""")
    page.mouse.move(at[0] - 25, at[1] - 25)
    page.mouse.down()
    page.mouse.move(at[0], at[1], steps=5)
    page.mouse.move(at[0] + 25, at[1] + 25, steps=5)
    page.mouse.up()
    page.wait_for_function("() => document.querySelector('[data-testid=stCode]').innerText.includes('z = [')"
                           " && !document.querySelector('[data-testid=stCode]').innerText.includes('[0.00, 0.00]')",
                           timeout=30_000)
    z = [float(v) for v in page.locator("[data-testid='stCode']").first.inner_text()
         .split("[")[1].split("]")[0].split(",")]
    assert abs(z[0] - 0.0) < 0.15 and abs(z[1] - 3.0) < 0.15, z
    assert abs(float(page.locator("[data-testid='stSliderThumbValue']").nth(1).inner_text()) - z[1]) < 0.03
    assert decoded_image(page).get_attribute("src") != before
    page.screenshot(path=str(ARTIFACTS / "explore-box.png"), full_page=True)
    assert_no_traceback(page)


def test_interpolate_two_uploads_and_download_a_gif(server, page):
    page.goto(f"{server}/interpolate")
    wait_for_app(page)
    inputs = page.locator("[data-testid='stFileUploaderDropzoneInput']")
    inputs.nth(0).set_input_files(files=[{"name": "zero.png", "mimeType": "image/png", "buffer": digit_png("zero")}])
    wait_for_app(page)
    inputs.nth(1).set_input_files(files=[{"name": "one.png", "mimeType": "image/png", "buffer": digit_png("one")}])
    wait_for_app(page)
    button = page.get_by_role("button", name="Download GIF")
    button.wait_for(timeout=30_000)
    label = button.inner_text()
    assert "12 frames" in label
    page.screenshot(path=str(ARTIFACTS / "interpolate.png"), full_page=True)
    with page.expect_download() as dl:
        button.click()
    data = open(dl.value.path(), "rb").read()
    assert data[:6] == b"GIF89a"
    gif = Image.open(io.BytesIO(data))
    assert gif.n_frames == 12 and gif.info.get("loop") == 0 and gif.size == (256, 256)
    frames = []
    for i in range(gif.n_frames):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("L"), dtype=int))
    assert np.abs(frames[0] - frames[-1]).mean() > 5  # it really goes from a 0 to a 1
    # and the browser itself opens the downloaded file
    import base64
    viewer = page.context.new_page()
    viewer.set_content(f'<img id="g" src="data:image/gif;base64,{base64.b64encode(data).decode()}">')
    viewer.wait_for_function("() => document.getElementById('g').complete")
    assert viewer.evaluate("() => [document.getElementById('g').naturalWidth, "
                           "document.getElementById('g').naturalHeight]") == [256, 256]
    viewer.close()
    assert_no_traceback(page)


@pytest.mark.parametrize("name,payload", [
    ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),
    ("script.jpg", b"#!/bin/sh\nrm -rf /\n"),
])
def test_a_corrupt_upload_shows_an_error_not_a_traceback(server, page, name, payload):
    page.goto(f"{server}/interpolate")
    wait_for_app(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").nth(0).set_input_files(
        files=[{"name": name, "mimeType": "image/png", "buffer": payload}])
    wait_for_app(page)
    alert = page.locator("[data-testid='stAlertContentError']")
    alert.wait_for(timeout=30_000)
    assert name in alert.inner_text()
    page.screenshot(path=str(ARTIFACTS / f"error-{name}.png"), full_page=True)
    assert_no_traceback(page)
    # and the app keeps working: the other side still takes a good image
    page.locator("[data-testid='stFileUploaderDropzoneInput']").nth(1).set_input_files(
        files=[{"name": "one.png", "mimeType": "image/png", "buffer": digit_png("one")}])
    wait_for_app(page)
    page.get_by_text("reconstruction").first.wait_for(timeout=30_000)


def test_the_first_request_after_a_start_can_open_a_subpage(browser):
    """A fresh server whose first request is /grid still renders through app.py (picker, navigation)."""
    with app_server() as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/grid")
        wait_for_app(page)
        page.get_by_role("heading", name="Grid").wait_for(timeout=30_000)
        page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").wait_for(timeout=30_000)  # the picker
        nav = page.locator("[data-testid='stSidebarNav']").inner_text()
        assert all(t in nav for t in ("Explore", "Grid", "Interpolate", "PCA")) and "app" not in nav.split()
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)  # the decoded grid
        assert_no_traceback(page)
        page.close()


def test_train_a_tiny_job_from_the_page_and_open_it_in_explore(browser, tmp_path):
    """Start the quick preset on the Train page, watch it finish, open the new model in Explore."""
    env = {"VAE_RUNS_DIR": str(tmp_path / "runs"), "VAE_CACHE_DIR": str(tmp_path / "cache")}
    with app_server(env) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(f"{url}/train")
        wait_for_app(page)
        preset = page.get_by_role("combobox", name="Preset")
        preset.wait_for(timeout=30_000)
        preset.click()
        page.get_by_role("option", name="Quick test (digits, 1 minute)").click()
        wait_for_app(page)
        page.get_by_role("button", name="Start job").click()
        page.get_by_text("started.").first.wait_for(timeout=30_000)
        # the job board refreshes itself every 2 s: wait for the progress bar to say done
        page.get_by_text("· done ·").first.wait_for(timeout=180_000)
        page.get_by_role("button", name="Open in Explore").wait_for(timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "train-done.png"), full_page=True)
        assert_no_traceback(page)
        page.get_by_role("button", name="Open in Explore").click()
        page.get_by_role("heading", name="Explore", exact=True).wait_for(timeout=60_000)
        wait_for_app(page)
        picker = page.locator("[data-testid='stSidebar']").get_by_role("combobox", name="Model")
        picker.wait_for(timeout=30_000)
        assert picker.input_value().startswith("runs/") and "digits" in picker.input_value()
        decoded_image(page).wait_for(timeout=30_000)
        page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)  # its latents were cached by the job
        page.screenshot(path=str(ARTIFACTS / "train-explore.png"), full_page=True)
        assert_no_traceback(page)
        page.close()
