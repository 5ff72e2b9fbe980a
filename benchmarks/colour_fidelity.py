"""Does a color-sprites model keep each sprite's colour, or only its brightness?

    python benchmarks/colour_fidelity.py [--checkpoint checkpoints/color-sprites-z10] [--n 2000]
        [--png /tmp/colours.png]

For n test sprites (rendered by vae_core.sprites, no dataset files needed) it compares the true
fill colour with the reconstruction's, read inside the sprite (the mask eroded by 2 pixels, so
blurred edges do not count):
    r       per-channel correlation of the reconstructed colour with the true one
    slope   least-squares slope of reconstructed on true: 1 keeps the colours, 0 paints every
            sprite the mean colour (pale)
    hue r   the same correlation after removing each colour's brightness (its channel mean):
            a model that encodes luminance alone scores r about 0.6 but hue r about 0
    R2(mu)  how much of the colour a linear map of the posterior means explains (fitted on
            half of the sprites, scored on the other half)
--png writes test images over their reconstructions, to look at. Prints figures; writes
nothing else.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from vae_core.checkpoint import load_checkpoint  # noqa: E402
from vae_core.latents import encode_images  # noqa: E402
from vae_core.quality import _images_of  # noqa: E402
from vae_core.sprites import Sprites, colours, factors_to_index, render  # noqa: E402


def fidelity(model, n: int = 2000) -> dict:
    from scipy.ndimage import binary_erosion
    f = Sprites("test", colour=True).factors[:n]
    inner = np.stack([binary_erosion(m, iterations=2) for m in render(f, False) > 0])
    keep = inner.sum((1, 2)) >= 4  # the smallest sprites have no interior left
    images, inner = render(f[keep], True), inner[keep]
    true = colours(factors_to_index(f[keep])).astype(np.float32) / 255
    mu, _ = encode_images(model, torch.from_numpy(images), batch_size=500)
    rec = _images_of(model, mu, batch=500).numpy()  # the pixel means evaluate scores
    got = (rec * inner[:, None]).sum((2, 3)) / inner.sum((1, 2))[:, None]
    hue_t, hue_g = true - true.mean(1, keepdims=True), got - got.mean(1, keepdims=True)
    a = np.c_[mu, np.ones(len(mu))]
    h = len(a) // 2
    pred = a[h:] @ np.linalg.lstsq(a[:h], true[:h], rcond=None)[0]
    r2 = 1 - ((pred - true[h:]) ** 2).sum(0) / ((true[h:] - true[h:].mean(0)) ** 2).sum(0)
    return {"sprites": int(keep.sum()),
            "r": [float(np.corrcoef(true[:, c], got[:, c])[0, 1]) for c in range(3)],
            "slope": [float(np.polyfit(true[:, c], got[:, c], 1)[0]) for c in range(3)],
            "hue_r": [float(np.corrcoef(hue_t[:, c], hue_g[:, c])[0, 1]) for c in range(3)],
            "r2_mu": [float(v) for v in r2],
            "mean_abs_error": float(np.abs(got - true).mean()),
            "images": (images[:10].astype(np.float32) / 255, rec[:10])}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "color-sprites-z10"))
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--png", default=None, help="write test images over their reconstructions here")
    args = p.parse_args()
    ck = load_checkpoint(args.checkpoint)
    if tuple(ck.model_config.image_shape) != (3, 64, 64):
        sys.exit(f"{args.checkpoint} is not a 3x64x64 model; this measures color-sprites models.")
    out = fidelity(ck.model.eval(), args.n)
    rgb = lambda v: " / ".join(f"{x:.2f}" for x in v)  # noqa: E731
    print(f"{args.checkpoint}: {out['sprites']} test sprites (R / G / B)")
    print(f"  r          {rgb(out['r'])}")
    print(f"  slope      {rgb(out['slope'])}   (1: the colours kept, 0: every sprite the mean colour)")
    print(f"  hue r      {rgb(out['hue_r'])}   (brightness removed)")
    print(f"  R2 from mu {rgb(out['r2_mu'])}")
    print(f"  mean |error| {out['mean_abs_error']:.3f} (colours span 0.5..1)")
    if args.png:
        from PIL import Image
        x, rec = out["images"]
        row = lambda a: np.concatenate(list(a.transpose(0, 2, 3, 1)), 1)  # noqa: E731
        img = (np.concatenate([row(x), row(rec)], 0) * 255).round().astype(np.uint8)
        Image.fromarray(img).save(args.png)
        print(f"  wrote {args.png}")


if __name__ == "__main__":
    main()
