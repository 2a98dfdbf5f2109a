"""RLHF-V's dense DPO (``loss_type: [ddpo]``, see ``vlm_dpo.training.trainers.ddpo_weights``) on TRL's DPOTrainer:
``DDPOTrainer`` on TRL's plain path, ``FastDDPOTrainer`` on the packed one (``choose_trainer`` picks).

The seam (TRL 1.16, ``trl/trainer/dpo_trainer.py``): ``_compute_loss`` and ``compute_ref_log_probs`` call the
model with ``fused_lm_head=True`` and get per-token log-probs (``outputs.log_probs``, (2B, T-1), 0 off the
answers), which they sum over the sequence into the policy's and the reference's sequence log-probs. Multiplied
first by DDPO's per-token scale (``ddpo_weights.token_weights``, shifted by one as the log-probs are), TRL's sum
*is* DDPO's weighted, normalised log-prob; TRL's own sigmoid loss then runs on the weighted log-ratios, which is
DDPO. On the packed path ``FastDPOTrainer``'s packed forward applies the scale (and the cached reference
log-probs are keyed by gamma); on TRL's plain path a forward hook on the model does, for the length of one call.
Everything else (the adapter-off reference, image handling, metrics, distributed wrappers) stays TRL's. The
logged ``logps/*`` and ``rewards/*`` are DDPO's weighted per-token averages, not summed log-probs.

``loss_type: [ddpo, sft]`` adds TRL's NLL term on the chosen answer, computed on the same weighted log-probs
(the mean of ``w_t / N * log p_t``: changed tokens count gamma times, and the whole term is 1/N of plain SFT's,
as DDPO's log-ratios are 1/N of plain DPO's), so ``loss_weights`` keep the balance they have with ``sigmoid``.
"""

from __future__ import annotations

import contextlib

from trl import DPOTrainer

from vlm_dpo.training.trainers.ddpo_weights import token_weights
from vlm_dpo.training.trainers.fast_dpo import FastDPOTrainer


class DenseLogProbs:
    """DDPO's part of both trainers: ``args.loss_type`` ``[ddpo]`` or ``[ddpo, sft]``, ``args.ddpo_gamma`` the weight
    of changed tokens, TRL's sigmoid loss on the weighted log-probs."""

    # N-normalisation of the weighted log-prob, as the paper; the tests switch it off to compare with plain DPO.
    ddpo_normalize = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        losses = list(self.args.loss_type)
        if losses not in (["ddpo"], ["ddpo", "sft"]):
            raise ValueError(f"{type(self).__name__} needs loss_type [ddpo] or [ddpo, sft], got {losses}")
        self.loss_types = ["sigmoid", *losses[1:]]  # TRL's sigmoid loss, on the weighted log-probs
        self.loss_weights = list(self.args.loss_weights or [1.0] * len(losses))

    def _token_scale(self, inputs):
        # self.args, not an attribute set in __init__: precompute_ref_log_probs runs inside DPOTrainer.__init__
        return token_weights(inputs["input_ids"], inputs["completion_mask"], self.args.ddpo_gamma,
                             self.ddpo_normalize)[:, 1:]  # token t's log-prob sits at position t - 1

    def _log_prob_settings(self) -> dict:
        return {"ddpo_gamma": self.args.ddpo_gamma, "ddpo_normalize": self.ddpo_normalize}


class FastDDPOTrainer(DenseLogProbs, FastDPOTrainer):
    """Dense DPO on the packed path: the packed forward weights the policy's and the reference's log-probs."""


class DDPOTrainer(DenseLogProbs, DPOTrainer):
    """Dense DPO on TRL's plain path: a forward hook weights the log-probs of every fused call."""

    @contextlib.contextmanager
    def _dense_log_probs(self, model, inputs):
        """Within this context every fused forward of the policy (and of a separate reference) returns weighted
        per-token log-probs for this batch."""
        scale = self._token_scale(inputs)

        def hook(module, args, output):
            log_probs = getattr(output, "log_probs", None)
            if log_probs is not None:
                width = scale.size(1)  # prompt-learning PEFT would prepend virtual tokens: weight the real ones
                output.log_probs = log_probs[:, -width:] * scale.to(log_probs.dtype)
            return output

        modules = {id(m): m for m in (self.accelerator.unwrap_model(model), self.accelerator.unwrap_model(self.model),
                                      self.ref_model) if m is not None}
        handles = [module.register_forward_hook(hook) for module in modules.values()]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _compute_loss(self, model, inputs, return_outputs):
        with self._dense_log_probs(model, inputs):
            return super()._compute_loss(model, inputs, return_outputs)

    def compute_ref_log_probs(self, model, inputs):  # precompute_ref_log_probs: the reference weighted alike
        with self._dense_log_probs(model, inputs):
            return super().compute_ref_log_probs(model, inputs)
