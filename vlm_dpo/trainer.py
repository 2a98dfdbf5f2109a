"""``DDPOTrainer``: TRL's DPOTrainer with RLHF-V's dense DPO log-probs (``loss_type: [ddpo]``, see ``vlm_dpo.ddpo``).

The seam (TRL 1.16, ``trl/trainer/dpo_trainer.py``): ``_compute_loss`` and ``compute_ref_log_probs`` call the
model with ``fused_lm_head=True`` and get per-token log-probs (``outputs.log_probs``, (2B, T-1), 0 off the
answers), which they sum over the sequence into the policy's and the reference's sequence log-probs. For the
length of one of those calls a forward hook on the model multiplies ``log_probs`` by DDPO's per-token scale
(``vlm_dpo.ddpo.token_weights``, shifted by one as the log-probs are), so TRL's sum *is* DDPO's weighted,
normalised log-prob; TRL's own sigmoid loss then runs on the weighted log-ratios, which is DDPO. Everything
else (the adapter-off reference, image handling, metrics, distributed wrappers) stays TRL's. The logged
``logps/*`` and ``rewards/*`` are DDPO's weighted per-token averages, not summed log-probs.

    trainer = DDPOTrainer(model=..., args=config_with_loss_type_ddpo, ...)   # vlm_dpo.run picks it for ddpo
"""

from __future__ import annotations

import contextlib

from trl import DPOTrainer

from .ddpo import token_weights


class DDPOTrainer(DPOTrainer):
    """Dense DPO. ``args.loss_type == ["ddpo"]``, ``args.ddpo_gamma`` the weight of changed tokens."""

    # N-normalisation of the weighted log-prob, as the paper; the tests switch it off to compare with plain DPO.
    ddpo_normalize = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if list(self.args.loss_type) != ["ddpo"]:
            raise ValueError(f"DDPOTrainer needs loss_type [ddpo], got {self.args.loss_type}")
        self.loss_types = ["sigmoid"]  # TRL's sigmoid loss, on the weighted log-probs the hook produces
        self.loss_weights = [1.0]

    @contextlib.contextmanager
    def _dense_log_probs(self, model, inputs):
        """Within this context every fused forward of the policy (and of a separate reference) returns weighted
        per-token log-probs for this batch."""
        # self.args, not an attribute set in __init__: precompute_ref_log_probs runs inside DPOTrainer.__init__
        scale = token_weights(inputs["input_ids"], inputs["completion_mask"], self.args.ddpo_gamma,
                              self.ddpo_normalize)[:, 1:]  # token t's log-prob sits at position t - 1

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
