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
