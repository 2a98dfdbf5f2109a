"""Whether a training step needs gradient checkpointing: an estimate of the activations a LoRA step keeps for its
backward pass, against the memory free on the GPU.

Checkpointing trades a second forward pass for memory; where the activations fit it only costs time (a third more
language-model work per step). TRL turns it on by default, so on CUDA the fast path turns it off when the estimate
of a step twice the size of the first fits in half the free memory, and says so in the log.

Per token and layer a LLaMA-style block with LoRA on every projection keeps about 12 hidden-size and 5
intermediate-size vectors (norm inputs and outputs, the projections' inputs for LoRA's gradients, q, k, v and the
attention output, the MLP's gate, up and product); attention adds heads x width x width scores per row where the
kernel materialises them, which is counted too.
"""

import torch


def activation_bytes(text_config, rows: int, width: int, dtype: torch.dtype) -> int:
    """Bytes of activations a step of ``rows`` packed rows of ``width`` tokens keeps for its backward pass."""
    size = torch.finfo(dtype).bits // 8
    hidden, layers = text_config.hidden_size, text_config.num_hidden_layers
    intermediate = getattr(text_config, "intermediate_size", 4 * hidden)
    per_token = (12 * hidden + 5 * intermediate) * size
    scores = text_config.num_attention_heads * width * width * size
    return layers * rows * (width * per_token + scores)


def checkpointing_needed(text_config, rows: int, width: int, dtype: torch.dtype, device: torch.device) -> bool:
    """True unless ``device`` is a GPU on which twice this step's activations fit in half the free memory."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return 2 * activation_bytes(text_config, rows, width, dtype) > free / 2
