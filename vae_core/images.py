"""Turning latents into pictures: decode, grids, upscaled PNGs.

Decoders return logits; sigmoid happens here, at display time (for a Gaussian
decoder too: sigmoid(logits) is its mean; a channel-gain decoder's output is its mean,
clipped to [0, 1]: model.pixels). Images leave this module in display
layout, as uint8 numpy arrays (H, W) for grey models, exactly as before issue 13,
and (H, W, 3) for colour ones (stacks: (N, H, W) / (N, H, W, 3)), or as PNG bytes,
ready for Streamlit. Inside, models and datasets are NCHW; to_display converts.
"""
from __future__ import annotations

import io
from statistics import NormalDist

import numpy as np
import torch
from PIL import Image

from vae_core import VaeError
from vae_core.data import to_float


def to_display(images_u8) -> np.ndarray:
    """NCHW uint8 (N, C, H, W) -> display layout: (N, H, W) for C = 1, (N, H, W, 3) for C = 3.

    A numpy array or a tensor; the result is a numpy array (a view when no copy is needed).
    """
    x = images_u8.cpu().numpy() if isinstance(images_u8, torch.Tensor) else np.asarray(images_u8)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise VaeError(f"to_display wants NCHW images with 1 or 3 channels; got shape {x.shape}.")
    return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)


@torch.no_grad()
def decode(model, z) -> np.ndarray:
    """Decode z (D,) or (N, D) to uint8 images in display layout: (H, W) or (N, H, W) for a
    grey model, (H, W, 3) or (N, H, W, 3) for a colour one."""
    z_t = torch.as_tensor(np.asarray(z, dtype=np.float32))
    single = z_t.ndim == 1
    if single:
        z_t = z_t[None]
    if z_t.shape[1] != model.latent_dim:
        raise VaeError(f"z has {z_t.shape[1]} dimensions but the model's latent space has {model.latent_dim}.")
    device = next(model.parameters()).device
    probs = model.pixels(model.decode(z_t.to(device)).float()).cpu()
    out = to_display((probs * 255).round().to(torch.uint8))
    return out[0] if single else out


@torch.no_grad()
def reconstruct(model, images_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Encode uint8 images (display layout (N, H, W) / (N, H, W, 3), or NCHW) to their means and
    decode them: (mu, recon uint8 in display layout)."""
    mu, _ = model.encode(to_float(images_u8, next(model.parameters()).device))
    mu = mu.float().cpu().numpy()
    return mu, decode(model, mu)


def upscale(image: np.ndarray, size: int, resample: str = "nearest") -> np.ndarray:
    """Upscale a uint8 image (H, W) or (H, W, 3) to size x size: nearest keeps pixels crisp, bicubic smooths."""
    filters = {"nearest": Image.NEAREST, "bicubic": Image.BICUBIC}
    if resample not in filters:
        raise VaeError(f"Unknown resampling {resample!r}: choose nearest or bicubic.")
    return np.asarray(Image.fromarray(image).resize((size, size), filters[resample]))


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """PNG of a uint8 image (H, W) grey or (H, W, 3) RGB, optionally upscaled by an integer
    factor with nearest pixels."""
    im = Image.fromarray(image)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def grid_axes(n: int, extent: float = 3.0, mode: str = "linear") -> np.ndarray:
    """n grid values along one axis.

    linear:    evenly spaced on [-extent, extent]
    quantiles: the prior's quantiles Phi^-1 of an even grid on (0, 1), as in Kingma &
               Welling (2014), Fig. 4: equal probability mass between neighbours.
    """
    if n < 2:
        raise VaeError("A grid needs at least 2 points per side.")
    if mode == "linear":
        return np.linspace(-extent, extent, n)
    if mode == "quantiles":
        return np.array([NormalDist().inv_cdf(p) for p in np.linspace(0, 1, n + 2)[1:-1]])
    raise VaeError(f"Unknown grid mode {mode!r}: choose linear or quantiles.")


def grid_latents(base_z: np.ndarray, axis_x: np.ndarray, axis_y: np.ndarray,
                 dirs: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Latents of a grid: base_z + x * dirs[0] + y * dirs[1], rows top (high y) to bottom.

    dirs are latent-space directions (unit vectors e_i for two chosen dimensions, or
    two principal axes). Returns (len(axis_y), len(axis_x), D).
    """
    base = np.asarray(base_z, dtype=np.float64)
    ys = axis_y[::-1]  # the top row shows the largest y, as on a plot
    grid = base[None, None, :] + axis_x[None, :, None] * dirs[0][None, None, :] \
        + ys[:, None, None] * dirs[1][None, None, :]
    return grid.astype(np.float32)


def tile(images: np.ndarray, pad: int = 0, pad_value: int = 0) -> np.ndarray:
    """(rows, cols, h, w) uint8 -> one (rows*h, cols*w) mosaic; (rows, cols, h, w, 3) -> (.., .., 3)."""
    rows, cols, h, w = images.shape[:4]
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, *images.shape[4:]), pad_value, dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = images[r, c]
    return out


def decode_many(model, z, batch: int = 1024) -> np.ndarray:
    """decode of many z (N, D), `batch` at a time so memory stays bounded."""
    return np.concatenate([decode(model, z[i:i + batch]) for i in range(0, len(z), batch)])


def decode_grid(model, base_z, axis_x, axis_y, dirs, batch: int = 1024) -> np.ndarray:
    """Decode a whole grid and tile it into one mosaic uint8 image."""
    lat = grid_latents(base_z, axis_x, axis_y, dirs)
    rows, cols, d = lat.shape
    imgs = decode_many(model, lat.reshape(-1, d), batch)
    return tile(imgs.reshape(rows, cols, *imgs.shape[1:]))
