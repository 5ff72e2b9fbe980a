"""What one upload may cost to decode: structural caps, reduced decoding, peak memory.

Every hostile file is built here, deterministically, with struct/zlib or Pillow; none
is a fixture on disk. No assertion is about time (benchmarks/upload_cost.py prints
times); memory is asserted from a fresh subprocess's own peak.
"""
import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vae_core import VaeError
from vae_core import preprocess as pp
from vae_core.preprocess import MAX_PIXELS, MAX_UPLOAD_BYTES, WORK_SIDE, decode_upload, prepare_upload

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------ helpers

def page(w, h, mode="L"):
    """A '0' (thick dark ellipse) on white paper filling the middle of a w x h page."""
    im = Image.new("L", (w, h), 255)
    ImageDraw.Draw(im).ellipse((w * 0.4, h * 0.25, w * 0.6, h * 0.75), outline=0, width=max(2, w // 60))
    return im.convert(mode) if mode != "L" else im


def encode(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def refused(data, name, *needles):
    with pytest.raises(VaeError) as e:
        decode_upload(data, name)
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg
    for needle in [name, *needles]:
        assert needle.lower() in msg.lower(), msg
    return msg


def tiff_strips(n, width=8, bytecounts=True, tags=None):
    """A classic little-endian 8-bit grey TIFF of n one-row strips that all point at the
    same row of `width` white pixels: n strips for ~4n bytes (the reported file's shape)."""
    row = b"\xff" * width
    offsets_at = 8 + len(row)
    offsets = struct.pack("<I", 8) * n
    counts_at = offsets_at + len(offsets)
    counts = struct.pack("<I", width) * n if bytecounts else b""
    ifd_at = counts_at + len(counts)
    entries = tags if tags is not None else [
        (256, 4, 1, width), (257, 4, 1, n), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
        (273, 4, n, offsets_at), (277, 3, 1, 1), (278, 4, 1, 1)] + ([(279, 4, n, counts_at)] if bytecounts else [])
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + bytes(4)
    return b"II*\x00" + struct.pack("<I", ifd_at) + row + offsets + counts + ifd


def ifd0_entries(data):
    """[(offset of the entry, tag)] of a little-endian classic TIFF's first directory."""
    (ifd,) = struct.unpack_from("<I", data, 4)
    (n,) = struct.unpack_from("<H", data, ifd)
    return [(ifd + 2 + 12 * k, struct.unpack_from("<H", data, ifd + 2 + 12 * k)[0]) for k in range(n)]


def png_chunks(data):
    out, i = [], 8
    while i < len(data):
        (n,) = struct.unpack_from(">I", data, i)
        out.append((data[i + 4:i + 8], data[i + 8:i + 8 + n]))
        i += 12 + n
    return out


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def jpeg_segments(data):
    """[(marker, bytes)] of a JPEG; a scan's bytes include its entropy-coded data."""
    out, i = [(0xD8, data[:2])], 2
    while i < len(data):
        m = data[i + 1]
        if m == 0xD9:
            out.append((m, data[i:i + 2]))
            break
        j = i + 2 + struct.unpack_from(">H", data, i + 2)[0]
        if m == 0xDA:
            while data[j] != 0xFF or data[j + 1] == 0 or 0xD0 <= data[j + 1] <= 0xD7:
                j += 1
        out.append((m, data[i:j]))
        i = j
    return out


CHILD = r"""
import io, json, sys
sys.path.insert(0, sys.argv[1])
from PIL import Image
from vae_core.preprocess import decode_upload

def status(key):  # bytes; VmHWM is this process's peak resident size
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

data = open(sys.argv[2], "rb").read()
warm = io.BytesIO()
Image.new("L", (8, 8)).save(warm, "PNG")
decode_upload(warm.getvalue(), "warm.png")  # imports and plugins loaded, as in the running app
base = status("VmRSS")
try:
    a, notes = decode_upload(data, "big", colour=len(sys.argv) > 3 and sys.argv[3] == "colour")
    out = {"shape": list(a.shape), "notes": notes, "error": None}
except Exception as e:
    out = {"error": str(e)}
out["mb"] = (status("VmHWM") - base) / 1e6
print(json.dumps(out))
"""


def decode_in_child(path, colour=False):
    """decode_upload(path) in a fresh Python: its result and its peak memory above what it
    held before decoding. VmHWM rather than ru_maxrss, because Linux carries the parent's
    peak across fork+exec into ru_maxrss (a pytest that built a 40 Mpx image would show)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("peak memory is read from /proc (Linux)")
    done = subprocess.run([sys.executable, "-c", CHILD, str(REPO), str(path), *(["colour"] if colour else [])],
                          capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def big_files(tmp_path_factory):
    """40 Mpx uploads (8000x5000), each well under the byte limit."""
    folder = tmp_path_factory.mktemp("big")
    gray = page(8000, 5000)
    rgba = Image.merge("RGBA", [Image.new("L", gray.size, 0)] * 3 + [gray.point(lambda v: 255 - v)])
    files = {"png_L": encode(gray, "PNG", compress_level=1),
             "png_RGBA": encode(rgba, "PNG", compress_level=1),  # black ink on transparent: 160 MB decoded
             "jpg_RGB": encode(gray.convert("RGB"), "JPEG", quality=85)}
    paths = {}
    for key, data in files.items():
        assert len(data) <= MAX_UPLOAD_BYTES
        paths[key] = folder / key
        paths[key].write_bytes(data)
    return paths


# ------------------------------------------------------------------------------ TIFF

def test_the_reported_many_strip_tiff_is_refused_before_pillow_parses_it(tmp_path):
    data = tiff_strips(4_900_000, bytecounts=False)  # 19.6 MB, 8 x 4.9M = 39.2 Mpx: under both limits
    assert len(data) <= MAX_UPLOAD_BYTES and 8 * 4_900_000 <= MAX_PIXELS
    refused(data, "strips.tif", "4,900,000 strips", "65,536")
    # Pillow's own header parse of this file takes 1.5 GB; refusing it from the bytes takes nothing.
    path = tmp_path / "strips.tif"
    path.write_bytes(data)
    out = decode_in_child(path)
    assert "4,900,000 strips" in out["error"] and out["mb"] < 30, out


def test_strip_count_is_checked_before_anything_else_reads_the_header():
    # No ImageWidth: Pillow would call this a broken header. The strip cap speaks first.
    entries = [(257, 4, 1, 200_000), (258, 3, 1, 8), (273, 4, 200_000, 16), (278, 4, 1, 1)]
    refused(tiff_strips(200_000, tags=entries), "x.tif", "200,000 strips")


def test_tiles_over_the_cap_are_refused():
    n = pp.MAX_TIFF_BLOCKS + 1
    entries = [(256, 4, 1, 16 * 256), (257, 4, 1, 16 * 257), (258, 3, 1, 8), (262, 3, 1, 1),
               (322, 3, 1, 16), (323, 3, 1, 16), (324, 4, n, 16)]
    refused(tiff_strips(n, tags=entries), "tiles.tif", f"{n:,} tiles")


def test_a_tiff_in_thousands_of_one_row_strips_still_decodes():
    im = page(300, 5000)
    w, h = im.size
    pixels_at = 8
    offsets_at = pixels_at + w * h
    counts_at = offsets_at + 4 * h
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, h, offsets_at), (277, 3, 1, 1), (278, 4, 1, 1), (279, 4, h, counts_at)]
    data = (b"II*\x00" + struct.pack("<I", counts_at + 4 * h) + im.tobytes()  # uncompressed, one row per strip
            + struct.pack(f"<{h}I", *range(pixels_at, pixels_at + w * h, w)) + struct.pack("<I", w) * h
            + struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + bytes(4))
    assert Image.open(io.BytesIO(data)).tile[4999].extents == (0, 4999, 300, 5000)  # Pillow sees 5000 strips
    a, _ = decode_upload(data, "scan.tif")
    assert np.array_equal(a[:, :], np.asarray(im.reduce(3)))  # 5000 rows -> reduced by 3 like any other
    assert np.array_equal(prepare_upload(data).image, prepare_upload(encode(im, "PNG")).image)


def _with_compression(code):
    data = bytearray(encode(page(120, 160), "TIFF"))
    (at,) = [at for at, tag in ifd0_entries(data) if tag == 259]
    struct.pack_into("<HHIHH", data, at, 259, 3, 1, code, 0)
    return bytes(data)


@pytest.mark.parametrize("code,label", [(6, "tiff_jpeg"), (34925, "lzma"), (50000, "zstd"), (34676, "sgilog"),
                                        (32809, "thunderscan"), (4242, "unknown")])
def test_uncommon_tiff_compressions_are_refused_clearly(code, label):
    refused(_with_compression(code), "odd.tif", "compression", label, f"({code})", "PNG")


@pytest.mark.parametrize("compression,mode", [(None, "L"), ("tiff_lzw", "L"), ("tiff_deflate", "RGB"),
                                              ("tiff_adobe_deflate", "L"), ("packbits", "L"), ("jpeg", "RGB"),
                                              ("group4", "1"), ("group3", "1"), ("tiff_ccitt", "1")])
def test_common_tiff_compressions_decode(compression, mode):
    im = page(120, 160, mode)
    kw = {"compression": compression} if compression else {}
    p = prepare_upload(encode(im, "TIFF", **kw), "ok.tif")
    q = prepare_upload(encode(im, "PNG"), "ok.png")
    diff = np.abs(p.image.astype(int) - q.image.astype(int))
    assert p.inverted and (diff.mean() < 8 if compression == "jpeg" else diff.max() == 0)


def test_a_100000_page_tiff_uses_its_first_page():
    pages = 100_000
    first = encode(page(60, 80), "TIFF")
    # Append 1x1 pages, each pointing at the next: 100 bytes a page.
    (ifd,) = struct.unpack_from("<I", first, 4)
    (n,) = struct.unpack_from("<H", first, ifd)
    next_at = ifd + 2 + 12 * n
    out = bytearray(first)
    start = len(out)
    struct.pack_into("<I", out, next_at, start)
    entries = [(256, 4, 1, 1), (257, 4, 1, 1), (258, 3, 1, 8), (262, 3, 1, 1), (273, 4, 1, 8), (278, 4, 1, 1),
               (279, 4, 1, 1)]
    size = 2 + 12 * len(entries) + 4
    body = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries)
    for k in range(pages):
        nxt = start + (k + 1) * size if k < pages - 1 else 0
        out += body + struct.pack("<I", nxt)
    a, notes = decode_upload(bytes(out), "pages.tif")
    assert "multi-page TIFF: first page used" in notes and a.shape == (80, 60)


# ------------------------------------------------------------------------ big pictures

def test_a_40_mpx_png_is_decoded_reduced_and_still_finds_the_digit(big_files):
    data = big_files["png_L"].read_bytes()
    a, notes = decode_upload(data, "big.png")
    assert a.shape == (1250, 2000) and a.dtype == np.uint8  # 8000x5000 box-reduced by 4
    assert "large image (8000x5000) decoded reduced to 2000x1250" in notes
    assert np.array_equal(a, np.asarray(page(8000, 5000).reduce(4)))
    p = prepare_upload(data, "big.png")
    drawn_small = prepare_upload(encode(page(2000, 1250), "PNG"))  # the same '0' drawn at the working size
    assert p.inverted and p.image.max() == 255 and p.image[:3].max() == 0
    assert np.abs(p.image.astype(int) - drawn_small.image.astype(int)).max() <= 16


def test_work_side_bounds_the_longer_side():
    assert WORK_SIDE == 2048
    a, notes = decode_upload(encode(page(WORK_SIDE, 300), "PNG"), "edge.png")
    assert a.shape == (300, WORK_SIDE) and notes == []  # not reduced at exactly the working size
    a, notes = decode_upload(encode(page(300, WORK_SIDE + 1), "PNG"), "tall.png")
    assert a.shape == (1025, 150) and notes == [f"large image (300x{WORK_SIDE + 1}) decoded reduced to 150x1025"]


def test_large_jpeg_is_scaled_by_the_jpeg_decoder_itself():
    # 6000x4000 needs a factor of 3: DCT scaling does 1/2 (3000x2000), a box reduce the
    # remaining 2 (1500x1000). A plain box reduce would have given 2000x1334.
    a, notes = decode_upload(encode(page(6000, 4000, "RGB"), "JPEG", quality=90), "photo.jpg")
    assert a.shape == (1000, 1500), a.shape
    assert "large image (6000x4000) decoded reduced to 1500x1000" in notes
    b, _ = decode_upload(encode(page(8000, 5000, "RGB"), "JPEG", quality=90), "photo.jpg")
    assert b.shape == (1250, 2000)  # 1/4 exactly


def test_large_jpeg_with_exif_orientation_is_reduced_then_turned_once():
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees
    a, notes = decode_upload(encode(page(6000, 4000, "RGB"), "JPEG", exif=exif), "phone.jpg")
    assert a.shape == (1500, 1000) and "rotated upright using its EXIF orientation" in notes


def test_tiff_exif_orientation_is_applied_once():
    # Pillow turns a TIFF itself while loading it (at full size); decode_upload takes that
    # over, turning the reduced picture, so it must happen exactly once.
    im = Image.new("L", (200, 60), 255)
    ImageDraw.Draw(im).rectangle((20, 25, 180, 35), fill=0)
    exif = Image.Exif()
    exif[0x0112] = 6
    a, notes = decode_upload(encode(im, "TIFF", exif=exif), "turned.tif")
    assert a.shape == (200, 60) and "rotated upright using its EXIF orientation" in notes
    assert np.array_equal(a, np.asarray(im.transpose(Image.Transpose.ROTATE_270)))


def _full_size_then_reduced(data, factor):
    """The old way: the whole picture converted to grey at full size, then box-reduced."""
    return np.asarray(pp._to_gray(Image.open(io.BytesIO(data)))[0].reduce(factor)).astype(int)


@pytest.mark.parametrize("kind", ["RGBA", "P+transparency", "1", "I;16", "L+transparency"])
def test_reducing_before_converting_gives_the_full_size_result(kind):
    w, h = 4100, 1100  # factor 3
    gray = page(w, h)
    if kind == "RGBA":
        im = Image.merge("RGBA", [Image.new("L", gray.size, 30)] * 3 + [gray.point(lambda v: 255 - v)])
    elif kind == "I;16":
        im = Image.fromarray(np.asarray(gray).astype(np.uint16) * 200)  # 16-bit, not filling the range
    else:
        im = gray.convert(kind[0])
    data = encode(im, "PNG", **({"transparency": 255} if "transparency" in kind else {}))
    a, notes = decode_upload(data, "big.png")
    assert a.shape == (367, 1367) and f"large image ({w}x{h}) decoded reduced to 1367x367" in notes
    want = _full_size_then_reduced(data, 3)
    assert np.abs(a.astype(int) - want).max() <= 1, kind
    assert ("alpha channel composited on white" in notes) == (kind not in ("1", "I;16"))
    if kind == "P+transparency":
        assert "palette image converted" in notes


@pytest.mark.parametrize("mode", ["RGB", "CMYK"])
def test_dct_scaled_jpeg_matches_the_full_size_result_closely(mode):
    data = encode(page(4096, 1100, mode), "JPEG", quality=95)
    a, notes = decode_upload(data, "photo.jpg")
    assert a.shape == (550, 2048)  # decoded at 1/2 scale, nothing left to reduce
    want = _full_size_then_reduced(data, 2)
    assert np.abs(a.astype(int) - want).mean() < 1.5
    assert ("CMYK converted" in notes) == (mode == "CMYK")


def test_peak_memory_of_a_40_mpx_rgba_png_and_rgb_jpeg(big_files):
    png = decode_in_child(big_files["png_RGBA"])
    assert png["error"] is None and png["shape"] == [1250, 2000], png
    assert "alpha channel composited on white" in png["notes"]
    assert png["mb"] <= 300, png  # the decoded picture is 160 MB; compositing at full size took 640 MB
    jpg = decode_in_child(big_files["jpg_RGB"])
    assert jpg["error"] is None and jpg["shape"] == [1250, 2000], jpg
    assert jpg["mb"] <= 100, jpg  # never decoded at full size (that alone is 160 MB)


def test_peak_memory_of_colour_decodes_for_colour_models(big_files):
    """The colour path (colour models keep RGB) has the same bounds: reduced before any
    conversion, transparency composited on the reduced copy."""
    png = decode_in_child(big_files["png_RGBA"], colour=True)
    assert png["error"] is None and png["shape"] == [1250, 2000, 3], png
    assert "alpha channel composited on black" in png["notes"]
    assert png["mb"] <= 300, png
    jpg = decode_in_child(big_files["jpg_RGB"], colour=True)
    assert jpg["error"] is None and jpg["shape"] == [1250, 2000, 3], jpg
    assert jpg["mb"] <= 100, jpg


# ------------------------------------------------------------------------------ JPEG

def test_jpeg_header_segments_and_junk_are_capped():
    base = encode(page(100, 80, "RGB"), "JPEG")
    comments = b"\xff\xfe\x00\x02" * (pp.MAX_JPEG_SEGMENTS + 1)  # empty comments: 4 bytes each
    refused(base[:2] + comments + base[2:], "notes.jpg", "header segments")
    fill = b"\xff\xfe\x00\x02" + b"\xff" * (pp.MAX_JPEG_JUNK + 2)  # fill bytes before the next marker
    refused(base[:2] + fill + base[2:], "fill.jpg", "stray header bytes")
    a, _ = decode_upload(base[:2] + b"\xff\xfe\x00\x02" * 100 + base[2:], "ok.jpg")
    assert a.shape == (80, 100)


def _progressive_with_repeats(copies, size=(400, 250)):
    """A real progressive JPEG with one of its AC scans repeated `copies` times: libjpeg
    decodes each repeat over every block again (a 65-byte scan can cost 20 ms at 40 Mpx)."""
    segs = jpeg_segments(encode(page(*size, "RGB"), "JPEG", progressive=True, subsampling=0))
    scans = [s for m, s in segs if m == 0xDA]
    return b"".join(s for _, s in segs[:-1]) + scans[-2] * copies + segs[-1][1]


def test_a_jpeg_of_too_many_scans_is_refused():
    refused(_progressive_with_repeats(pp.MAX_JPEG_SCANS), "scans.jpg", "scans")
    a, _ = decode_upload(_progressive_with_repeats(20), "fine.jpg")  # a bogus but cheap progression decodes
    assert a.shape == (250, 400)


def _jpeg_header(w, h, comps, scans):
    """SOI, a progressive SOF2 and `scans` scan headers: enough for the checks, which read
    no further (Pillow would stop at the missing tables)."""
    sof = struct.pack(">BHHB", 8, h, w, len(comps)) + b"".join(bytes([i + 1, hv, 0]) for i, hv in enumerate(comps))
    sos = b"\xff\xda" + struct.pack(">HB", 6 + 2 * 1, 1) + b"\x01\x00" + b"\x00\x3f\x00"
    return b"\xff\xd8\xff\xc2" + struct.pack(">H", 2 + len(sof)) + sof + sos * scans + b"\xff\xd9"


def test_scan_work_is_capped_by_blocks_decoded():
    # 6000x6000 grey: 562,500 blocks a scan; 45 scans decode 25.3M blocks, over the cap.
    refused(_jpeg_header(6000, 6000, [0x11], 45), "deep.jpg", "45 scans", "6000x6000")
    with pytest.raises(VaeError) as e:  # 44 scans pass the cap (and then fail on the missing tables)
        decode_upload(_jpeg_header(6000, 6000, [0x11], 44), "deep.jpg")
    assert "scans" not in str(e.value)


def test_a_progressive_jpeg_too_large_for_its_coefficients_is_refused():
    # 40 Mpx CMYK progressive: 2.5M blocks x 128 bytes = 320 MB held before any output.
    refused(_jpeg_header(8000, 5000, [0x11] * 4, 2), "print.jpg", "320 MB", "progressive")
    with pytest.raises(VaeError) as e:  # the same as a baseline (one scan) streams: not refused for memory
        decode_upload(_jpeg_header(8000, 5000, [0x11] * 4, 1), "print.jpg")
    assert "MB" not in str(e.value)


# ---------------------------------------------------------------------- PNG, GIF, others

def test_png_chunk_count_is_capped():
    chunks = png_chunks(encode(page(100, 80), "PNG"))
    head = b"\x89PNG\r\n\x1a\n" + png_chunk(*chunks[0])
    rest = b"".join(png_chunk(*c) for c in chunks[1:])
    filler = png_chunk(b"abCd", b"") * pp.MAX_PNG_CHUNKS  # 12 bytes each, ignorable ancillary chunks
    refused(head + filler + rest, "chunky.png", "chunks")
    idat = b"".join(body for kind, body in chunks if kind == b"IDAT")
    many = b"".join(png_chunk(b"IDAT", idat[k:k + 4]) for k in range(0, len(idat), 4))  # an IDAT every 4 bytes
    a, _ = decode_upload(head + many + png_chunk(b"IEND", b""), "split.png")
    assert np.array_equal(a, np.asarray(page(100, 80)))


def _gif_parts(im):
    data = encode(im, "GIF")
    flags = data[10]
    head = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    return data[:head], data[head:-1]  # header + colour table, first frame (without the trailer)


def test_gif_data_blocks_before_the_second_frame_are_capped():
    head, frame = _gif_parts(page(100, 80))
    comment = b"!\xfe" + b"\x01c" * pp.MAX_GIF_BLOCKS + b"\x00"  # one-byte comment blocks: 400 KB
    refused(head + comment + frame + b";", "chatty.gif", "data blocks")
    a, _ = decode_upload(head + b"!\xfe" + b"\x01c" * 1000 + b"\x00" + frame + b";", "ok.gif")
    assert a.shape == (80, 100)


def test_a_100000_frame_gif_uses_its_first_frame():
    head, frame = _gif_parts(page(100, 80))
    tiny = b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00"  # a 1x1 frame: 15 bytes
    data = head + frame + tiny * 100_000 + b";"
    a, notes = decode_upload(data, "long.gif")
    assert "animated GIF: first frame used" in notes
    assert np.array_equal(a, decode_upload(head + frame + b";", "one.gif")[0])


def _rle8_bmp(im):
    """A BI_RLE8 BMP of an 'L' image, in runs (the way Windows Paint wrote them)."""
    a = np.asarray(im)[::-1]  # bottom-up
    body = bytearray()
    for row in a:
        x = 0
        while x < len(row):
            n = 1
            while x + n < len(row) and n < 255 and row[x + n] == row[x]:
                n += 1
            body += bytes([n, row[x]])
            x += n
        body += b"\x00\x00"
    body += b"\x00\x01"
    palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
    info = struct.pack("<IiiHHIIiiII", 40, im.width, im.height, 1, 8, 1, len(body), 2835, 2835, 256, 0)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset) + info + palette + bytes(body)


def test_run_length_bmp_is_capped_in_pixels():
    im = page(120, 160)
    a, _ = decode_upload(_rle8_bmp(im), "paint.bmp")
    assert np.array_equal(a, np.asarray(im))
    big = Image.new("L", (1001, 1000), 255)  # 1,001,000 pixels of pure-Python decoding
    refused(_rle8_bmp(big), "paint.bmp", "run-length", "1,000,000 pixels")


def test_webp_is_capped_in_pixels(monkeypatch):
    data = encode(page(100, 100, "RGB"), "WEBP")
    monkeypatch.setattr(pp, "MAX_WEBP_PIXELS", 100 * 100 - 1)
    refused(data, "web.webp", "WebP", "9,999 pixels")
    monkeypatch.setattr(pp, "MAX_WEBP_PIXELS", 100 * 100)
    assert decode_upload(data, "web.webp")[0].shape == (100, 100)


def test_decode_upload_returns_what_load_image_and_prepare_upload_use():
    data = encode(page(120, 160, "RGB"), "PNG")
    a, notes = decode_upload(data, "d.png")
    assert a.ndim == 2 and a.dtype == np.uint8 and notes == []
    assert np.array_equal(np.asarray(pp.load_image(data)), a) and pp.load_image(data).mode == "L"
    assert np.array_equal(prepare_upload(data).image, pp.preprocess(a).image)
