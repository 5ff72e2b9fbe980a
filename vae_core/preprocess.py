"""Uploaded file -> 28x28 MNIST-style uint8 image, the way MNIST itself was made.

LeCun et al.: the NIST digits were "size normalized to fit in a 20x20 pixel box while
preserving their aspect ratio" (anti-aliasing gives the grey levels) and "centered in a
28x28 image by computing the center of mass of the pixels". A VAE trained on MNIST only
understands inputs framed like that, so an upload goes through the same steps:

    bytes --load_image--> grayscale PIL 'L' --preprocess--> Prepared(image (28, 28) uint8)

Uploads are untrusted: every failure is a VaeError naming the file, never a Pillow
traceback, and pixel counts are checked from the header before any pixel is decoded.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vae_core import VaeError

MAX_PIXELS = 40_000_000          # decompression-bomb limit (width*height of the decoded image, any frame)
MAX_UPLOAD_BYTES = 20 * 1024**2  # refuse bigger inputs before decoding
IMAGE_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"]  # for st.file_uploader(type=...)
INVERT_CHOICES = ("auto", "yes", "no")

# Pillow can open ~40 formats, some through external programs (EPS runs Ghostscript);
# an upload only gets the ones we list. Pillow's JPEG opener also returns MPO (camera JPEGs).
_FORMATS = ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"]
_PRETTY = "PNG, JPEG, GIF, BMP, WebP or TIFF"
BOX, FRAME = 20, 28   # MNIST: the digit fits a 20x20 box inside a 28x28 frame
BORDER = 0.05         # the outer 5% of each side is taken as background
MIN_INK = 0.1         # ink must differ from the background by 10% of full scale
INK_THRESHOLD = 0.1   # fraction of the brightest ink that still counts as ink


@dataclass
class Prepared:
    image: np.ndarray        # (28, 28) uint8, white ink on black, MNIST framing
    inverted: bool           # whether the input was inverted (bright background)
    notes: list[str] = field(default_factory=list)  # conversions done, for the page to show


# ---------------------------------------------------------------------------- decoding

def _what_is_it(data: bytes) -> str:
    """A guess for the error message when Pillow cannot identify the bytes."""
    head = data[:512]
    for magic, kind in ((b"\x7fELF", "a Linux program"), (b"MZ", "a Windows program"), (b"#!", "a script"),
                        (b"PK\x03\x04", "a zip archive"), (b"%PDF", "a PDF document"), (b"\x1f\x8b", "gzip data")):
        if head.startswith(magic):
            return f"it looks like {kind}"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return "it looks like HTML or XML text"
    if all(b >= 32 or b in b"\t\r\n" for b in head):
        return "it looks like plain text"
    return "its format is not recognised"


def _to_gray(im: Image.Image) -> tuple[Image.Image, list[str]]:
    """Any Pillow mode -> 'L', with a note for each conversion a person might want to know about."""
    mode, notes = im.mode, []
    if mode.startswith("I") or mode == "F":
        # Pillow's own convert('L') clips 16-bit values at 255 instead of scaling them,
        # which turns most 16-bit scans pure white; scale by the range the mode implies.
        a = np.nan_to_num(np.asarray(im, dtype=np.float32))
        lo, hi = float(a.min()), float(a.max())
        if mode == "F" and lo >= 0 and hi <= 1:
            a *= 255
        elif mode.startswith("I;16") or (lo >= 0 and 255 < hi <= 65535):
            a /= 257  # 65535 -> 255
        elif not (lo >= 0 and hi <= 255):
            a = (a - lo) * (255 / max(hi - lo, 1e-12))  # no natural range: stretch
        kind = {"F": "floating-point", "I": "32-bit"}.get(mode, "16-bit")
        notes.append(f"{kind} image scaled to 8 bits")
        return Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8)), notes
    if mode == "CMYK":
        im = im.convert("RGB")
        notes.append("CMYK converted")
    elif mode == "P":
        im = im.convert("RGBA")  # keeps a palette's transparent index as alpha
        notes.append("palette image converted")
    elif mode == "1":
        im = im.convert("L")
        notes.append("1-bit image converted to grayscale")
    elif mode == "LAB":
        im = im.getchannel(0)    # L* is lightness already
        notes.append("CIELAB image: lightness channel used")
    if im.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] < 255:
            # Transparent areas are paper: composite on white, so a dark digit on a
            # transparent canvas reads like ink on a page (and is auto-inverted).
            im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            notes.append("alpha channel composited on white")
        else:
            im = rgba
    try:
        return im.convert("L"), notes
    except ValueError:
        raise VaeError(f"Colour mode {mode} is not supported; save the image as an RGB or grayscale PNG.") from None


def _decode(data: bytes, name: str) -> tuple[Image.Image, list[str]]:
    name = " ".join(str(name).split())[:100] or "upload"  # the message must stay one line
    if not data:
        raise VaeError(f"{name} is empty (0 bytes); upload a {_PRETTY} image.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise VaeError(f"{name} is {len(data):,} bytes, over the {MAX_UPLOAD_BYTES:,}-byte upload limit; "
                       "upload a smaller image.")
    text = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if name.lower().endswith((".svg", ".svgz")) or (text.startswith(b"<") and b"<svg" in text):
        raise VaeError(f"{name} is an SVG (vector) image, which is not supported; export it as PNG or JPEG.")
    too_big = f"{name} is too large: images are limited to {MAX_PIXELS:,} pixels; upload a smaller image."
    try:
        im = Image.open(io.BytesIO(data), formats=_FORMATS)  # reads the header only
    except UnidentifiedImageError:
        raise VaeError(f"{name} is not a {_PRETTY} image ({_what_is_it(data)}); upload one of those.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise VaeError(too_big) from None  # Pillow's own limits (89M warns, 179M refuses)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError) as e:
        raise VaeError(f"{name} has a broken header ({_reason(e)}); export it again as PNG or JPEG.") from None
    # The bomb check proper: the header has been read, no pixel has (and only the first
    # frame of an animation is ever decoded, so its size is the one that counts). Our limit is below
    # Pillow's warning threshold, so this refuses everything Pillow would only warn about
    # (and we avoid warnings.catch_warnings, which is global state shared by Streamlit's threads).
    w, h = im.size
    if w * h > MAX_PIXELS:
        raise VaeError(f"{name} is {w}x{h} = {w * h:,} pixels, over the limit of {MAX_PIXELS:,} pixels; "
                       "upload a smaller image.")
    notes = []
    try:
        if getattr(im, "is_animated", False):  # GIF/WebP/APNG frames, TIFF pages, MPO pictures
            fmt = im.format
            notes.append({"TIFF": "multi-page TIFF: first page used",
                          "MPO": "multi-picture JPEG: first picture used"}.get(
                fmt, f"animated {'WebP' if fmt == 'WEBP' else fmt}: first frame used"))
            im.seek(0)
        im.load()  # Image.open is lazy; truncation and corruption only show up here
        if im.getexif().get(0x0112, 1) not in (1, None):  # 0x0112: EXIF Orientation
            im = ImageOps.exif_transpose(im)
            notes.append("rotated upright using its EXIF orientation")
        gray, more = _to_gray(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise VaeError(too_big) from None
    # Pillow's decoders raise a zoo of exception types on hostile bytes (its fuzzers see
    # all of these); to the person uploading they all mean the same thing.
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, MemoryError) as e:
        raise VaeError(f"{name} could not be decoded ({_reason(e)}); it may be truncated or corrupt, "
                       "so export it again as PNG or JPEG.") from None
    return gray, notes + more


def _reason(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0][:120]
    return first or type(e).__name__


def load_image(data: bytes, name: str = "upload") -> Image.Image:
    """Decode an upload (PNG, JPEG, GIF, BMP, WebP, TIFF) into one grayscale 'L' frame, or raise VaeError.

    The conversion notes are dropped here; prepare_upload keeps them.
    """
    return _decode(data, name)[0]


# ----------------------------------------------------------------------- preprocessing

def _as_float(gray: np.ndarray | Image.Image) -> np.ndarray:
    """Grayscale float32 in [0, 1]: uint8/uint16/bool arrays by their range, floats taken as
    [0, 1] (or [0, 255] when any value exceeds 1), PIL images of any mode via _to_gray."""
    if isinstance(gray, Image.Image):
        gray = _to_gray(gray)[0]
    a = np.asarray(gray)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise VaeError(f"Expected a 2-D grayscale image but got shape {a.shape}; convert it to grayscale first.")
    x = np.nan_to_num(a.astype(np.float32), copy=False)  # a fresh copy: the caller's array is never touched
    if a.dtype == np.uint16:
        x /= 65535
    elif np.issubdtype(a.dtype, np.integer) or (a.dtype != bool and x.size and x.max() > 1):
        x /= 255
    return np.clip(x, 0, 1, out=x)


def _border(x: np.ndarray) -> np.ndarray:
    """Pixels of the outer BORDER fraction of each side (at least one pixel deep)."""
    ty, tx = max(1, int(np.ceil(BORDER * x.shape[0]))), max(1, int(np.ceil(BORDER * x.shape[1])))
    inner = x[ty:-ty]
    return np.concatenate([x[:ty].ravel(), x[-ty:].ravel(), inner[:, :tx].ravel(), inner[:, -tx:].ravel()])


def preprocess(gray: np.ndarray | Image.Image, invert: str = "auto") -> Prepared:
    """MNIST framing: bright ink on black, longer side 20 px, centre of mass at (14, 14).

    invert="auto" inverts when the median of the outer 5% frame is brighter than 0.5, i.e.
    the picture has a light background (ink on paper); "yes"/"no" force it.
    """
    if invert not in INVERT_CHOICES:
        raise VaeError(f"Unknown invert option {invert!r}: choose auto, yes or no.")
    x = _as_float(gray)
    h, w = x.shape
    if h * w < 2:
        # A single pixel is all border: there is no background to tell ink from.
        raise VaeError(f"The image is only {w}x{h} pixel{'s' if h * w != 1 else ''}, too small to hold a digit; "
                       "upload a picture of a digit.")
    inverted = bool(np.median(_border(x)) > 0.5) if invert == "auto" else invert == "yes"
    if inverted:
        np.subtract(1, x, out=x)  # in place: a 40 Mpx upload is 160 MB as float32
    # Clean-up: the border's level is the background (grey paper, a dim screen); remove it
    # so the background becomes black like MNIST's, and drop what is too faint to be ink.
    x -= np.median(_border(x))
    np.clip(x, 0, 1, out=x)
    peak = float(x.max())
    if peak < MIN_INK:
        raise VaeError("No ink found: the image is blank or too faint; "
                       "upload a dark digit on light paper or a light digit on a dark background.")
    ink = x > INK_THRESHOLD * peak
    x[~ink] = 0  # faint shading the subtraction left behind would drag the centre of mass
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = x[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    # Longer side to 20 px, aspect kept (a "1" stays thin); Lanczos anti-aliases like MNIST's
    # grey edges. Mode 'F' keeps the floats; Lanczos rings slightly below zero, hence the clip.
    ch, cw = crop.shape
    size = (max(1, round(cw * BOX / max(ch, cw))), max(1, round(ch * BOX / max(ch, cw))))
    small = np.clip(np.asarray(Image.fromarray(crop).resize(size, Image.LANCZOS)), 0, None)
    total = float(small.sum())
    if total <= 0:
        raise VaeError("No ink found: the image is blank after clean-up; upload a clearer picture of a digit.")
    # MNIST centres the centre of mass (not the box) at pixel (14, 14); an integer shift,
    # clamped so the whole 20 px box stays inside the 28 px frame.
    sh, sw = small.shape
    cy = float(small.sum(axis=1) @ np.arange(sh)) / total
    cx = float(small.sum(axis=0) @ np.arange(sw)) / total
    top = min(max(round(FRAME / 2 - cy), 0), FRAME - sh)
    left = min(max(round(FRAME / 2 - cx), 0), FRAME - sw)
    out = np.zeros((FRAME, FRAME), np.float32)
    out[top:top + sh, left:left + sw] = small
    image = np.round(out * (255 / out.max())).astype(np.uint8)  # brightest ink -> 255
    return Prepared(image=image, inverted=inverted, notes=[])


def prepare_upload(data: bytes, name: str = "upload", invert: str = "auto") -> Prepared:
    """load_image + preprocess in one call (what pages use); notes keep the decoding's conversions.

    1x1 (and empty) images are refused with a VaeError: a single pixel has no background to find ink against.
    """
    if invert not in INVERT_CHOICES:  # fail before decoding anything
        raise VaeError(f"Unknown invert option {invert!r}: choose auto, yes or no.")
    gray, notes = _decode(data, name)
    prepared = preprocess(gray, invert)
    prepared.notes = notes + prepared.notes
    return prepared
