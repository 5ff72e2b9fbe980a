"""What decoding one upload costs: the worst cases, each in a fresh process.

    python benchmarks/upload_cost.py [--only tiff] [--no-baseline] [--baseline-timeout 90] [--keep DIR]

Builds a corpus of worst-case uploads in a temporary folder (every file under the 20 MB
upload limit, every picture at most 40 Mpx): the reported 4.9-million-strip TIFF, files
sitting just under each structural cap (TIFF strips, PNG chunks, GIF data blocks, JPEG
header segments and scans, run-length BMP and WebP pixels), 40 Mpx pictures in each
format and mode (RGB, RGBA, 16-bit, palette, 1-bit; LZW and PackBits TIFF; baseline and
progressive JPEG; GIF; BMP), the highest compression ratios (an all-zero 16-bit RGBA
PNG inflates 1,000 times) and a 100,000-frame GIF. For each it prints the file size and
what vae_core.preprocess.decode_upload makes of it (the reduced size, or the refusal),
with its wall time, CPU time and peak memory, and whether that meets the goal: at most
2 s and 300 MB. Each decode runs in a fresh Python that has imported Pillow and numpy
and decoded a tiny PNG first (as the running app has); peak memory is its peak resident
size (VmHWM) minus its resident size just before decoding. (Not ru_maxrss: Linux
carries the parent's peak into a child's ru_maxrss across fork and exec.)

Baseline, measured in the same run (--no-baseline skips it): the old way, Pillow's full
decode and the grey conversion at full size (Image.open, load, EXIF transpose,
_to_gray), with no structural check and no reduction; a case that runs past
--baseline-timeout seconds shows ">N". The machine's other load shows in wall times;
CPU time is the steadier figure. Benchmarks print figures; they never assert on time.
"""
from __future__ import annotations

import argparse
import io
import json
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.test_upload_cost import encode, jpeg_segments, png_chunk  # noqa: E402  (the tests build the same files)
from vae_core import preprocess as pp  # noqa: E402

W, H = 8000, 5000  # 40 Mpx, the pixel limit
GOAL_S, GOAL_MB = 2.0, 300.0

CHILD = r"""
import io, json, sys, time
sys.path.insert(0, sys.argv[1])
from PIL import Image, ImageOps
from vae_core import preprocess as pp

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

def old_way(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    im = ImageOps.exif_transpose(im)
    w, h = pp._to_gray(im)[0].size
    return f"{w}x{h}"

def new_way(data):
    a, notes = pp.decode_upload(data, "upload")
    return f"{a.shape[1]}x{a.shape[0]}" + (" (reduced)" if any(n.startswith("large") for n in notes) else "")

data = open(sys.argv[3], "rb").read()
warm = io.BytesIO()
Image.new("L", (8, 8)).save(warm, "PNG")
pp.decode_upload(warm.getvalue(), "warm.png")
base = status("VmRSS")
t, c = time.perf_counter(), time.process_time()
try:
    outcome = (new_way if sys.argv[2] == "new" else old_way)(data)
except Exception as e:
    outcome = f"refused: {str(e).removeprefix('upload ')}" if type(e).__name__ == "VaeError" else \
        f"{type(e).__name__}: {e}"
wall, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"outcome": outcome[:160], "wall": wall, "cpu": cpu, "mb": (status("VmHWM") - base) / 1e6}))
"""


# ----------------------------------------------------------------------------- the corpus

def page(w=W, h=H):
    im = Image.new("L", (w, h), 255)
    ImageDraw.Draw(im).ellipse((w * 0.4, h * 0.25, w * 0.6, h * 0.75), outline=0, width=max(2, w // 60))
    return im


def tiff_strips(n, width):
    """n one-row 8-bit strips all pointing at one row: ~4 bytes a strip, as in the report."""
    offsets_at = 8 + width
    entries = [(256, 4, 1, width), (257, 4, 1, n), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, n, offsets_at), (277, 3, 1, 1), (278, 4, 1, 1)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + bytes(4)
    return b"II*\x00" + struct.pack("<I", offsets_at + 4 * n) + b"\x80" * width + struct.pack("<I", 8) * n + ifd


def png_split(data, chunks):
    """The same PNG with its image data cut into about `chunks` IDAT chunks."""
    out, i, idat = [], 8, b""
    while i < len(data):
        (n,) = struct.unpack_from(">I", data, i)
        kind, body = data[i + 4:i + 8], data[i + 8:i + 8 + n]
        if kind == b"IDAT":
            idat += body
        else:
            out.append((kind, body))
        i += 12 + n
    step = max(1, -(-len(idat) // chunks))
    parts = [png_chunk(b"IDAT", idat[k:k + step]) for k in range(0, len(idat), step)]
    return data[:8] + png_chunk(*out[0]) + b"".join(parts) + b"".join(png_chunk(*c) for c in out[1:])


def zero_png(w, h, depth, colour_type, channels):
    """A valid all-zero PNG built row by row (never the whole picture in memory)."""
    z = zlib.compressobj(9)
    row = bytes(1 + w * channels * depth // 8)
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def progressive_at_scan_cap(rgb):
    """A 4:4:4 progressive JPEG padded with repeats of a 65-byte chroma scan (the dearest
    scan per byte measured: 37 ns a block) up to just under MAX_JPEG_SCAN_BLOCKS."""
    segs = jpeg_segments(encode(rgb, "JPEG", quality=90, progressive=True, subsampling=0))
    scans = [s for m, s in segs if m == 0xDA]
    per_comp = (W // 8) * (H // 8)
    work = sum(s[4] * per_comp for s in scans)
    # one component (Ns, byte 4), AC (Ss, byte 7), a refinement (Ah, high nibble of byte 9)
    small = min((s for s in scans if s[4] == 1 and s[7] > 0 and s[9] >> 4), key=len)
    repeats = min((pp.MAX_JPEG_SCAN_BLOCKS - work) // per_comp, pp.MAX_JPEG_SCANS - len(scans))
    return b"".join(s for _, s in segs[:-1]) + small * repeats + segs[-1][1], len(scans) + repeats


def gif_parts(im):
    data = encode(im, "GIF")
    flags = data[10]
    head = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    return data[:head], data[head:-1]


def rle4_bmp(w, h):
    """BI_RLE4 of one-pixel runs: the dearest per pixel for Pillow's pure-Python decoder."""
    body = (b"\x01\x10" * w + b"\x00\x00") * h + b"\x00\x01"
    palette = b"".join(bytes([i * 17] * 3 + [0]) for i in range(16))
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 4, 2, len(body), 2835, 2835, 16, 0)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset) + info + palette + body


def corpus():
    """[(label, bytes)], built lazily so each picture lives only while its file is made."""
    gray = page()
    rgb = gray.convert("RGB")
    ink = gray.point(lambda v: 255 - v)
    rgba = Image.merge("RGBA", [Image.new("L", gray.size, 0)] * 3 + [ink])
    exif = Image.Exif()
    exif[0x0112] = 6
    head, frame = gif_parts(gray)
    tiny_frame = b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00"
    jpeg = encode(rgb, "JPEG", quality=90)
    scan_cap, scans = progressive_at_scan_cap(rgb)
    yield "TIFF, the report: 4.9M one-row strips", tiff_strips(4_900_000, 8)
    yield f"TIFF {pp.MAX_TIFF_BLOCKS:,} one-row strips (cap)", tiff_strips(pp.MAX_TIFF_BLOCKS, 600)
    yield "TIFF LZW 40 Mpx", encode(gray, "TIFF", compression="tiff_lzw")
    yield "TIFF PackBits 40 Mpx", encode(gray, "TIFF", compression="packbits")
    yield "TIFF LZW RGBA 40 Mpx, EXIF-turned", encode(rgba, "TIFF", compression="tiff_lzw", exif=exif)
    yield "PNG 40 Mpx grey", encode(gray, "PNG")
    yield "PNG 40 Mpx RGB", encode(rgb, "PNG")
    yield "PNG 40 Mpx RGBA", encode(rgba, "PNG")
    yield "PNG 40 Mpx 16-bit grey", encode(Image.fromarray(np.asarray(gray).astype(np.uint16) * 257), "PNG")
    yield "PNG 40 Mpx palette + transparency", encode(gray.convert("P"), "PNG", transparency=255)
    yield "PNG 40 Mpx 1-bit", encode(gray.convert("1"), "PNG")
    yield "PNG 40 Mpx 16-bit RGBA, all zero", zero_png(W, H, 16, 6, 4)
    yield f"PNG 40 Mpx RGBA in {pp.MAX_PNG_CHUNKS - 10:,} chunks (cap)", png_split(encode(rgba, "PNG"),
                                                                                 pp.MAX_PNG_CHUNKS - 10)
    yield "JPEG 40 Mpx baseline", jpeg
    yield "JPEG 40 Mpx baseline, EXIF-turned", encode(rgb, "JPEG", quality=90, exif=exif)
    yield f"JPEG 40 Mpx, {pp.MAX_JPEG_SEGMENTS - 10:,} header segments (cap)", (
        jpeg[:2] + b"\xff\xfe\x00\x02" * (pp.MAX_JPEG_SEGMENTS - 10) + jpeg[2:])
    yield "JPEG 40 Mpx progressive 4:2:0", encode(rgb, "JPEG", quality=90, progressive=True)
    yield "JPEG 40 Mpx progressive 4:4:4", encode(rgb, "JPEG", quality=90, progressive=True, subsampling=0)
    yield f"JPEG 40 Mpx progressive, {scans} scans (cap)", scan_cap
    yield "JPEG 40 Mpx progressive CMYK", encode(gray.convert("CMYK"), "JPEG", quality=90, progressive=True)
    yield "GIF 40 Mpx", head + frame + b";"
    yield "GIF 40 Mpx + 100,000 frames", head + frame + tiny_frame * 100_000 + b";"
    blocks = pp.MAX_GIF_BLOCKS - 1000
    comment = b"!\xfe" + b"\x01c" * blocks + b"\x00"  # one-byte comment blocks before the picture
    yield f"GIF 40 Mpx + {blocks:,} comment blocks (cap)", head + comment + frame + b";"
    yield "BMP 40 Mpx 1-bit", encode(gray.convert("1"), "BMP")
    cap = pp.MAX_BMP_RLE_PIXELS
    yield f"BMP RLE4 {cap / 1e6:g} Mpx, 1-px runs (cap)", rle4_bmp(1000, cap // 1000)
    yield "BMP RLE4 40 Mpx, 1-px runs", rle4_bmp(W, H)[:20 * 1024**2 - 64]  # cut to the byte limit
    side = int(pp.MAX_WEBP_PIXELS ** 0.5)
    yield f"WebP {side}x{side} lossless RGBA (cap)", encode(page(side, side).convert("RGBA"), "WEBP", lossless=True)
    yield "WebP 16383x2441 (40 Mpx)", encode(page(16383, 2441).convert("RGB"), "WEBP", quality=80)


# ------------------------------------------------------------------------------ running

def decode(path, way, timeout):
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, str(REPO), way, str(path)], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"outcome": "timed out", "wall": None, "cpu": None, "mb": None}
    if done.returncode != 0:
        return {"outcome": f"crashed ({done.returncode}): {done.stderr.strip()[-120:]}", "wall": None, "cpu": None,
                "mb": None}
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt(x, unit, width, digits=2):
    return f"{x:.{digits}f}{unit}".rjust(width) if x is not None else "-".rjust(width)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help="run the cases whose label contains this text")
    p.add_argument("--no-baseline", action="store_true", help="skip the old way")
    p.add_argument("--baseline-timeout", type=float, default=90.0, help="seconds before an old-way decode is cut")
    p.add_argument("--keep", type=Path, help="write the corpus here (kept) instead of a temporary folder")
    args = p.parse_args()
    if not Path("/proc/self/status").exists():
        sys.exit("peak memory is read from /proc/self/status (Linux only)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"goal: at most {GOAL_S:g} s and {GOAL_MB:g} MB per upload; Pillow {Image.__version__}, "
              f"WORK_SIDE {pp.WORK_SIDE}\n")
        print(f"{'case':44} {'file':>8}  {'decode_upload':62} {'wall':>6} {'cpu':>6} {'peak':>7}  goal "
              f"| {'old way':22} {'wall':>7} {'peak':>8}")
        misses = 0
        t0 = time.perf_counter()
        for k, (label, data) in enumerate(corpus()):
            if args.only.lower() not in label.lower():
                continue
            assert len(data) <= pp.MAX_UPLOAD_BYTES, (label, len(data))
            path = folder / f"case{k:02d}"
            path.write_bytes(data)
            new = decode(path, "new", 120)
            ok = new["wall"] is not None and new["wall"] <= GOAL_S and new["mb"] <= GOAL_MB
            misses += not ok
            line = (f"{label:44} {len(data) / 1e6:7.2f}M  {new['outcome'][:62]:62} {fmt(new['wall'], 's', 6)} "
                    f"{fmt(new['cpu'], 's', 6)} {fmt(new['mb'], 'M', 7, 0)}  {'yes ' if ok else 'NO  '}")
            if not args.no_baseline:
                old = decode(path, "old", args.baseline_timeout)
                cut = old["outcome"] == "timed out"
                wall = f">{args.baseline_timeout:g}s".rjust(7) if cut else fmt(old["wall"], "s", 7)
                line += f"| {old['outcome'][:22]:22} {wall} {fmt(old['mb'], 'M', 8, 0)}"
            print(line, flush=True)
            if not args.keep:
                path.unlink()
        print(f"\n{misses} case(s) over the goal; {time.perf_counter() - t0:.0f} s in all.")


if __name__ == "__main__":
    main()
