"""Images: decode, EXIF-orient, convert to RGB, shrink; one small function per step.

We decode ourselves (datasets never decodes for us, see ``sources``) so that a corrupt file
costs one counted row, not the run. Shrinking keeps the prepared set small and its decoding
fast (the article's remedy for out-of-memory); how many image tokens an image costs is decided
by the processor's own ``size["longest_edge"]``, which is why ``budget`` counts with the processor.

    from data_prep.images import clean_image
    image, source_format = clean_image({"bytes": png_bytes, "path": None}, longest_edge=512)
"""

import io
from pathlib import Path

from PIL import Image, ImageOps

MIN_SIDE = 2  # processors cannot tell height from channels on a 1px side


class SkipRow(Exception):
    """A row that cannot become a training pair; ``reason`` is the key counted in prep_report.json."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def decode(value) -> Image.Image:
    """Bytes, a path, a ``{"bytes", "path"}`` struct (RLHF-V's ``image``) or a PIL image -> a loaded PIL image."""
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if not value:
        raise SkipRow("missing_image")
    if isinstance(value, str) and not Path(value).is_file():
        raise SkipRow("missing_image")
    try:
        image = Image.open(io.BytesIO(value) if isinstance(value, bytes) else value)
        image.load()  # a truncated file fails here, not later inside the processor
    except Exception:  # noqa: BLE001 -- PIL's decoders raise OSError, SyntaxError, ValueError, struct.error, ...
        raise SkipRow("undecodable_image") from None
    return image


def orient(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag: phone photos are stored sideways and only the tag says so."""
    return ImageOps.exif_transpose(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any mode -> RGB; transparency is composited on white (a black background would invent content)."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I"):  # 16-bit grey: scale 0..65535 to 0..255 instead of clipping to white
        image = image.convert("I").point(lambda v: v / 257).convert("L")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError:  # a mode PIL cannot convert without a colour profile (e.g. LAB)
        raise SkipRow("undecodable_image") from None


def shrink(image: Image.Image, longest_edge: int) -> Image.Image:
    """Scale so that the longest edge is at most ``longest_edge``, keeping the aspect ratio; never upscale."""
    width, height = image.size
    if max(width, height) <= longest_edge:
        return image
    scale = longest_edge / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def clean_image(value, longest_edge: int) -> tuple[Image.Image, str | None]:
    """The whole pipeline: decode -> orient -> RGB -> shrink, or ``SkipRow``; also the source format."""
    decoded = decode(value)
    image = shrink(to_rgb(orient(decoded)), longest_edge)
    if min(image.size) < MIN_SIDE:
        raise SkipRow("image_too_small")
    return image, decoded.format


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
