"""data_prep.images: every mode ends RGB, EXIF orientation applies, shrinking keeps the aspect, bad bytes are skips."""

import io

import pytest
from PIL import Image

from data_prep.images import SkipRow, clean_image, decode, encode, orient, shrink, to_rgb


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def transparent_palette() -> Image.Image:
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((1, 1), 1)
    image.info["transparency"] = 0  # palette entry 0 (black) is transparent
    return image


MODES = {
    "RGBA": lambda: Image.new("RGBA", (4, 4), (0, 0, 0, 0)),
    "LA": lambda: Image.new("LA", (4, 4), (0, 0)),
    "L": lambda: Image.new("L", (4, 4), 100),
    "P": lambda: Image.new("RGB", (4, 4), (10, 200, 30)).convert("P"),
    "P+transparency": transparent_palette,
    "CMYK": lambda: Image.new("CMYK", (4, 4), (0, 255, 255, 0)),
    "I;16": lambda: Image.new("I;16", (4, 4), 40000),
    "I": lambda: Image.new("I", (4, 4), 40000),
    "F": lambda: Image.new("F", (4, 4), 100.0),
    "1": lambda: Image.new("1", (4, 4), 1),
    "YCbCr": lambda: Image.new("YCbCr", (4, 4), (100, 128, 128)),
}


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_ends_rgb(mode):
    image = to_rgb(MODES[mode]())
    assert image.mode == "RGB" and image.size == (4, 4)


def test_transparency_is_composited_on_white():
    assert to_rgb(MODES["RGBA"]()).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(MODES["LA"]()).getpixel((0, 0)) == (255, 255, 255)
    palette = to_rgb(transparent_palette())
    assert palette.getpixel((0, 0)) == (255, 255, 255) and palette.getpixel((1, 1)) == (255, 0, 0)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    assert to_rgb(MODES["I;16"]()).getpixel((0, 0)) == (155, 155, 155)  # 40000 / 257


def test_cmyk_red_stays_red():
    assert to_rgb(MODES["CMYK"]()).getpixel((0, 0)) == (255, 0, 0)


def test_exif_orientation_rotates():
    image = Image.new("RGB", (40, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    decoded = decode(buffer.getvalue())
    assert decoded.size == (40, 20)
    assert orient(decoded).size == (20, 40)
    assert clean_image(buffer.getvalue(), longest_edge=512)[0].size == (20, 40)


@pytest.mark.parametrize("size, longest_edge, expected", [
    ((1000, 500), 100, (100, 50)),
    ((300, 900), 90, (30, 90)),
    ((333, 101), 100, (100, 30)),
    ((30, 20), 100, (30, 20)),  # never upscaled
    ((100, 40), 100, (100, 40)),
])
def test_shrink_keeps_aspect_and_never_upscales(size, longest_edge, expected):
    assert shrink(Image.new("RGB", size), longest_edge).size == expected


def test_decode_accepts_bytes_struct_path_and_pil(tmp_path):
    image = Image.new("RGB", (5, 3), "red")
    path = tmp_path / "red.png"
    image.save(path)
    for value in (png_bytes(image), {"bytes": png_bytes(image), "path": "x.png"}, {"bytes": None, "path": str(path)},
                  str(path), image):
        assert decode(value).size == (5, 3)


@pytest.mark.parametrize("value, reason", [
    (None, "missing_image"),
    (b"", "missing_image"),
    ({"bytes": None, "path": None}, "missing_image"),
    ({"bytes": None, "path": "/no/such/image.png"}, "missing_image"),
    (b"not an image at all", "undecodable_image"),
    (png_bytes(Image.new("RGB", (64, 64)))[:60], "undecodable_image"),  # truncated
    (png_bytes(Image.new("RGB", (1, 1))), "image_too_small"),
    (png_bytes(Image.new("RGB", (4000, 3))), "image_too_small"),  # 1px high once shrunk
])
def test_bad_images_are_skips(value, reason):
    with pytest.raises(SkipRow) as caught:
        clean_image(value, longest_edge=512)
    assert caught.value.reason == reason


def test_encode_keeps_jpeg_sources_jpeg_and_others_png():
    image = Image.new("RGB", (8, 8), "blue")
    assert Image.open(io.BytesIO(encode(image, "JPEG"))).format == "JPEG"
    assert Image.open(io.BytesIO(encode(image, "PNG"))).format == "PNG"
    assert Image.open(io.BytesIO(encode(image, None))).format == "PNG"
