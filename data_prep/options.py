"""What a preparation is made from, declared once: ``PrepareOptions`` is what ``prepare()`` takes, what the
``prepare`` command parses (with the output folder and the token counter's model on top), what the training
config inherits, and what the data fingerprint and ``prep_report.json`` record.

    options = PrepareOptions("synthetic:200", image_longest_edge=128, test_size=0.2)
    report = prepare(options, "data/scenes")

A value out of range is an ``InputError`` naming the option, raised when the options are made (so at parse time,
before any data or model work) and again by ``prepare()``, which may be handed options changed since.
"""

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.errors import InputError

MIN_LONGEST_EDGE = 16  # below this, images are too small for any vision tower to see anything


@dataclass
class PrepareOptions:
    dataset_name: str = field(default="synthetic:96", metadata={"help": (
        "preference data: a hub data set id (owner/name), a .parquet file / folder / glob, a .json(l) file, a folder "
        "saved by datasets, synthetic:N (generated scenes) or arithmetic:N (generated text pairs); training also "
        "takes a folder already written by `vlm-dpo prepare`, used as it is")})
    image_longest_edge: int = field(default=512, metadata={"help": (
        "shrink images so that their longest edge is at most this many pixels; the remedy for out-of-memory")})
    processor_longest_edge: int | None = field(default=None, metadata={"help": (
        "longest edge the image processor scales every image to before splitting it into tiles (SmolVLM-256M ships "
        "2048: 17 tiles, 1,088 image tokens); lower it to save memory. Default: the processor's own")})
    test_size: float = field(default=0.1, metadata={"help": (
        "fraction held out as the test split, grouped by image; ignored when the input has a test split")})
    data_seed_split: int = field(default=42, metadata={"help": "seed of the train/test split and of synthetic:N"})
    max_prompt_length: int | None = field(default=None, metadata={"help": (
        "text pairs only: keep the last tokens of the prompt so that the rendered prompt has at most this many "
        "(image pairs are never cut). Default: no cut")})
    max_completion_length: int | None = field(default=None, metadata={"help": (
        "text pairs only: keep the first tokens of each answer, at most this many with the template's end tokens. "
        "Default: no cut")})
    image_root: str | None = field(default=None, metadata={"help": (
        "also allow image paths under this folder (by default relative image paths resolve against the data file's "
        "folder, and paths outside it are skipped)")})

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Every field in range and of its type, else an ``InputError`` naming it: a typo must not become a quiet
        run that keeps nothing (or everything)."""
        if not isinstance(self.dataset_name, str) or not self.dataset_name.strip():
            fail("dataset_name", self.dataset_name, "a data set to read (a path, a hub id or synthetic:N)")
        if not (whole(self.image_longest_edge) and self.image_longest_edge >= MIN_LONGEST_EDGE):
            fail("image_longest_edge", self.image_longest_edge,
                 f"a whole number of pixels, at least {MIN_LONGEST_EDGE}")
        for name in ("processor_longest_edge", "max_prompt_length", "max_completion_length"):
            check_limit(name, getattr(self, name))
        if not (isinstance(self.test_size, numbers.Real) and not isinstance(self.test_size, bool)
                and math.isfinite(self.test_size) and 0 < self.test_size < 1):
            fail("test_size", self.test_size, "a fraction strictly between 0 and 1")
        if not whole(self.data_seed_split):
            fail("data_seed_split", self.data_seed_split, "a whole number")
        if self.image_root is not None and not Path(self.image_root).is_dir():
            fail("image_root", str(self.image_root), "an existing folder")

    def record(self) -> dict:
        """The options as plain JSON values, for prep_report.json and the fingerprint."""
        values = dataclasses.asdict(self)
        values["image_root"] = str(Path(self.image_root).resolve()) if self.image_root else None
        return values

    @classmethod
    def of(cls, config) -> "PrepareOptions":
        """The preparation options held by ``config`` (a subclass, such as the training's data arguments)."""
        return cls(**{item.name: getattr(config, item.name) for item in dataclasses.fields(cls)})


def whole(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def fail(option: str, value, need: str):
    raise InputError(f"Option {option}={value!r} is invalid: it must be {need}.")


def check_limit(option: str, value) -> None:
    """A token or row limit: None (no limit) or a whole number of at least 1."""
    if value is not None and not (whole(value) and value >= 1):
        fail(option, value, "a whole number of at least 1, or None for no limit")
