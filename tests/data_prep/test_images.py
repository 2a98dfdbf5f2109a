"""data_prep.images: each image mode ends RGB with the expected pixels, EXIF orientation applies, shrinking keeps the
aspect, bad files are counted skips (inference: an error naming the file), image paths stay inside the data."""

import io
import struct

import pytest
from PIL import Image

from data_prep.errors import ImageError, UserError
from data_prep.images import SkipRow, encode, load_image, open_image, row_image, shrink


def saved(image: Image.Image, format: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


def palette(colors: list[tuple[int, int, int]], **info) -> Image.Image:
    """A 4x4 palette image: pixel (1, 0) is ``colors[1]``, the others ``colors[0]``."""
    image = Image.new("P", (4, 4), 0)
    image.putpalette([channel for color in colors for channel in color])
    image.putpixel((1, 0), 1)
    image.info.update(info)
    return image


def cmyk_profile_by_black_only() -> bytes:
    """An ICC v2 CMYK printer profile (CMYK -> Lab through a 2-point lut16) whose lightness depends on K alone:
    L* = 100 * (1 - K), a* = b* = 0. Cyan ink prints white through it; Pillow's ink formula would say cyan."""
    def s15(x: float) -> bytes:
        return struct.pack(">i", round(x * 65536))

    grid = b"".join(struct.pack(">3H", 0 if k else 0xFF00, 0x8000, 0x8000)  # v2 Lab: L 0..0xFF00, a/b 0x8000 = 0
                    for _c in (0, 1) for _m in (0, 1) for _y in (0, 1) for k in (0, 1))
    a2b0 = (b"mft2" + bytes(4) + bytes([4, 3, 2, 0]) + b"".join(s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
            + struct.pack(">HH", 2, 2) + struct.pack(">2H", 0, 65535) * 4 + grid + struct.pack(">2H", 0, 65535) * 3)
    d50 = s15(0.9642) + s15(1.0) + s15(0.8249)
    desc = b"desc" + bytes(4) + struct.pack(">I", 5) + b"test\0" + bytes(8 + 2 + 1 + 67)
    tags = [(b"desc", desc), (b"wtpt", b"XYZ " + bytes(4) + d50), (b"A2B0", a2b0)]
    table, data, offset = b"", b"", 128 + 4 + 12 * len(tags)
    for signature, body in tags:
        data += bytes(-(offset + len(data)) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (struct.pack(">I", offset + len(data)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"prtrCMYKLab " + bytes(12)
              + b"acsp" + bytes(28) + d50 + bytes(48))
    return header + struct.pack(">I", len(tags)) + table + data


WHITE, RED = (255, 255, 255), (255, 0, 0)

# (source file, expected RGB of pixel (0, 0)); hand-computed values
MODES = {
    "RGBA opaque": (saved(Image.new("RGBA", (4, 4), (10, 20, 30, 255))), (10, 20, 30)),
    "RGBA transparent: white, not black": (saved(Image.new("RGBA", (4, 4), (0, 0, 0, 0))), WHITE),
    "RGBA half blue over white": (saved(Image.new("RGBA", (4, 4), (0, 0, 255, 128))), (127, 127, 255)),
    "LA transparent": (saved(Image.new("LA", (4, 4), (0, 0))), WHITE),
    "L": (saved(Image.new("L", (4, 4), 100)), (100, 100, 100)),
    "1": (saved(Image.new("1", (4, 4), 1)), WHITE),
    "P": (saved(palette([(10, 200, 30), RED])), (10, 200, 30)),
    "P with a transparent entry": (saved(palette([(0, 0, 0), RED], transparency=0)), WHITE),
    "16-bit grey (PNG): 25700 / 257": (saved(Image.new("I;16", (4, 4), 25700)), (100, 100, 100)),
    "16-bit grey full scale": (saved(Image.new("I;16", (4, 4), 65535)), WHITE),
    "16-bit big-endian grey (TIFF)": (saved(Image.new("I;16B", (4, 4), 25700), "TIFF"), (100, 100, 100)),
    "CMYK without profile: cyan-free red": (saved(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "TIFF"), RED),
    "CMYK without profile: half black": (saved(Image.new("CMYK", (4, 4), (0, 0, 0, 128)), "TIFF"), (127, 127, 127)),
    # through the profile: cyan ink is white; K 128/255 is L* 49.8, sRGB 118
    "CMYK with profile: cyan": (saved(Image.new("CMYK", (4, 4), (255, 0, 0, 0)), "TIFF",
                                      icc_profile=cmyk_profile_by_black_only()), WHITE),
    "CMYK with profile: half black": (saved(Image.new("CMYK", (4, 4), (0, 0, 0, 128)), "TIFF",
                                            icc_profile=cmyk_profile_by_black_only()), (118, 118, 118)),
    # L* 50.2, a* = b* = 0: Y = ((50.2 + 16) / 116)^3 = 0.186, sRGB 0.468 -> 119
    "LAB mid grey": (saved(Image.new("LAB", (4, 4), (128, 128, 128)), "TIFF"), (119, 119, 119)),
    "LAB black": (saved(Image.new("LAB", (4, 4), (0, 128, 128)), "TIFF"), (0, 0, 0)),
}


@pytest.mark.parametrize("name", MODES)
def test_every_mode_ends_rgb_with_the_expected_pixels(name):
    source, expected = MODES[name]
    image = load_image(source)
    assert image.mode == "RGB" and image.size == (4, 4)
    red, green, blue = image.getpixel((0, 0))
    assert all(abs(got - want) <= 1 for got, want in zip((red, green, blue), expected)), (red, green, blue)


def test_palette_transparency_keeps_the_opaque_entries():
    image = load_image(saved(palette([(0, 0, 0), RED], transparency=0)))
    assert image.getpixel((0, 0)) == WHITE and image.getpixel((1, 0)) == RED


def test_lab_colours_keep_their_hue():
    """a* > 0 is red-magenta, b* > 0 is yellow: the channels' order, whatever the rounding."""
    red, green, blue = load_image(saved(Image.new("LAB", (4, 4), (128, 200, 128)), "TIFF")).getpixel((0, 0))
    assert red > blue > green
    red, green, blue = load_image(saved(Image.new("LAB", (4, 4), (160, 128, 220)), "TIFF")).getpixel((0, 0))
    assert red > blue and green > blue


def test_float_pixels_are_a_counted_skip():
    with pytest.raises(SkipRow) as caught:
        load_image(saved(Image.new("F", (4, 4), 1.0), "TIFF"))
    assert caught.value.reason == "unsupported_image_mode"


def test_animated_image_is_its_first_frame():
    frames = [Image.new("RGB", (8, 8), color) for color in ("red", "blue")]
    for format in ("GIF", "PNG"):
        source = saved(frames[0], format, save_all=True, append_images=frames[1:])
        assert Image.open(io.BytesIO(source)).n_frames == 2
        assert load_image(source).getpixel((4, 4)) == RED


def test_exif_orientation_rotates():
    image = Image.new("RGB", (40, 20), "white")
    image.putpixel((0, 0), RED)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    for format in ("PNG", "JPEG"):
        rotated = load_image(saved(image, format, exif=exif))
        assert rotated.size == (20, 40)
    red, green, blue = load_image(saved(image, "PNG", exif=exif)).getpixel((19, 0))  # top left -> top right
    assert (red, green, blue) == RED


def test_shrink_applies_after_orientation_and_keeps_the_source_format(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    image = load_image(saved(Image.new("RGB", (100, 50)), "JPEG", exif=exif), longest_edge=40)
    assert image.size == (20, 40) and image.format == "JPEG"
    assert load_image(saved(Image.new("RGB", (100, 50))), longest_edge=None).size == (100, 50)
    (tmp_path / "a.png").write_bytes(saved(Image.new("RGB", (10, 10))))
    assert load_image(tmp_path / "a.png").format == "PNG"


@pytest.mark.parametrize("size, longest_edge, expected", [
    ((1000, 500), 100, (100, 50)),
    ((300, 900), 90, (30, 90)),
    ((333, 101), 100, (100, 30)),
    ((30, 20), 100, (30, 20)),  # never upscaled
    ((100, 40), 100, (100, 40)),
])
def test_shrink_keeps_aspect_and_never_upscales(size, longest_edge, expected):
    assert shrink(Image.new("RGB", size), longest_edge).size == expected


@pytest.mark.parametrize("value, reason", [
    (None, "missing_image"),
    (b"", "missing_image"),
    ("/no/such/image.png", "missing_image"),
    (b"not an image at all", "undecodable_image"),
    (saved(Image.new("RGB", (64, 64)))[:60], "undecodable_image"),  # truncated
    (saved(Image.new("RGB", (1, 1))), "image_too_small"),
    (saved(Image.new("RGB", (4000, 3))), "image_too_small"),  # 1px high once shrunk
])
def test_bad_images_are_skips(value, reason):
    with pytest.raises(SkipRow) as caught:
        load_image(value, longest_edge=512)
    assert caught.value.reason == reason


def test_decompression_bomb_is_a_skip(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    for size in ((20, 20), (12, 9)):  # over twice the limit (Pillow refuses), over the limit (Pillow only warns)
        with pytest.raises(SkipRow) as caught:
            load_image(saved(Image.new("RGB", size)))
        assert caught.value.reason == "image_too_large"
    assert load_image(saved(Image.new("RGB", (10, 10)))).size == (10, 10)  # at the limit


@pytest.mark.parametrize("content, why", [
    (None, "no such file"),
    (b"not an image", "not an image"),
    (saved(Image.new("RGB", (20, 20))), "decompression-bomb"),
])
def test_open_image_errors_name_the_file(tmp_path, monkeypatch, content, why):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    path = tmp_path / "photo.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError, match=why) as caught:
        open_image(str(path))
    assert str(path) in str(caught.value) and isinstance(caught.value, UserError)


def test_open_image_is_load_image_of_the_file(tmp_path):
    path = tmp_path / "wide.png"
    path.write_bytes(saved(Image.new("RGBA", (90, 30), (0, 0, 0, 0))))
    image = open_image(path, longest_edge=45)
    assert image.size == (45, 15) and image.getpixel((0, 0)) == WHITE
    assert image.tobytes() == load_image(path.read_bytes(), 45).tobytes()


def test_row_image_takes_bytes_first_then_a_path_inside_the_data(tmp_path):
    data = (tmp_path / "data").resolve()
    (data / "img").mkdir(parents=True)
    (data / "img" / "a.png").write_bytes(b"png")
    assert row_image({"bytes": b"raw", "path": "elsewhere.png"}, data) == b"raw"
    assert row_image({"bytes": None, "path": "img/a.png"}, data) == data / "img" / "a.png"
    assert row_image("img/a.png", data) == data / "img" / "a.png"
    assert row_image(str(data / "img" / "a.png"), data) == data / "img" / "a.png"  # absolute, yet inside
    image = Image.new("RGB", (4, 4))
    assert row_image(image, data) is image
    for value in (None, "", {"bytes": None, "path": None}, []):
        with pytest.raises(SkipRow, match="missing_image"):
            row_image(value, data)
    for value in (7, {"path": 7}, ["img/a.png"]):
        with pytest.raises(SkipRow, match="undecodable_image"):
            row_image(value, data)


def test_row_image_refuses_paths_that_leave_the_data(tmp_path):
    data, other = (tmp_path / "data").resolve(), (tmp_path / "other").resolve()
    data.mkdir()
    other.mkdir()
    (other / "b.png").write_bytes(b"png")
    (data / "link.png").symlink_to(other / "b.png")
    for value in ("../other/b.png", str(other / "b.png"), "/etc/passwd", "link.png"):
        with pytest.raises(SkipRow, match="image_outside_data"):
            row_image(value, data)
    with pytest.raises(SkipRow, match="image_outside_data"):  # no data folder (hub data), no image_root
        row_image("b.png")
    # an allowed root widens what is inside; relative paths still start from the data's folder
    assert row_image("../other/b.png", data, image_root=other) == other / "b.png"
    assert row_image(str(other / "b.png"), data, image_root=other) == other / "b.png"
    assert row_image("b.png", None, image_root=other) == other / "b.png"
    with pytest.raises(SkipRow, match="image_outside_data"):
        row_image("/etc/passwd", data, image_root=other)


def test_encode_keeps_jpeg_sources_jpeg_and_others_png():
    image = Image.new("RGB", (8, 8), "blue")
    assert Image.open(io.BytesIO(encode(image, "JPEG"))).format == "JPEG"
    assert Image.open(io.BytesIO(encode(image, "PNG"))).format == "PNG"
    assert Image.open(io.BytesIO(encode(image, None))).format == "PNG"
