"""One decoder: an image file becomes the same tensor whether it reaches the model through data_prep (training,
evaluation) or through the function infer.py opens ``--image`` files with.

The files are PNG / TIFF: prepared data stores those losslessly (JPEG sources are stored as JPEG again, so they
match only up to that re-encoding, by design).
"""

import io
import json

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

LONGEST_EDGE = 48  # the run's image_longest_edge; every file is larger, so both paths shrink


def noise(mode: str, size: tuple[int, int], channels: int, high: int, dtype=np.uint8) -> Image.Image:
    """Seeded noise, so that resampling and colour conversion have something to get wrong."""
    shape = (size[1], size[0], channels) if channels > 1 else (size[1], size[0])
    pixels = np.random.default_rng(len(mode) + size[0]).integers(0, high, shape, endpoint=True).astype(dtype)
    return Image.fromarray(pixels, mode if mode != "I;16" else None)


def image_files(folder) -> dict[str, bytes]:
    rgba = noise("RGBA", (96, 64), 4, 255)
    rgba.paste((0, 0, 0, 0), (0, 0, 16, 16))  # a fully transparent corner: white once composited
    palette = noise("RGB", (64, 80), 3, 255).quantize(16)
    palette.paste(0, (0, 0, 16, 16))
    palette.info["transparency"] = 0
    rotated = noise("RGB", (100, 60), 3, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    grey = noise("I;16", (72, 90), 1, 65535, np.uint16)
    grey.paste(25700, (0, 0, 24, 24))  # 100 in 8 bits
    grey.paste(51400, (48, 0, 72, 24))  # 200 in 8 bits
    files = {
        "rgba.png": (rgba, "PNG", {}),
        "grey16.png": (grey, "PNG", {}),
        "cmyk.tif": (noise("CMYK", (80, 50), 4, 255), "TIFF", {}),
        "palette.png": (palette, "PNG", {}),
        "rotated.png": (rotated, "PNG", {"exif": exif}),
    }
    contents = {}
    for name, (image, format, params) in files.items():
        buffer = io.BytesIO()
        image.save(buffer, format=format, **params)
        contents[name] = buffer.getvalue()
        (folder / name).write_bytes(contents[name])
    return contents


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    return folder, image_files(folder)


def rows(names, image_value) -> list[dict]:
    return [{"prompt": f"What is in {name}?", "chosen": f"Picture {i}.", "rejected": "Nothing.",
             "image": image_value(name)} for i, name in enumerate(names)]


def prepared_images(folder, contents, tmp_path, kind: str) -> dict:
    """file name -> the image data_prep stored for it, from a JSONL of relative paths or a parquet of bytes."""
    from data_prep import PrepareOptions, load_prepared, prepare

    names = sorted(contents)
    if kind == "jsonl":
        source = folder / "rows.jsonl"
        source.write_text("".join(json.dumps(row) + "\n" for row in rows(names, lambda name: name)))
    else:
        source = tmp_path / "rows.parquet"
        table = rows(names, lambda name: {"bytes": contents[name], "path": name})
        datasets.Dataset.from_list(table).to_parquet(str(source))
    report = prepare(PrepareOptions(str(source), image_longest_edge=LONGEST_EDGE, test_size=0.2), tmp_path / "prepared")
    assert (report["kept"], report["skipped"]) == (len(names), {})
    prepared = load_prepared(tmp_path / "prepared")
    return {names[row["source_index"]]: row["images"][0] for split in prepared.values() for row in split}


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_training_and_inference_see_the_same_pixel_values(files, tmp_path, tiny_processor, kind):
    from data_prep.chat import render
    from data_prep.images import open_image  # what infer.py opens --image files with

    folder, contents = files
    prepared = prepared_images(folder, contents, tmp_path, kind)
    prompt = render(tiny_processor, "What is shown?")
    for name in contents:
        trained = prepared[name]
        inferred = open_image(folder / name, LONGEST_EDGE)
        assert trained.mode == inferred.mode == "RGB", name
        assert trained.size == inferred.size and max(trained.size) == LONGEST_EDGE, name
        assert trained.tobytes() == inferred.tobytes(), name
        pixel_values = [tiny_processor(text=[prompt], images=[[image]], return_tensors="pt")["pixel_values"]
                        for image in (trained, inferred)]
        assert torch.equal(*pixel_values), name

    # the conversions really happened, on both paths alike
    assert prepared["rgba.png"].getpixel((0, 0)) == (255, 255, 255)
    assert prepared["palette.png"].getpixel((0, 0)) == (255, 255, 255)
    assert prepared["rotated.png"].size == (29, 48)  # 100x60 stood upright, then shrunk
    grey = prepared["grey16.png"]  # 72x90 shrunk to 38x48; 16 bits scaled by 1/257, not clipped to white
    assert grey.getpixel((2, 2)) == (100, 100, 100) and grey.getpixel((34, 2)) == (200, 200, 200)
