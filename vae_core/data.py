"""Datasets as whole uint8 tensors.

A dataset split loads once into memory as (N, 28, 28) uint8 plus int64 labels
(60k MNIST images are 47 MB). Training slices batches out of that tensor on the
training device, so there are no per-sample PIL transforms in the hot loop:
that per-sample Python work is what makes the usual DataLoader recipe slow.

Names:
  mnist, fashion-mnist  torchvision's raw layout <root>/MNIST/raw/*.gz,
                        <root>/FashionMNIST/raw/*.gz (read directly with gzip;
                        torchvision downloads them when online and allowed)
  digits                scikit-learn's bundled 8x8 digits, resized to 28x28:
                        always available, no network
  folder:<path>         one subfolder per class, like torchvision's ImageFolder;
                        grayscale 28x28

Data root: --data-root, else env VAE_DATA_ROOT, else ./data. The root may be
read-only: nothing here writes into it unless a download was asked for.
"""
from __future__ import annotations

import gzip
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vae_core import VaeError

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# name -> (folder under the root, class names, torchvision dataset class name)
IDX_DATASETS = {
    "mnist": ("MNIST", MNIST_CLASSES, "MNIST"),
    "fashion-mnist": ("FashionMNIST", FASHION_CLASSES, "FashionMNIST"),
}
BUILTIN_NAMES = ("mnist", "fashion-mnist", "digits")
SPLITS = ("train", "test")
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass
class ImageSet:
    """One split of a dataset: images (N,28,28) uint8, labels (N,) int64."""
    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    def __len__(self) -> int:
        return self.images.shape[0]

    def floats(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """All images as float (N,1,28,28) in [0,1] on `device`."""
        return to_float(self.images, device)


def to_float(images_u8, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 images (N,28,28) -> float (N,1,28,28) in [0,1] on `device` (converted there)."""
    if isinstance(images_u8, np.ndarray) and not images_u8.flags.writeable:
        images_u8 = torch.from_numpy(images_u8.copy())  # the app's shared read-only arrays: torch wants to own
    return torch.as_tensor(images_u8).to(device).unsqueeze(1).float().div_(255)


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    if data_root:
        return Path(data_root)
    return Path(os.environ.get("VAE_DATA_ROOT") or "data")


def downloads_allowed() -> bool:
    """Downloads are on unless VAE_NO_DOWNLOAD=1 (the test suite and CI set it)."""
    return os.environ.get("VAE_NO_DOWNLOAD", "") not in ("1", "true", "yes")


def validate_name(name: str) -> None:
    """Refuse an unknown dataset name before any work is done."""
    if name in BUILTIN_NAMES:
        return
    if name.startswith("folder:"):
        path = Path(name[len("folder:"):])
        if not path.is_dir():
            raise VaeError(f"Dataset folder {path} does not exist: give folder:<path> to a folder "
                           f"with one subfolder of images per class.")
        return
    raise VaeError(f"Unknown dataset {name!r}: choose mnist, fashion-mnist, digits or folder:<path>.")


def class_names_for(name: str) -> list[str]:
    if name in IDX_DATASETS:
        return list(IDX_DATASETS[name][1])
    if name == "digits":
        return list(MNIST_CLASSES)
    return _folder_classes(Path(name[len("folder:"):]))


def load_dataset(name: str, split: str = "train", data_root=None,
                 download: bool | None = None) -> ImageSet:
    """Load one split of a dataset as an ImageSet. Raises VaeError with a clear message."""
    validate_name(name)
    if split not in SPLITS:
        raise VaeError(f"Unknown split {split!r}: choose train or test.")
    if name in IDX_DATASETS:
        root = resolve_data_root(data_root)
        images, labels = _load_idx_dataset(name, split, root,
                                           downloads_allowed() if download is None else download)
    elif name == "digits":
        images, labels = _load_digits(split)
    else:
        images, labels = _load_folder(Path(name[len("folder:"):]), split)
    return ImageSet(name, split, images, labels, class_names_for(name))


def dataset_available(name: str, data_root=None) -> bool:
    """True when the test split can be loaded without a download."""
    if name in IDX_DATASETS:
        raw = resolve_data_root(data_root) / IDX_DATASETS[name][0] / "raw"
        return all(_find_idx(raw, f) is not None for f in _IDX_FILES["test"])
    try:
        validate_name(name)
    except VaeError:
        return False
    return True


# ---------------------------------------------------------------- IDX files (MNIST layout)

def _find_idx(raw: Path, stem: str) -> Path | None:
    for candidate in (raw / stem, raw / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Read an IDX file (optionally gzipped); check the magic number and shape.

    Validating the header rather than an md5 matters: Debian's Fashion-MNIST .gz files
    were recompressed, so their md5 differs from torchvision's table though the
    content is the original.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise VaeError(f"{path} could not be read ({e}); replace it with an intact copy.") from e
    if len(data) < 8:
        raise VaeError(f"{path} is too short to be an IDX file; replace it with an intact copy.")
    magic = int.from_bytes(data[0:4], "big")
    if magic != expected_magic:
        raise VaeError(f"{path} is not the IDX file expected (magic {magic}, expected {expected_magic}).")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    count = int(np.prod(dims))
    if len(data) - offset != count:
        raise VaeError(f"{path} is truncated: header promises {dims} but holds {len(data) - offset} bytes.")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _load_idx_dataset(name: str, split: str, root: Path, download: bool):
    folder, _, tv_name = IDX_DATASETS[name]
    raw = root / folder / "raw"
    image_stem, label_stem = _IDX_FILES[split]
    paths = [_find_idx(raw, image_stem), _find_idx(raw, label_stem)]
    if None in paths and download:
        _torchvision_download(tv_name, root)
        paths = [_find_idx(raw, image_stem), _find_idx(raw, label_stem)]
    if None in paths:
        wanted = ", ".join(f"{s}.gz" for stems in _IDX_FILES.values() for s in stems)
        how = "the download failed" if download else "downloads are off (VAE_NO_DOWNLOAD=1)"
        raise VaeError(f"{name} was not found in {raw} and {how}: put the four files ({wanted}) "
                       f"in {raw}, or point --data-root / VAE_DATA_ROOT at a folder that holds "
                       f"{folder}/raw/.")
    images = read_idx(paths[0], 2051)
    labels = read_idx(paths[1], 2049)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],):
        raise VaeError(f"{raw} holds images of shape {images.shape} and labels of shape "
                       f"{labels.shape}; expected (N,28,28) and (N,).")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def _torchvision_download(tv_name: str, root: Path) -> None:
    """Let torchvision fetch the raw files; any failure is left to the caller's clear message."""
    import torchvision.datasets as tvd
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # offline machines should fail in seconds, not hang
    try:
        root.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            getattr(tvd, tv_name)(root=str(root), train=train, download=True)
    except Exception:  # noqa: BLE001 - network/permission errors all mean "not available"
        pass
    finally:
        socket.setdefaulttimeout(previous)


# ---------------------------------------------------------------- scikit-learn digits

DIGITS_TEST_SIZE = 297  # the last 297 of 1,797 images; the first 1,500 train


def _load_digits(split: str):
    from sklearn.datasets import load_digits
    bunch = load_digits()
    # 8x8 values in 0..16 -> a 20x20 digit centred in 28x28, like MNIST's own framing.
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(20, 20), mode="bilinear", align_corners=False)
    x = torch.nn.functional.pad(x, (4, 4, 4, 4))
    images = (x.squeeze(1).clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    cut = len(labels) - DIGITS_TEST_SIZE
    if split == "train":
        return images[:cut].contiguous(), labels[:cut].contiguous()
    return images[cut:].contiguous(), labels[cut:].contiguous()


# ---------------------------------------------------------------- image folders

def _folder_classes(path: Path) -> list[str]:
    if not path.is_dir():
        raise VaeError(f"Dataset folder {path} does not exist.")
    return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _load_folder(path: Path, split: str):
    """Every 10th image of each class (sorted by name) is the test split."""
    from PIL import Image, UnidentifiedImageError
    classes = _folder_classes(path)
    if not classes:
        raise VaeError(f"Dataset folder {path} has no class subfolders: put images in "
                       f"{path}/<class name>/.")
    images, labels = [], []
    for label, cls in enumerate(classes):
        files = sorted(p for p in (path / cls).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        for i, file in enumerate(files):
            if (i % 10 == 9) != (split == "test"):
                continue
            try:
                with Image.open(file) as im:
                    im = im.convert("L").resize((28, 28), Image.BILINEAR)
                    images.append(np.asarray(im, dtype=np.uint8))
            except (UnidentifiedImageError, OSError) as e:
                raise VaeError(f"{file} is not a readable image ({e}); remove it or replace it.") from e
            labels.append(label)
    if not images:
        raise VaeError(f"Dataset folder {path} has no images for the {split} split "
                       f"(every 10th image per class is test).")
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64)


# ---------------------------------------------------------------- binarization

BINARIZE_CHOICES = ("none", "dynamic", "static")
STATIC_BINARIZE_SEED = 0


def binarize_static(images_u8: torch.Tensor, seed: int = STATIC_BINARIZE_SEED) -> torch.Tensor:
    """One fixed Bernoulli draw per pixel (grey level = probability), as uint8 0/255.

    The test set for likelihood work is binarized once like this (Burda et al. 2015).
    """
    g = torch.Generator().manual_seed(seed)
    p = images_u8.float().div(255)
    return (torch.bernoulli(p, generator=g) * 255).to(torch.uint8)


def binarize_split(images_u8: torch.Tensor, split: str) -> torch.Tensor:
    """The fixed binarization of a split: training and the latent cache must draw the same pixels."""
    return binarize_static(images_u8, STATIC_BINARIZE_SEED + (1 if split == "test" else 0))
