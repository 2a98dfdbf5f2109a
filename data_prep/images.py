"""Images: the one decoder of training data, evaluation and inference alike.

``load_image`` turns bytes, a file or a PIL image into the RGB picture the model sees: decode ->
EXIF orientation -> RGB -> shrink. Training data (``pairs``) and inference (``open_image``) call it, so a
transparent pixel, a 16-bit scan or a CMYK print is the same colour at both ends. A file that cannot
become such a picture raises ``SkipRow(reason)``: a counted row in data_prep, a ``UserError`` naming the
file at inference. How each kind of file ends up RGB:

- transparency (RGBA, LA, PA, a palette or colour key with transparency): composited on white, since a
  black background would invent content;
- 16-bit grey: 0..65535 scaled to 0..255 (a plain conversion clips everything above 255 to white);
- CMYK: through its embedded ICC profile when it has a usable one, else Pillow's ink formula;
- LAB: through littlecms (CIE L*a*b* D50 -> sRGB), not through a formula;
- 32-bit float (F): no defined range, a skip (``unsupported_image_mode``);
- animated GIF / PNG / WebP: the first frame;
- other embedded ICC profiles (RGB, grey) are ignored: pixels are taken as sRGB, as processors take them.

Rows of a data set name their image by bytes or by path; ``row_image`` resolves a path against the
data's folder and refuses one that leaves it (``image_outside_data``), so a data file cannot make us
read arbitrary files. Shrinking keeps the prepared set small and its decoding fast (the remedy for
out-of-memory); how many image tokens an image costs is decided by the processor's own
``size["longest_edge"]``, which is why ``budget`` counts with the processor.

    from data_prep.images import load_image, open_image
    image = load_image(png_bytes, longest_edge=512)          # RGB, or raises SkipRow(reason)
    image = open_image("photo.jpg", longest_edge=512)        # RGB, or raises ImageError naming the file
"""

import functools
import io
import warnings
from pathlib import Path

from PIL import Image, ImageCms, ImageOps

from data_prep.errors import ImageError

MIN_SIDE = 2  # processors cannot tell height from channels on a 1px side
SIXTEEN_BIT_GREY = ("I", "I;16", "I;16L", "I;16B", "I;16N")

# Why an image is unusable, for a person: the skip reason's explanation in an inference error.
REASONS = {
    "missing_image": "no such file",
    "unreadable_image": "the file cannot be read (check its permissions)",
    "undecodable_image": "not an image Pillow can decode (corrupt, truncated or an unknown format)",
    "image_too_large": "more pixels than Pillow's decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS)",
    "image_too_small": f"a side is shorter than {MIN_SIDE} pixels once shrunk",
    "unsupported_image_mode": "32-bit float pixels (mode F) have no defined brightness range",
    "image_outside_data": "outside the data's folder (pass image_root to allow another folder)",
    "bad_image_path": "a path that cannot be resolved (a link that loops, or a NUL byte in it)",
}


class SkipRow(Exception):
    """A row that cannot become a training pair; ``reason`` is the key counted in prep_report.json."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def load_image(value, longest_edge: int | None = None) -> Image.Image:
    """Bytes, a file path or a PIL image -> the RGB image the model sees, at most ``longest_edge`` pixels on its
    longest side (None: as decoded); raises ``SkipRow``.

    The result's ``format`` is the source's ("PNG", "JPEG", ...), which ``encode`` keeps JPEG sources JPEG by.
    """
    decoded = decode(value)
    try:
        image = to_rgb(orient(decoded))
    except SkipRow:
        raise
    except Exception:  # noqa: BLE001 -- a broken EXIF block or pixel data fails here with any of PIL's errors
        raise SkipRow("undecodable_image") from None
    if longest_edge is not None:
        image = shrink(image, longest_edge)
    if min(image.size) < MIN_SIDE:
        raise SkipRow("image_too_small")
    image.format = decoded.format
    return image


def open_image(path: str | Path, longest_edge: int | None = None) -> Image.Image:
    """``load_image`` of a file a person named (inference): the same picture training saw, or an ``ImageError``
    (a ``UserError``) that names the file and what is wrong with it. Pass the run's ``image_longest_edge``."""
    try:
        return load_image(Path(path), longest_edge)
    except SkipRow as skip:
        raise ImageError(f"Cannot use image {path}: {REASONS[skip.reason]}.") from None


def row_image(value, data_root: Path | None = None, image_root: Path | None = None):
    """A data row's image value -> bytes, a PIL image or a file ``Path`` for ``load_image``; raises ``SkipRow``.

    ``value`` is bytes, a path, a PIL image or a ``{"bytes", "path"}`` struct (RLHF-V's ``image``; bytes win).
    A relative path resolves against ``data_root``, the folder of the data file (against ``image_root`` when
    the data has no folder, e.g. a hub data set). The resolved file (links followed) must lie inside
    ``data_root`` or ``image_root``, else the row is skipped as ``image_outside_data``.
    """
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if not value:
        raise SkipRow("missing_image")
    if isinstance(value, (bytes, Image.Image)):
        return value
    if not isinstance(value, str):  # a number, a list...: nothing that names an image
        raise SkipRow("undecodable_image")
    roots = [Path(root).resolve() for root in (data_root, image_root) if root is not None]
    path = Path(value)
    if not path.is_absolute():
        if not roots:
            raise SkipRow("image_outside_data")
        path = roots[0] / path
    try:
        path = path.resolve()
        path.stat()
    except FileNotFoundError:
        pass  # decode() counts it as missing_image
    except (RuntimeError, ValueError, OSError):  # a link loop (RuntimeError, ELOOP), a NUL byte (ValueError)
        raise SkipRow("bad_image_path") from None
    if not any(path.is_relative_to(root) for root in roots):
        raise SkipRow("image_outside_data")
    return path


def decode(value) -> Image.Image:
    """Bytes, a file path or a PIL image -> a loaded PIL image (its first frame), or ``SkipRow``."""
    if isinstance(value, Image.Image):
        return value
    if not value:
        raise SkipRow("missing_image")
    if isinstance(value, (str, Path)):
        if not Path(value).is_file():
            raise SkipRow("missing_image")
        try:
            value = Path(value).read_bytes()
        except OSError:
            raise SkipRow("unreadable_image") from None
    try:
        with warnings.catch_warnings():  # Pillow only warns between its pixel limit and twice it: refuse there too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(value))
        image.load()  # a truncated file fails here, not later inside the processor
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise SkipRow("image_too_large") from None
    except Exception:  # noqa: BLE001 -- PIL's decoders raise OSError, SyntaxError, ValueError, struct.error, ...
        raise SkipRow("undecodable_image") from None
    return image


def orient(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag: phone photos are stored sideways and only the tag says so."""
    return ImageOps.exif_transpose(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any mode -> RGB, as the module's docstring lists; ``SkipRow("unsupported_image_mode")`` for float pixels."""
    if image.mode == "RGB":
        return image
    if image.mode == "F":
        raise SkipRow("unsupported_image_mode")
    if image.mode in SIXTEEN_BIT_GREY:
        image = image.convert("I").point(lambda v: v / 257).convert("L")
    if image.mode == "LAB":
        return ImageCms.applyTransform(image, _lab_to_srgb())
    if image.mode == "CMYK" and image.info.get("icc_profile"):
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
            return ImageCms.profileToProfile(image, profile, _srgb(), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):  # a broken or non-CMYK profile: as if there were none
            pass
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def shrink(image: Image.Image, longest_edge: int) -> Image.Image:
    """Scale so that the longest edge is at most ``longest_edge``, keeping the aspect ratio; never upscale."""
    width, height = image.size
    if max(width, height) <= longest_edge:
        return image
    scale = longest_edge / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def encode(image: Image.Image, source_format: str | None) -> bytes:
    """Bytes to store: JPEG (quality 95) for sources that were JPEG already, PNG otherwise.

    Photos stored as PNG would be ~5x larger for no gain, and re-encoding a PNG as JPEG
    would blur text and line drawings.
    """
    buffer = io.BytesIO()
    if source_format in ("JPEG", "MPO"):
        image.save(buffer, format="JPEG", quality=95)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


@functools.cache
def _srgb():
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.cache
def _lab_to_srgb():
    return ImageCms.buildTransform(ImageCms.createProfile("LAB"), _srgb(), "LAB", "RGB")
