"""Uploads -> MNIST framing. Every input is drawn here with PIL/numpy; no binary fixtures."""
import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vae_core import VaeError
from vae_core import preprocess as pp
from vae_core.preprocess import IMAGE_TYPES, MAX_PIXELS, Prepared, load_image, prepare_upload, preprocess


def digit(w=120, h=160, ink=0, paper=255, mode="L", box=None):
    """A '0'-like thick ellipse: dark ink on white paper by default."""
    im = Image.new(mode, (w, h), paper)
    ImageDraw.Draw(im).ellipse(box or (w * 0.25, h * 0.15, w * 0.75, h * 0.85), outline=ink, width=max(2, w // 12))
    return im


def encode(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def centre_of_mass(a):
    a = a.astype(np.float64)
    return (float(a.sum(1) @ np.arange(a.shape[0]) / a.sum()), float(a.sum(0) @ np.arange(a.shape[1]) / a.sum()))


def ink_box(a, thr=0):
    rows, cols = np.flatnonzero((a > thr).any(1)), np.flatnonzero((a > thr).any(0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def assert_mnist_like(p):
    assert isinstance(p, Prepared)
    assert p.image.shape == (28, 28) and p.image.dtype == np.uint8
    assert p.image.max() == 255
    assert max(p.image[:3].max(), p.image[-3:].max(), p.image[:, :3].max(), p.image[:, -3:].max()) == 0


def assert_refused(data, name="upload", *needles):
    with pytest.raises(VaeError) as e:
        prepare_upload(data, name)
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg and msg.strip()
    for needle in needles:
        assert needle.lower() in msg.lower(), msg
    return msg


# ------------------------------------------------------------------ inversion and framing

def test_dark_ink_on_white_paper_is_inverted_to_white_on_black():
    p = prepare_upload(encode(digit(), "PNG"), "zero.png")
    assert_mnist_like(p)
    assert p.inverted is True and p.notes == []
    assert p.image[0, 0] == p.image[-1, -1] == 0
    assert (p.image > 128).sum() > 30  # a real ring of bright ink, not a speck
    assert p.image[14, 14] < 50  # the hole of the '0' stays dark


def test_light_ink_on_black_is_not_inverted_and_matches_the_paper_version():
    on_black = prepare_upload(encode(digit(ink=255, paper=0), "PNG"))
    on_white = prepare_upload(encode(digit(), "PNG"))
    assert on_black.inverted is False
    assert_mnist_like(on_black)
    assert np.abs(on_black.image.astype(int) - on_white.image.astype(int)).max() <= 1


def test_invert_override_is_respected():
    data = encode(digit(), "PNG")
    assert prepare_upload(data, invert="yes").inverted is True
    # Forced "no" on white paper: the background level is subtracted away and the ink
    # (darker than paper) leaves nothing bright, so it reads as blank.
    with pytest.raises(VaeError, match="[Nn]o ink"):
        prepare_upload(data, invert="no")
    black = encode(digit(ink=255, paper=0), "PNG")
    assert prepare_upload(black, invert="no").inverted is False
    with pytest.raises(VaeError, match="[Nn]o ink"):
        prepare_upload(black, invert="yes")


def test_invalid_invert_option_is_a_vae_error():
    with pytest.raises(VaeError, match="auto, yes or no"):
        prepare_upload(encode(digit(), "PNG"), invert="maybe")
    with pytest.raises(VaeError, match="auto, yes or no"):
        preprocess(np.zeros((5, 5), np.uint8), invert=True)


def test_grey_paper_and_dim_screen_get_a_black_background():
    paper = np.full((100, 80), 150, np.uint8)  # grey paper (0.59: still "bright")
    paper[20:80, 35:45] = 40                    # a dark '1'
    p = preprocess(paper)
    assert p.inverted is True
    assert_mnist_like(p)
    screen = np.full((100, 80), 60, np.uint8)   # a dim screen: dark, but not black
    screen[20:80, 35:45] = 200
    q = preprocess(screen)
    assert q.inverted is False
    assert_mnist_like(q)  # the 60 background was subtracted, not kept as grey
    assert np.abs(p.image.astype(int) - q.image.astype(int)).max() <= 1


def test_faint_smudges_are_dropped_not_kept_as_grey():
    clean = np.zeros((100, 100), np.uint8)
    clean[10:90, 20:30] = 255   # an 'L': vertical stroke...
    clean[80:90, 20:90] = 255   # ...and foot, so the ink box has an empty corner
    smudged = clean.copy()
    smudged[10:65, 45:90] = 15  # a faint smudge (6% of the ink) in that corner
    diff = preprocess(smudged).image.astype(int) - preprocess(clean).image.astype(int)
    assert np.abs(diff).max() <= 2


def test_off_centre_blob_lands_with_its_centre_of_mass_at_14_14():
    a = np.zeros((300, 400), np.uint8)
    yy, xx = np.mgrid[:300, :400]
    a[(yy - 40) ** 2 / 30**2 + (xx - 340) ** 2 / 15**2 < 1] = 255  # near the top-right corner
    a[60:110, 330:338] = 255                                         # plus a tail, so not symmetric
    p = preprocess(a)
    cy, cx = centre_of_mass(p.image)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1, (cy, cx)
    assert ink_box(p.image, 20)[0] in (19, 20, 21)


def test_tall_thin_stroke_is_20_tall_and_narrow():
    a = np.zeros((200, 200), np.uint8)
    a[20:180, 95:105] = 255
    p = preprocess(a)
    h, w = ink_box(p.image, 20)
    assert 19 <= h <= 21 and w <= 4, (h, w)


def test_wide_bar_is_20_wide_and_flat():
    a = np.zeros((200, 300), np.uint8)
    a[90:110, 30:270] = 255
    p = preprocess(a)
    h, w = ink_box(p.image, 20)
    assert 19 <= w <= 21 and h <= 4, (h, w)


def test_very_wide_image_becomes_a_20_by_1_line():
    a = np.full((10, 4000), 255, np.uint8)
    a[4:6, 100:3900] = 0  # dark line on white
    p = prepare_upload(encode(Image.fromarray(a), "PNG"), "wide.png")
    assert p.inverted is True
    h, w = ink_box(p.image, 20)
    assert 19 <= w <= 21 and h <= 2, (h, w)


def test_lopsided_digit_is_clamped_inside_the_frame_not_cut():
    a = np.zeros((200, 200), np.uint8)
    a[190:200, 0:200] = 255           # a heavy bottom bar...
    a[150:200, 150:200] = 255         # ...and a heavy bottom-right block,
    a[0:200, 0:3] = 255               # plus a thin left stroke to the top: mass sits far from the box centre
    p = preprocess(a)
    cy, cx = centre_of_mass(p.image)
    assert cy > 15  # its centre of mass cannot reach 14 without pushing the box off the frame
    h, w = ink_box(p.image, 20)
    assert 19 <= h <= 21 and 19 <= w <= 21, (h, w)  # nothing was cut off
    assert p.image[27].max() == 0 or p.image[:, 27].max() == 0  # and it did not wrap around


# ----------------------------------------------------------------------------- formats

@pytest.mark.parametrize("fmt,mode", [("PNG", "L"), ("JPEG", "RGB"), ("BMP", "RGB"), ("WEBP", "RGB"),
                                      ("TIFF", "L"), ("GIF", "L"), ("PNG", "RGB")])
def test_format_round_trips(fmt, mode):
    p = prepare_upload(encode(digit().convert(mode), fmt), f"d.{fmt.lower()}")
    assert_mnist_like(p)
    assert p.inverted is True
    assert load_image(encode(digit(), fmt)).mode == "L"


def test_animated_gif_uses_the_first_frame():
    first = digit(box=(10, 10, 50, 150))      # tall, at the left
    second = Image.new("L", first.size, 255)  # a wide bar: a different shape
    ImageDraw.Draw(second).rectangle((10, 70, 110, 90), fill=0)
    data = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    p = prepare_upload(data, "anim.gif")
    assert "animated GIF: first frame used" in p.notes
    h, w = ink_box(p.image, 20)
    assert h > w  # the tall ellipse, not the wide bar
    assert np.array_equal(p.image, prepare_upload(encode(first, "GIF")).image)


def test_sixteen_bit_png_is_scaled_not_clipped():
    a = np.full((60, 60), 60000, np.uint16)
    a[10:50, 25:35] = 2000
    im = Image.fromarray(a)
    data = encode(im, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    p = prepare_upload(data, "deep.png")
    assert "16-bit image scaled to 8 bits" in p.notes and p.inverted is True
    assert_mnist_like(p)
    assert 19 <= ink_box(p.image, 20)[0] <= 21


def test_float_image_through_preprocess():
    a = np.zeros((40, 40), np.float32)
    a[5:35, 18:22] = 0.7
    p = preprocess(Image.fromarray(a))  # mode 'F'
    assert_mnist_like(p)
    assert p.inverted is False
    assert np.array_equal(p.image, preprocess(a).image)


def test_cmyk_jpeg_is_converted():
    im = digit(mode="CMYK", ink=(0, 0, 0, 255), paper=(0, 0, 0, 0))  # K=255 is black ink, all-zero is white
    data = encode(im, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    p = prepare_upload(data, "print.jpg")
    assert "CMYK converted" in p.notes and p.inverted is True
    assert_mnist_like(p)


def test_palette_png_with_transparent_background_reads_as_paper():
    im = Image.new("P", (80, 80), 0)
    im.putpalette([0, 255, 0] + [0, 0, 0] * 255)  # index 0 is green but transparent
    ImageDraw.Draw(im).line((40, 10, 40, 70), fill=1, width=8)  # black stroke
    data = encode(im, "PNG", transparency=0)
    p = prepare_upload(data, "pal.png")
    assert "palette image converted" in p.notes and "alpha channel composited on white" in p.notes
    assert p.inverted is True  # transparent -> white paper, not green (which is brighter than 0.5 too) or black
    h, w = ink_box(p.image, 20)
    assert 19 <= h <= 21 and w < 10


def test_rgba_with_transparent_background_is_composited_on_white():
    im = Image.new("RGBA", (80, 80), (0, 0, 0, 0))  # transparent *black*: would read as dark without compositing
    ImageDraw.Draw(im).ellipse((20, 10, 60, 70), outline=(0, 0, 0, 255), width=7)
    p = prepare_upload(encode(im, "PNG"), "sticker.png")
    assert "alpha channel composited on white" in p.notes
    assert p.inverted is True
    assert_mnist_like(p)


def test_one_bit_image_is_converted():
    im = Image.new("1", (64, 64), 1)
    ImageDraw.Draw(im).rectangle((28, 8, 36, 56), fill=0)
    p = prepare_upload(encode(im, "PNG"), "bw.png")
    assert "1-bit image converted to grayscale" in p.notes and p.inverted is True
    assert_mnist_like(p)


def test_exif_orientation_is_applied():
    im = Image.new("L", (200, 60), 255)
    ImageDraw.Draw(im).rectangle((20, 25, 180, 35), fill=0)  # a wide bar as stored...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...shown rotated 90 degrees: a tall bar
    p = prepare_upload(encode(im, "JPEG", exif=exif), "phone.jpg")
    assert any("EXIF" in n for n in p.notes)
    h, w = ink_box(p.image, 20)
    assert h > w


def test_one_by_one_image_is_refused_clearly():
    assert_refused(encode(Image.new("L", (1, 1), 0), "PNG"), "dot.png", "1x1", "too small")
    assert_refused(encode(Image.new("L", (1, 1), 255), "PNG"), "dot.png", "1x1", "too small")
    with pytest.raises(VaeError, match="too small"):
        preprocess(np.zeros((0, 0), np.uint8))


@pytest.mark.parametrize("value", [0, 255])
def test_blank_image_says_no_ink(value):
    assert_refused(encode(Image.new("L", (50, 50), value), "PNG"), "blank.png", "no ink", "blank")


def test_preprocess_accepts_arrays_and_rejects_colour_arrays():
    a = np.zeros((30, 30), np.uint8)
    a[5:25, 10:14] = 200
    assert np.array_equal(preprocess(a).image, preprocess(a.astype(np.float32) / 255).image)
    assert np.array_equal(preprocess(a).image, preprocess(a[..., None]).image)
    assert np.array_equal(preprocess(a).image, preprocess(a.astype(np.uint16) * 257).image)
    assert np.array_equal(preprocess(a).image, preprocess(a.astype(np.float64)).image)  # 0..255 floats
    assert np.array_equal(preprocess(a > 0).image, preprocess((a > 0).astype(np.uint8) * 255).image)
    f = np.where(a > 0, 0.9, 0.3).astype(np.float32)  # grey background to subtract
    preprocess(f)  # works on its own copy, never in the caller's array
    assert np.array_equal(f, np.where(a > 0, 0.9, 0.3).astype(np.float32))
    with pytest.raises(VaeError, match="2-D"):
        preprocess(np.zeros((30, 30, 3), np.uint8))


def test_image_types_list():
    assert IMAGE_TYPES == ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"]


# ------------------------------------------------------------------------- bad uploads

def test_empty_upload():
    assert_refused(b"", "empty.png", "empty.png", "empty")


@pytest.mark.parametrize("data,needle", [
    (b"hello world", "plain text"),
    (b"\x7fELF\x02\x01\x01\x00" + bytes(200), "program"),
    (b"#!/bin/sh\necho pwned\n", "script"),
    (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML"),
    (bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "not a PNG"),
])
def test_not_an_image(data, needle):
    assert_refused(data, "x.png", "x.png", needle)
    assert_refused(data, "x.jpg", "not a PNG, JPEG")


def test_zip_renamed_to_png():
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
    assert_refused(buf.getvalue(), "archive.png", "zip")


@pytest.mark.parametrize("data,name", [
    (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><circle r="4"/></svg>', "d.png"),
    (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>', "upload"),
    (b"anything", "drawing.svg"),
])
def test_svg_is_refused_with_advice(data, name):
    assert_refused(data, name, "SVG", "PNG or JPEG")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_truncated_files(fmt):
    data = encode(digit(mode="RGB", ink=(0, 0, 0), paper=(255, 255, 255)), fmt)
    assert_refused(data[: len(data) // 2], f"half.{fmt.lower()}", f"half.{fmt.lower()}")
    assert_refused(data[:20], "stub", "stub")


def test_corrupted_png_body():
    data = bytearray(encode(digit(), "PNG"))
    data[100:140] = bytes(40)  # zeroes inside the compressed stream: CRC/zlib errors
    assert_refused(bytes(data), "bad.png", "bad.png")


def _bomb_png(width, height):
    """A genuine, valid 1-bit PNG of width x height: all-zero rows deflate to a few KB."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = zlib.compress(bytes((width + 7) // 8 + 1) * height, 9)  # filter byte 0 + packed bits, per row
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)   # bit depth 1, greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def test_decompression_bomb_at_the_default_limit_is_refused_from_the_header(monkeypatch):
    data = _bomb_png(8000, 8000)  # 64 Mpx > 40 Mpx, Pillow itself would not even warn (89 Mpx)
    assert len(data) < 20_000 and pp.MAX_PIXELS == MAX_PIXELS == 40_000_000
    # Prove no pixel is decoded: loading would call ImageFile.load.
    from PIL import ImageFile

    def no_load(self):
        raise AssertionError("pixels were decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_load)
    t = time.perf_counter()
    msg = assert_refused(data, "bomb.png", "bomb.png", "40,000,000 pixels", "8000x8000")
    assert time.perf_counter() - t < 1.0, msg


def test_huge_bomb_past_pillows_own_limit_is_a_vae_error():
    assert_refused(_bomb_png(20000, 10000), "huge.png", "pixels")  # 200 Mpx: Pillow raises its own error


def test_pixel_limit_constant_is_honoured(monkeypatch):
    monkeypatch.setattr(pp, "MAX_PIXELS", 100)
    assert_refused(encode(digit(20, 20), "PNG"), "small.png", "100 pixels")
    assert prepare_upload(encode(digit(10, 10), "PNG")).image.shape == (28, 28)  # exactly 100 is allowed


def test_oversize_upload_is_refused_before_decoding(monkeypatch):
    data = encode(digit(), "PNG")
    monkeypatch.setattr(pp, "MAX_UPLOAD_BYTES", len(data) - 1)
    assert_refused(data, "big.png", "big.png", "upload limit")
    monkeypatch.setattr(pp, "MAX_UPLOAD_BYTES", len(data))
    assert prepare_upload(data).image.shape == (28, 28)


def test_multiline_name_keeps_the_message_on_one_line():
    assert_refused(b"", "evil\nname.png", "evil name.png")


# ------------------------------------------------------------ models of other shapes

def _png(im):
    import io
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_colour_uploads_keep_their_colour_and_transparency_becomes_black():
    from PIL import Image

    from vae_core.preprocess import decode_upload
    im = Image.new("RGBA", (120, 80), (200, 40, 10, 255))
    for x in range(10):
        im.putpixel((x, 0), (0, 255, 0, 0))  # fully transparent
    a, notes = decode_upload(_png(im), "red.png", colour=True)
    assert a.shape == (80, 120, 3) and a.dtype == np.uint8
    assert tuple(a[40, 60]) == (200, 40, 10) and tuple(a[0, 0]) == (0, 0, 0)
    assert "alpha channel composited on black" in notes
    grey, _ = decode_upload(_png(im), "red.png")  # the grey path is unchanged: paper is white
    assert grey.ndim == 2 and grey[0, 0] == 255


def test_a_grey_upload_for_a_colour_model_repeats_its_grey():
    from PIL import Image

    from vae_core.preprocess import decode_upload, frame_for_shape
    a, _ = decode_upload(_png(Image.new("L", (64, 64), 77)), "g.png", colour=True)
    assert a.shape == (64, 64, 3) and (a == 77).all()
    p = frame_for_shape(a, (3, 64, 64))
    assert p.image.shape == (64, 64, 3) and p.notes == []  # already the model's size: nothing said


def test_other_shapes_get_a_centred_square_crop_resized_to_the_model():
    from vae_core.preprocess import frame_for_shape
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, 100:200] = (0, 0, 255)    # the centred square is all blue
    img[:, :100] = (255, 0, 0)       # the sides (red, green) are cropped away
    img[:, 200:] = (0, 255, 0)
    p = frame_for_shape(img, (3, 32, 32))
    assert p.image.shape == (32, 32, 3)
    assert (np.abs(p.image.astype(int) - (0, 0, 255)) <= 2).all()
    assert p.notes == ["centre-cropped and resized to 32x32"]
    g = frame_for_shape(img, (1, 64, 64), invert="yes")
    assert g.image.shape == (64, 64) and g.inverted and g.image.mean() > 200  # dark blue inverted is light
    with pytest.raises(VaeError, match="not supported"):
        frame_for_shape(img, (2, 32, 32))


def test_mnist_shaped_models_keep_the_mnist_framing():
    from vae_core.preprocess import frame_for_shape, preprocess
    img = np.full((90, 60), 255, np.uint8)
    img[20:70, 28:33] = 0  # a dark "1" on paper
    a = frame_for_shape(img, (1, 28, 28)).image
    assert np.array_equal(a, preprocess(img).image)
    rgb = np.repeat(img[..., None], 3, axis=2)
    assert np.array_equal(frame_for_shape(rgb, (1, 28, 28)).image, a)
