"""Latent traversals: the figure of the β-VAE papers (Higgins et al. 2017, Fig. 1/7).

One row per latent dimension d, ordered by the KL the model spends on it; a row
decodes z0 + v·e_d for a few values v from -a to +a (columns), every other
coordinate held at z0 (a test image's posterior mean, any z, or the prior mean 0).
With an odd number of columns the centre column is v = 0 exactly: z0 itself.

  kl_order(mu, logvar)                  dimensions by mean KL(q(z_d|x) || N(0, 1)), largest first
  std_order(mu)                         the same for an autoencoder (no posterior): by spread of the codes
  traversal_values(extent, cols)        the column values, centre exactly 0 for odd cols
  traversal_latents(z0, dims, values)   (rows, cols, D) float32
  traversal_grid(model, z0, dims, values)  uint8 (rows, cols, H, W[, 3]): the shifts in one batch, z0 once
  fsq_traversal_latents, vq_traversal_latents, decode_table
                                        the discrete models' rows: a channel through its FSQ levels,
                                        or a VQ slot through codes of the codebook
  traversal_figure(grid, ...)           one RGB mosaic with separators, row labels, column headers
  row_gif(frames, ...)                  one row as a looping ping-pong GIF (vae_core.gif)

Pure functions of numpy arrays and a model: no Streamlit here.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vae_core import VaeError
from vae_core.images import decode, decode_many

COLLAPSED_KL = 0.01  # nats: a dimension whose posterior is the prior on average says ~nothing about x

# The figure's colours (RGB). The tiles of every dataset here are drawn on black, so the
# figure is one dark picture: it reads the same in the app's light and dark themes.
BACKGROUND = (14, 17, 23)
SEPARATOR = (72, 72, 80)
CENTRE = (255, 75, 75)      # the frame around the centre column (z0 itself): Streamlit's primary red
TEXT = (235, 235, 235)
MUTED = (125, 125, 135)     # collapsed rows' labels
PAD = 8                      # margin around a labelled figure, px
FONT_SIZE = 13               # px: labels and headers; the header strip is FONT_SIZE + PAD tall


def kl_order(mu, logvar) -> tuple[np.ndarray, np.ndarray]:
    """(dims, kl): the dimensions sorted by their mean KL over the samples, largest first
    (ties keep index order), and those KL values in nats, in the same order.

    KL(N(mu, exp(logvar)) || N(0, 1)) per sample and dimension, in closed form:
    0.5 (mu^2 + exp(logvar) - 1 - logvar), averaged over the N rows of mu and logvar (N, D)."""
    mu = np.asarray(mu, dtype=np.float64)
    logvar = np.asarray(logvar, dtype=np.float64)
    if mu.ndim != 2 or mu.shape != logvar.shape or len(mu) == 0:
        raise VaeError(f"kl_order wants mu and logvar of the same shape (N, D) with N > 0, "
                       f"got {mu.shape} and {logvar.shape}.")
    kl = (0.5 * (mu ** 2 + np.exp(logvar) - 1.0 - logvar)).mean(0)
    dims = np.argsort(-kl, kind="stable")
    return dims, kl[dims]


def std_order(mu) -> tuple[np.ndarray, np.ndarray]:
    """(dims, std): an autoencoder's code dimensions by their standard deviation over the samples, largest first."""
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2 or len(mu) == 0:
        raise VaeError(f"std_order wants codes of shape (N, D) with N > 0, got {mu.shape}.")
    sd = mu.std(0)
    dims = np.argsort(-sd, kind="stable")
    return dims, sd[dims]


def traversal_values(extent: float = 3.0, cols: int = 9) -> np.ndarray:
    """cols values evenly spaced on [-extent, extent]; for odd cols the centre one is exactly 0."""
    if cols < 2:
        raise VaeError(f"A traversal needs at least 2 columns, got {cols}.")
    if not extent > 0:
        raise VaeError(f"The traversal's range must be positive, got {extent}.")
    values = np.linspace(-extent, extent, cols)
    if cols % 2:
        values[cols // 2] = 0.0  # linspace may leave -1e-16 there: the centre is z0 itself
    return values


def traversal_latents(z0, dims, values) -> np.ndarray:
    """(rows, cols, D) float32: row r is z0 with coordinate dims[r] shifted by each value."""
    z0 = np.asarray(z0, dtype=np.float32).ravel()
    dims = np.asarray(dims, dtype=np.int64).ravel()
    values = np.asarray(values, dtype=np.float32).ravel()
    if len(dims) and (dims.min() < 0 or dims.max() >= len(z0)):
        raise VaeError(f"Traversal dimensions must lie in 0..{len(z0) - 1}, got {dims.tolist()}.")
    z = np.repeat(np.repeat(z0[None, None], len(dims), 0), len(values), 1)
    rows = np.arange(len(dims))
    z[rows, :, dims] = z0[dims][:, None] + values[None, :]
    return z


def traversal_grid(model, z0, dims, values, batch: int = 1024) -> np.ndarray:
    """Decode the traversal: uint8 (rows, cols, H, W) grey or (rows, cols, H, W, 3) colour.

    Every shifted z is decoded in one batch (of up to `batch`). A column of value 0 is
    z0 itself in every row, decoded once on its own: a convolution's rounding can differ
    by a grey level between batch sizes, and the centre must be the very decode(z0) the
    rest of the app shows."""
    values = np.asarray(values, dtype=np.float64).ravel()
    z = traversal_latents(z0, dims, values)
    rows, cols, d = z.shape
    if d != model.latent_dim:
        raise VaeError(f"z0 has {d} dimensions but the model's latent space has {model.latent_dim}.")
    c, h, w = model.image_shape
    out = np.zeros((rows, cols, h, w, *((3,) if c == 3 else ())), np.uint8)
    if rows == 0 or cols == 0:
        return out
    centre = values == 0
    flat = z[:, ~centre].reshape(-1, d)
    if len(flat):
        imgs = decode_many(model, flat, batch)
        out[:, ~centre] = imgs.reshape(rows, -1, *imgs.shape[1:])
    if centre.any():
        out[:, centre] = decode(model, np.asarray(z0, dtype=np.float32).ravel())
    return out


def decode_table(model, z, batch: int = 1024) -> np.ndarray:
    """Decode a table of latents (rows, cols, D) as traversal_grid does; a row of NaN is a
    blank (black) tile: rows of a discrete traversal can have fewer entries than columns."""
    z = np.asarray(z, dtype=np.float32)
    rows, cols, d = z.shape
    if d != model.latent_dim:
        raise VaeError(f"The table's latents have {d} dimensions but the model's latent space has {model.latent_dim}.")
    c, h, w = model.image_shape
    out = np.zeros((rows, cols, h, w, *((3,) if c == 3 else ())), np.uint8)
    valid = np.isfinite(z).all(-1)
    flat = z[valid]
    if len(flat):
        out[valid] = decode_many(model, flat, batch)
    return out


def fsq_traversal_latents(z0, dims, level_values) -> np.ndarray:
    """FSQ's traversal: row r sets dimension dims[r] of z0 to each of its levels in turn
    (level_values[d]: that channel's grid values); rows with fewer levels than the widest
    end in NaN (blank tiles). (rows, max levels, D) float32."""
    z0 = np.asarray(z0, dtype=np.float32).ravel()
    cols = max((len(level_values[d]) for d in dims), default=0)
    z = np.full((len(dims), cols, len(z0)), np.nan, np.float32)
    for r, d in enumerate(dims):
        n = len(level_values[d])
        z[r, :n] = z0
        z[r, :n, d] = level_values[d]
    return z


def vq_traversal_latents(z0, codebook, slots: int, codes) -> np.ndarray:
    """VQ-VAE's traversal: row m replaces slot m of z0 (e numbers) by each code of `codes`,
    every other slot kept. (slots, len(codes), slots * e) float32."""
    z0 = np.asarray(z0, dtype=np.float32).ravel()
    codebook = np.asarray(codebook, dtype=np.float32)
    e = codebook.shape[1]
    if slots * e != len(z0):
        raise VaeError(f"{slots} slots of {e} numbers do not make a z of {len(z0)}.")
    z = np.repeat(np.repeat(z0[None, None], slots, 0), len(codes), 1)
    for m in range(slots):
        z[m, :, m * e:(m + 1) * e] = codebook[np.asarray(codes, dtype=np.int64)]
    return z


def value_label(v: float) -> str:
    """A column header: '-3', '-0.75', '0', '+1.5' (ASCII: the built-in font has no minus sign)."""
    if abs(v) < 5e-3:
        return "0"
    return f"{v:+.2f}".rstrip("0").rstrip(".")


def _font(size: int):
    return ImageFont.load_default(size=size)


def tile_block_size(rows: int, cols: int, tile_h: int, tile_w: int, sep: int = 2) -> tuple[int, int]:
    """(height, width) of the tiles with `sep` px of separator between and around them."""
    return rows * tile_h + (rows + 1) * sep, cols * tile_w + (cols + 1) * sep


def traversal_figure(grid: np.ndarray, row_labels=None, col_labels=None, *, scale: int = 1, sep: int = 2,
                     muted_rows=(), centre: int | None = None, corner: str = "",
                     font_size: int = FONT_SIZE) -> np.ndarray:
    """One RGB uint8 picture of a traversal grid (rows, cols, H, W[, 3]).

    Tiles are upscaled by `scale` with nearest pixels and framed by `sep`-px separators
    (tile_block_size gives the block's size). Without labels that block is the whole
    figure; with row labels (left) and/or column labels (top) it sits at the bottom
    right of a figure with PAD px of margin all around. muted_rows are labelled in a
    dim colour (collapsed dimensions); centre, a column index, gets a red frame (z0)."""
    grid = np.asarray(grid)
    if grid.dtype != np.uint8 or grid.ndim not in (4, 5) or (grid.ndim == 5 and grid.shape[-1] != 3):
        raise VaeError(f"traversal_figure wants uint8 (rows, cols, H, W) or (rows, cols, H, W, 3), "
                       f"got {grid.dtype} {grid.shape}.")
    rows, cols, h, w = grid.shape[:4]
    if row_labels is not None and len(row_labels) != rows:
        raise VaeError(f"{len(row_labels)} row labels for {rows} rows.")
    if col_labels is not None and len(col_labels) != cols:
        raise VaeError(f"{len(col_labels)} column labels for {cols} columns.")
    scale = max(1, int(scale))
    th, tw = h * scale, w * scale
    bh, bw = tile_block_size(rows, cols, th, tw, sep)
    block = np.empty((bh, bw, 3), np.uint8)
    block[:] = SEPARATOR
    if centre is not None and 0 <= centre < cols:
        x0 = centre * (tw + sep)
        block[:, x0:x0 + tw + 2 * sep] = CENTRE
    tiles = grid if grid.ndim == 5 else np.repeat(grid[..., None], 3, -1)
    if scale > 1:
        tiles = tiles.repeat(scale, 2).repeat(scale, 3)
    for r in range(rows):
        y = sep + r * (th + sep)
        for c in range(cols):
            x = sep + c * (tw + sep)
            block[y:y + th, x:x + tw] = tiles[r, c]
    if row_labels is None and col_labels is None:
        return block

    font = _font(font_size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = lambda s: measure.textbbox((0, 0), s, font=font)[2] if s else 0  # noqa: E731
    left = max([text_w(s) for s in (row_labels or [])] + [text_w(corner)], default=0) + PAD if row_labels else 0
    top = font_size + PAD if col_labels is not None else 0
    fig = Image.new("RGB", (PAD + left + bw + PAD, PAD + top + bh + PAD), BACKGROUND)
    fig.paste(Image.fromarray(block), (PAD + left, PAD + top))
    draw = ImageDraw.Draw(fig)
    muted = set(int(r) for r in muted_rows)
    if row_labels is not None:
        for r, s in enumerate(row_labels):
            cy = PAD + top + sep + r * (th + sep) + th // 2
            draw.text((PAD, cy), s, fill=MUTED if r in muted else TEXT, font=font, anchor="lm")
    if col_labels is not None:
        for c, s in enumerate(col_labels):
            cx = PAD + left + sep + c * (tw + sep) + tw // 2
            draw.text((cx, PAD + top - PAD // 2), s, fill=CENTRE if c == centre else TEXT, font=font, anchor="md")
        if corner and row_labels is not None:
            draw.text((PAD, PAD + top - PAD // 2), corner, fill=MUTED, font=font, anchor="ld")
    return np.asarray(fig)


def row_gif(frames: np.ndarray, size: int = 256, fps: float = 8, resample: str = "nearest") -> bytes:
    """One traversal row (cols, H, W[, 3]) as a looping GIF that plays there and back
    (ping-pong, ends not repeated: 2*cols - 2 frames), so the loop has no jump."""
    from vae_core.gif import gif_bytes
    return gif_bytes(np.asarray(frames), size=size, fps=fps, resample=resample, pingpong=True)
