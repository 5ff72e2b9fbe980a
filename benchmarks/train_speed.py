"""Training speed: our loop vs the plain PyTorch-examples loop, same ConvVAE, one epoch each.

    python benchmarks/train_speed.py [--data-root ../shared/datasets] [--device auto] [--limit N]
    python benchmarks/train_speed.py --sprites [--limit 20000]    # the 64x64 ConvVAE on sprites
    python benchmarks/train_speed.py --tiny [--epochs 3 --reps 3]   # the lecture's TinyVAE workload

(a) ours: vae_core.train — the dataset resident on the device as uint8, batches
    sliced there, losses accumulated on the device, bf16 autocast where the
    hardware runs it natively (CUDA; CPUs with AVX512-BF16/AMX).
(b) reference: torchvision.datasets.MNIST with transforms.ToTensor(), a DataLoader
    (batch 128, shuffle, the examples' defaults), per-batch .to(device), fp32,
    loss.item() every step — as in pytorch/examples' vae/main.py.

Both train the same architecture (ConvVAE, latent 2, the same loss) for one
epoch; the figure is training images per second, excluding evaluation. The
ratio is measured in the same run, so machine load affects both sides.
The raw .gz files are decompressed into a temporary folder for torchvision
(the data root may be read-only).

--sprites: the 1x64x64 ConvVAE (four stride-2 convolutions, latent 10) on the generated
sprites, --limit images (default 20,000) of the training split. The reference is the
plain way to feed a generated dataset: a torch Dataset rendering one image per
__getitem__ (vae_core.sprites.render_indices of one index), a DataLoader (batch 128,
shuffle), fp32; ours renders whole batches (vae_core.data's lazy split) with bf16
autocast where native. Also prints how long the whole 737,280-image grid takes to
render (benchmarks/sprites_gen.py has more).
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vae_core.data import resolve_data_root  # noqa: E402
from vae_core.device import describe_device, resolve_device  # noqa: E402
from vae_core.losses import vae_loss  # noqa: E402
from vae_core.models import ModelConfig, build_model  # noqa: E402
from vae_core.train import TrainConfig, train  # noqa: E402


def plain_epoch(loader, cfg: ModelConfig, device: torch.device) -> float:
    """One epoch of the plain PyTorch-examples loop over loader (fp32, per-batch .to(device),
    loss.item() every step); returns images/s."""
    torch.manual_seed(0)
    model = build_model(cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    n = 0
    t0 = time.perf_counter()
    for x, _ in loader:
        x = x.to(device)
        logits, mu, logvar, _ = model(x)
        loss = vae_loss(logits, x, mu, logvar, beta=1.0)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()  # the examples log the loss every step
        n += x.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def reference_epoch(root: Path, device: torch.device, limit: int | None, batch_size: int = 128) -> float:
    """The plain loop on torchvision's MNIST; returns images/s."""
    from torchvision import datasets, transforms
    ds = datasets.MNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    if limit:
        ds = torch.utils.data.Subset(ds, range(limit))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True,
                                         pin_memory=device.type == "cuda")
    return plain_epoch(loader, ModelConfig(latent_dim=2), device)


def ours_epoch(root: Path, device: str, limit: int | None, batch_size: int, precision: str,
               compile_: bool) -> float:
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(dataset="mnist", data_root=str(root), latent_dim=2, epochs=1, limit=limit,
                          test_limit=1000, batch_size=batch_size, device=device, precision=precision,
                          compile=compile_, out=out)
        return train(cfg, progress=False)["images_per_s"]


def layout_steps(memory_format, seconds: float = 6.0) -> float:
    """Training steps per second x batch for the z = 50 dec+1 ConvVAE (batch 128, bf16
    autocast where native) in one weight layout: why train.py goes channels-last on a CPU."""
    from vae_core.losses import vae_loss
    from vae_core.models import ModelConfig, build_model
    from vae_core.train import cpu_has_fast_bf16
    torch.manual_seed(0)
    model = build_model(ModelConfig(latent_dim=50, extra_decoder_layer=True)).to(memory_format=memory_format)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.bernoulli(torch.full((128, 1, 28, 28), 0.2))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_fast_bf16()):
            logits, mu, logvar, _ = model(x)
        loss = vae_loss(logits.float(), x, mu.float(), logvar.float(), beta=1.0)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    for _ in range(3):
        step()
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        step()
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def tiny_speed(unpacked: Path, data_root: Path, epochs: int, reps: int) -> None:
    """The small end: the reference lecture's TinyVAE workload (an MLP VAE on MNIST, z = 2,
    sigmoid output, batch 128, 100 epochs; "PyTorch 12.3 s vs Julia 1.5 s, 8.2x slower").

    The model is the CLI's linear-vae at --hidden 64 (784 -> 128 -> 64 -> 2 and back: one
    layer more than the lecture's 784 -> 128 -> 2), in both loops. The naive loop is the
    lecture's: torchvision MNIST + ToTensor + DataLoader(batch 128, shuffle), fp32, a
    .item() every step. Ours is vae_core.train on the same model, batch and precision. Each
    repetition times `epochs` epochs of each loop (training only, as the lecture's timer);
    the 100-epoch times are the median epoch x 100, with the spread over the repetitions."""
    import json
    import statistics

    from torchvision import datasets, transforms
    cfg = ModelConfig(kind="linear-vae", latent_dim=2, hidden=64)
    device = torch.device("cpu")
    ds = datasets.MNIST(str(unpacked), train=True, download=False, transform=transforms.ToTensor())
    naive, ours = [], []
    for rep in range(reps):
        loader = torch.utils.data.DataLoader(ds, batch_size=128, shuffle=True)
        naive += [len(ds) / plain_epoch(loader, cfg, device) for _ in range(epochs)]
        with tempfile.TemporaryDirectory() as out:
            tc = TrainConfig(dataset="mnist", data_root=str(data_root), model="linear-vae", latent_dim=2, hidden=64,
                             epochs=epochs, batch_size=128, device="cpu", precision="fp32", test_limit=1000,
                             seed=rep, out=out)
            train(tc, progress=False)
            ours += [json.loads(line)["seconds"] for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    med_n, med_o = statistics.median(naive), statistics.median(ours)
    print(f"device: CPU ({torch.get_num_threads()} threads); torch {torch.__version__}; TinyVAE-sized linear-vae "
          f"(784-128-64-2), MNIST 60,000 images, batch 128, fp32; {reps} repetitions x {epochs} epochs per loop")
    print(f"naive loop (DataLoader + ToTensor): {len(ds) / med_n:8.0f} images/s; an epoch {med_n:.3f} s "
          f"(min {min(naive):.3f}, max {max(naive):.3f}); 100 epochs {100 * med_n:.1f} s")
    print(f"our loop (vae_core.train):          {len(ds) / med_o:8.0f} images/s; an epoch {med_o:.3f} s "
          f"(min {min(ours):.3f}, max {max(ours):.3f}); 100 epochs {100 * med_o:.1f} s")
    print(f"ratio: {med_n / med_o:.1f}x (the lecture's Julia-over-PyTorch figure: 8.2x)")


class _OneSprite(torch.utils.data.Dataset):
    """The plain reference: one rendered image per __getitem__."""

    def __init__(self, indices):
        self.indices = indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        from vae_core.sprites import render_indices
        return torch.from_numpy(render_indices([int(self.indices[i])])[0]).float().div_(255)[None], 0


def sprites_speed(device: torch.device, limit: int) -> None:
    from vae_core.sprites import NUM_IMAGES, render_indices, split_indices
    indices = split_indices("train", limit=limit)
    loader = torch.utils.data.DataLoader(_OneSprite(indices), batch_size=128, shuffle=True)
    ref = plain_epoch(loader, ModelConfig(latent_dim=10, image_size=64), device)
    print(f"device: {describe_device(device)}; torch {torch.__version__}; sprites 1x64x64, {limit:,} images, z=10")
    print(f"(b) reference (a Dataset rendering one image per item, DataLoader batch 128, fp32): {ref:8.0f} images/s")
    for batch, precision in ((128, "fp32"), (256, "auto")):
        with tempfile.TemporaryDirectory() as out:
            cfg = TrainConfig(dataset="sprites", latent_dim=10, image_size=64, epochs=1, limit=limit, test_limit=500,
                              batch_size=batch, device=str(device), precision=precision, out=out)
            ours = train(cfg, progress=False)["images_per_s"]
        print(f"(a) our loop, batch {batch}, {precision}: {ours:8.0f} images/s ({ours / ref:.2f}x)")
    t0 = time.perf_counter()
    for i in range(0, NUM_IMAGES, 16384):
        render_indices(range(i, min(i + 16384, NUM_IMAGES)))
    print(f"the whole grid ({NUM_IMAGES:,} images) rendered in {time.perf_counter() - t0:.2f} s")


@contextlib.contextmanager
def unpacked_mnist(root: Path):
    """A temporary folder holding MNIST/raw with root's .gz files decompressed, which is
    how torchvision's reader wants them (the data root may be read-only)."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for gz in (root / "MNIST" / "raw").glob("*.gz"):
            with gzip.open(gz, "rb") as src, open(raw / gz.name[:-3], "wb") as dst:
                shutil.copyfileobj(src, dst)
        yield Path(tmp)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--limit", type=int, default=None, help="first N training images (default: all 60,000)")
    p.add_argument("--batch-size", type=int, default=None, help="our loop's batch (default 256 CPU, 1024 CUDA)")
    p.add_argument("--compile", action="store_true", help="torch.compile our model")
    p.add_argument("--sprites", action="store_true", help="the 64x64 ConvVAE on the generated sprites instead")
    p.add_argument("--tiny", action="store_true", help="the lecture's TinyVAE workload (MLP, z=2, batch 128) instead")
    p.add_argument("--epochs", type=int, default=3, help="--tiny: epochs timed per loop and repetition")
    p.add_argument("--reps", type=int, default=3, help="--tiny: repetitions")
    args = p.parse_args()
    if args.sprites:
        sprites_speed(resolve_device(args.device), args.limit or 20_000)
        return
    if args.tiny:
        root = resolve_data_root(args.data_root)
        with unpacked_mnist(root) as tmp:
            tiny_speed(tmp, root, args.epochs, args.reps)
        return

    root = resolve_data_root(args.data_root)
    device = resolve_device(args.device)
    batch = args.batch_size or (1024 if device.type == "cuda" else 256)
    with unpacked_mnist(root) as tmp:
        print(f"device: {describe_device(device)}; torch {torch.__version__}; images: {args.limit or 60000}")
        ref = reference_epoch(tmp, device, args.limit)
        print(f"(b) reference loop (DataLoader + ToTensor, batch 128, fp32): {ref:8.0f} images/s")
    ours_same = ours_epoch(root, args.device, args.limit, 128, "fp32", False)
    print(f"(a) our loop, same batch 128, fp32:                            {ours_same:8.0f} images/s "
          f"({ours_same / ref:.2f}x)")
    ours = ours_epoch(root, args.device, args.limit, batch, "auto", args.compile)
    print(f"(a) our loop, batch {batch}, precision auto{' + compile' if args.compile else ''}:"
          f"{'':>{max(1, 22 - len(str(batch)))}}{ours:8.0f} images/s")
    print(f"speed-up of our loop over the reference: {ours / ref:.2f}x")
    if device.type == "cpu":
        plain, last = layout_steps(torch.contiguous_format), layout_steps(torch.channels_last)
        print(f"(c) z=50 dec+1 ConvVAE steps, batch 128: contiguous weights {plain:6.0f} images/s, "
              f"channels-last (ours) {last:6.0f} images/s ({last / plain:.2f}x)")


if __name__ == "__main__":
    main()
