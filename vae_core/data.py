"""Datasets as whole uint8 tensors, NCHW.

A dataset split loads once into memory as (N, C, H, W) uint8 plus int64 labels
(60k MNIST images, 1x28x28, are 47 MB). Training slices batches out of that tensor
on the training device, so there are no per-sample PIL transforms in the hot loop:
that per-sample Python work is what makes the usual DataLoader recipe slow.
The one exception is the sprites train split (727,280 images: 2.9 GB grey, 8.7 GB
in colour), which is never materialised: its `images` is a LazyImages that renders
the rows a batch asks for (a few ms for 128), unless a --limit subset is asked for.

Names:
  mnist, fashion-mnist  torchvision's raw layout <root>/MNIST/raw/*.gz,
                        <root>/FashionMNIST/raw/*.gz (read directly with gzip;
                        torchvision downloads them when online and allowed)
  digits                scikit-learn's bundled 8x8 digits, resized to 28x28:
                        always available, no network
  sprites, color-sprites  the dSprites-style grid of vae_core/sprites.py (1 or
                        3 x 64 x 64), generated: always available, no files; the
                        ImageSet carries the generative factors (shape, scale,
                        orientation, x, y) for disentanglement metrics
  cifar10               3x32x32, the *binary* distribution <root>/cifar-10-batches-bin/
                        {data_batch_1..5,test_batch}.bin (1 label byte + 3,072 pixel
                        bytes a record, channel-major); never the pickled version
  folder:<path>         one subfolder per class, like torchvision's ImageFolder, or
                        images directly in <path> (unlabelled: one class); colour
                        when the images have it, centre-cropped square and resized
                        to --image-size (default 28 grey, 64 colour)

Every loader takes image_size and channels: a split can be resized (antialiased) and
turned grey (ITU-R 601 luma) or colour (the grey repeated) to the shape a model wants.

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
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SPRITE_NAMES = ("sprites", "color-sprites")
BUILTIN_NAMES = ("mnist", "fashion-mnist", "digits", "cifar10", *SPRITE_NAMES)
CHANNEL_CHOICES = ("auto", "1", "3")
MAX_IMAGE_SIZE = 1024  # as models.MAX_IMAGE_SIZE (data does not import the models)
SPLITS = ("train", "test")
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass
class ImageSet:
    """One split of a dataset: images (N, C, H, W) uint8 (a LazyImages for the sprites
    train split), labels (N,) int64; sprites also carry factors (N, 5) int64."""
    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    factors: np.ndarray | None = None          # sprites: factor indices per image
    factor_names: tuple[str, ...] | None = None
    factor_sizes: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def floats(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """All images as float (N, C, H, W) in [0,1] on `device`."""
        return to_float(self.images[:], device)


def to_float(images_u8, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 images -> float (N, C, H, W) in [0,1] on `device` (converted there).

    Takes NCHW (N, C, H, W) with C in {1, 3}, grey display layout (N, H, W), and colour
    display layout (N, H, W, 3): whatever the pages hand back comes out as the models'
    layout. (A 4-D array whose second axis is 1 or 3 is NCHW.)
    """
    if isinstance(images_u8, np.ndarray) and not images_u8.flags.writeable:
        images_u8 = torch.from_numpy(images_u8.copy())  # the app's shared read-only arrays: torch wants to own
    x = torch.as_tensor(images_u8)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    elif x.ndim != 4:
        raise VaeError(f"Images must be (N, C, H, W), (N, H, W) or (N, H, W, 3); got shape {tuple(x.shape)}.")
    return x.to(device).float().div_(255).contiguous()


def conform(images_u8: torch.Tensor, image_size: int | None = None, channels: int | None = None,
            chunk: int = 4096) -> torch.Tensor:
    """NCHW uint8 images at another size and/or channel count (None keeps it), as uint8.

    Resizing is antialiased bilinear (area-like when shrinking); grey -> colour repeats
    the grey, colour -> grey is ITU-R 601 luma. Works in chunks so 50,000 CIFAR images
    at 64x64 never need more than one chunk of floats. Unchanged input is returned as is.
    """
    n, c, h, w = images_u8.shape
    size = image_size or h
    want_c = channels or c
    if (size, size, want_c) == (h, w, c):
        return images_u8
    out = torch.empty((n, want_c, size, size), dtype=torch.uint8)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    for i in range(0, n, chunk):
        x = images_u8[i:i + chunk].float()
        if (h, w) != (size, size):
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                                align_corners=False, antialias=True)
        if want_c == 1 and c == 3:
            x = (x * luma).sum(1, keepdim=True)
        elif want_c == 3 and c == 1:
            x = x.expand(-1, 3, -1, -1)
        out[i:i + chunk] = x.round().clamp_(0, 255).to(torch.uint8)
    return out


class LazyImages:
    """The images of a Sprites split, rendered when indexed: images[idx] -> uint8 (k, C, H, W).

    Looks enough like the uint8 tensor it stands for (shape, len, indexing by int, slice,
    index array or tensor) for training, encoding and evaluation to take batches from it.
    """

    def __init__(self, sprites, image_size: int | None = None, channels: int | None = None):
        from vae_core.sprites import IMAGE_SIZE
        self.sprites = sprites
        self.image_size = image_size or IMAGE_SIZE
        self.channels = channels or (3 if sprites.colour else 1)
        self.shape = torch.Size((len(sprites), self.channels, self.image_size, self.image_size))
        self.dtype = torch.uint8

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        if isinstance(key, (int, np.integer)):
            return self[[int(key)]][0]
        arr = self.sprites[key]
        x = torch.from_numpy(np.ascontiguousarray(arr))
        if x.ndim == 3:
            x = x.unsqueeze(1)
        return conform(x, self.image_size, self.channels)


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
                           f"with one subfolder of images per class, or the images themselves.")
        return
    raise VaeError(f"Unknown dataset {name!r}: choose {', '.join(BUILTIN_NAMES)} or folder:<path>.")


def class_names_for(name: str) -> list[str]:
    if name in IDX_DATASETS:
        return list(IDX_DATASETS[name][1])
    if name == "digits":
        return list(MNIST_CLASSES)
    if name == "cifar10":
        return list(CIFAR10_CLASSES)
    if name in SPRITE_NAMES:
        from vae_core.sprites import SHAPES
        return list(SHAPES)
    return _folder_layout(Path(name[len("folder:"):]))[0]


def parse_channels(channels) -> int | None:
    """--channels auto/1/3 (or None, 1, 3) -> None (the dataset's own), 1 or 3."""
    if channels is None or channels == "auto":
        return None
    if str(channels) in ("1", "3") and not isinstance(channels, bool):
        return int(channels)
    raise VaeError(f"--channels must be auto, 1 or 3 (got {channels!r}).")


def load_dataset(name: str, split: str = "train", data_root=None, download: bool | None = None,
                 image_size: int | None = None, channels=None, limit: int | None = None) -> ImageSet:
    """Load one split of a dataset as an ImageSet. Raises VaeError with a clear message.

    image_size / channels (None: the dataset's own) resize and convert the split;
    limit keeps the first `limit` images (for sprites: a seeded random subset, rendered
    alone). The sprites train split without a limit stays lazy (LazyImages).
    """
    validate_name(name)
    if split not in SPLITS:
        raise VaeError(f"Unknown split {split!r}: choose train or test.")
    channels = parse_channels(channels)
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or not 4 <= image_size <= MAX_IMAGE_SIZE):
        raise VaeError(f"--image-size must be a whole number from 4 to {MAX_IMAGE_SIZE} (got {image_size!r}).")
    if limit is not None and limit < 1:
        raise VaeError(f"limit must be at least 1 (got {limit}).")
    class_names = None
    if name in SPRITE_NAMES:
        return _load_sprites(name, split, image_size, channels, limit)
    if name in IDX_DATASETS:
        root = resolve_data_root(data_root)
        images, labels = _load_idx_dataset(name, split, root,
                                           downloads_allowed() if download is None else download)
    elif name == "digits":
        images, labels = _load_digits(split)
    elif name == "cifar10":
        images, labels = _load_cifar10(split, resolve_data_root(data_root),
                                       downloads_allowed() if download is None else download)
    else:
        images, labels, class_names = _load_folder(Path(name[len("folder:"):]), split, image_size, channels)
    if images.ndim == 3:
        images = images.unsqueeze(1)  # grey (N, H, W) -> (N, 1, H, W)
    if limit:
        images, labels = images[:limit], labels[:limit]
    images = conform(images, image_size, channels)
    return ImageSet(name, split, images, labels, class_names or class_names_for(name))


def _load_sprites(name: str, split: str, image_size, channels, limit) -> ImageSet:
    from vae_core.sprites import Sprites
    ds = Sprites(split, colour=name == "color-sprites", limit=limit)
    lazy = LazyImages(ds, image_size, channels)
    # The test split (10,000) and a --limit subset are rendered once; the full train
    # split (727,280) is rendered batch by batch.
    images = lazy if (split == "train" and limit is None) else lazy[:]
    return ImageSet(name, split, images, torch.from_numpy(ds.labels), list(ds.class_names),
                    ds.factors, tuple(ds.factor_names), tuple(ds.factor_sizes))


def dataset_available(name: str, data_root=None) -> bool:
    """True when the test split can be loaded without a download."""
    if name in IDX_DATASETS:
        raw = resolve_data_root(data_root) / IDX_DATASETS[name][0] / "raw"
        return all(_find_idx(raw, f) is not None for f in _IDX_FILES["test"])
    if name == "cifar10":
        return (resolve_data_root(data_root) / CIFAR10_FOLDER / CIFAR10_FILES["test"][0]).is_file()
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


# ---------------------------------------------------------------- CIFAR-10 (binary version)

CIFAR10_FOLDER = "cifar-10-batches-bin"
CIFAR10_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_RECORD = 1 + 3 * 32 * 32  # one label byte, then 1,024 red, 1,024 green, 1,024 blue bytes


def read_cifar10_bin(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One CIFAR-10 binary batch file -> images (N, 3, 32, 32) uint8, labels (N,) int64.

    Plain bytes, so nothing is unpickled (the python version of CIFAR-10 is pickles).
    The official files hold 10,000 records; any whole number of records is accepted,
    a partial record is a truncated file.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise VaeError(f"{path} could not be read ({e}); replace it with an intact copy.") from e
    if not data or len(data) % CIFAR10_RECORD:
        raise VaeError(f"{path} is truncated or not a CIFAR-10 binary batch: {len(data):,} bytes is not a whole "
                       f"number of {CIFAR10_RECORD:,}-byte records. Replace it with an intact copy "
                       f"(from cifar-10-binary.tar.gz).")
    rec = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR10_RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() >= len(CIFAR10_CLASSES):
        raise VaeError(f"{path} holds label {labels.max()}; CIFAR-10 labels are 0..9. Is it the CIFAR-100 file?")
    images = rec[:, 1:].reshape(-1, 3, 32, 32).copy()
    return torch.from_numpy(images), torch.from_numpy(labels)


def _load_cifar10(split: str, root: Path, download: bool):
    folder = root / CIFAR10_FOLDER
    paths = [folder / f for f in CIFAR10_FILES[split]]
    if not all(p.is_file() for p in paths) and download:
        _cifar10_download(root)
    if not all(p.is_file() for p in paths):
        wanted = ", ".join(f for files in CIFAR10_FILES.values() for f in files)
        how = "the download failed" if download else "downloads are off (VAE_NO_DOWNLOAD=1)"
        raise VaeError(f"cifar10 was not found in {folder} and {how}: put the six files ({wanted}) from "
                       f"cifar-10-binary.tar.gz (the binary version, not the python one) in {folder}, or "
                       f"point --data-root / VAE_DATA_ROOT at a folder that holds {CIFAR10_FOLDER}/.")
    parts = [read_cifar10_bin(p) for p in paths]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _cifar10_download(root: Path) -> None:
    """Fetch and unpack the binary archive with torchvision's helper; failures fall to the caller's message.

    No md5 is checked here (torchvision has none for the binary archive); a broken download
    fails to unpack, and each file's record structure is checked when it is read."""
    from torchvision.datasets.utils import download_and_extract_archive
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # offline machines should fail in seconds, not hang
    try:
        root.mkdir(parents=True, exist_ok=True)
        download_and_extract_archive(CIFAR10_URL, download_root=str(root), filename="cifar-10-binary.tar.gz")
    except Exception:  # noqa: BLE001 - network/permission errors all mean "not available"
        pass
    finally:
        socket.setdefaulttimeout(previous)


# ---------------------------------------------------------------- image folders

def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _folder_layout(path: Path) -> tuple[list[str], list[list[Path]]]:
    """(class names, image files per class). Class subfolders when there are any; else the
    images directly in `path` form one class named after the folder (unlabelled data)."""
    if not path.is_dir():
        raise VaeError(f"Dataset folder {path} does not exist.")
    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes:
        return classes, [_image_files(path / c) for c in classes]
    return [path.resolve().name or "images"], [_image_files(path)]


def _centre_square(im):
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return im.crop((left, top, left + side, top + side))


def _load_folder(path: Path, split: str, image_size: int | None = None, channels: int | None = None):
    """Every 10th image of each class (sorted by name) is the test split.

    Images are centre-cropped square and resized. channels None keeps colour when any
    image of the split has it (a channel differs from another somewhere), else grey;
    image_size None is 28 for grey (MNIST-sized) and 64 for colour.
    """
    from PIL import Image, UnidentifiedImageError
    classes, files_per_class = _folder_layout(path)
    if not any(files_per_class):
        raise VaeError(f"Dataset folder {path} has no images: put them in {path}/<class name>/ "
                       f"(one subfolder per class) or directly in {path} (one class).")
    # Until the split is seen, whether it is colour (and so its default size) is unknown:
    # keep each image at every size it may end at; they are small.
    sizes = {image_size} if image_size else {28, 64}
    grey = {s: [] for s in sizes}
    rgb = {s: [] for s in sizes}
    labels, colour_seen = [], False
    for label, files in enumerate(files_per_class):
        for i, file in enumerate(files):
            if (i % 10 == 9) != (split == "test"):
                continue
            try:
                with Image.open(file) as im:
                    sq = _centre_square(im.convert("RGB"))
                    for s in sizes:
                        arr = np.asarray(sq.resize((s, s), Image.BILINEAR), dtype=np.uint8)
                        colour_seen = colour_seen or bool((arr[..., 0] != arr[..., 1]).any()
                                                          or (arr[..., 1] != arr[..., 2]).any())
                        rgb[s].append(arr.transpose(2, 0, 1))
                        grey[s].append(np.asarray(sq.convert("L").resize((s, s), Image.BILINEAR),
                                                  dtype=np.uint8)[None])
            except (UnidentifiedImageError, OSError) as e:
                raise VaeError(f"{file} is not a readable image ({e}); remove it or replace it.") from e
            labels.append(label)
    if not labels:
        raise VaeError(f"Dataset folder {path} has no images for the {split} split "
                       f"(every 10th image per class is test).")
    colour = channels == 3 if channels else colour_seen
    size = image_size or (64 if colour else 28)
    images = np.stack((rgb if colour else grey)[size])
    return torch.from_numpy(images), torch.tensor(labels, dtype=torch.int64), classes


# ---------------------------------------------------------------- binarization

BINARIZE_CHOICES = ("none", "dynamic", "static")
STATIC_BINARIZE_SEED = 0


def binarize_static(images_u8: torch.Tensor, seed: int = STATIC_BINARIZE_SEED) -> torch.Tensor:
    """One fixed Bernoulli draw per pixel (grey level = probability), as uint8 0/255.

    A tensor of any shape; a LazyImages (the full sprites train split, binary already)
    is refused rather than rendered whole.

    The test set for likelihood work is binarized once like this (Burda et al. 2015).
    """
    if isinstance(images_u8, LazyImages):
        raise VaeError("Static binarization would render the whole sprites train split: use --limit, "
                       "or --binarize dynamic (sprites are black and white already).")
    g = torch.Generator().manual_seed(seed)
    p = images_u8.float().div(255)
    return (torch.bernoulli(p, generator=g) * 255).to(torch.uint8)


def binarize_split(images_u8: torch.Tensor, split: str) -> torch.Tensor:
    """The fixed binarization of a split: training and the latent cache must draw the same pixels."""
    return binarize_static(images_u8, STATIC_BINARIZE_SEED + (1 if split == "test" else 0))
