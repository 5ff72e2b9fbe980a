"""Uploaded file -> 28x28 MNIST-style uint8 image, the way MNIST itself was made.

LeCun et al.: the NIST digits were "size normalized to fit in a 20x20 pixel box while
preserving their aspect ratio" (anti-aliasing gives the grey levels) and "centered in a
28x28 image by computing the center of mass of the pixels". A VAE trained on MNIST only
understands inputs framed like that, so an upload goes through the same steps:

    bytes --decode_upload--> grayscale uint8 array --preprocess--> Prepared(image (28, 28) uint8)

Uploads are untrusted: every failure is a VaeError naming the file, never a Pillow
traceback. What decoding one accepted upload may cost is bounded (the goal: 2 s and
300 MB; benchmarks/upload_cost.py measures it) by limits checked before any pixel is
decoded, each set from a measured cost (Pillow 13, one core):

- Bytes and pixels (MAX_UPLOAD_BYTES, MAX_PIXELS, from the header). Decoding pixels then
  costs pixels x the format's rate; the dearest accepted, a 40 Mpx RGBA PNG, takes
  ~0.5 s and 160 MB for the decoded picture (Pillow keeps RGB and RGBA at 4 bytes a
  pixel). So there is no compression-ratio cap: a 1000:1 PNG, TIFF or GIF inflates no
  slower per output pixel than a 2:1 one, and output pixels are capped already.
- Structure that costs per unit rather than per byte or pixel: what Pillow parses in
  Python, or libjpeg repeats, once per strip, chunk, segment or scan. TIFF strips/tiles
  (~8 us and ~330 bytes each: the reported 4.9-million-strip file took 39 s and 1.6 GB),
  TIFF directory entries, PNG chunks (~3.5 us), GIF data sub-blocks (~0.3-0.7 us), JPEG
  header segments (~3 us) and stray bytes (~0.5 us), JPEG scans (each decodes every 8x8
  block of its components again: up to 37 ns a block, whatever the output scale) and a
  progressive JPEG's coefficients (held whole, 128 bytes a block). Each cap keeps its
  worst case well under a second and far above what encoders write. TIFF compression is
  limited to the common kinds (none, LZW, deflate, PackBits, JPEG, CCITT).
- Decoders dearer than the rest: WebP (Pillow holds ~16 bytes a pixel: MAX_WEBP_PIXELS)
  and run-length BMP (decoded in pure Python, ~1 us a pixel: MAX_BMP_RLE_PIXELS).

Only the first frame is decoded, and nothing counts frames (n_frames walks a whole GIF
or TIFF). Big pictures are decoded reduced (WORK_SIDE): JPEGs by the decoder's own DCT
scaling, others by a box reduce straight after decoding, before any mode conversion.
"""
from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

from vae_core import VaeError

MAX_PIXELS = 40_000_000          # decompression-bomb limit (width*height of the decoded image, any frame)
MAX_UPLOAD_BYTES = 20 * 1024**2  # refuse bigger inputs before decoding
IMAGE_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"]  # for st.file_uploader(type=...)
INVERT_CHOICES = ("auto", "yes", "no")
# The decoded picture only ever becomes a 20-px box, so it is worked on at most this
# many pixels on its longer side: that keeps even a digit filling a tenth of the photo
# at ~200 px (ten times the box), and a 40 Mpx upload's working copy at ~4 Mpx.
WORK_SIDE = 2048
# Structural caps (module docstring); the time is each one's measured worst case at the cap.
MAX_TIFF_BLOCKS = 65_536          # strips or tiles: ~0.5 s; a 40 Mpx scan in one-row strips still fits
MAX_TIFF_TAGS = 65_535            # directory entries: ~0.1 s (classic TIFF's own maximum; BigTIFF's is 2**64)
MAX_JPEG_SCANS = 256              # scans in a JPEG (nvImageCodec's default limit against the same attack)
MAX_JPEG_SCAN_BLOCKS = 25_000_000  # 8x8 blocks decoded over all scans: ~0.9 s at the measured 37 ns a block
MAX_JPEG_COEF_BLOCKS = 2_000_000   # 8x8 blocks of a multi-scan JPEG, held whole at 128 bytes each: 256 MB
MAX_JPEG_SEGMENTS = 4096           # header segments before the first scan: ~15 ms (photos have ~10-40)
MAX_JPEG_JUNK = 65_536             # stray or fill bytes between them: ~30 ms
MAX_PNG_CHUNKS = 65_536            # chunks: ~0.25 s (encoders write 8-64 KB IDATs: 20 MB is < 2,600)
MAX_GIF_BLOCKS = 200_000           # data sub-blocks up to the second frame: ~0.15 s (20 MB is 82k full ones)
MAX_WEBP_PIXELS = 16_000_000      # Pillow's WebP decoder holds ~4 copies of the picture as RGBA
MAX_BMP_RLE_PIXELS = 1_000_000    # Pillow's BMP run-length decoder is pure Python
# TIFF compressions allowed: the ones Pillow/libtiff decode fast and every program writes.
_TIFF_COMPRESSIONS = {1: "none", 2: "CCITT RLE", 3: "CCITT G3", 4: "CCITT G4", 5: "LZW", 7: "JPEG",
                      8: "Adobe deflate", 32773: "PackBits", 32946: "deflate"}
_BAND_PIXELS = 1 << 22            # _reduce works on bands of about this many pixels

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


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


_SOURCE_NOTES = {"CMYK": "CMYK converted", "P": "palette image converted",
                 "1": "1-bit image converted to grayscale", "LAB": "CIELAB image: lightness channel used"}


def _flatten_alpha(im: Image.Image, background: str, notes: list[str]) -> Image.Image:
    """An image with transparency composited on background ("white" or "black"), with a
    note when any pixel was transparent; an image without any is returned as it is
    (RGBA when it had an alpha channel)."""
    if im.mode not in ("LA", "La", "PA", "RGBA", "RGBa") and "transparency" not in im.info:
        return im
    rgba = im.convert("RGBA")
    if rgba.getchannel("A").getextrema()[0] == 255:
        return rgba
    notes.append(f"alpha channel composited on {background}")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, background), rgba)


def _to_gray(im: Image.Image, source_mode: str | None = None) -> tuple[Image.Image, list[str]]:
    """Any Pillow mode -> 'L', with a note for each conversion a person might want to know about.

    source_mode is the mode the file decoded to when `im` has since been widened and
    reduced (_reduce): the notes and the 16-bit scaling follow the file, not the copy.
    """
    mode = im.mode
    source = source_mode or mode
    notes = [_SOURCE_NOTES[source]] if source in _SOURCE_NOTES else []
    if mode.startswith("I") or mode == "F":
        # Pillow's own convert('L') clips 16-bit values at 255 instead of scaling them,
        # which turns most 16-bit scans pure white; scale by the range the mode implies.
        a = np.nan_to_num(np.asarray(im, dtype=np.float32))
        lo, hi = float(a.min()), float(a.max())
        if mode == "F" and lo >= 0 and hi <= 1:
            a *= 255
        elif source.startswith("I;16") or (lo >= 0 and 255 < hi <= 65535):
            a /= 257  # 65535 -> 255
        elif not (lo >= 0 and hi <= 255):
            a = (a - lo) * (255 / max(hi - lo, 1e-12))  # no natural range: stretch
        kind = {"F": "floating-point", "I": "32-bit"}.get(source, "16-bit")
        return Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8)), [f"{kind} image scaled to 8 bits"]
    if mode == "CMYK":
        im = im.convert("RGB")
    elif mode == "P":
        im = im.convert("RGBA")  # keeps a palette's transparent index as alpha
    elif mode == "1":
        im = im.convert("L")
    elif mode == "LAB":
        im = im.getchannel(0)    # L* is lightness already
    # Transparent areas are paper: composite on white, so a dark digit on a transparent
    # canvas reads like ink on a page (and is auto-inverted).
    im = _flatten_alpha(im, "white", notes)
    try:
        return im.convert("L"), notes
    except ValueError:
        raise VaeError(f"Colour mode {source} is not supported; save the image as an RGB or grayscale PNG.") from None


def _to_rgb(im: Image.Image, source_mode: str | None = None) -> tuple[Image.Image, list[str]]:
    """Any Pillow mode -> 'RGB', for colour models: grey and high-bit-depth pictures go
    through _to_gray (its scaling) and are repeated over the three channels; transparent
    areas become black, the background of the colour datasets (color-sprites, a cut-out
    object), not paper as for digits."""
    source = source_mode or im.mode
    if im.mode.startswith("I") or im.mode == "F" or im.mode in ("1", "L", "LAB"):
        gray, notes = _to_gray(im, source_mode)
        return gray.convert("RGB"), notes
    notes = [_SOURCE_NOTES[source]] if source in _SOURCE_NOTES else []
    if im.mode == "P":
        im = im.convert("RGBA")
    im = _flatten_alpha(im, "black", notes)
    try:
        return im.convert("RGB"), notes
    except ValueError:
        raise VaeError(f"Colour mode {source} is not supported; save the image as an RGB or grayscale PNG.") from None


def _reducible(im: Image.Image) -> Image.Image:
    """`im` in a mode whose box average means something, by a per-pixel conversion.

    Palette indices and 1-bit values cannot be averaged and Pillow's reduce refuses
    16-bit; a transparent colour key must become alpha first (the average of a key
    colour and its neighbour is no longer the key). A palette goes straight to 'L', or
    'LA' where it has transparency (Pillow looks each index up in the palette): grey and
    compositing are linear, so this equals the RGBA-composite-grey route, for less work.
    """
    mode, keyed = im.mode, "transparency" in im.info
    if mode in ("P", "PA"):
        alpha = keyed or mode == "PA" or (im.palette is not None and im.palette.mode == "RGBA")
        target = "LA" if alpha else "L"
    elif mode in ("1", "L"):
        target = "LA" if keyed else "L"
    elif mode == "RGB" and keyed:
        target = "RGBA"
    elif mode.startswith("I;16"):
        target = "I"
    else:
        return im
    return im.convert(target) if target != mode else im


def _reduce(im: Image.Image, factor: int) -> Image.Image:
    """Image.reduce(factor) (a box average), band by band.

    Whole-image, Pillow's reduce of RGBA/LA first makes a premultiplied full-size copy
    (another 160 MB at 40 Mpx), and the widening above would make one too; a band of
    ~4 Mpx at a time keeps each such copy at a few MB. Averaging premultiplied colour
    and then compositing on white equals compositing and then averaging: both are linear.
    """
    w, h = im.size
    step = factor * max(1, _BAND_PIXELS // (w * factor))  # whole blocks of rows
    out = None
    for y in range(0, h, step):
        small = _reducible(im.crop((0, y, w, min(y + step, h)))).reduce(factor)
        if out is None:
            out = Image.new(small.mode, (_ceil(w, factor), _ceil(h, factor)))
        out.paste(small, (0, y // factor))
    return out


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}  # EXIF Orientation -> the turn that makes it upright (as ImageOps does)


def _refuse_costly_structure(data: bytes, name: str) -> None:
    """The structural caps (see the module docstring), read straight from the bytes:
    Pillow's own parsing of these structures is the cost being bounded."""
    if data[:4] in _TIFF_PREFIXES:
        _check_tiff(data, name)
    elif data[:3] == b"\xff\xd8\xff":
        _check_jpeg(data, name)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        if _png_chunks(data) > MAX_PNG_CHUNKS:
            raise VaeError(f"{name} is a PNG of more than {MAX_PNG_CHUNKS:,} chunks; "
                           "save it again (any editor writes a few large ones).")
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        if _gif_blocks(data) > MAX_GIF_BLOCKS:
            raise VaeError(f"{name} is a GIF of more than {MAX_GIF_BLOCKS:,} data blocks before its second frame; "
                           "save it again as PNG or GIF.")


def _png_chunks(data: bytes) -> int:
    """Chunks up to IEND (Pillow handles each in Python), counted up to one past the cap."""
    i, n = 8, 0
    while i + 8 <= len(data) and n <= MAX_PNG_CHUNKS:
        length, kind = struct.unpack_from(">I4s", data, i)
        i, n = i + 12 + length, n + 1
        if kind == b"IEND":
            break
    return n


def _gif_blocks(data: bytes) -> int:
    """Data sub-blocks Pillow's GIF reader walks in Python, one at a time: the extensions
    before the first frame (Image.open), the first frame's pixel data and the extensions
    after it (is_animated looks for a second frame). Counted up to one past the cap."""
    if len(data) < 13:
        return 0
    i = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)  # after the global colour table
    blocks = frames = 0
    while i < len(data) and blocks <= MAX_GIF_BLOCKS:
        if data[i] == 0x21:    # extension: introducer, label, sub-blocks
            i += 2
        elif data[i] == 0x2C and frames == 0 and i + 10 < len(data):  # the first frame's descriptor
            flags, frames = data[i + 9], 1
            i += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1  # local colour table, LZW code size
        else:                  # a second frame, the trailer or junk: Pillow stops here too
            break
        while i < len(data) and data[i] and blocks <= MAX_GIF_BLOCKS:
            i += data[i] + 1
            blocks += 1
        i += 1
    return blocks


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (DHT, JPG, DAC are not)
_JPEG_BARE = frozenset([0x00, 0x01, 0xC8, *range(0xD0, 0xDA), *range(0xF0, 0xFE)])  # no length follows
_FILL = re.compile(rb"\xff+")


def _check_jpeg(data: bytes, name: str) -> None:
    """Header segments and junk before the first scan, then scans and coefficient memory.

    Pillow walks a JPEG's header in Python, segment by segment and junk byte by junk
    byte (4.9 million empty comments: 7 s and 350 MB just to open). libjpeg then decodes
    every scan over every block of its components, whatever the output scale, and holds
    a multi-scan (progressive) JPEG whole as DCT coefficients, 128 bytes per 8x8 block.
    """
    i, segments, junk = 2, 0, 0  # after SOI
    w = h = 0
    blocks: dict[int, int] = {}   # component id -> its 8x8 blocks
    while True:
        if segments > MAX_JPEG_SEGMENTS or junk > MAX_JPEG_JUNK:
            raise VaeError(f"{name} is a JPEG with more than {MAX_JPEG_SEGMENTS:,} header segments or "
                           f"{MAX_JPEG_JUNK:,} stray header bytes; save it again as JPEG or PNG.")
        j = data.find(b"\xff", i)
        if j < 0:
            return  # no scan at all: Pillow reports the broken file
        end = _FILL.match(data, j).end()
        junk += (j - i) + (end - j - 1)  # bytes between segments, fill bytes
        if end >= len(data):
            return
        marker, i = data[end], end + 1
        segments += 1
        if marker == 0xDA:
            break
        if marker in _JPEG_BARE:
            continue
        if i + 2 > len(data):
            return
        (length,) = struct.unpack_from(">H", data, i)
        if marker in _JPEG_SOF and length >= 8:
            h, w, n = struct.unpack_from(">HHB", data, i + 3)
            # per component: id, sampling factors (4 bits each), quantisation table
            comps = [(data[k], data[k + 1] >> 4 or 1, data[k + 1] & 15 or 1)
                     for k in range(i + 8, min(i + 8 + 3 * n, len(data) - 1), 3)]
            hmax, vmax = max((c[1] for c in comps), default=1), max((c[2] for c in comps), default=1)
            blocks = {c: _ceil(_ceil(w * ch, hmax), 8) * _ceil(_ceil(h * cv, vmax), 8) for c, ch, cv in comps}
        i += length
    if w * h > MAX_PIXELS or not blocks:
        return  # the pixel limit refuses it, with its own message (or Pillow finds no frame)
    # Every scan from here on: entropy-coded data never holds FF DA (its FFs are stuffed).
    scans, work, pos, largest = 0, 0, end - 1, max(blocks.values())
    while (pos := data.find(b"\xff\xda", pos)) >= 0:
        scans += 1
        if scans > MAX_JPEG_SCANS:
            break
        ns = data[pos + 4] if pos + 4 < len(data) else 0
        work += sum(blocks.get(c, largest) for c in data[pos + 5:pos + 5 + 2 * ns:2])  # its components' blocks
        pos += 2
    total = sum(blocks.values())
    if scans > 1 and total > MAX_JPEG_COEF_BLOCKS:
        raise VaeError(f"{name} is a {w}x{h} progressive JPEG, too large to decode in memory (it needs "
                       f"{total * 128 / 1e6:,.0f} MB of DCT coefficients); save it as a baseline JPEG or PNG, "
                       "or make it smaller.")
    if scans > MAX_JPEG_SCANS or work > MAX_JPEG_SCAN_BLOCKS:
        raise VaeError(f"{name} is a progressive JPEG of {scans:,}{'+' if scans > MAX_JPEG_SCANS else ''} scans, "
                       f"too many to decode at {w}x{h}; save it again as a baseline JPEG or PNG.")


_TIFF_PREFIXES = (b"II*\x00", b"MM\x00*", b"II\x00*", b"MM*\x00", b"II+\x00", b"MM\x00+")  # all Pillow opens


def _check_tiff(data: bytes, name: str) -> None:
    """Strip/tile count and compression of the first IFD, read with struct.

    Pillow's TIFF opener turns every strip offset into a Python int and a tile tuple
    while parsing the header (4.9 million strips: 12 s and 1.5 GB before a pixel is
    decoded), so the count is checked here, from the entry's count field.
    """
    e = "<" if data[:2] == b"II" else ">"
    try:
        if data[2] != 43:                      # classic TIFF (Pillow's test too)
            (ifd,) = struct.unpack_from(e + "I", data, 4)
            (n,) = struct.unpack_from(e + "H", data, ifd)
            start, entry, value = ifd + 2, e + "HHI4s", e + "I"
        else:                                  # BigTIFF
            (ifd,) = struct.unpack_from(e + "Q", data, 8)
            (n,) = struct.unpack_from(e + "Q", data, ifd)
            start, entry, value = ifd + 8, e + "HHQ8s", e + "Q"
    except struct.error:
        return  # no IFD where the header says: Pillow reports the broken header
    if n > MAX_TIFF_TAGS:
        raise VaeError(f"{name} has a TIFF directory of {n:,} entries, over the limit of {MAX_TIFF_TAGS:,}; "
                       "save it again as PNG or TIFF.")
    size = struct.calcsize(entry)
    body = data[start:start + n * size]
    tags: dict[int, tuple[int, int, bytes]] = {}
    for tag, typ, count, raw in struct.iter_unpack(entry, body[:len(body) // size * size]):
        tags.setdefault(tag, (typ, count, raw))  # Pillow, too, keeps a tag's first entry
    blocks = max((tags[t][1] for t in (273, 324) if t in tags), default=0)  # StripOffsets, TileOffsets
    if blocks > MAX_TIFF_BLOCKS:
        kind = "tiles" if 324 in tags and tags[324][1] == blocks else "strips"
        raise VaeError(f"{name} is a TIFF stored in {blocks:,} {kind}, over the limit of {MAX_TIFF_BLOCKS:,} "
                       f"{kind}; save it again as PNG, or as a TIFF in fewer, larger {kind}.")
    if 259 in tags:  # Compression: a SHORT (or LONG) held in the entry itself
        typ, _, raw = tags[259]
        fmt = {3: e + "H", 4: e + "I", 16: value}.get(typ)  # SHORT, LONG, LONG8 (BigTIFF)
        code = struct.unpack_from(fmt, raw)[0] if fmt and struct.calcsize(fmt) <= len(raw) else None
        if code is not None and code not in _TIFF_COMPRESSIONS:  # (an odd type: Pillow reports it)
            from PIL.TiffImagePlugin import COMPRESSION_INFO
            label = COMPRESSION_INFO.get(code, "unknown")
            raise VaeError(f"{name} uses TIFF compression {label} ({code}), which is not supported; save it as "
                           "PNG, or as a TIFF with no, LZW, deflate, PackBits or JPEG compression.")


def _refuse_costly_decoder(im: Image.Image, w: int, h: int, name: str) -> None:
    """Per-format pixel caps where the decoder costs more than the general budget allows."""
    if im.format == "WEBP" and w * h > MAX_WEBP_PIXELS:
        raise VaeError(f"{name} is a {w}x{h} WebP image ({w * h:,} pixels); WebP uploads are limited to "
                       f"{MAX_WEBP_PIXELS:,} pixels, so save it as PNG or JPEG or make it smaller.")
    if im.format == "BMP" and im.tile and im.tile[0].codec_name == "bmp_rle" and w * h > MAX_BMP_RLE_PIXELS:
        raise VaeError(f"{name} is a {w}x{h} run-length-compressed BMP ({w * h:,} pixels); such BMPs are limited "
                       f"to {MAX_BMP_RLE_PIXELS:,} pixels, so save it as PNG or make it smaller.")


def decode_upload(data: bytes, name: str = "upload", colour: bool = False) -> tuple[np.ndarray, list[str]]:
    """Decode an upload (PNG, JPEG, GIF, BMP, WebP, TIFF) into a uint8 array, or raise VaeError.

    Returns (array, notes): (H, W) grey, or (H, W, 3) RGB with colour=True (for colour
    models). The first frame only; upright by EXIF; at most
    WORK_SIDE pixels on its longer side: JPEGs are decoded at 1/2, 1/4 or 1/8 scale by
    the JPEG decoder itself (draft), others are box-reduced straight after decoding,
    before any conversion, so no full-size copy in a wider mode is ever made. The notes
    say what was converted (and that it was reduced), for the page to show.
    """
    name = " ".join(str(name).split())[:100] or "upload"  # the message must stay one line
    if not data:
        raise VaeError(f"{name} is empty (0 bytes); upload a {_PRETTY} image.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise VaeError(f"{name} is {len(data):,} bytes, over the {MAX_UPLOAD_BYTES:,}-byte upload limit; "
                       "upload a smaller image.")
    text = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if name.lower().endswith((".svg", ".svgz")) or (text.startswith(b"<") and b"<svg" in text):
        raise VaeError(f"{name} is an SVG (vector) image, which is not supported; export it as PNG or JPEG.")
    try:
        _refuse_costly_structure(data, name)
    except (struct.error, IndexError):
        pass  # cut short inside a structure: nothing is left to cost anything, and Pillow reports it
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
    _refuse_costly_decoder(im, w, h, name)
    notes = []
    try:
        # is_animated is cheap for every format here (TIFF: the first IFD's next-pointer;
        # GIF: one frame header further; WebP/APNG/MPO: a count in the header); n_frames
        # is not: for GIF and TIFF it walks the whole file, so it is never asked.
        if getattr(im, "is_animated", False):  # GIF/WebP/APNG frames, TIFF pages, MPO pictures
            fmt = im.format
            notes.append({"TIFF": "multi-page TIFF: first page used",
                          "MPO": "multi-picture JPEG: first picture used"}.get(
                fmt, f"animated {'WebP' if fmt == 'WEBP' else fmt}: first frame used"))
            im.seek(0)
        factor = _ceil(max(w, h), WORK_SIDE)
        if im.format in ("JPEG", "MPO"):
            # The JPEG decoder scales by 1/2, 1/4 or 1/8 while decoding (DCT scaling: the
            # picture is never decoded at full size) and gives grey straight from Y.
            want = ("RGB" if im.mode == "RGB" else im.mode) if colour else ("L" if im.mode in ("L", "RGB") else im.mode)
            im.draft(want, (max(1, w // factor), max(1, h // factor)))
        exif = im.getexif()
        orientation = exif.get(0x0112, 1)  # 0x0112: EXIF Orientation
        if orientation in _TRANSPOSE:
            del exif[0x0112]  # Pillow's TIFF load would turn the full-size picture; we turn the reduced one
        im.load()  # Image.open is lazy; truncation and corruption only show up here
        source_mode = im.mode
        if max(im.size) > WORK_SIDE:
            im = _reduce(im, _ceil(max(im.size), WORK_SIDE))
        if orientation in _TRANSPOSE:
            im = im.transpose(_TRANSPOSE[orientation])
            notes.append("rotated upright using its EXIF orientation")
        gray, more = (_to_rgb if colour else _to_gray)(im, source_mode)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise VaeError(too_big) from None
    # Pillow's decoders raise a zoo of exception types on hostile bytes (its fuzzers see
    # all of these); to the person uploading they all mean the same thing.
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, MemoryError) as e:
        raise VaeError(f"{name} could not be decoded ({_reason(e)}); it may be truncated or corrupt, "
                       "so export it again as PNG or JPEG.") from None
    a = np.asarray(gray)
    if max(a.shape[:2]) < max(w, h):
        notes.append(f"large image ({w}x{h}) decoded reduced to {a.shape[1]}x{a.shape[0]}")
    return a, notes + more


def _reason(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0][:120]
    return first or type(e).__name__


def load_image(data: bytes, name: str = "upload") -> Image.Image:
    """decode_upload as a grayscale 'L' image (the conversion notes are dropped; prepare_upload keeps them)."""
    return Image.fromarray(decode_upload(data, name)[0])


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
    gray, notes = decode_upload(data, name)
    prepared = preprocess(gray, invert)
    prepared.notes = notes + prepared.notes
    return prepared


# ---------------------------------------------------------------- any model's shape

MNIST_SHAPE = (1, 28, 28)


def fit_square(image: np.ndarray, size: int, channels: int) -> np.ndarray:
    """A picture for a model that is not an MNIST-style digit model (sprites, CIFAR-10,
    a folder of photos): the largest centred square, resized to size x size with
    Lanczos (anti-aliased), as `folder:` datasets are made for training. (H, W) grey or
    (H, W, 3) in; (size, size) for channels=1, (size, size, 3) for channels=3 out."""
    a = np.asarray(image)
    if a.ndim == 3 and channels == 1:
        a = np.asarray(Image.fromarray(a).convert("L"))
    elif a.ndim == 2 and channels == 3:
        a = np.repeat(a[..., None], 3, axis=2)
    h, w = a.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = np.ascontiguousarray(a[top:top + side, left:left + side])
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.LANCZOS, reducing_gap=3.0))


def frame_for_shape(image: np.ndarray, shape: tuple, invert: str = "auto") -> Prepared:
    """The decoded upload framed for a model whose images are shape = (C, H, W): the
    MNIST steps for 1x28x28 models (digits and garments are centred and boxed like the
    datasets), a centred square crop resized to the model's size otherwise."""
    c, h, w = (int(v) for v in shape)
    if (c, h, w) == MNIST_SHAPE:
        gray = image if image.ndim == 2 else np.asarray(Image.fromarray(image).convert("L"))
        return preprocess(gray, invert)
    if invert not in INVERT_CHOICES:
        raise VaeError(f"Unknown invert option {invert!r}: choose auto, yes or no.")
    if h != w or c not in (1, 3):
        raise VaeError(f"Models of {c}x{h}x{w} images are not supported: images are square, 1 or 3 channels.")
    out = fit_square(image, h, c)
    inverted = invert == "yes"
    if inverted:
        out = 255 - out
    notes = [] if image.shape[:2] == (h, w) else [f"centre-cropped and resized to {h}x{w}"]
    return Prepared(image=out, inverted=inverted, notes=notes)
