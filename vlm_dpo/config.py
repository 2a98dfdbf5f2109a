"""The typed configuration that ``train.py`` reads with TRL's ``TrlParser``: YAML recipe, then CLI overrides.

Three dataclasses, as in TRL's own scripts: ``DataArguments`` (ours), ``TrainConfig`` (TRL's
``DPOConfig`` with a CPU-aware precision default) and TRL's ``ModelConfig`` (model id, LoRA, 4-bit).
"""

import logging
from dataclasses import dataclass, field

from trl import DPOConfig

logger = logging.getLogger(__name__)


@dataclass
class DataArguments:
    dataset_name: str = field(
        default="synthetic:96",
        metadata={"help": "Preference data: a folder written by `python -m data_prep`, or anything data_prep reads "
                  "(hub id, parquet, jsonl, saved folder, synthetic:N), which is then prepared into "
                  "`prepared_dir` first."},
    )
    prepared_dir: str | None = field(
        default=None, metadata={"help": "Where to write data prepared on the fly (default: OUTPUT_DIR/data)."}
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = field(default="test", metadata={"help": "Held-out split, evaluated before and after."})
    image_longest_edge: int = field(
        default=512, metadata={"help": "data_prep resizes images so their longest edge is at most this (pixels)."}
    )
    processor_longest_edge: int | None = field(
        default=None,
        metadata={"help": "The image processor scales every image to this longest edge before splitting it into "
                  "tiles (SmolVLM-256M ships 2048: 17 tiles, 1,088 image tokens). Lower it to save memory. "
                  "Default: the processor's own."},
    )
    test_size: float = field(default=0.1, metadata={"help": "Held-out fraction when the data has no test split."})
    eval_limit: int | None = field(
        default=None, metadata={"help": "Evaluate on at most this many held-out pairs (default: all)."}
    )
    data_seed_split: int = field(default=42, metadata={"help": "Seed of the train/test split in data_prep."})

    def __post_init__(self):
        if not 0 < self.test_size < 1:
            raise ValueError(f"test_size must be in (0, 1), got {self.test_size}")
        if self.image_longest_edge < 16:
            raise ValueError(f"image_longest_edge must be at least 16 pixels, got {self.image_longest_edge}")


@dataclass
class TrainConfig(DPOConfig):
    """TRL's DPOConfig; ``bf16`` left unset means bf16 on CUDA and float32 on CPU."""

    def __post_init__(self):
        import torch

        if not torch.cuda.is_available():
            if self.bf16:
                logger.warning("bf16 needs a CUDA GPU and none is visible: training in float32 on the CPU.")
            self.bf16 = False
            self.fp16 = False
            # Under a torchrun-style launch (accelerate launch --multi_gpu / recipes/accelerate/cpu.yaml) this
            # makes accelerate join the processes over gloo (MULTI_CPU) instead of running each one alone.
            self.use_cpu = True
        super().__post_init__()
