"""Animated GIFs of decoded frames (an interpolation, a traversal), for download.

Why we assemble the GIF ourselves instead of imageio.v3.imwrite(..., extension=".gif"):
imageio hands the frames to Pillow's GIF writer, and Pillow (GifImagePlugin.
_write_multiple_frames) *always* drops a frame identical to the one before it and
adds its duration to the previous frame, with no option to turn that off. A
traversal along a dead latent dimension is all identical frames, and a user who
asked for 20 steps should get 20 frames. So we write the container (header, global
palette, NETSCAPE loop extension, trailer) here and let Pillow's public legacy
helper GifImagePlugin.getdata LZW-encode each frame. Frames are grayscale, so one
global palette with index i = gray level i makes the encoding lossless: no
quantisation, no dithering. Colour frames (T, H, W, 3) share one global palette
of at most 256 colours (median cut over all frames together, no dithering), so the
animation does not flicker between per-frame palettes; a colour VAE's decodes are
smooth, and 256 colours hold them with little visible loss. Anything that reads
GIFs (Pillow, imageio, browsers) reads the result.

Timing: GIF stores frame delays in hundredths of a second, and browsers replace
delays under 20 ms by ~100 ms (a leftover from 1990s GIFs with delay 0). We round
1000/fps to the nearest 10 ms and never go under 20 ms, so 60 fps plays at 50.
"""
from __future__ import annotations

import io
import struct

import numpy as np
from PIL import GifImagePlugin, Image, ImageDraw, ImageFont

from vae_core import VaeError
from vae_core.images import upscale

MIN_SIZE, MAX_SIZE = 16, 1024
MIN_FPS, MAX_FPS = 0.5, 60.0
MIN_DELAY_MS = 20  # the shortest delay browsers honour

_GRAY_PALETTE = bytes(np.repeat(np.arange(256, dtype=np.uint8), 3))
# Label colours (gray levels): a dark box that still shows against MNIST's black
# background, with light text on it.
_BOX, _TEXT = 48, 240


def frame_duration_ms(fps: float) -> int:
    """The per-frame delay actually written for fps: a multiple of 10 ms, at least 20 ms."""
    return max(MIN_DELAY_MS, 10 * round(100.0 / fps))


def _draw_label(frame: np.ndarray, text: str) -> np.ndarray:
    """Draw text in the top-left corner on a dark box; the font scales with the frame."""
    im = Image.fromarray(frame)
    font_px = max(8, round(im.height / 14))
    font = ImageFont.load_default(size=font_px)
    draw = ImageDraw.Draw(im)
    pad = max(1, font_px // 4)
    left, top, right, bottom = draw.textbbox((pad, pad), text, font=font)
    box, ink = (_BOX, _TEXT) if im.mode == "L" else ((_BOX,) * 3, (_TEXT,) * 3)
    draw.rectangle((0, 0, right + pad, bottom + pad), fill=box)
    draw.text((pad, pad), text, fill=ink, font=font)
    return np.asarray(im)


def gif_bytes(frames, size: int = 256, fps: float = 10, resample: str = "nearest",
              pingpong: bool = False, labels: bool = False) -> bytes:
    """Looping GIF of uint8 frames, grey (T, H, W) or colour (T, H, W, 3), each upscaled to size x size.

    pingpong plays forward then back without repeating the end frames (T -> 2T-2).
    labels writes "i/T" (the source step) on each frame. The output has exactly one
    GIF frame per (ping-ponged) input frame, identical neighbours included.
    """
    if isinstance(frames, (list, tuple)):
        if len(frames) == 0:
            raise VaeError("A GIF needs at least one frame: decode some latents first.")
        frames = np.stack([np.asarray(f) for f in frames])
    frames = np.asarray(frames)
    if frames.ndim == 2:  # one grey frame (one colour frame must come as (1, H, W, 3))
        frames = frames[None]
    colour = frames.ndim == 4 and frames.shape[-1] == 3
    if not (frames.ndim == 3 or colour) or frames.dtype != np.uint8:
        raise VaeError(f"GIF frames must be uint8 images, grey (T, H, W) or colour (T, H, W, 3), "
                       f"got {frames.dtype} {frames.shape}.")
    if len(frames) == 0:
        raise VaeError("A GIF needs at least one frame: decode some latents first.")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise VaeError(f"GIF size must be a whole number of pixels from {MIN_SIZE} to {MAX_SIZE}, got {size!r}.")
    if not isinstance(fps, (int, float, np.number)) or not MIN_FPS <= fps <= MAX_FPS:
        raise VaeError(f"GIF speed must be from {MIN_FPS:g} to {MAX_FPS:g} frames per second, got {fps!r}.")

    n = len(frames)
    big = [upscale(f, int(size), resample) for f in frames]
    if labels:
        big = [_draw_label(f, f"{i + 1}/{n}") for i, f in enumerate(big)]
    if pingpong and n >= 2:
        big = big + big[-2:0:-1]  # 0..n-1 then n-2..1: the loop returns to 0 itself

    palette = _GRAY_PALETTE
    if colour:
        # one palette for the whole animation, from all frames stacked into one picture
        together = Image.fromarray(np.ascontiguousarray(np.concatenate(big, axis=0)))
        pal = together.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        palette = bytes(pal.getpalette()[:768]).ljust(768, b"\0")
        big = [Image.fromarray(np.ascontiguousarray(f)).quantize(palette=pal, dither=Image.Dither.NONE)
               for f in big]

    buf = io.BytesIO()
    # Header + logical screen descriptor: packed 0xF7 = global colour table present,
    # 8-bit colour resolution, table of 2^(7+1) = 256 entries; background 0, no aspect.
    buf.write(b"GIF89a" + struct.pack("<HHBBB", size, size, 0xF7, 0, 0) + palette)
    # NETSCAPE2.0 application extension, loop count 0 = forever.
    buf.write(b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", 0) + b"\x00")
    delay = frame_duration_ms(float(fps))
    for f in big:
        # getdata writes the graphic control extension (delay, disposal), the image
        # descriptor (no local palette: indices are gray levels, or the shared colour
        # palette's) and the LZW data.
        # disposal 1 = leave the frame in place; every frame covers the canvas anyway.
        im = f if isinstance(f, Image.Image) else Image.fromarray(np.ascontiguousarray(f))
        for chunk in GifImagePlugin.getdata(im, duration=delay, disposal=1):
            buf.write(chunk)
    buf.write(b";")
    return buf.getvalue()


def gif_info(data: bytes) -> dict:
    """What a GIF says about itself, read back with Pillow.

    {"frames", "loop" (0 = forever, None = play once), "size" (w, h),
     "duration_ms" (first frame's delay), "total_ms" (one pass through all frames)}
    """
    try:
        im = Image.open(io.BytesIO(data))
        if im.format != "GIF":
            raise VaeError(f"This is a {im.format} image, not a GIF.")
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(int(im.info.get("duration", 0)))
        im.seek(0)
        return {"frames": im.n_frames, "loop": im.info.get("loop"), "size": im.size,
                "duration_ms": durations[0], "total_ms": sum(durations)}
    except (OSError, SyntaxError, ValueError) as e:
        raise VaeError(f"Could not read the GIF ({e}): make it again with gif_bytes.") from e
