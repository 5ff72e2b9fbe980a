"""The explorer in a real browser (ui/latent_explorer.js under `streamlit run app.py`,
Debian's Chromium): slider bursts and drags, point clicks, same-size geometry, links
that keep z across navigation and reloads, favourites across a reload, both themes,
and the public mode. Screenshots land in test-artifacts/ for a person to look at.
"""
import base64
import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO
from tests.live_app import app_server, decoded_image, explorer_state, settled_z, wait_for_app
from tests.test_browser import ARTIFACTS, assert_no_traceback, digit_png

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def shipped():
    from vae_core.checkpoint import load_checkpoint
    from vae_core.latents import load_cached_latents
    out = {}
    for name in ("mnist-z2", "mnist-z16"):
        ck = load_checkpoint(REPO / "checkpoints" / name)
        out[name] = (ck, load_cached_latents(ck.hash, "test"))
    return out


def open_explorer(page, url: str) -> None:
    page.goto(url)
    wait_for_app(page)
    page.locator(".vle").wait_for(timeout=60_000)
    # the decoder's weights and the points arrive after the first picture
    page.wait_for_function("() => { const r = document.querySelector('.vle'); return r && r.dataset.points"
                           " && window.__vaeDecoders && Object.keys(window.__vaeDecoders).length > 0; }",
                           timeout=60_000)


def shown_pixels(page) -> np.ndarray:
    src = decoded_image(page).get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("L")).astype(int)


def assert_picture_is_decode_of(page, ck, z):
    from vae_core.images import decode
    assert np.abs(shown_pixels(page) - decode(ck.model, z).astype(int)).max() <= 1


def press(page, slider: str, key: str, times: int, every_ms: int = 0) -> None:
    """Focus a slider and press a key on it `times` times, every_ms apart (0: as fast as the keyboard goes)."""
    page.get_by_role("slider", name=slider).focus()
    for _ in range(times):
        page.keyboard.press(key)
        if every_ms:
            page.wait_for_timeout(every_ms)


def wait_heading(page, text: str, timeout_ms: int = 60_000) -> None:
    """Wait for the page's title (h1) to read exactly text."""
    page.wait_for_function("(t) => [...document.querySelectorAll('h1')].some((h) => h.innerText.trim() === t)",
                           arg=text, timeout=timeout_ms)


def screen_of(page, x: float, y: float):
    """Viewport position of plot coordinates (x, y), from the canvas box and the axis ranges."""
    return page.evaluate("""([x, y]) => {
      const ex = document.querySelector('.vle').__explorer, r = ex.pts.getBoundingClientRect();
      const [[x0, x1], [y0, y1]] = ex.data.ranges;
      return [r.left + (x - x0) / (x1 - x0) * r.width, r.top + (1 - (y - y0) / (y1 - y0)) * r.height];
    }""", [x, y])


def test_the_scatter_plot_area_and_the_image_are_the_same_size(server, page):
    open_explorer(page, f"{server}/?model=fashion-mnist-missing")  # an unknown model falls back, with a notice
    open_explorer(page, f"{server}/?model=fashion-z2")
    boxes = page.evaluate("""() => { const r = document.querySelector('.vle');
      const b = (e) => { const q = e.getBoundingClientRect(); return [q.left, q.top, q.width, q.height]; };
      return {plot: b(r.querySelector('.vle-points')), img: b(r.querySelector('img[alt="decode(z)"]')),
              legend: b(r.querySelector('.vle-legend')), chips: [...r.querySelectorAll('.vle-chip')].map(b)}; }""")
    plot, img, legend = boxes["plot"], boxes["img"], boxes["legend"]
    assert abs(plot[2] - img[2]) < 1 and abs(plot[3] - img[3]) < 1 and plot[2] == pytest.approx(plot[3])
    assert plot[2] >= 400 and abs(plot[1] - img[1]) < 1  # side by side, tops aligned, at 1400 px
    # the legend: every class shown whole, above the plot area, covering no point
    assert len(boxes["chips"]) == 10
    for chip in boxes["chips"]:
        assert chip[1] + chip[3] <= plot[1] and chip[0] + chip[2] <= legend[0] + legend[2] + 1
    assert "T-shirt/top" in page.locator(".vle-legend").inner_text()
    assert img[2] == pytest.approx(decoded_image(page).evaluate("e => e.getBoundingClientRect().width"))
    assert decoded_image(page).evaluate("e => getComputedStyle(e).imageRendering") == "pixelated"
    page.screenshot(path=str(ARTIFACTS / "explore-fashion.png"), full_page=True)
    assert_no_traceback(page)


def test_sixty_presses_at_twenty_a_second_are_all_kept(server, page, shipped):
    ck, _ = shipped["mnist-z2"]
    open_explorer(page, f"{server}/?model=mnist-z2&z=-1.500,0.500")
    assert settled_z(page) == [-1.5, 0.5]
    press(page, "z[0]", "ArrowRight", 60, every_ms=50)  # 20 presses a second
    z = settled_z(page)
    assert z == [1.5, 0.5]  # every press counted: 60 x 0.05
    s = explorer_state(page)
    assert s["marker"] == "1.5000,0.5000" and s["url"] == "1.500,0.500"
    assert_picture_is_decode_of(page, ck, z)
    # and back with a burst on the other slider, as fast as the keyboard goes
    press(page, "z[1]", "ArrowLeft", 30)
    assert settled_z(page) == [1.5, -1.0]
    assert_picture_is_decode_of(page, ck, [1.5, -1.0])
    assert_no_traceback(page)


def test_a_two_second_mouse_drag_decodes_all_the_way(server, page, shipped):
    ck, _ = shipped["mnist-z2"]
    open_explorer(page, f"{server}/?model=mnist-z2&z=-3.000,0.000")
    settled_z(page)
    page.evaluate("""() => { window.__srcs = new Set();
      new MutationObserver(() => window.__srcs.add(document.querySelector('img[alt="decode(z)"]').src))
        .observe(document.querySelector('img[alt="decode(z)"]'), {attributes: true, attributeFilter: ['src']}); }""")
    box = page.get_by_role("slider", name="z[0]").bounding_box()
    y = box["y"] + box["height"] / 2
    x_from = box["x"] + box["width"] * (1 / 8)   # -3 on [-4, 4]
    x_to = box["x"] + box["width"] * (6 / 8)     # +2
    page.mouse.move(x_from, y)
    page.mouse.down()
    for k in range(1, 41):  # 40 moves over 2 s
        page.mouse.move(x_from + (x_to - x_from) * k / 40, y)
        page.wait_for_timeout(50)
    during = page.evaluate("() => window.__srcs.size")
    page.mouse.up()
    z = settled_z(page)
    assert during >= 20, during  # a picture per move, not one at the release
    assert 1.5 <= z[0] <= 2.5 and z[1] == 0.0
    assert_picture_is_decode_of(page, ck, z)
    assert explorer_state(page)["marker"] == f"{z[0]:.4f},0.0000"
    assert_no_traceback(page)


def test_clicking_a_point_jumps_to_that_images_whole_mu(server, page, shipped):
    """mnist-z16: the click lands on a plotted point; z becomes its 16-dimensional posterior mean."""
    ck, lat = shipped["mnist-z16"]
    open_explorer(page, f"{server}/?model=mnist-z16")
    settled_z(page)
    ax, ay = page.evaluate("() => { const d = document.querySelector('.vle').__explorer.data; return [d.ax, d.ay]; }")
    px, py = lat.mu @ np.array(ax), lat.mu @ np.array(ay)
    # a point well away from the others, so the click can only mean it
    order = np.argsort(-(np.abs(px - np.median(px)) + np.abs(py - np.median(py))))
    target = None
    for i in order[:200]:
        close = np.sum((px - px[i]) ** 2 + (py - py[i]) ** 2 < 0.3 ** 2)
        if close == 1 and np.all(np.abs(lat.mu[i]) < 4):
            target = int(i)
            break
    assert target is not None
    sx, sy = screen_of(page, float(px[target]), float(py[target]))
    page.mouse.move(sx, sy)
    tip = page.locator(".vle-tip")
    tip.wait_for(state="visible", timeout=5_000)
    assert f"#{target} " in tip.inner_text()  # the hover names the point under the mouse
    page.mouse.click(sx, sy)
    z = settled_z(page)
    assert np.allclose(z, np.round(lat.mu[target], 3), atol=1e-3), (z, lat.mu[target])
    assert_picture_is_decode_of(page, ck, z)
    # the readout shows all 16 values, on screen, not cut
    code = page.locator(".vle-out code")
    assert code.inner_text() == "z = [" + ", ".join(f"{v:.3f}" for v in z) + "]"
    assert code.evaluate("e => e.scrollWidth <= e.clientWidth + 1 && e.getBoundingClientRect().height > 0")
    page.screenshot(path=str(ARTIFACTS / "explore-point-click.png"), full_page=True)
    assert_no_traceback(page)


def test_clicking_empty_space_moves_the_plotted_coordinates_there(server, page):
    open_explorer(page, f"{server}/?model=mnist-z2")
    settled_z(page)
    # a spot inside the sliders' range [-4, 4] with no test point within reach
    spot = page.evaluate("""() => { const ex = document.querySelector('.vle').__explorer;
      for (let fy = 0.1; fy < 0.95; fy += 0.03) for (let fx = 0.1; fx < 0.95; fx += 0.03) {
        const mx = ex.s * fx, my = ex.s * fy, [x, y] = ex.fromPx(mx, my);
        if (Math.abs(x) < 3.5 && Math.abs(y) < 3.5 && ex.nearest(mx, my) < 0) {
          const r = ex.pts.getBoundingClientRect(); return [r.left + mx, r.top + my, x, y]; } }
      return null; }""")
    assert spot is not None
    page.mouse.click(spot[0], spot[1])
    z = settled_z(page)
    assert abs(z[0] - spot[2]) < 0.05 and abs(z[1] - spot[3]) < 0.05, (z, spot)
    assert_no_traceback(page)


def test_a_link_keeps_model_and_z_across_navigation_reload_and_a_new_tab(server, page, browser):
    open_explorer(page, f"{server}/?model=mnist-z2&z=1.500,-2.000")
    assert settled_z(page) == [1.5, -2.0]
    for name, heading in (("Grid", "Grid"), ("Compare", "Compare"), ("Interpolate", "Interpolate")):
        page.locator("[data-testid='stSidebarNav']").get_by_text(name, exact=True).click()
        wait_heading(page, heading)
        wait_for_app(page)
        query = page.evaluate("() => decodeURIComponent(location.search)")
        assert "model=mnist-z2" in query and "z=1.500,-2.000" in query, (name, query)
        if name == "Grid":
            grid_url = page.url
    page.reload()
    wait_for_app(page)
    assert "z=1.500,-2.000" in page.evaluate("() => decodeURIComponent(location.search)")
    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()  # a new tab, a new session
    other.goto(grid_url)
    wait_for_app(other)
    wait_heading(other, "Grid")
    other.locator("[data-testid='stSidebarNav']").get_by_text("Explore", exact=True).click()
    other.locator(".vle").wait_for(timeout=60_000)
    assert settled_z(other) == [1.5, -2.0]
    other.context.close()
    # a wrong link: a notice, not silent zeros
    page.goto(f"{server}/?model=mnist-z2&z=1,2,3")
    wait_for_app(page)
    page.get_by_text("has 3 values but this model has 2").first.wait_for(timeout=30_000)
    page.goto(f"{server}/?model=mnist-z2&z=9,-1")
    wait_for_app(page)
    page.get_by_text("were clipped").first.wait_for(timeout=30_000)
    assert settled_z(page) == [4.0, -1.0]
    assert_no_traceback(page)


def test_pca_sliders_move_the_marker_and_the_link_reopens_on_explore(server, page, browser):
    open_explorer(page, f"{server}/pca?model=mnist-z16")
    wait_heading(page, "PCA")
    z0 = settled_z(page)
    marker0 = explorer_state(page)["marker"]
    press(page, "PC1", "ArrowRight", 15, every_ms=40)
    z = settled_z(page)
    s = explorer_state(page)
    assert s["marker"] != marker0 and z != z0
    assert float(dict(s["sliders"])["PC1"]) == pytest.approx(1.5, abs=1e-6)
    page.screenshot(path=str(ARTIFACTS / "pca.png"), full_page=True)
    # the traversal strip fits the main column (it overflowed it by 44 px)
    strip = page.locator('img[alt^="z moved along PC1"]')
    main = page.locator("[data-testid='stMainBlockContainer']").bounding_box()
    box = strip.bounding_box()
    assert box["x"] >= main["x"] and box["x"] + box["width"] <= main["x"] + main["width"] + 1, (box, main)
    page.get_by_role("button", name="Open this z on Explore").click()
    wait_heading(page, "Explore")
    page.locator(".vle").wait_for(timeout=60_000)
    assert settled_z(page) == z
    link = page.url
    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    open_explorer(other, link)
    assert settled_z(other) == z
    other.context.close()
    assert_no_traceback(page)


def test_favourites_last_across_a_reload_and_a_delete_is_final(server, page, tmp_path):
    from vae_core.favourites import export_favourites
    open_explorer(page, f"{server}/?model=mnist-z2&z=0.250,-0.750")
    settled_z(page)
    page.get_by_role("tab", name="Favourites").click()
    page.get_by_label("Name").fill("fat zero")
    page.get_by_label("Name").press("Enter")
    page.get_by_role("button", name="Save current z").click()
    page.get_by_text("fat zero").first.wait_for(timeout=30_000)
    page.reload()
    wait_for_app(page)
    page.get_by_role("tab", name="Favourites").click()
    page.get_by_text("fat zero").first.wait_for(timeout=30_000)
    # an import shows at once
    data = export_favourites({"imported one": [-1.0, 1.0]}, "mnist-z2", 2)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").last.set_input_files(
        files=[{"name": "favs.json", "mimeType": "application/json", "buffer": data}])
    page.get_by_text("imported one").first.wait_for(timeout=30_000)
    page.get_by_text("Imported 1 favourite").first.wait_for(timeout=30_000)
    # Go moves z to it
    page.get_by_role("button", name="Go").nth(1).click()
    page.wait_for_function("() => decodeURIComponent(location.search).includes('z=-1.000,1.000')", timeout=30_000)
    # the explorer takes the server's z and scrolls its picture into view: let it, before clicking on
    assert settled_z(page) == [-1.0, 1.0]
    # delete the imported one: it stays deleted after reruns and a reload
    page.get_by_role("tab", name="Favourites").click()
    page.get_by_role("button", name="Delete").nth(1).click()
    page.wait_for_function("() => ![...document.querySelectorAll('strong')].some((e) => e.innerText === 'imported one')",
                           timeout=30_000)
    page.get_by_role("button", name="Reset z to 0").click()  # another rerun
    page.wait_for_function("() => decodeURIComponent(location.search).includes('z=0.000,0.000')", timeout=30_000)
    assert page.get_by_text("imported one").count() == 0
    page.reload()
    wait_for_app(page)
    page.get_by_role("tab", name="Favourites").click()
    page.get_by_text("fat zero").first.wait_for(timeout=30_000)
    assert page.get_by_text("imported one").count() == 0
    assert_no_traceback(page)


def test_jump_to_an_uploaded_image_brings_the_picture_into_view(server, page):
    open_explorer(page, f"{server}/?model=mnist-z2")
    settled_z(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").first.set_input_files(
        files=[{"name": "zero.png", "mimeType": "image/png", "buffer": digit_png("zero")}])
    jump = page.get_by_role("button", name="Jump to this image's z")
    jump.wait_for(timeout=30_000)
    jump.scroll_into_view_if_needed()
    jump.click()
    page.wait_for_function("() => !decodeURIComponent(location.search).includes('z=0.000,0.000')", timeout=30_000)
    settled_z(page)
    r = decoded_image(page).bounding_box()
    assert r["y"] >= 0 and r["y"] + r["height"] <= page.viewport_size["height"], r
    assert_no_traceback(page)


def test_both_themes_follow_the_browser(server, browser):
    """Every page in the browser's light and dark scheme; the scheme flips live on each page
    (Streamlit follows prefers-color-scheme as it changes), and back."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme="light")
    pg = context.new_page()

    def luminance(css: str) -> float:
        if css.startswith("#"):
            return float(np.mean([int(css[i:i + 2], 16) for i in (1, 3, 5)]))
        return float(np.mean([int(v) for v in css[css.index("(") + 1:css.index(")")].split(",")[:3]]))

    for path in ("/?model=mnist-z16&z=" + ",".join(["0.5"] * 16), "/pca?model=mnist-z16", "/grid", "/interpolate",
                 "/compare", "/train"):
        pg.goto(server + path)
        wait_for_app(pg)
        name = path.strip("/").split("?")[0] or "explore"
        for scheme in ("dark", "light") if "pca" in path else ("light", "dark"):
            pg.emulate_media(color_scheme=scheme)
            bright = scheme == "light"
            pg.wait_for_function("(bright) => { const c = getComputedStyle(document.querySelector("
                                 "'[data-testid=stApp]')).backgroundColor.match(/\\d+/g).slice(0, 3).map(Number);"
                                 " const l = (c[0] + c[1] + c[2]) / 3; return bright ? l > 200 : l < 80; }",
                                 arg=bright, timeout=10_000)
            pg.wait_for_timeout(300)  # plotly and the canvas redraw in the scheme's colours, for the screenshot
            pg.screenshot(path=str(ARTIFACTS / f"theme-{scheme}-{name}.png"), full_page=True)
            bg = pg.evaluate("() => getComputedStyle(document.querySelector('[data-testid=stApp]')).backgroundColor")
            assert (luminance(bg) < 80) if scheme == "dark" else (luminance(bg) > 200), (path, bg)
            assert_no_traceback(pg)
    for scheme in ("light", "dark"):
        pg.emulate_media(color_scheme=scheme)
        pg.goto(server + "/?model=mnist-z2")
        pg.locator(".vle").wait_for(timeout=60_000)
        pg.wait_for_function("() => document.querySelector('.vle').dataset.points", timeout=60_000)
        # the axes' labels are drawn in the theme's text colour: light on dark, dark on light
        fg = pg.evaluate("() => document.querySelector('.vle').__explorer.themeColour")
        assert (luminance(fg) > 150) if scheme == "dark" else (luminance(fg) < 100), (scheme, fg)
    context.close()


@pytest.fixture(scope="module")
def public_server():
    """A shared demo as it would be deployed: public mode, every picture decoded on the server."""
    with app_server({"VAE_PUBLIC": "1", "VAE_BROWSER_DECODE": "0"}) as url:
        yield url


def test_public_mode_has_no_train_page_and_no_server_paths(browser, public_server):
    url = public_server
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.goto(f"{url}/")
    wait_for_app(pg)
    nav = pg.locator("[data-testid='stSidebarNav']").inner_text()
    assert "Explore" in nav and "Train" not in nav
    pg.goto(f"{url}/train")
    wait_for_app(pg)
    pg.wait_for_timeout(1000)
    text = pg.locator("[data-testid='stApp']").inner_text()
    assert "Start job" not in text and "New training job" not in text
    pg.goto(f"{url}/compare?model=mnist-z2")
    wait_for_app(pg)
    wait_heading(pg, "Compare")
    text = pg.locator("[data-testid='stApp']").inner_text()
    assert "Evaluate" not in [b.inner_text() for b in pg.get_by_role("button").all()]
    assert str(REPO) not in text and "/tmp" not in text
    assert_no_traceback(pg)
    pg.close()


def test_without_browser_decoding_the_server_pictures_follow_a_burst(browser, shipped, public_server):
    ck, _ = shipped["mnist-z2"]
    url = public_server
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.goto(f"{url}/?model=mnist-z2&z=0.000,-1.000")
    wait_for_app(pg)
    pg.locator(".vle").wait_for(timeout=60_000)
    settled_z(pg)
    assert pg.evaluate("() => Object.keys(window.__vaeDecoders || {}).length") == 0
    press(pg, "z[0]", "ArrowRight", 20, every_ms=50)
    z = settled_z(pg)
    assert z == [1.0, -1.0]
    assert_picture_is_decode_of(pg, ck, z)
    assert_no_traceback(pg)
    pg.close()


def test_the_browser_decoder_matches_pytorch(server, page, shipped):
    """ui/latent_explorer.js's decoder against PyTorch on the same weights: every pixel within one grey level."""
    from vae_core.images import decode
    ck, _ = shipped["mnist-z2"]
    open_explorer(page, f"{server}/?model=mnist-z2")
    assert page.evaluate("() => Object.keys(window.__vaeDecoders)") == [ck.hash]
    rng = np.random.default_rng(0)
    for z in [[0.0, 0.0], [3.9, -3.9], *rng.uniform(-4, 4, (6, 2)).tolist()]:
        js = np.array(page.evaluate("([h, z]) => Array.from(window.__vaeDecodePixels(h, z).px)", [ck.hash, z]))
        torch_px = decode(ck.model, z).astype(int).ravel()
        assert np.abs(js - torch_px).max() <= 1, z
        assert (js == torch_px).mean() > 0.99, z


def test_a_run_longer_than_a_third_of_a_second_shows_that_the_app_is_working(page, public_server):
    # a server whose PCA page nothing has opened yet: its first run for mnist-bin-z50 fits the
    # PCA and the TWO-NN dimension of 10,000 50-d latents, seconds on these cores
    server = public_server
    page.goto(f"{server}/?model=mnist-bin-z50")
    wait_for_app(page, 120_000)  # Explore's own first run is over (wait_for_app reads the run state)
    # The indicator is CSS on the run state (app.py): an animation holds it at opacity 0 for 0.3 s,
    # then shows it. Sampling its opacity on a timer proved blind in parallel CI runs (a starved
    # renderer took 7 and 10 samples, and painted no frame that would advance the animation), so
    # the page records every run-state change the moment it happens (a MutationObserver needs no
    # timer and no frame) and, at each "running", seeks the live indicator's own animation to
    # 0.29 s and 0.31 s into the run and reads what the page would show then, putting it back after.
    page.evaluate("""() => { window.__runs = [];
        const opacityAt = (a, el, pseudo, t) => { const was = a.currentTime; a.currentTime = t;
            const o = getComputedStyle(el, pseudo).opacity; a.currentTime = was; return o; };
        const record = (el) => { const state = el.getAttribute('data-test-script-state');
            const busy = document.getAnimations().filter((a) => a.animationName === 'vae-busy-in'
                                                         && a.effect && a.effect.target === el);
            window.__runs.push({state, at: performance.now(), text: getComputedStyle(el, '::after').content,
                anims: busy.map((a) => ({pseudo: a.effect.pseudoElement, delay: a.effect.getTiming().delay,
                    before: opacityAt(a, el, a.effect.pseudoElement, 290),
                    after: opacityAt(a, el, a.effect.pseudoElement, 310)}))}); };
        new MutationObserver((ms) => { for (const m of ms) record(m.target); })
            .observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-test-script-state']});
        // A page switch clears the old page's elements, the app's <style> among them, until the
        // new run sends it again (its first element): a run recorded in that gap is read again
        // once the style is back, while the run is still going.
        new MutationObserver(() => { const last = window.__runs[window.__runs.length - 1];
            const app = document.querySelector('[data-testid=stApp]');
            if (last && last.state === 'running' && last.text === 'none' && !last.reread
                && app.getAttribute('data-test-script-state') === 'running'
                && getComputedStyle(app, '::after').content !== 'none') {
                window.__runs.pop(); record(app);
                Object.assign(window.__runs[window.__runs.length - 1], {at: last.at, reread: true}); } })
            .observe(document.body, {subtree: true, childList: true}); }""")
    page.locator("[data-testid='stSidebarNav']").get_by_text("PCA", exact=True).click()
    page.wait_for_function("() => [...document.querySelectorAll('h1')].some((h) => h.innerText.trim() === 'PCA')",
                           timeout=120_000)
    wait_for_app(page, 120_000)
    runs = page.evaluate("() => window.__runs")
    starts = [i for i, r in enumerate(runs) if r["state"] == "running"]
    assert starts, runs
    # the PCA page's first run lasted well past 0.3 s (fitting 10,000 50-d latents)
    longest = max((runs[i + 1]["at"] if i + 1 < len(runs) else float("inf")) - runs[i]["at"] for i in starts)
    assert longest > 300, runs
    for i in starts:
        r = runs[i]
        assert "Working" in r["text"], r  # the label is there from the run's start ...
        # ... on both halves (the bar and the label), hidden until 0.3 s into the run, shown after
        assert sorted(a["pseudo"] for a in r["anims"]) == ["::after", "::before"], r
        assert all(a["delay"] == 300 and a["before"] == "0" and a["after"] == "1" for a in r["anims"]), r
    # and it is gone whenever no run is going on
    assert all(r["text"] == "none" and not r["anims"] for r in runs if r["state"] != "running"), runs


def test_download_png_legend_toggle_and_a_drag_on_the_scatter(server, page, shipped):
    from vae_core.images import decode
    ck, _ = shipped["mnist-z2"]
    open_explorer(page, f"{server}/?model=mnist-z2&z=0.500,-0.500")
    settled_z(page)
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download PNG").click()
    png = np.asarray(Image.open(dl.value.path()).convert("L")).astype(int)
    # Copy z puts the whole readout on the clipboard
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy z").click()
    page.get_by_role("button", name="Copied").wait_for(timeout=5_000)
    assert page.evaluate("() => navigator.clipboard.readText()") == "z = [0.500, -0.500]"
    assert png.shape == (280, 280)  # 10x, crisp: every 10x10 block is one decoded pixel
    assert np.abs(png[::10, ::10] - decode(ck.model, [0.5, -0.5]).astype(int)).max() <= 1
    # hiding a class in the legend takes its points off the canvas (and no others)
    before = page.evaluate("() => document.querySelector('.vle-points').toDataURL()")
    page.locator(".vle-chip", has_text="1").first.click()
    assert page.evaluate("() => document.querySelector('.vle-points').toDataURL()") != before
    assert page.locator(".vle-chip.off").count() == 1
    # a drag across empty space and points moves z continuously and ends where the mouse let go
    (x0, y0), (x1, _) = screen_of(page, -3.0, -3.5), screen_of(page, 3.0, -3.5)
    page.mouse.move(x0, y0)
    page.mouse.down()
    for k in range(1, 21):
        page.mouse.move(x0 + (x1 - x0) * k / 20, y0)
        page.wait_for_timeout(30)
    page.mouse.up()
    z = settled_z(page)
    assert abs(z[0] - 3.0) < 0.05 and abs(z[1] + 3.5) < 0.05, z
    assert_picture_is_decode_of(page, ck, z)
    assert_no_traceback(page)


NOT_FOUND_WATCH = """() => {
  window.__vaeNotFound = window.__vaeNotFound || [];
  new MutationObserver(() => {
    const t = document.body ? document.body.innerText : '';
    if (/page not found/i.test(t)) window.__vaeNotFound.push(location.pathname);
  }).observe(document, {subtree: true, childList: true, characterData: true});
}"""


def test_deep_links_open_their_page_with_no_page_not_found(server, browser):
    """/explore (with and without model and z), /pca, /grid and / each open their page, and
    no "Page not found" dialog shows at any moment (a MutationObserver installed before
    the page's own scripts watches every change); / lands on /explore keeping its query."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.add_init_script(f"({NOT_FOUND_WATCH})()")
    pg, opened, not_found = ctx.new_page(), [], []
    for path, heading in (("/explore", "Explore"), ("/explore?model=mnist-z16", "Explore"),
                          ("/explore?model=mnist-z2&z=0.500,-1.000", "Explore"), ("/pca?model=mnist-z16", "PCA"),
                          ("/grid?model=mnist-z2", "Grid"), ("/?model=mnist-z2&z=1.000,1.000", "Explore")):
        pg.goto(server + path)
        wait_for_app(pg)
        wait_heading(pg, heading)
        pg.wait_for_timeout(500)
        assert_no_traceback(pg)
        not_found += pg.evaluate("window.__vaeNotFound")  # a page load starts a fresh window
        if heading == "Explore":
            opened.append(pg.url)
    assert not_found == []
    assert all("/explore?" in u for u in opened), opened
    # the root's query travelled to /explore: z is the link's
    assert settled_z(pg) == [1.0, 1.0]
    pg.reload()
    wait_for_app(pg)
    pg.locator(".vle").wait_for(timeout=60_000)
    assert pg.evaluate("window.__vaeNotFound") == [] and settled_z(pg) == [1.0, 1.0]
    ctx.close()


def test_a_run_deleted_while_viewed_is_said_on_the_next_page(browser, tmp_path):
    """Someone deletes the run this browser is viewing: the next page says so in the sidebar
    (and keeps saying it on the next page too) while it shows the default model; picking
    another model ends the notice. It used to switch to mnist-z2 silently."""
    import shutil
    runs = tmp_path / "runs"
    shutil.copytree(REPO / "checkpoints" / "mnist-z2", runs / "mine")
    with app_server({"VAE_RUNS_DIR": str(runs)}) as url:
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        pg = ctx.new_page()
        open_explorer(pg, f"{url}/explore?model=runs/mine")
        sidebar = pg.locator('[data-testid="stSidebar"]')
        assert "deleted" not in sidebar.inner_text()
        shutil.rmtree(runs / "mine")
        for name in ("Grid", "PCA"):
            sidebar.get_by_role("link", name=name).click()
            wait_heading(pg, name)
            wait_for_app(pg)
            notice = sidebar.get_by_text("the model you were viewing", exact=False)
            notice.wait_for(timeout=30_000)
            assert "runs/mine" in notice.inner_text() and "deleted" in notice.inner_text()
            assert "model=mnist-z2" in pg.url
            assert_no_traceback(pg)
        pg.screenshot(path=str(ARTIFACTS / "run-deleted-notice.png"))
        sidebar.get_by_role("link", name="Explore").click()
        wait_heading(pg, "Explore")
        pg.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
        pg.get_by_role("option", name="mnist-z16", exact=False).first.click()
        pg.wait_for_function("() => location.search.includes('model=mnist-z16')", timeout=30_000)
        wait_for_app(pg)
        assert "the model you were viewing" not in sidebar.inner_text()
        ctx.close()


def test_a_colour_64_pixel_model_decodes_in_colour_in_the_browser(server, browser):
    """The shipped color-sprites-z10: slider presses decode in the browser (its decoder
    draws three channels), the picture is colour, 64x64, equals the model's decode(z) and
    has the scatter's size; the scatter colours points by shape."""
    from tests.conftest import REPO
    from vae_core.checkpoint import load_checkpoint
    from vae_core.images import decode
    from vae_core.data import load_dataset
    from vae_core.latents import load_cached_latents
    ck = load_checkpoint(REPO / "checkpoints" / "color-sprites-z10")
    # start at a big test sprite's z (the link carries it): this model's test means spread wide
    # around a point off the origin, and z = 0 decodes to a dim smear (README, Shipped models)
    from vae_core.sprites import colours, factors_to_index
    test = load_dataset("color-sprites", "test")
    scale = test.factors[:200, 1]
    vivid = np.ptp(colours(factors_to_index(test.factors[:200])).astype(int), axis=1) >= 30
    big = int(np.argmax(np.where(vivid, scale, -1)))  # a big sprite of a clear hue
    mu = load_cached_latents(ck.hash, "test", REPO / "cache").mu[big]
    start = np.round(np.clip(mu, -2.5, 2.5) / 0.05) * 0.05
    link = ",".join(f"{v:.2f}" for v in start)
    url = server  # the shipped model and its shipped latent cache: the app builds nothing
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    open_explorer(pg, f"{url}/explore?model=color-sprites-z10&z={link}")
    assert pg.evaluate("(h) => !!(window.__vaeDecoders && window.__vaeDecoders[h])", ck.hash)
    # the sliders shown by default are the dims that carry the most KL: take the first two
    a, b = [int(n.strip("z[]")) for n in pg.evaluate(
        "() => [...document.querySelectorAll('.vle input[type=range]')].map(e => e.getAttribute('aria-label'))")[:2]]
    press(pg, f"z[{a}]", "ArrowRight", 6)
    press(pg, f"z[{b}]", "ArrowLeft", 4)
    z = settled_z(pg)
    assert z[a] == pytest.approx(start[a] + 0.3, abs=1e-3) and z[b] == pytest.approx(start[b] - 0.2, abs=1e-3)
    src = decoded_image(pg).get_attribute("src")
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")).astype(int)
    want = decode(ck.model, np.asarray(z, np.float32)).astype(int)
    assert shown.shape == want.shape == (64, 64, 3)
    assert np.abs(shown - want).max() <= 1  # the browser's float64 loop vs PyTorch's float32
    ink = shown.max(-1) > 100
    # drawn in colour, not grey: the channel-gain head keeps each sprite's hue (a sigmoid-mean
    # model drew grey sprites here); the start sprite's true colour spans at least 30 levels
    true = colours(factors_to_index(load_dataset("color-sprites", "test").factors[[big]]))[0].astype(int)
    assert np.ptp(true) >= 30
    hue = shown[ink].mean(0)
    assert ink.sum() > 20 and np.ptp(hue) > 0.5 * np.ptp(true), (hue, true)
    boxes = pg.evaluate("""() => { const r = document.querySelector('.vle');
      const b = (e) => { const q = e.getBoundingClientRect(); return [q.width, q.height]; };
      return {plot: b(r.querySelector('.vle-points')), img: b(r.querySelector('img[alt="decode(z)"]'))}; }""")
    assert boxes["plot"] == pytest.approx(boxes["img"], abs=1)
    assert "heart" in pg.locator(".vle-legend").inner_text()
    pg.screenshot(path=str(ARTIFACTS / "explore-color-sprites-64.png"))
    assert_no_traceback(pg)
    ctx.close()


def test_fsq_sliders_step_through_levels_in_the_browser_and_the_code_follows(server, page):
    """The shipped mnist-fsq: the server decodes (no browser decoder for a quantised model); key
    presses move each slider one level at a time and stop at its last level; the picture is the
    model's decode of that grid point, the code caption follows, a reload keeps the point, and
    "Random code" lands on the grid."""
    from vae_core.checkpoint import load_checkpoint
    ck = load_checkpoint(REPO / "checkpoints" / "mnist-fsq")
    page.goto(f"{server}/explore?model=mnist-fsq")
    wait_for_app(page)
    page.locator(".vle").wait_for(timeout=60_000)
    settled_z(page)
    assert page.evaluate("(h) => !!(window.__vaeDecoders && window.__vaeDecoders[h])", ck.hash) is False
    press(page, "z[0]", "ArrowRight", 2)           # 0 -> 0.25 -> 0.5 (8 levels: steps of 0.25)
    press(page, "z[1]", "ArrowLeft", 5, every_ms=40)  # 0 -> -0.5 -> -1, then it stays at its lowest level
    z = settled_z(page)
    assert z == [0.5, -1.0, 0.0, 0.0]
    assert_picture_is_decode_of(page, ck, z)
    page.wait_for_function("() => document.body.innerText.includes('level 7/8, 1/5, 3/5, 3/5')", timeout=30_000)
    page.reload()
    wait_for_app(page)
    page.locator(".vle").wait_for(timeout=60_000)
    assert settled_z(page) == [0.5, -1.0, 0.0, 0.0]
    page.get_by_role("button", name="Random code").click()
    page.wait_for_function("(z) => !new URL(location.href).searchParams.get('z').startsWith(z)",
                           arg=",".join(f"{v:.3f}" for v in z), timeout=30_000)  # (1 in 1,000: the same code)
    z2 = settled_z(page)
    assert all(v in ck.model.quantizer.values(i) for i, v in enumerate(z2))
    assert_picture_is_decode_of(page, ck, z2)
    page.screenshot(path=str(ARTIFACTS / "explore-fsq.png"))
    assert_no_traceback(page)


def test_the_map_decodes_where_you_click_drag_and_jumps_to_a_clicked_point(server, page, shipped):
    """Map page, mnist-z16 on its shipped UMAP map: a click on empty map decodes the z of the
    lattice at that spot (and the marker sits where the click was), a drag decodes all the way,
    a click on a point jumps to that image's whole z, and a reload keeps z. Light and dark."""
    from vae_core import maps
    from vae_core.latents import cache_folder
    ck, lat = shipped["mnist-z16"]
    m = maps.load_map(cache_folder(ck.hash, REPO / "cache"), "test", "umap", lat.mu)
    open_explorer(page, f"{server}/map?model=mnist-z16")
    page.locator("[data-testid='stRadio'] label").filter(has_text="UMAP").click()
    wait_for_app(page)
    page.wait_for_function("() => { const r = document.querySelector('.vle'); return r && r.dataset.lattice === '1'"
                           " && r.dataset.points && r.__explorer.data.axis_titles[0] === 'UMAP 1'; }", timeout=60_000)
    settled_z(page)
    before = shown_pixels(page)
    spot = page.evaluate("""() => { const ex = document.querySelector('.vle').__explorer;
      for (let fy = 0.15; fy < 0.9; fy += 0.02) for (let fx = 0.15; fx < 0.9; fx += 0.02) {
        const mx = ex.s * fx, my = ex.s * fy;
        if (ex.nearest(mx, my) < 0) { const r = ex.pts.getBoundingClientRect(), [x, y] = ex.fromPx(mx, my);
          return [r.left + mx, r.top + my, x, y]; } }
      return null; }""")
    assert spot is not None
    page.mouse.click(spot[0], spot[1])
    z = settled_z(page)
    assert np.abs(np.array(z) - maps.z_at(m, spot[2:])).max() < 2e-3, (z, spot)
    assert_picture_is_decode_of(page, ck, z)
    assert np.abs(shown_pixels(page) - before).mean() > 1  # a new picture
    mx, my = map(float, page.locator(".vle").get_attribute("data-marker-xy").split(","))
    assert abs(mx - spot[2]) < 1e-3 and abs(my - spot[3]) < 1e-3  # the marker is where the click was
    page.screenshot(path=str(ARTIFACTS / "map-umap-light.png"), full_page=True)
    # a drag across the map decodes on the way
    page.evaluate("() => { window.__srcs = new Set(); new MutationObserver(() => window.__srcs.add("
                  "document.querySelector('img[alt=\"decode(z)\"]').src)).observe(document.querySelector("
                  "'img[alt=\"decode(z)\"]'), { attributes: true }); }")
    box = page.locator(".vle-points").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    for k in range(1, 21):
        page.mouse.move(box["x"] + box["width"] * (0.2 + 0.03 * k), box["y"] + box["height"] * 0.5)
        page.wait_for_timeout(30)
    page.mouse.up()
    z_drag = settled_z(page)
    assert page.evaluate("() => window.__srcs.size") >= 5
    assert np.abs(np.array(z_drag) - np.array(z)).max() > 0.05
    # a click on a point: that test image's whole posterior mean
    i = int(np.argmin(np.linalg.norm(m.points - m.points.mean(0), axis=1)))
    sx, sy = screen_of(page, *map(float, m.points[i]))
    page.mouse.click(sx, sy)
    z_pick = settled_z(page)
    picked = [j for j in np.argsort(np.linalg.norm(m.points - m.points[i], axis=1))[:5]
              if np.abs(lat.mu[j] - np.array(z_pick)).max() < 2e-3]
    assert picked, z_pick  # the point under the cursor (or its twin a pixel away)
    assert "map=umap" in page.url
    page.reload()
    open_explorer(page, page.url)
    assert np.abs(np.array(settled_z(page)) - np.array(z_pick)).max() < 2e-3
    assert page.locator(".vle").evaluate("(r) => r.__explorer.data.axis_titles[0]") == "UMAP 1"  # still UMAP
    assert_no_traceback(page)
    page.emulate_media(color_scheme="dark")
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "map-umap-dark.png"), full_page=True)


def test_a_train_plus_test_map_is_built_from_the_page_and_survives_a_reload(server, page):
    """Map page, mnist-z2, "train + test": the Build button starts a background build whose
    progress the page follows through a reload, then draws 70,000 points that decode where
    clicked; the URL keeps points=all. (PCA: seconds. The server's cache is a private copy.)"""
    page.goto(f"{server}/map?model=mnist-z2&map=pca&points=all")
    wait_for_app(page)
    build = page.get_by_role("button", name="Build the PCA map of 70,000 points")
    build.wait_for(timeout=120_000)  # the training latents are encoded first (seconds)
    build.click()
    page.wait_for_timeout(300)
    page.reload()  # the build is a process of its own: a reload neither stops nor restarts it
    page.get_by_text("Trustworthiness").wait_for(timeout=180_000)
    page.locator(".vle").wait_for(timeout=60_000)
    page.wait_for_function("() => { const r = document.querySelector('.vle'); return r && r.dataset.points"
                           " && r.__explorer.data.n_points === 70000; }", timeout=60_000)
    assert "points=all" in page.url
    before = shown_pixels(page)
    box = page.locator(".vle-points").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.25)
    settled_z(page)
    assert np.abs(shown_pixels(page) - before).mean() > 1
    page.reload()
    open_explorer(page, page.url)
    assert page.locator(".vle").evaluate("(r) => r.__explorer.data.n_points") == 70000
    assert page.get_by_role("radio", name="train + test").is_checked()
    assert_no_traceback(page)
    page.screenshot(path=str(ARTIFACTS / "map-70k-pca.png"), full_page=True)
