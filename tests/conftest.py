"""Shared fixtures. Real data comes from ../shared/datasets (read-only, never written)."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("VAE_NO_DOWNLOAD", "1")  # tests never reach for the network
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # scripts/run-tests.sh runs two pytest-xdist workers on CI's two cores. Each worker (and
    # every job, server and torchrun it starts) gets one OpenMP thread: two workers with two
    # threads each oversubscribe the cores and made torch-heavy tests ten times slower.
    # Set before anything imports torch (conftest is imported before the test modules).
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
if not os.environ.get("VAE_CACHE_DIR"):
    # Every test process reads the shipped latent caches from its own copy (12 MB), so that
    # nothing (an AppTest page that finds its map stale, say) can write into the tracked cache/
    # folder. Seen: a map page, handed latents another test had encoded on a CPU whose last bits
    # differ from the shipped ones, rebuilt and rewrote a shipped map. Tests that need a cache
    # of their own still set VAE_CACHE_DIR (cache_root, server).
    import atexit
    import shutil
    import tempfile
    _cache_copy = Path(tempfile.mkdtemp(prefix="vae-test-cache-"))
    atexit.register(shutil.rmtree, _cache_copy, ignore_errors=True)
    shutil.copytree(REPO / "cache", _cache_copy / "cache")
    os.environ["VAE_CACHE_DIR"] = str(_cache_copy / "cache")


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
# else calling asyncio.run. So the tests that use it run back to back (at the end of a plain
# run; as one xdist group under scripts/run-tests.sh), the browser opens when the first of
# them starts and closes as soon as the next test does not use it.

def _uses_browser(item) -> bool:
    return "browser" in getattr(item, "fixturenames", ())


def _has_module_fixture(module) -> bool:
    return any(getattr(getattr(v, "_fixture_function_marker", None), "scope", None) == "module"
               for v in vars(module).values())


def pytest_collection_modifyitems(config, items):
    uses = [i for i in items if _uses_browser(i)]
    items[:] = [i for i in items if not _uses_browser(i)] + uses
    # Scheduling for `pytest -n 2 --dist loadgroup`: the browser tests are one group (one
    # Chromium, one server); a file with module-scoped fixtures is one group (built once);
    # every other test is scheduled alone, which lets the two workers finish together.
    for item in items:
        if _uses_browser(item):
            item.add_marker(pytest.mark.xdist_group("browser"))
        elif item.module is not None and _has_module_fixture(item.module):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))


_chromium = {}  # the open Playwright and browser, while browser tests are running


def _close_chromium():
    if _chromium:
        _chromium.pop("browser").close()
        _chromium.pop("playwright").stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test leaves a screenshot of every page it had open in test-artifacts/."""
    report = yield
    if report.when == "call" and report.failed and _chromium:
        pages = [pg for ctx in _chromium["browser"].contexts for pg in ctx.pages]
        for i, pg in enumerate(pages):
            try:
                pg.screenshot(path=str(REPO / "test-artifacts" / f"failed-{item.name[:80]}-{i}.png"), full_page=True)
            except Exception:  # a page that is gone: nothing to show
                pass
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    result = yield  # the test's own fixtures (its page, its context) close first
    if nextitem is None or not _uses_browser(nextitem):
        _close_chromium()
    return result


@pytest.fixture()
def browser():
    from tests.live_app import CHROMIUM, launch_chromium
    if not os.path.exists(CHROMIUM):
        if IN_CI:  # in CI a missing Chromium fails the browser tests, never skips them
            pytest.fail(f"{CHROMIUM} is missing in CI: scripts/run-tests.sh installs it with apt-get")
        pytest.skip(f"{CHROMIUM} not installed (scripts/run-tests.sh installs it as root)")
    if not _chromium:
        from playwright.sync_api import sync_playwright
        _chromium["playwright"] = sync_playwright().start()
        _chromium["browser"] = launch_chromium(_chromium["playwright"])
    return _chromium["browser"]


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
