"""A real `streamlit run app.py` on localhost and Debian's Chromium driven by Playwright.

Shared by the browser tests and benchmarks/ui_latency.py. Chromium is the
system's /usr/bin/chromium (never `playwright install`), headless, --no-sandbox,
with background networking off (this machine has no network beyond package mirrors).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_server(env: dict | None = None, timeout: float = 90.0, args: tuple = ("--server.address", "127.0.0.1")):
    """Start the app on a free port; yields its base URL; stops it afterwards.

    args: extra flags for `streamlit run`; () starts it as the README does (the shipped
    .streamlit/config.toml decides the address)."""
    import shutil
    import tempfile
    port = free_port()
    # a private runs folder unless the test names one: favourites and jobs never land in the clone
    runs = None if "VAE_RUNS_DIR" in (env or {}) else tempfile.mkdtemp(prefix="vae-runs-")
    full_env = {**os.environ, "VAE_NO_DOWNLOAD": "1", **({"VAE_RUNS_DIR": runs} if runs else {}), **(env or {})}
    log = open(REPO / "test-artifacts" / f"streamlit-{port}.log", "w") if (REPO / "test-artifacts").is_dir() \
        else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
                             "--server.headless", "true", "--server.port", str(port),
                             *args, "--browser.gatherUsageStats", "false",
                             "--server.fileWatcherType", "none"],
                            cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not start on {url} (exit code {proc.poll()})")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log is not subprocess.DEVNULL:
            log.close()
        if runs:
            shutil.rmtree(runs, ignore_errors=True)


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


DECODED_IMG = 'img[alt="decode(z)"]'

# What the explorer (ui/latent_explorer.js) shows now: its z, the z of the picture on
# screen, the marker's plotted coordinates, the sliders' values and the URL's z.
EXPLORER_STATE_JS = """() => {
  const r = document.querySelector('.vle');
  if (!r || !r.__explorer || !r.__explorer.z) return null;
  const img = r.querySelector('img[alt="decode(z)"]');
  const m = /[?&]z=([^&]+)/.exec(location.search);
  return {z: r.dataset.z, img: img.dataset.z || null, marker: r.dataset.markerXy || null,
          sliders: [...r.querySelectorAll('input[type=range]')].map((i) => [i.getAttribute('aria-label'), Number(i.value)]),
          url: m && decodeURIComponent(m[1]), busy: !!r.__explorer.sendTimer || r.__explorer.ack < r.__explorer.seq};
}"""


def explorer_state(page) -> dict | None:
    return page.evaluate(EXPLORER_STATE_JS)


def settled_z(page, timeout_s: float = 30.0) -> list[float]:
    """Wait until the explorer's z, its picture, the URL (the server has it) and every
    slider agree and stay so for a second; return that z."""
    deadline, since, last = time.time() + timeout_s, None, None
    while True:
        s = explorer_state(page)
        ok = bool(s) and not s["busy"] and s["z"] == s["img"] == s["url"]
        if ok:
            z = [float(v) for v in s["z"].split(",")]
            for label, value in s["sliders"]:
                if label.startswith("z["):
                    # a range input shows its value snapped to its step (0.05); the number beside it is exact
                    ok = ok and abs(z[int(label[2:-1])] - value) <= 0.025 + 1e-6
        now = time.time()
        if ok and last == s:
            if now - since >= 1.0:
                return z
        else:
            since = now
        last = s if ok else None
        if now > deadline:
            raise AssertionError(f"the explorer never settled: {s}")
        page.wait_for_timeout(100)


def decoded_image(page):
    """The Explore page's decoded image element."""
    return page.locator(DECODED_IMG).first


def wait_for_app(page, timeout_ms: int = 60_000) -> None:
    """Wait until the script finished its run and an element rendered. The script state is read
    from the app's own attribute: the running indicator alone shows only after a delay, so a
    run that had just begun looked finished, and its stale elements (a notice the run was
    about to remove) were read as its result."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && !['running', 'rerunRequested'].includes("
        "document.querySelector('[data-testid=\"stApp\"]').getAttribute('data-test-script-state'))"
        " && document.querySelectorAll('[data-testid=\"stMainBlockContainer\"] *').length > 20",
        timeout=timeout_ms, polling=50)


def choose(page, combobox: str, option: str, timeout_s: float = 30.0) -> None:
    """Pick `option` in the selectbox labelled `combobox` the way a person does: open it, click
    the option, and open it again if a rerun redrew the widget (closing its list) meanwhile.
    Returns once the box shows the option."""
    import time
    box = page.get_by_role("combobox", name=combobox)
    deadline = time.time() + timeout_s
    while True:
        try:
            box.click(timeout=5_000)
            page.get_by_role("option", name=option, exact=True).click(timeout=3_000)
            settle = time.time() + 3
            while time.time() < settle:
                if box.input_value() == option:
                    return
                page.wait_for_timeout(50)
        except Exception:  # the list closed under us, or the box was being redrawn
            pass
        if time.time() > deadline:
            raise AssertionError(f"{combobox!r} never showed {option!r}: it shows {box.input_value()!r}")
        page.keyboard.press("Escape")
        page.wait_for_timeout(200)


def wait_for_url(page, fragment: str, timeout_s: float = 30.0) -> None:
    """Poll from Python until the page's query string holds `fragment`; on failure the
    message shows where the URL got to."""
    import time
    deadline = time.time() + timeout_s
    while fragment not in page.evaluate("() => location.search"):
        if time.time() > deadline:
            raise AssertionError(f"{fragment!r} never reached the URL: {page.evaluate('() => location.search')}")
        page.wait_for_timeout(50)
