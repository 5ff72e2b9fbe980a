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
def app_server(env: dict | None = None, timeout: float = 90.0):
    """Start the app on a free port; yields its base URL; stops it afterwards."""
    port = free_port()
    full_env = {**os.environ, "VAE_NO_DOWNLOAD": "1", **(env or {})}
    log = open(REPO / "test-artifacts" / f"streamlit-{port}.log", "w") if (REPO / "test-artifacts").is_dir() \
        else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
                             "--server.headless", "true", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
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


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


DECODED_IMG = 'img[alt="decode(z)"]'


def decoded_image(page):
    """The Explore page's decoded image element."""
    return page.locator(DECODED_IMG).first


def wait_for_app(page, timeout_ms: int = 60_000) -> None:
    """Wait until the script finished its run (no running indicator) and an element rendered."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " && document.querySelectorAll('[data-testid=\"stMainBlockContainer\"] *').length > 20",
        timeout=timeout_ms)


def wait_for_url(page, fragment: str, timeout_s: float = 30.0) -> None:
    """Poll from Python until the page's query string holds `fragment`; on failure the
    message shows where the URL got to."""
    import time
    deadline = time.time() + timeout_s
    while fragment not in page.evaluate("() => location.search"):
        if time.time() > deadline:
            raise AssertionError(f"{fragment!r} never reached the URL: {page.evaluate('() => location.search')}")
        page.wait_for_timeout(50)
