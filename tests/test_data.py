import gzip
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from vae_core import VaeError
from vae_core.data import (FASHION_CLASSES, binarize_static, dataset_available, load_dataset, read_idx,
                           resolve_data_root)


def test_mnist_loads_whole_splits_as_uint8(data_root):
    train = load_dataset("mnist", "train", data_root)
    test = load_dataset("mnist", "test", data_root)
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (10000, 1, 28, 28) and test.labels.shape == (10000,)
    assert set(test.labels.unique().tolist()) == set(range(10))
    assert 0 < test.images.float().mean() < 255
    assert test.floats()[:5].shape == (5, 1, 28, 28)


def test_fashion_mnist_is_validated_by_header_not_md5(data_root):
    test = load_dataset("fashion-mnist", "test", data_root)
    assert test.images.shape == (10000, 1, 28, 28)
    assert test.class_names == FASHION_CLASSES


def test_missing_dataset_names_the_folder_to_fill(tmp_path, monkeypatch):
    monkeypatch.setenv("VAE_NO_DOWNLOAD", "1")
    with pytest.raises(VaeError) as e:
        load_dataset("mnist", "test", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "MNIST" / "raw") in msg and "t10k-images-idx3-ubyte.gz" in msg
    assert not dataset_available("mnist", tmp_path)


def test_truncated_idx_is_refused(tmp_path, data_root):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (data_root / "MNIST" / "raw").glob("t10k-*"):
        shutil.copy(f, raw / f.name)
    data = gzip.decompress((raw / "t10k-images-idx3-ubyte.gz").read_bytes())
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(data[:5000]))
    with pytest.raises(VaeError, match="truncated"):
        load_dataset("mnist", "test", tmp_path)
    with pytest.raises(VaeError, match="magic"):
        read_idx(raw / "t10k-labels-idx1-ubyte.gz", 2051)


def test_the_read_only_shared_root_is_not_written(data_root):
    before = sorted(p.name for p in (data_root / "MNIST" / "raw").iterdir())
    load_dataset("mnist", "test", data_root)
    assert sorted(p.name for p in (data_root / "MNIST" / "raw").iterdir()) == before


def test_data_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv("VAE_DATA_ROOT", str(tmp_path))
    assert resolve_data_root("given") .name == "given"
    assert resolve_data_root(None) == tmp_path
    monkeypatch.delenv("VAE_DATA_ROOT")
    assert str(resolve_data_root(None)) == "data"


def test_digits_needs_no_files_or_network():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert train.images.shape == (1500, 1, 28, 28) and test.images.shape == (297, 1, 28, 28)
    assert train.images.dtype == torch.uint8
    # MNIST-like framing: a 4-pixel empty border around a 20x20 digit
    assert train.images[:, :, :4].max() == 0 and train.images[:, :, :, -4:].max() == 0
    assert train.images.max() == 255


def test_image_folder_dataset(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(12):
            arr = rng.integers(0, 255, (40, 30), dtype=np.uint8)  # grey: loads as 1x28x28
            Image.fromarray(arr).save(tmp_path / cls / f"{i:02d}.png")
    train = load_dataset(f"folder:{tmp_path}", "train")
    test = load_dataset(f"folder:{tmp_path}", "test")
    assert train.images.shape == (22, 1, 28, 28) and test.images.shape == (2, 1, 28, 28)
    assert train.class_names == ["cats", "dogs"] and sorted(set(train.labels.tolist())) == [0, 1]
    (tmp_path / "dogs" / "bad.png").write_text("not an image")
    with pytest.raises(VaeError, match="bad.png"):
        load_dataset(f"folder:{tmp_path}", "train")


@pytest.mark.parametrize("name", ["cifar100", "folder:/no/such/folder"])
def test_unknown_dataset_is_refused(name):
    with pytest.raises(VaeError):
        load_dataset(name)


def test_static_binarization_is_fixed_and_binary():
    x = (torch.rand(50, 28, 28) * 255).to(torch.uint8)
    a, b = binarize_static(x), binarize_static(x)
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0, 255}
    assert not torch.equal(a, binarize_static(x, seed=7))
    # a pixel's chance of being on is its grey level
    grey = torch.full((200, 28, 28), 64, dtype=torch.uint8)
    assert abs(binarize_static(grey).float().mean().item() / 255 - 64 / 255) < 0.01
