"""``FastDPOTrainer``: TRL's DPOTrainer with the repeated passes of a VLM preference pair removed.

Plain TRL 1.16 runs, per pair and step, four sequences (chosen and rejected, policy and reference), each with
the image through the vision tower and the whole prompt through the language model. With LoRA on the language
model only (``models.VLM_LORA_TARGETS``), most of that work is repeated:

1. **Image features once.** The vision tower and connector are frozen, so each distinct image's connector output
   is computed once (``get_image_features``), kept in a bounded in-memory LRU cache keyed by the image's pixel
   tensor (which the processor settings decide), and fed to policy and reference as ``mm_encoder_outputs``.
2. **One prompt pass per pair.** A pair becomes one packed row ``[prompt[:-1] | prompt[-1] chosen |
   prompt[-1] rejected]``: a 4D attention mask lets each branch see the shared prompt and itself only, and
   position ids restart so that each branch sits where it sits in TRL's sequence. The prompt's last token is
   repeated at the head of each branch because its hidden state predicts the first answer token of both. The
   prompt keys/values are computed once, with gradients, and serve both answers (works with gradient checkpointing).
3. **Reference log-probs once per pair.** They are computed by TRL's own ``compute_ref_log_probs`` (adapter
   off) on the packed row, then kept in an append-only JSON-lines file under ``default_cache_dir()/ref_logps``
   (``ref_cache.RefLogpCache``), one file per hash of the reference weights and the settings that change the
   numbers; a pair's key is a hash of its tokens and pixels. Later epochs, evaluations and runs with the same base,
   data and settings reuse them, once the file has proven itself: every line carries a checksum, and the first
   batch a run would serve from the file is recomputed and compared.
4. **The LM head on the answers only.** TRL's fused head projects every position of a row onto the vocabulary on a
   CPU; a packed row is mostly prompt, so only the positions that predict an answer token go through it
   (``answer_positions_only``).

Each evaluation also leaves ``eval_pair_logps``: every held-out pair's summed chosen and rejected log-probs under the
policy and their token counts, which a report then takes instead of scoring the answers again.

The seam: TRL's ``_compute_loss`` calls ``model(**batch, fused_lm_head=True)`` and reads per-token fields laid
out as its (2B, T-1) batch. We give it a stand-in for ``model`` that runs the packed forward and scatters the
fields back to that layout, and the reference log-probs in the batch (TRL's ``precompute_ref_log_probs``
contract), so TRL's loss code (every ``loss_type``, ``loss_weights``, ``ld_alpha``, f-divergences, WPO weights)
and its metrics run unchanged. Per-token log-probs equal TRL's to float32 round-off
(tests/vlm_dpo/training/test_fast_dpo.py). That seam is private to TRL (as is the switch of item 4), so the fast
path runs only on the versions it was proven on (``vlm_dpo.training.compat``).

Where the fast path does not apply (vision side trained, no PEFT adapter or a separate reference model, prompt
learning, MoE aux loss, flash attention, FSDP/DeepSpeed, a VLM other than Idefics3/SmolVLM, other library
versions), ``vlm_dpo.training.trainers.choose.choose_trainer`` says why and picks TRL's plain path instead; built
directly, ``FastDPOTrainer`` refuses such a setup. Text-only models take the fast path (items 2 to 4).

    trainer_cls, reason = choose_trainer(args, model, peft_config, train_dataset)
    trainer = trainer_cls(model=..., args=..., train_dataset=..., processing_class=..., peft_config=...)
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import trl.trainer.utils
import xxhash
from transformers.modeling_outputs import BaseModelOutputWithPooling
from trl import DPOTrainer
from trl.trainer.utils import FusedCausalLMOutput

from vlm_dpo.models.cache import default_cache_dir
from vlm_dpo.training.trainers.eligibility import fast_path_reason
from vlm_dpo.training.trainers.ref_cache import RefLogpCache, agrees

logger = logging.getLogger(__name__)

FIELDS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")  # per-token outputs of TRL's head
PAIR_SIDES = ("chosen", "rejected", "chosen_tokens", "rejected_tokens")  # FastDPOTrainer.eval_pair_logps


@dataclass
class PackedPairs:
    """B pairs packed into B rows; ``index``/``valid`` map TRL's (2B, T-1) per-token layout onto the packed one."""

    input_ids: torch.Tensor  # (B, L)
    position_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, 1, L, L) additive: 0 where attended, dtype min elsewhere
    shift_labels: torch.Tensor  # (B, L) the token each position predicts, -100 where none is scored
    index: torch.Tensor  # (2B, T-1) flat index into (B * L)
    valid: torch.Tensor  # (2B, T-1) TRL's shifted completion mask
    lengths: list[tuple[int, int, int]]  # (prompt, chosen, rejected) tokens per pair

    def unpack(self, value: torch.Tensor | None) -> torch.Tensor | None:
        """A packed per-token field in TRL's layout: zero off the answers, as TRL's fused head leaves it."""
        return None if value is None else value.reshape(-1)[self.index].masked_fill(~self.valid, 0)


def pack_pairs(input_ids, attention_mask, completion_mask, pad_token_id: int, dtype=torch.float32) -> PackedPairs:
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
    order = torch.arange(width_packed, device=segment.device)
    query, key = segment[:, :, None], segment[:, None, :]
    allowed = (order[None, :] <= order[:, None]) & (key >= 0) & ((key == 0) | (key == query))
    allowed |= torch.eye(width_packed, dtype=torch.bool, device=segment.device)  # padding rows attend to themselves
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segment.device).masked_fill(~allowed, torch.finfo(dtype).min)

    # TRL's position t of a chosen row is packed position t; of a rejected row, t + len(chosen) + 1.
    offsets = torch.tensor([i * width_packed for i in range(n)] * 2, device=input_ids.device)
    offsets[n:] += torch.tensor([c + 1 for _, c, _ in lengths], device=input_ids.device)
    valid = completion_mask[:, 1:].bool()
    index = (offsets[:, None] + torch.arange(width - 1, device=input_ids.device)[None, :]).masked_fill(~valid, 0)
    return PackedPairs(pad(rows, pad_token_id), pad(positions, 0), mask[:, None], pad(labels, -100), index, valid,
                       lengths)


@contextmanager
def answer_positions_only(enabled: bool = True):
    """TRL's fused head projects only the positions it scores onto the vocabulary on Triton devices, and every
    position elsewhere, to keep tile shapes fixed for compilers (``trl.trainer.utils``: ``compact``). Eager CPU
    code recompiles nothing, and in a packed row only the answers are scored (a quarter of the positions on the
    demo), so there the full-vocabulary projection, its backward and the softmax statistics did ~4x the work. This
    lets the fused forward take its compact branch on the CPU too; the kernel's own device choice is untouched, and
    each scored position's values come from the same computation."""
    original = trl.trainer.utils._use_triton
    if enabled:  # read there by the fused forward only, to choose ``compact``
        trl.trainer.utils._use_triton = lambda device: device.type == "cpu" or original(device)
    try:
        yield
    finally:
        trl.trainer.utils._use_triton = original


class PackedModel:
    """Stands in for the model in TRL's ``_compute_loss`` and ``compute_ref_log_probs``: their fused call runs the
    packed forward and gets TRL's layout back; any other call (TRL's deprecated ``return_outputs``) is the model's."""

    answers_only = True  # project only the scored positions onto the vocabulary (False: TRL's CPU behaviour)

    def __init__(self, model, packed: PackedPairs, features: list[torch.Tensor] | None, reuse: bool = False,
                 scale: torch.Tensor | None = None):
        self.model, self.packed, self.features, self.scale = model, packed, features, scale
        self.reuse, self.output = reuse, None  # reuse: every fused call gives the same numbers, so run it once
        self.answer_logps = None  # (2B,) summed log-probs of each answer (unweighted) of the last fused call

    def __call__(self, **kwargs):
        if not kwargs.get("fused_lm_head"):
            return self.model(**kwargs)
        if self.output is not None:
            return self.output
        packed = self.packed
        inputs = dict(input_ids=packed.input_ids, attention_mask=packed.attention_mask,
                      position_ids=packed.position_ids, shift_labels=packed.shift_labels, fused_lm_head=True)
        if self.features is not None:  # a fresh dict: the model writes into it
            inputs["mm_encoder_outputs"] = {"image": BaseModelOutputWithPooling(pooler_output=self.features)}
        with answer_positions_only(self.answers_only):
            outputs = self.model(**inputs)
        fields = {name: packed.unpack(getattr(outputs, name)) for name in FIELDS}
        self.answer_logps = fields["log_probs"].detach().float().sum(1)
        if self.scale is not None:  # per-token weights in TRL's layout (DDPO): TRL's sum is then the weighted one
            fields["log_probs"] = fields["log_probs"] * self.scale.to(fields["log_probs"].dtype)
        output = FusedCausalLMOutput(loss=outputs.loss, **fields)
        if self.reuse:
            self.output = output
        return output


class FeatureCache:
    """Least-recently-used image features, bounded in bytes, on the CPU."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.size, self.items = max_bytes, 0, OrderedDict()

    def get(self, key: str) -> torch.Tensor | None:
        if key in self.items:
            self.items.move_to_end(key)
        return self.items.get(key)

    def put(self, key: str, value: torch.Tensor) -> None:
        self.items[key] = value
        self.size += value.nbytes
        while self.size > self.max_bytes and self.items:
            self.size -= self.items.popitem(last=False)[1].nbytes


def tensor_bytes(tensor: torch.Tensor):
    """Raw bytes of a tensor of any dtype, for hashing (bfloat16 has no numpy type)."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()


class FastDPOTrainer(DPOTrainer):
    """DPOTrainer, same arguments and results, with image features, prompts and reference log-probs computed once."""

    feature_cache_bytes = 1 << 30  # ~1,400 SmolVLM-256M images of 5 tiles (737 KB each in float32)


    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        model = self.accelerator.unwrap_model(self.model)  # now wrapped in its adapter
        reason = fast_path_reason(self.args, model, None, self.train_dataset, self.ref_model)
        if reason:
            raise ValueError(f"FastDPOTrainer cannot train this setup: {reason}. choose_trainer() "
                             "(vlm_dpo.training.trainers.choose) picks TRL's plain DPOTrainer for it.")
        self.precompute_ref_logps = True  # the reference log-probs always arrive in the batch: ours, cached
        self.feature_cache = FeatureCache(self.feature_cache_bytes)
        self._ref_cache = None  # opened at the first batch: its file name hashes the reference weights
        self.eval_pair_logps, self._pair_logps = None, None  # see evaluate()
        # Pad id from the public processing class (TRL set the tokenizer's pad token in place above).
        self._pad_token_id = getattr(self.processing_class, "tokenizer", self.processing_class).pad_token_id
        logger.info("fast_dpo: one vision pass per image, one prompt pass per pair, cached reference log-probs.")

    def _compute_loss(self, model, inputs, return_outputs):
        packed = pack_pairs(inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"],
                            self._pad_token_id, self.accelerator.unwrap_model(self.model).dtype)
        image_keys = self._image_keys(inputs)
        features = self._image_features(inputs, image_keys) if "pixel_values" in inputs else None
        # Evaluating an adapter that still adds exactly zero (the base evaluation before training): the policy is
        # the reference, so one forward serves both.
        reuse = not torch.is_grad_enabled() and self._adapter_is_off()
        packed_model = PackedModel(model, packed, features, reuse=reuse, scale=self._token_scale(inputs))
        if "ref_chosen_logps" not in inputs:
            inputs = {**inputs, **self._reference_logps(inputs, packed, features, image_keys, packed_model)}
        result = super()._compute_loss(packed_model, inputs, return_outputs)
        if self._pair_logps is not None:
            n = len(packed.lengths)
            sums = packed_model.answer_logps.tolist()
            self._pair_logps["chosen"] += sums[:n]
            self._pair_logps["rejected"] += sums[n:]
            self._pair_logps["chosen_tokens"] += [c for _, c, _ in packed.lengths]
            self._pair_logps["rejected_tokens"] += [r for _, _, r in packed.lengths]
        return result

    def evaluate(self, *args, **kwargs):
        """TRL's evaluation; it also leaves ``eval_pair_logps``: each held-out pair's summed log-probs of its chosen
        and rejected answer under the policy, and their token counts, lists in eval-set order (``PAIR_SIDES``), so
        that a report needs no second pass for them. None with several processes, whose batches interleave."""
        self.eval_pair_logps = None
        self._pair_logps = {side: [] for side in PAIR_SIDES} if self.accelerator.num_processes == 1 else None
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self.eval_pair_logps, self._pair_logps = self._pair_logps, None

    def _token_scale(self, inputs) -> torch.Tensor | None:
        """Weights of the per-token log-probs in TRL's (2B, T-1) layout, or None (plain sums). DDPOTrainer's hook."""
        return None

    def _log_prob_settings(self) -> dict:
        """What the weights of ``_token_scale`` depend on: part of the reference cache's key."""
        return {}

    def _adapter_is_off(self) -> bool:
        """True while the policy is the reference: only LoRA weights train, all LoRA B are zero, no "ref" adapter."""
        model = self.accelerator.unwrap_model(self.model)
        if "ref" in model.peft_config:
            return False
        trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        return all("lora_" in n for n, _ in trained) and not any(
            p.detach().any() for n, p in trained if "lora_B" in n or "lora_embedding_B" in n)

    @staticmethod
    def _image_keys(inputs) -> list[str]:
        """One key per pair: a hash of its real tiles (all-zero tiles are padding, which the model drops too)."""
        n = inputs["input_ids"].size(0) // 2
        if "pixel_values" not in inputs:
            return [""] * n
        pixels, pixel_mask = inputs["pixel_values"], inputs.get("pixel_attention_mask")
        keys = []
        for i in range(n):
            real = pixels[i].flatten(1).ne(0).any(1)
            digest = xxhash.xxh3_128(str(tuple(pixels[i][real].shape)).encode())
            digest.update(tensor_bytes(pixels[i][real]))
            if pixel_mask is not None:
                digest.update(tensor_bytes(pixel_mask[i][real]))
            keys.append(digest.hexdigest())
        return keys

    def _image_features(self, inputs, keys: list[str]) -> list[torch.Tensor]:
        """Connector outputs of each pair's images (rows 0..B-1; rows B..2B-1 repeat them), computed once per image."""
        found = {key: self.feature_cache.get(key) for key in keys}
        missing = list(dict.fromkeys(key for key in keys if found[key] is None))
        if missing:
            rows = [keys.index(key) for key in missing]
            mask = inputs.get("pixel_attention_mask")
            base = self.accelerator.unwrap_model(self.model).get_base_model()
            with torch.no_grad():
                outputs = base.get_image_features(pixel_values=inputs["pixel_values"][rows],
                                                  pixel_attention_mask=None if mask is None else mask[rows])
            for key, value in zip(missing, outputs.pooler_output):
                found[key] = value.detach().cpu()
                self.feature_cache.put(key, found[key])
        device = inputs["input_ids"].device
        return [found[key].to(device) for key in keys]

    def _reference_logps(self, inputs, packed: PackedPairs, features, image_keys,
                         packed_model: PackedModel) -> dict[str, torch.Tensor]:
        """The batch's reference log-probs from the cache; any pair missing, or the first batch that would come from
        the file (it must prove itself): TRL's reference forward, packed, which then checks the cached values."""
        cache = self._reference_cache()
        keys = []
        for i, (p, c, r) in enumerate(packed.lengths):
            digest = xxhash.xxh3_128(f"{p},{c},{r},{image_keys[i]}".encode())
            digest.update(tensor_bytes(packed.input_ids[i, :p + c + r + 1]))
            keys.append(digest.hexdigest())
        values = cache.get(keys)
        if values is None or cache.loaded.intersection(keys):
            reference = packed_model if packed_model.reuse else PackedModel(self.model, packed, features,
                                                                            scale=packed_model.scale)
            chosen, rejected = self.compute_ref_log_probs(reference, inputs)
            fresh = list(zip(chosen.float().tolist(), rejected.float().tolist()))
            checked = [(cache.values[key], value) for key, value in zip(keys, fresh) if key in cache.loaded]
            if checked and not agrees(*zip(*checked), tolerance=1e-2 if self.args.bf16 or self.args.fp16 else 1e-4):
                (old_chosen, old_rejected), (new_chosen, new_rejected) = checked[0]
                cache.discard(f"its values disagree with the reference computed now (chosen {old_chosen:.4f} vs "
                              f"{new_chosen:.4f}, rejected {old_rejected:.4f} vs {new_rejected:.4f})")
            elif checked:  # the file is right for this reference: trust the rest of it
                cache.loaded.clear()
            cache.put({key: value for key, value in zip(keys, fresh) if key not in cache.values})
            values = fresh
        device = inputs["input_ids"].device
        chosen, rejected = zip(*values)
        return {"ref_chosen_logps": torch.tensor(chosen, device=device),
                "ref_rejected_logps": torch.tensor(rejected, device=device)}

    def _reference_cache(self) -> RefLogpCache:
        """The cache file of this reference: a hash of the weights it uses (every frozen parameter and buffer: the
        base, and a "ref" adapter if any) and of the settings that change its numbers."""
        if self._ref_cache is None:
            import peft
            import transformers
            import trl

            model = self.accelerator.unwrap_model(self.model)
            digest = xxhash.xxh3_128()
            tensors = [(n, p) for n, p in model.named_parameters() if not p.requires_grad]
            for name, tensor in sorted([*tensors, *model.named_buffers()], key=lambda item: item[0]):
                digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
                digest.update(tensor_bytes(tensor))
            versions = [torch.__version__, transformers.__version__, trl.__version__, peft.__version__]
            settings = dict(dtype=str(model.dtype), bf16=self.args.bf16, fp16=self.args.fp16, ld_alpha=self.ld_alpha,
                            attn=model.config._attn_implementation, versions=versions, format=2,  # checksummed lines
                            **self._log_prob_settings())
            if self.args.bf16 or self.args.fp16:
                # Half-precision log-probs shift with a batch's padding (~1e-3): evaluation batches are not
                # shuffled, so keyed by their size the reference matches the adapter-off policy exactly (the
                # base's reward accuracy is then 0, as defined, not the share of pairs where that noise is > 0).
                settings["batch_sizes"] = [self.args.per_device_train_batch_size, self.args.per_device_eval_batch_size]
            digest.update(json.dumps(settings, sort_keys=True).encode())
            self._ref_cache = RefLogpCache(default_cache_dir() / "ref_logps" / f"{digest.hexdigest()}.jsonl")
        return self._ref_cache
