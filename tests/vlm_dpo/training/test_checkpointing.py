"""The activation estimate that decides gradient checkpointing on a GPU (vlm_dpo.training.trainers.checkpointing)."""

from types import SimpleNamespace

import torch

from vlm_dpo.training.trainers.checkpointing import activation_bytes, checkpointing_needed

CONFIG = SimpleNamespace(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9)


def test_activation_estimate_by_hand():
    # per token: (12 * 576 + 5 * 1536) * 2 bytes; per row: 9 heads x 400 x 400 scores x 2 bytes; 30 layers, 8 rows
    per_row = 400 * (12 * 576 + 5 * 1536) * 2 + 9 * 400 * 400 * 2
    assert activation_bytes(CONFIG, 8, 400, torch.bfloat16) == 30 * 8 * per_row
    assert activation_bytes(CONFIG, 8, 400, torch.float32) == 2 * activation_bytes(CONFIG, 8, 400, torch.bfloat16)


def test_checkpointing_stays_on_off_a_gpu():
    assert checkpointing_needed(CONFIG, 1, 10, torch.float32, torch.device("cpu"))
