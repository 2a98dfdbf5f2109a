"""One packed row per preference pair: ``[prompt[:-1] | prompt[-1] chosen | prompt[-1] rejected]``.

A 4D attention mask lets each branch see the shared prompt and itself only, and position ids restart so that each
branch sits where it sits in TRL's sequence. The prompt's last token is repeated at the head of each branch because
its hidden state predicts the first answer token of both. ``index``/``valid`` read TRL's (2B, T-1) per-token layout
back from the packed rows. Packing runs on the CPU (``fast_collate``); only the mask is built on the device, from
the segment ids, since it is L x L per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass
class PackedPairs:
    """B pairs packed into B rows; ``index``/``valid`` map TRL's (2B, T-1) per-token layout onto the packed one."""

    input_ids: torch.Tensor  # (B, L)
    position_ids: torch.Tensor  # (B, L)
    segment: torch.Tensor  # (B, L) 0 prompt, 1 chosen branch, 2 rejected branch, -1 padding
    shift_labels: torch.Tensor  # (B, L) the token each position predicts, -100 where none is scored
    index: torch.Tensor  # (2B, T-1) flat index into (B * L)
    valid: torch.Tensor  # (2B, T-1) TRL's shifted completion mask
    lengths: list[tuple[int, int, int]]  # (prompt, chosen, rejected) tokens per pair
    pair_keys: list[str] = field(default_factory=list)  # reference-cache keys, set by the collator

    def to(self, device, non_blocking: bool = False) -> PackedPairs:
        """On ``device`` (accelerate moves batches by calling ``.to``)."""
        moved = {name: getattr(self, name).to(device, non_blocking=non_blocking)
                 for name in ("input_ids", "position_ids", "segment", "shift_labels", "index", "valid")}
        return replace(self, **moved)

    def attention_mask(self, dtype=torch.float32) -> torch.Tensor:
        """(B, 1, L, L) additive mask: 0 where a position may attend, the dtype's minimum elsewhere."""
        segment = self.segment
        width = segment.size(1)
        order = torch.arange(width, device=segment.device)
        query, key = segment[:, :, None], segment[:, None, :]
        allowed = (order[None, :] <= order[:, None]) & (key >= 0) & ((key == 0) | (key == query))
        allowed |= torch.eye(width, dtype=torch.bool, device=segment.device)  # padding rows attend to themselves
        mask = torch.zeros(allowed.shape, dtype=dtype, device=segment.device)
        return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]

    def unpack(self, value: torch.Tensor | None) -> torch.Tensor | None:
        """A packed per-token field in TRL's layout: zero off the answers, as TRL's fused head leaves it."""
        return None if value is None else value.reshape(-1)[self.index].masked_fill(~self.valid, 0)


def pack_pairs(input_ids, attention_mask, completion_mask, pad_token_id: int) -> PackedPairs:
    """Pack a TRL preference batch (rows 0..B-1 chosen, B..2B-1 rejected, each ``prompt + answer`` from column 0,
    padding on the right, as both of TRL's collators leave them) into one row per pair."""
    n, width = input_ids.size(0) // 2, input_ids.size(1)
    prompt_lens = (attention_mask.bool() & ~completion_mask.bool()).sum(1).tolist()
    answer_lens = completion_mask.sum(1).tolist()
    rows, positions, segments, labels, lengths = [], [], [], [], []
    ignore = input_ids.new_full((1,), -100)
    for i in range(n):
        p, c, r = prompt_lens[i], answer_lens[i], answer_lens[n + i]
        chosen, rejected = input_ids[i], input_ids[n + i]
        if (p < 1 or prompt_lens[n + i] != p or not torch.equal(chosen[:p], rejected[:p])
                or not completion_mask[i, p:p + c].all() or not completion_mask[n + i, p:p + r].all()):
            raise ValueError("FastDPOTrainer needs each pair's chosen and rejected rows to start with the same prompt, "
                             "followed by the answer, as TRL's collators lay them out; this batch does not.")
        rows.append(torch.cat([chosen[:p + c], rejected[p - 1:p + r]]))
        positions.append(torch.cat([torch.arange(p + c), torch.arange(p - 1, p + r)]))
        segments.append(torch.tensor([0] * (p - 1) + [1] * (c + 1) + [2] * (r + 1)))
        labels.append(torch.cat([ignore.expand(p - 1), chosen[p:p + c], ignore, rejected[p:p + r], ignore]))
        lengths.append((p, c, r))

    def pad(tensors, value):
        return torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True, padding_value=value).to(input_ids.device)

    segment = pad(segments, -1)
    width_packed = segment.size(1)
    # TRL's position t of a chosen row is packed position t; of a rejected row, t + len(chosen) + 1.
    offsets = torch.tensor([i * width_packed for i in range(n)] * 2, device=input_ids.device)
    offsets[n:] += torch.tensor([c + 1 for _, c, _ in lengths], device=input_ids.device)
    valid = completion_mask[:, 1:].bool()
    index = (offsets[:, None] + torch.arange(width - 1, device=input_ids.device)[None, :]).masked_fill(~valid, 0)
    return PackedPairs(pad(rows, pad_token_id), pad(positions, 0), segment, pad(labels, -100), index, valid, lengths)


def tensor_bytes(tensor: torch.Tensor):
    """Raw bytes of a tensor of any dtype, for hashing (bfloat16 has no numpy type)."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
