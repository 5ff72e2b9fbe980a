"""Importance-sampled NLL speed: the decoder's memory layout, measured in one run.

    python benchmarks/eval_speed.py [--checkpoint checkpoints/mnist-bin-z50] [--images 50] [--iw-samples 1000]

The K = 5000 likelihood protocol is 5,000 decoder passes per test image, so the
decoder's throughput is the whole cost. vae_core.evaluate copies a CPU model to
channels-last layout before scoring; this prints decodes per second and the NLL
for the same images, the same K and the same random draws with (a) the weights as
trained (contiguous, NCHW) and (b) channels-last, and their ratio. Both sides run
in the same process, one after the other, so machine load affects both.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def nll_timed(model, images, k: int) -> tuple[float, float]:
    """(mean NLL, decodes per second) for uint8 images, K samples each, seed 0."""
    from vae_core.data import to_float
    from vae_core.evaluate import bernoulli_log_lik, iwae_log_likelihood
    x = to_float(images, "cpu")
    with torch.no_grad():
        mu, logvar = model.encode(x)
        t = time.perf_counter()
        nll = -iwae_log_likelihood(mu.float(), logvar.float(), bernoulli_log_lik(model, x), k,
                                   generator=torch.Generator().manual_seed(0))
        seconds = time.perf_counter() - t
    return float(nll.mean()), images.shape[0] * k / seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "mnist-bin-z50"))
    p.add_argument("--images", type=int, default=50)
    p.add_argument("--iw-samples", type=int, default=1000)
    args = p.parse_args()
    from vae_core.checkpoint import load_checkpoint
    from vae_core.device import cpu_fast_layout
    from vae_core.evaluate import evaluation_images

    ckpt = load_checkpoint(args.checkpoint)
    images, _ = evaluation_images(ckpt, "test", limit=args.images)
    plain = ckpt.model.eval()
    last = cpu_fast_layout(plain, torch.device("cpu"), keep_original=True)  # what vae_core.evaluate scores
    nll_timed(plain, images[:5], 50), nll_timed(last, images[:5], 50)  # warm up both
    print(f"{Path(args.checkpoint).name}: {args.images} test images x K = {args.iw_samples}, "
          f"CPU ({torch.get_num_threads()} threads)")
    a_nll, a_speed = nll_timed(plain, images, args.iw_samples)
    b_nll, b_speed = nll_timed(last, images, args.iw_samples)
    print(f"(a) contiguous (as trained)  {a_speed:9.0f} decodes/s   NLL {a_nll:.4f}")
    print(f"(b) channels-last (shipped)  {b_speed:9.0f} decodes/s   NLL {b_nll:.4f}")
    print(f"speed-up b/a: {b_speed / a_speed:.2f}x; NLL difference {abs(a_nll - b_nll):.5f} nats; "
          f"K = 5000 on all 10,000 test images: {5e7 / b_speed / 60:.0f} min (b) vs {5e7 / a_speed / 60:.0f} min (a)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
