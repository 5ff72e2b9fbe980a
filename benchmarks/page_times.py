"""Page first-render times in a real browser: every page, cold and warm.

    python benchmarks/page_times.py [--repeats 5] [--pages Grid,Interpolate] [--no-cold]

Starts `streamlit run app.py` on localhost (tests/live_app.py) and drives Debian's
Chromium (headless) with Playwright. A page counts as drawn when the script run has
finished (the app root's data-test-script-state is "notRunning"), its h1 holds the
page's title, every plotly chart in the main area has drawn its SVG and every <img>
there has loaded; Grid also needs its mosaic (an <image> inside the chart). Figures:

  cold          a fresh server process per page: page.goto(page's URL) -> drawn.
                The first request also imports torch, loads the model and fills the
                process's caches, so this is what the first visitor waits for.
  new session   a new browser context on that same, now warm, server: goto -> drawn
                (the JS bundle is cached by nobody: a fresh context fetches it again).
  first switch  in one open session on a fresh server, the first click on the page's
                sidebar link -> drawn (process caches still empty for that page).
  warm switch   the same session later: click -> drawn, median (and max) over
                --repeats switches; each switch comes from the previous page in the list.

Switches are timed inside the page, from the click event's own timestamp to the
animation frame where the page is drawn, so the automation's round trip is left out.
Baseline, measured in the same run: the same switch in a bare two-page Streamlit app
(a title and a 3-point plotly chart): what a page switch costs before this app does
anything. PCA needs a model with more than two latent dimensions, so it runs on
mnist-z16 in its own session (switching PCA <-> Train). As scripts/run-app.sh does, the
app gets the datasets beside the clone (../shared/datasets) when VAE_DATA_ROOT is unset.
Benchmarks print figures; they never assert on time.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.live_app import app_server, free_port, launch_chromium  # noqa: E402

SHARED_DATA = REPO.parent / "shared" / "datasets"
APP_ENV = {} if os.environ.get("VAE_DATA_ROOT") or not SHARED_DATA.is_dir() else {"VAE_DATA_ROOT": str(SHARED_DATA)}

# (title in the sidebar and the h1, URL path, model, what else must be drawn)
PAGES = [
    ("Explore", "explore", "mnist-z2", None),
    ("Grid", "grid", "mnist-z2", ".js-plotly-plot svg image"),
    ("Interpolate", "interpolate", "mnist-z2", None),
    ("PCA", "pca", "mnist-z16", None),
    ("Compare", "compare", "mnist-z2", None),
    ("Train", "train", "mnist-z2", None),
]

# Drawn: the run finished, the h1 is this page's, charts and images in the main area are drawn.
DRAWN_JS = """([title, extra]) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  const main = document.querySelector('[data-testid="stMain"]') || document;
  const h1 = main.querySelector('h1');
  if (!h1 || h1.textContent.trim() !== title) return false;
  if (main.querySelector('[data-stale="true"]')) return false;
  for (const plot of main.querySelectorAll('.js-plotly-plot')) if (!plot.querySelector('.main-svg')) return false;
  for (const img of main.querySelectorAll('img')) if (!img.complete || img.naturalWidth === 0) return false;
  return !extra || !!main.querySelector(extra);
}"""

# Switch timing inside the page: the click's timestamp -> the first animation frame drawn.
# The promise is kept on window, so Python can click first and await it afterwards.
ARM_JS = """([title, extra, drawn]) => {
  const isDrawn = eval(drawn);
  let t0 = null;
  const armed = performance.now();
  document.addEventListener('click', (e) => { t0 = e.timeStamp; }, {capture: true, once: true});
  window.__switch = new Promise((resolve) => {
    const poll = () => {
      // the old page's h1 differs from this title, so a drawn page after the click is the new one
      if (t0 !== null && isDrawn([title, extra])) resolve(performance.now() - t0);
      else if (performance.now() - armed > 120000) resolve(null);
      else requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
  });
}"""


def wait_drawn(page, title: str, extra: str | None, timeout_ms: int = 120_000) -> None:
    page.wait_for_function(DRAWN_JS, arg=[title, extra], timeout=timeout_ms, polling="raf")


def switch(page, title: str, extra: str | None) -> float:
    """Click the page's sidebar link; ms from the click event to the page drawn."""
    # link texts are the icon's name then the title ("grid_viewGrid"); the default page's href is "/"
    link = page.locator('[data-testid="stSidebarNav"] a').filter(has_text=re.compile(f"{title}$"))
    page.evaluate(ARM_JS, [title, extra, DRAWN_JS])
    link.click()
    ms = page.evaluate("() => window.__switch")
    if ms is None:
        raise RuntimeError(f"{title} was not drawn within 120 s of the click")
    page.wait_for_timeout(300)  # settle: fragments, the URL sync, late components
    return ms


def cold_load(pw, title: str, path: str, model: str, extra: str | None) -> tuple[float, float]:
    """(fresh process, new session on the warm process) goto -> drawn, in ms."""
    browser = launch_chromium(pw)
    times = []
    with app_server(APP_ENV) as url:
        for _ in range(2):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            t0 = time.perf_counter()
            page.goto(f"{url}/{path}?model={model}")
            wait_drawn(page, title, extra)
            times.append((time.perf_counter() - t0) * 1000)
            context.close()
    browser.close()
    return times[0], times[1]


def switches(pw, pages, repeats: int, server) -> dict[str, list[float]]:
    """One session cycling through pages; {title: [first switch, later switches...]}."""
    browser = launch_chromium(pw)
    out = {p[0]: [] for p in pages}
    with server() as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        first = pages[-1]  # open on the last page, so the first click goes to the first page
        page.goto(f"{url}/{first[1]}?model={first[2]}")
        wait_drawn(page, first[0], first[3])
        page.wait_for_timeout(1000)
        for _ in range(repeats + 1):
            for title, _path, _model, extra in pages:
                out[title].append(switch(page, title, extra))
    browser.close()
    return out


BARE_PAGES = {
    "app.py": """
        import streamlit as st
        st.navigation([st.Page("alpha.py", title="Alpha", url_path="alpha", default=True),
                       st.Page("beta.py", title="Beta", url_path="beta")]).run()
    """,
    "alpha.py": """
        import streamlit as st
        st.title("Alpha")
        st.write("A page with a title and one line.")
    """,
    "beta.py": """
        import plotly.graph_objects as go
        import streamlit as st
        st.title("Beta")
        st.plotly_chart(go.Figure(go.Scatter(x=[0, 1, 2], y=[0, 1, 0])), width="content")
    """,
}


@contextmanager
def bare_server():
    """A bare two-page Streamlit app on a free port: the floor for a page switch."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in BARE_PAGES.items():
            (Path(tmp) / name).write_text(textwrap.dedent(text))
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                 "--server.port", str(port), "--server.address", "127.0.0.1",
                                 "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                                cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                        break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError("the bare streamlit app did not start")
                    time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="warm switches per page (median reported)")
    p.add_argument("--pages", default=",".join(t for t, *_ in PAGES),
                   help="comma-separated page titles to measure (default: all)")
    p.add_argument("--no-cold", action="store_true", help="skip the fresh-process loads (one server per page)")
    args = p.parse_args()
    wanted = [t.strip() for t in args.pages.split(",")]
    pages = [pg for pg in PAGES if pg[0] in wanted]
    from playwright.sync_api import sync_playwright

    cold = {}
    with sync_playwright() as pw:
        if not args.no_cold:
            for title, path, model, extra in pages:
                try:
                    cold[title] = cold_load(pw, title, path, model, extra)
                except Exception as e:  # a page another change broke: measure the others
                    print(f"{title}: cold load failed: {e}", file=sys.stderr)
        warm = {}
        # one session per model: PCA needs d > 2 (mnist-z16); it alternates with Train there
        for model in dict.fromkeys(pg[2] for pg in pages):
            group = [pg for pg in pages if pg[2] == model]
            if len(group) == 1:
                group.append(("Train", "train", model, None))
            group = [(t, pth, model, x) for t, pth, _m, x in group]
            try:
                for title, ms in switches(pw, group, args.repeats, lambda: app_server(APP_ENV)).items():
                    warm.setdefault(title, ms)  # Train's own row comes from the mnist-z2 session
            except Exception as e:
                print(f"{model} session failed: {e}", file=sys.stderr)
        bare = switches(pw, [("Alpha", "alpha", "", None), ("Beta", "beta", "", ".js-plotly-plot")],
                        args.repeats, bare_server)

    print(f"page first-render times, ms (headless Chromium, {args.repeats} warm switches per page)")
    print(f"{'page':<12} {'model':<10} {'cold':>8} {'new sess.':>10} {'1st switch':>11} "
          f"{'warm switch median':>19} {'max':>7}")
    rows = [(t, m, cold.get(t), warm.get(t)) for t, _p, m, _x in pages]
    rows += [(f"bare {t}", "-", None, bare[t]) for t in bare]
    for title, model, c, w in rows:
        cells = [f"{c[0]:8.0f}", f"{c[1]:10.0f}"] if c else [f"{'-':>8}", f"{'-':>10}"]
        if w:
            cells += [f"{w[0]:11.0f}", f"{statistics.median(w[1:]):19.0f}", f"{max(w[1:]):7.0f}"]
        else:
            cells += [f"{'-':>11}", f"{'-':>19}", f"{'-':>7}"]
        print(f"{title:<12} {model:<10} " + " ".join(cells))
    print("bare: a two-page Streamlit app (a title; a title and a 3-point plotly chart), the same switch")
    print("1st switch: each session opens on the last page of its list (Train), so that page's is its second visit")


if __name__ == "__main__":
    main()
