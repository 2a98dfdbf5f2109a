"""Collation for the fast path: no image decoded, resized or copied to the device once its features are known, and
each pair packed on the CPU, so that a training step on a GPU waits on no per-step host work but tokenising.

TRL's vision collator decodes every image of a batch, processes it twice (chosen and rejected rows) into tiles and
hands all the pixels to the device, every step. ``FastCollator`` wraps it:

- each row's image gets a key: a hash of its encoded bytes (the trainer keeps the image column undecoded) or, for a
  decoded image, of its pixels;
- while any image of the batch has no features in the trainer's cache, TRL's collator runs as before, except that
  each image is processed once rather than once per row (the tile layout of each image is noted on the way);
- once every image's features are cached, the images are not decoded: TRL's collator runs on 1x1 stand-ins with an
  image processor that returns the noted layouts (rows and columns of tiles, which decide the image tokens of the
  prompt), and the batch carries the cached features instead of pixels;
- the batch's pairs are packed (``pack.pack_pairs``) here, on the CPU.

The batch gains ``image_keys`` (one per pair), ``image_features`` (when all are cached) and ``packed``.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
import xxhash
from PIL import Image

from vlm_dpo.training.trainers.pack import pack_pairs, tensor_bytes


def image_key(image) -> str:
    """A key for one image as a dataset row holds it: undecoded (``{"bytes", "path"}``) or a PIL image."""
    if isinstance(image, dict):
        if image.get("bytes") is not None:
            return "b" + xxhash.xxh3_128_hexdigest(image["bytes"])
        image = Image.open(image["path"])
    image.load()
    digest = xxhash.xxh3_128(f"{image.mode}{image.size}".encode())
    digest.update(image.tobytes())
    return "p" + digest.hexdigest()


class CachedFeatures:
    """A batch's cached image features, held so that the data loader passes them through untouched: they already
    live on the model's device, where pinning or copying them would fail or cost."""

    def __init__(self, tensors: list):
        self.tensors = tensors


class LayoutImageProcessor:
    """Stands in for the image processor inside the processor's call. ``keys``: the images of the call, in order.
    With ``known`` set it returns the noted tile layouts and no pixels; otherwise it runs the real processor and notes
    each image's layout."""

    def __init__(self, real, layouts: dict):
        self.real, self.layouts, self.keys, self.known = real, layouts, [], False

    def __getattr__(self, name):
        return getattr(self.real, name)

    def fetch_images(self, images):
        return images if self.known else self.real.fetch_images(images)

    def __call__(self, images, **kwargs):
        if self.known:
            return {"rows": [[self.layouts[key][0]] for key in self.keys],
                    "cols": [[self.layouts[key][1]] for key in self.keys]}
        half = len(images) // 2
        repeated = half > 0 and len(images) == 2 * half and all(map(same_images, images[:half], images[half:]))
        output = self.real(images[:half] if repeated else images, **kwargs)
        if repeated:  # TRL's collator lists each image twice (chosen and rejected rows): processed once, repeated
            for name, value in output.items():
                output[name] = torch.cat([value, value]) if isinstance(value, torch.Tensor) else (
                    np.concatenate([value, value]) if isinstance(value, np.ndarray) else value + value)
        for key, rows, cols in zip(self.keys, output["rows"], output["cols"]):
            self.layouts[key] = (rows[0], cols[0])
        return output


def same_images(a, b) -> bool:
    """The same image objects: one image, or one row's list of them."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(x is y for x, y in zip(a, b))
    return a is b


class FastCollator:
    """TRL's preference collator, packed, with images processed only while their features are unknown."""

    def __init__(self, collator, features, pad_token_id: int, decode=None):
        self.collator, self.features, self.pad_token_id, self.decode = collator, features, pad_token_id, decode
        self.layouts = {}
        processor = getattr(collator, "processor", None)
        self.images = None
        if processor is not None and hasattr(processor, "image_processor"):
            processor = copy.copy(processor)  # the trainer's processing class stays as it is
            self.images = processor.image_processor = LayoutImageProcessor(processor.image_processor, self.layouts)
            self.collator = dataclasses.replace(collator, processor=processor)

    def __call__(self, examples: list[dict]) -> dict:
        examples = [dict(example) for example in examples]  # TRL's collator edits them
        keys = self._image_keys(examples)
        cached = [self.features.get(key) for key in keys] if keys else []
        known = bool(keys) and all(f is not None for f in cached) and all(key in self.layouts for key in keys)
        for example in examples:
            if "image" in example:
                example["images"] = [example.pop("image")]
            if "images" in example:
                example["images"] = [Image.new("RGB", (1, 1)) if known else self._decoded(image)
                                     for image in example["images"]]
        if self.images is not None:
            self.images.keys, self.images.known = keys * 2, known  # TRL's collator repeats the images
        batch = self.collator(examples)
        if keys:
            batch["image_keys"] = keys
        if known:
            batch["image_features"] = CachedFeatures(cached)
        batch["packed"] = pack_pairs(batch["input_ids"], batch["attention_mask"], batch["completion_mask"],
                                     self.pad_token_id)
        batch["packed"].pair_keys = pair_keys(batch["packed"], keys)
        return batch

    def _decoded(self, image):
        return self.decode(image) if isinstance(image, dict) else image

    @staticmethod
    def _image_keys(examples: list[dict]) -> list[str]:
        if "images" in examples[0] or "image" in examples[0]:
            return [image_key(example["images"][0] if "images" in example else example["image"])
                    for example in examples]
        return []


def pair_keys(packed, image_keys: list[str]) -> list[str]:
    """One key per packed pair, for the reference cache: its lengths, its tokens and its image's key."""
    keys = []
    for i, (p, c, r) in enumerate(packed.lengths):
        digest = xxhash.xxh3_128(f"{p},{c},{r},{image_keys[i] if image_keys else ''}".encode())
        digest.update(tensor_bytes(packed.input_ids[i, :p + c + r + 1]))
        keys.append(digest.hexdigest())
    return keys


def undecoded(dataset):
    """``dataset`` with its image column left encoded (datasets decodes an image at every access otherwise), and the
    function that decodes one such image as datasets would; unchanged, with None, when it holds no image column.
    The same Arrow table is read under the new features: ``cast_column`` would write a copy of every image of a
    dataset on disk beside it."""
    from datasets import Dataset, Image, List, Sequence

    features = getattr(dataset, "features", None) if isinstance(dataset, Dataset) else None
    for name in ("images", "image"):
        feature = (features or {}).get(name)
        inner = feature.feature if isinstance(feature, (List, Sequence)) else feature
        if isinstance(inner, Image) and inner.decode:
            raw = Image(mode=inner.mode, decode=False)
            info = copy.deepcopy(dataset.info)
            info.features = features.copy()
            info.features[name] = List(raw) if inner is not feature else raw
            encoded = Dataset(dataset.data, info=info, split=dataset.split, indices_table=dataset._indices,
                              fingerprint=f"{dataset._fingerprint}-encoded")
            return encoded, inner.decode_example
    return dataset, None
