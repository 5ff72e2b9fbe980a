"""Shared fixtures. Real data comes from ../shared/datasets (read-only, never written)."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("VAE_NO_DOWNLOAD", "1")  # tests never reach for the network
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _data_root() -> Path:
    env = os.environ.get("VAE_DATA_ROOT")
    return Path(env) if env else (REPO.parent / "shared" / "datasets")


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = _data_root()
    if not (root / "MNIST" / "raw").is_dir():
        message = f"real datasets not found under {root} (expected MNIST/raw/*.gz)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def mnist_test(data_root):
    from vae_core.data import load_dataset
    return load_dataset("mnist", "test", data_root)


@pytest.fixture()
def cache_root(tmp_path, monkeypatch):
    """A private latent cache so tests never touch the shipped cache/ folder."""
    root = tmp_path / "cache"
    monkeypatch.setenv("VAE_CACHE_DIR", str(root))
    return root


# ---------------------------------------------------------------- the real browser
# One Chromium and one app server for every browser test of the run: each costs seconds to
# start, and the suite must stay under 10 minutes on 2 cores. Playwright's sync API keeps an
# asyncio loop running on the main thread while it is open, which breaks AppTest and anything
# else calling asyncio.run, so the tests that use it are moved to the end of the run (in their
# files' order) and the browser opens only when the first of them starts.

def pytest_collection_modifyitems(config, items):
    uses = [i for i in items if "browser" in getattr(i, "fixturenames", ())]
    items[:] = [i for i in items if "browser" not in getattr(i, "fixturenames", ())] + uses


@pytest.fixture(scope="session")
def browser():
    from tests.live_app import CHROMIUM, launch_chromium
    if not os.path.exists(CHROMIUM):
        if IN_CI:  # in CI a missing Chromium fails the browser tests, never skips them
            pytest.fail(f"{CHROMIUM} is missing in CI: scripts/run-tests.sh installs it with apt-get")
        pytest.skip(f"{CHROMIUM} not installed (scripts/run-tests.sh installs it as root)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """`streamlit run app.py` on a free localhost port with a private runs folder and a private
    copy of the shipped latent caches (8 MB): models trained from its Train page, and any cache
    a page builds, land in temporary folders, never in the clone."""
    import shutil

    from tests.live_app import app_server
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    cache = tmp_path_factory.mktemp("server") / "cache"
    shutil.copytree(REPO / "cache", cache)
    with app_server({"VAE_CACHE_DIR": str(cache)}) as url:
        yield url


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    yield pg
    context.close()
