"""``FastDPOTrainer``: TRL's DPOTrainer with the repeated passes of a VLM preference pair removed.

Plain TRL 1.16 runs, per pair and step, four sequences (chosen and rejected, policy and reference), each with
the image through the vision tower and the whole prompt through the language model. With LoRA on the language
model only (``models.VLM_LORA_TARGETS``), most of that work is repeated:

1. **Image features once.** The vision tower and connector are frozen, so each distinct image's connector output
   is computed once (``get_image_features``), kept in a bounded LRU cache on the model's device keyed by a hash of
   the image's encoded bytes, and fed to policy and reference as ``mm_encoder_outputs``. Once an image's features
   are cached it is not decoded or processed again (``fast_collate.FastCollator``).
2. **One prompt pass per pair.** A pair becomes one packed row ``[prompt[:-1] | prompt[-1] chosen |
   prompt[-1] rejected]`` (``pack.pack_pairs``, in the collator): the prompt keys/values are computed once, with
   gradients, and serve both answers (works with gradient checkpointing).
3. **Reference log-probs once per pair.** They are computed by TRL's own ``compute_ref_log_probs`` (adapter
   off) on the packed row, then kept in an append-only JSON-lines file under ``default_cache_dir()/ref_logps``
   (``ref_cache.RefLogpCache``), one file per hash of the reference weights and the settings that change the
   numbers (the image processor's settings among them); a pair's key is a hash of its tokens and its image's key.
   Later epochs, evaluations and runs with the same base, data and settings reuse them, once the file has proven
   itself: every line carries a checksum, and the first batch a run would serve from the file is recomputed and
   compared.
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

import torch
import trl.trainer.utils
import xxhash
from transformers.modeling_outputs import BaseModelOutputWithPooling
from trl import DPOTrainer
from trl.trainer.utils import FusedCausalLMOutput

from vlm_dpo.models.cache import default_cache_dir
from vlm_dpo.training.trainers.checkpointing import checkpointing_needed
from vlm_dpo.training.trainers.eligibility import fast_path_reason
from vlm_dpo.training.trainers.fast_collate import FastCollator, pair_keys, undecoded
from vlm_dpo.training.trainers.pack import PackedPairs, pack_pairs, tensor_bytes
from vlm_dpo.training.trainers.ref_cache import RefLogpCache, agrees

logger = logging.getLogger(__name__)

FIELDS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")  # per-token outputs of TRL's head
PAIR_SIDES = ("chosen", "rejected", "chosen_tokens", "rejected_tokens")  # FastDPOTrainer.eval_pair_logps


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
                 scale: torch.Tensor | None = None, dtype: torch.dtype = torch.float32):
        self.model, self.packed, self.features, self.scale, self.dtype = model, packed, features, scale, dtype
        self.reuse, self.output = reuse, None  # reuse: every fused call gives the same numbers, so run it once
        self.answer_logps = None  # (2B,) summed log-probs of each answer (unweighted) of the last fused call

    def __call__(self, **kwargs):
        if not kwargs.get("fused_lm_head"):
            return self.model(**kwargs)
        if self.output is not None:
            return self.output
        packed = self.packed
        inputs = dict(input_ids=packed.input_ids, attention_mask=packed.attention_mask(self.dtype),
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
    """Least-recently-used image features, bounded in bytes, on the model's device."""

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
        self._checkpointing_settled = False  # see _settle_checkpointing()
        # Pad id from the public processing class (TRL set the tokenizer's pad token in place above).
        self._pad_token_id = getattr(self.processing_class, "tokenizer", self.processing_class).pad_token_id
        # Images stay encoded in the datasets: the collator decodes only those whose features are not cached yet.
        self.train_dataset, decode = undecoded(self.train_dataset)
        if isinstance(self.eval_dataset, dict):
            self.eval_dataset = {name: undecoded(data)[0] for name, data in self.eval_dataset.items()}
        else:
            self.eval_dataset = undecoded(self.eval_dataset)[0]
        self.data_collator = FastCollator(self.data_collator, self.feature_cache, self._pad_token_id, decode)
        logger.info("fast_dpo: one vision pass per image, one prompt pass per pair, cached reference log-probs.")

    def _compute_loss(self, model, inputs, return_outputs):
        device = inputs["input_ids"].device
        image_keys = inputs.get("image_keys") or self._image_keys(inputs)
        packed = inputs.get("packed")  # packed on the CPU by the collator; a batch collated elsewhere is packed here
        if packed is None:
            packed = pack_pairs(inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"],
                                self._pad_token_id)
            packed.pair_keys = pair_keys(packed, image_keys)
        packed = packed.to(device, non_blocking=True)
        if self.model.training and not self._checkpointing_settled:
            self._settle_checkpointing(packed)
        features = inputs["image_features"].tensors if "image_features" in inputs else None
        if features is None and "pixel_values" in inputs:
            features = self._image_features(inputs, image_keys)
        # Evaluating an adapter that still adds exactly zero (the base evaluation before training): the policy is
        # the reference, so one forward serves both.
        reuse = not torch.is_grad_enabled() and self._adapter_is_off()
        dtype = self.accelerator.unwrap_model(self.model).dtype
        packed_model = PackedModel(model, packed, features, reuse=reuse, scale=self._token_scale(inputs), dtype=dtype)
        if "ref_chosen_logps" not in inputs:
            inputs = {**inputs, **self._reference_logps(inputs, packed, features, packed_model)}
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

    def _settle_checkpointing(self, packed: PackedPairs) -> None:
        """At the first training step on a GPU: gradient checkpointing off where the activations fit without it
        (``checkpointing.checkpointing_needed``); it changes no number, only memory and time."""
        self._checkpointing_settled = True
        model = self.accelerator.unwrap_model(self.model)
        if not getattr(model, "is_gradient_checkpointing", False):
            return
        rows, width = packed.input_ids.shape
        if checkpointing_needed(model.config.get_text_config(), rows, width, model.dtype, packed.input_ids.device):
            return
        model.gradient_checkpointing_disable()
        self.args.gradient_checkpointing = self.args.activation_checkpointing = False
        logger.info("fast_dpo: gradient checkpointing off: the activations of %d rows of %d tokens fit in the GPU's "
                    "free memory without it.", rows, width)

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
                found[key] = value.detach()
                self.feature_cache.put(key, found[key])
        device = inputs["input_ids"].device
        return [found[key].to(device) for key in keys]

    def _reference_logps(self, inputs, packed: PackedPairs, features, packed_model: PackedModel
                         ) -> dict[str, torch.Tensor]:
        """The batch's reference log-probs from the cache; any pair missing, or the first batch that would come from
        the file (it must prove itself): TRL's reference forward, packed, which then checks the cached values."""
        cache = self._reference_cache()
        keys = packed.pair_keys
        values = cache.get(keys)
        if values is None or cache.loaded.intersection(keys):
            reference = packed_model if packed_model.reuse else PackedModel(self.model, packed, features,
                                                                            scale=packed_model.scale,
                                                                            dtype=packed_model.dtype)
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
            # An image's key hashes its encoded bytes, so what turns them into pixels is part of this key.
            image_processor = getattr(self.processing_class, "image_processor", None)
            settings = dict(dtype=str(model.dtype), bf16=self.args.bf16, fp16=self.args.fp16, ld_alpha=self.ld_alpha,
                            attn=model.config._attn_implementation, versions=versions, format=3,  # checksummed lines
                            images=image_processor.to_json_string() if image_processor else None,
                            image_seq_len=getattr(self.processing_class, "image_seq_len", None),
                            **self._log_prob_settings())
            if self.args.bf16 or self.args.fp16:
                # Half-precision log-probs shift with a batch's padding (~1e-3): evaluation batches are not
                # shuffled, so keyed by their size the reference matches the adapter-off policy exactly (the
                # base's reward accuracy is then 0, as defined, not the share of pairs where that noise is > 0).
                settings["batch_sizes"] = [self.args.per_device_train_batch_size, self.args.per_device_eval_batch_size]
            digest.update(json.dumps(settings, sort_keys=True).encode())
            self._ref_cache = RefLogpCache(default_cache_dir() / "ref_logps" / f"{digest.hexdigest()}.jsonl")
        return self._ref_cache
