"""Sprites generation speed: the whole 737,280-image grid, colour images, training batches.

    python benchmarks/sprites_gen.py [--batch 16384] [--no-pack]

Prints, on this machine:
  - the time to build the pose bank (720 shape x scale x orientation sprites);
  - the whole binary grid rendered in batches and discarded: seconds, images/s;
  - the whole grid rendered and bit-packed into one 377 MB array (737,280 x 512
    bytes), with the number of distinct images among them (a 64-bit hash of each
    packed image): dSprites' orientation grid includes both 0 and 2pi, so 18,432
    images (3 shapes x 6 scales x 32 x 32 positions) repeat their orientation-0 twin,
    and symmetric shapes at small scales (a square ~a quarter turn on, an ellipse
    ~half a turn on) rasterise alike;
  - 10,000 colour images (3 x 64 x 64): seconds, images/s;
  - building the train split (727,280 indices and factors) and rendering random
    training batches of 128 from it;
  - peak resident memory (VmHWM) after each step: rendering in batches holds one
    batch, never the 3 GB grid.
numpy only: its gathers and ufuncs run on one core, so the core count is context.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vae_core import sprites as S  # noqa: E402


def peak_mb() -> float:
    """Peak resident memory of this process so far, MB (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def image_hashes(packed: np.ndarray) -> np.ndarray:
    """(N, 512) packed images -> (N,) uint64: splitmix64 folded over the 64 words of each."""
    words = packed.view(np.uint64)
    h = np.zeros(len(words), dtype=np.uint64)
    for j in range(words.shape[1]):
        h = S._splitmix64(h ^ words[:, j])
    return h


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16384, help="images rendered per call (default 16384)")
    p.add_argument("--no-pack", action="store_true", help="skip the bit-packed pass and the distinct count")
    args = p.parse_args()
    n, b = S.NUM_IMAGES, args.batch
    print(f"cores: {os.cpu_count()}; numpy {np.__version__}; grid: {n:,} images of 64x64; batch {b}")
    print(f"baseline peak memory: {peak_mb():.0f} MB")

    t0 = time.perf_counter()
    S._bank()
    print(f"pose bank (720 sprites, 6.5 MB):          {1e3 * (time.perf_counter() - t0):7.1f} ms")

    t0 = time.perf_counter()
    ink = 0
    for i0 in range(0, n, b):
        ink += int(S.render_indices(np.arange(i0, min(i0 + b, n)))[:, 32, 32].sum())  # touch, discard
    dt = time.perf_counter() - t0
    print(f"whole binary grid, rendered and discarded: {dt:7.2f} s  {n / dt:10,.0f} images/s  "
          f"peak {peak_mb():.0f} MB")

    if not args.no_pack:
        packed = np.empty((n, 512), dtype=np.uint8)
        t0 = time.perf_counter()
        for i0 in range(0, n, b):
            i1 = min(i0 + b, n)
            packed[i0:i1] = np.packbits(S.render_indices(np.arange(i0, i1)).reshape(i1 - i0, -1), axis=1)
        dt = time.perf_counter() - t0
        print(f"whole binary grid, bit-packed (377 MB):    {dt:7.2f} s  {n / dt:10,.0f} images/s  "
              f"peak {peak_mb():.0f} MB")
        t0 = time.perf_counter()
        distinct = len(np.unique(image_hashes(packed)))
        print(f"distinct images: {distinct:,} of {n:,} ({n - distinct:,} repeats; orientation "
              f"2pi = 0 accounts for {3 * 6 * 32 * 32:,}, symmetric shapes at small scales for "
              f"the rest)  [{time.perf_counter() - t0:.1f} s to hash]")
        del packed

    idx = np.random.default_rng(0).choice(n, 10_000, replace=False)
    t0 = time.perf_counter()
    colour = S.render_indices(idx, colour=True)
    dt = time.perf_counter() - t0
    print(f"10,000 colour images (3x64x64, 123 MB):    {dt:7.3f} s  {1e4 / dt:10,.0f} images/s  "
          f"peak {peak_mb():.0f} MB")
    del colour

    t0 = time.perf_counter()
    train = S.Sprites("train")
    dt_split = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, len(train), 128) for _ in range(2000)]
    t0 = time.perf_counter()
    for batch in batches:
        train[batch]
    dt = time.perf_counter() - t0
    print(f"Sprites('train') built ({len(train):,} factors): {1e3 * dt_split:6.0f} ms; "
          f"random batches of 128: {1e6 * dt / len(batches):6.0f} us each, "
          f"{128 * len(batches) / dt:10,.0f} images/s  peak {peak_mb():.0f} MB")

    t0 = time.perf_counter()
    f = S.sample_factors(10_000, 0, fixed={"scale": 3})
    S.render(f)
    print(f"sample_factors + render, 10,000 with scale held: {1e3 * (time.perf_counter() - t0):6.1f} ms")


if __name__ == "__main__":
    main()
