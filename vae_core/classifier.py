"""The small classifiers whose features score sample quality (quality.py), one per dataset.

    python -m vae_core.classifier --dataset mnist [--epochs 5] [--out classifiers/mnist]

FID's Inception-v3 was trained on ImageNet photographs; on 28x28 digits its features say
little, and its weights are not ours to ship. So, as in the RAE paper's and many MNIST
papers' "FID with a LeNet", the project trains a small CNN per dataset and measures
distances in its penultimate layer (128 features). Numbers from it are named
fd_classifier, never FID.

A classifier folder is classifiers/<dataset>/ with model.safetensors (the weights; the
architecture in the header) and config.json (dataset, image shape, classes, test accuracy,
the command). Loading never unpickles anything.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load as st_load_bytes
from safetensors.torch import save as st_save_bytes

from vae_core import VaeError, parse_json
from vae_core.data import load_dataset, to_float
from vae_core.files import atomic_write_bytes, atomic_write_json

CLASSIFIERS_DIR = Path(__file__).resolve().parent.parent / "classifiers"
FEATURES = 128


@dataclass
class ClassifierConfig:
    channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    stride: int = 1  # the first conv's: 2 at 64x64, a quarter of the work and a 2 MB file


def stride_for(image_size: int) -> int:
    """1 up to 32x32; 2 above, so the 128-unit layer sees at most 8x8 positions (28 -> 7, 64 -> 8)."""
    return 1 if image_size <= 32 else 2


class Classifier(nn.Module):
    """Two conv blocks and a 128-unit layer: 99 % and more on MNIST after 5 epochs."""

    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv2d(cfg.channels, 32, 3, stride=cfg.stride, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        side = cfg.image_size // cfg.stride // 4
        self.fc = nn.Linear(64 * side * side, FEATURES)
        self.out = nn.Linear(FEATURES, cfg.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer (after its ReLU): what the Fréchet distance compares."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


@torch.no_grad()
def classify(model: Classifier, images_u8, batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, 128), logits (N, classes)) of uint8 or [0, 1] float images, in eval mode."""
    model.eval()
    feats, logits = [], []
    for i in range(0, len(images_u8), batch):
        x = images_u8[i:i + batch]
        x = to_float(x) if x.dtype == torch.uint8 else x.float()
        f = model.features(x)
        feats.append(f)
        logits.append(model.out(f))
    return torch.cat(feats), torch.cat(logits)


def train_classifier(dataset: str, data_root=None, epochs: int = 5, seed: int = 0, out=None,
                     log=print, max_train: int | None = None) -> dict:
    """Train on the train split (Adam, batch 128, the learning rate halved every epoch from
    the third), score the test split, write the folder. Returns its config.json.
    max_train: a seeded random subset of the train split (sprites has 727,280 images; a shape
    classifier needs far fewer)."""
    torch.manual_seed(seed)
    train = load_dataset(dataset, "train", data_root)
    test = load_dataset(dataset, "test", data_root)
    images, labels = train.images, train.labels
    if max_train and max_train < len(images):
        keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:max_train]
        images, labels = images[keep], labels[keep]
    n, c, h, _ = images.shape
    cfg = ClassifierConfig(channels=c, image_size=h, num_classes=len(train.class_names), stride=stride_for(h))
    model = Classifier(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 ** max(0, e - 1))
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, 128):
            idx = perm[i:i + 128]
            x = to_float(images[idx])
            loss = F.cross_entropy(model(x), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        _, logits = classify(model, test.images)
        acc = (logits.argmax(1) == test.labels).float().mean().item()
        log(f"epoch {epoch}: test accuracy {acc:.4f} ({time.time() - t0:.0f} s)")
    config = {"dataset": dataset, "model": asdict(cfg), "class_names": list(train.class_names),
              "test_accuracy": round(acc, 4), "test_images": len(test.images), "train_images": n, "epochs": epochs,
              "seed": seed, "command": f"python -m vae_core.classifier --dataset {dataset} --epochs {epochs} --seed {seed}"
                                       + (f" --max-train {max_train}" if max_train else "")}
    folder = Path(out) if out else CLASSIFIERS_DIR / dataset
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(folder / "model.safetensors",
                       st_save_bytes(state, metadata={"classifier": json.dumps(asdict(cfg), sort_keys=True)}))
    atomic_write_json(folder / "config.json", config)
    return config


def classifier_folder(dataset: str) -> Path | None:
    """The shipped classifier of a dataset, or None when the project has none for it."""
    folder = CLASSIFIERS_DIR / dataset
    return folder if (folder / "model.safetensors").is_file() else None


def shipped_classifiers() -> list[str]:
    """'dataset at CxHxW' for each classifier the project has, for messages."""
    out = []
    for folder in sorted(CLASSIFIERS_DIR.glob("*/config.json")):
        try:
            m = parse_json(folder.read_text())["model"]
            out.append(f"{folder.parent.name} at {m['channels']}x{m['image_size']}x{m['image_size']}")
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def load_classifier(folder) -> tuple[Classifier, dict]:
    """The classifier in folder and its config.json; VaeError when either is unusable."""
    folder = Path(folder)
    try:
        config = parse_json((folder / "config.json").read_text())
        cfg = ClassifierConfig(**config["model"])
        model = Classifier(cfg)
        model.load_state_dict(st_load_bytes((folder / "model.safetensors").read_bytes()))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as e:
        raise VaeError(f"The classifier in {folder} cannot be loaded ({type(e).__name__}: {e}).") from e
    return model.eval(), config


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m vae_core.classifier", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, help="mnist, fashion-mnist, sprites, ...")
    p.add_argument("--data-root", default=None)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder to write (default classifiers/<dataset>)")
    p.add_argument("--max-train", type=int, default=None, help="train on a seeded random subset of this many")
    args = p.parse_args(argv)
    try:
        config = train_classifier(args.dataset, args.data_root, args.epochs, args.seed, args.out,
                                  max_train=args.max_train)
    except VaeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"done: {args.dataset} classifier, test accuracy {config['test_accuracy']:.2%}, "
          f"in {args.out or CLASSIFIERS_DIR / args.dataset}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
