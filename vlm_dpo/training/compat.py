"""Workarounds that reach into other libraries' private internals, each tied to the versions it was proven on.

They were written against, and are tested on, the series that requirements.txt pins (``PROVEN``). On another
version a private attribute may be gone or mean something else, so each workaround checks the installed version
first: the fast DPO path gives way to TRL's plain path, and the two run-level fixes below are applied only where
the attributes they touch exist. Either way one log line says why.
"""

import importlib.metadata
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

PROVEN = {"trl": "1.16", "accelerate": "1.15", "transformers": "5.23"}  # major.minor: any patch release


def installed_version(package: str) -> str:
    """The installed version of ``package`` (the one seam the tests fake)."""
    return importlib.metadata.version(package)


def unproven(*packages: str) -> str | None:
    """None when every package is in the series its workaround was proven on; else which are not, for a log line."""
    off = []
    for package in packages:
        version = installed_version(package)
        if version.split("+")[0].split(".")[:2] != PROVEN[package].split("."):
            off.append(f"{package} {version} (proven on {PROVEN[package]}.x)")
    return ", ".join(off) or None


def fast_path_unproven() -> str | None:
    """Why the packed fast path must not run here, or None. It overrides TRL's private ``DPOTrainer._compute_loss``
    and imitates its fused head's output (``trl.trainer.utils.FusedCausalLMOutput``), and it feeds transformers'
    Idefics3 ``mm_encoder_outputs`` and 4D attention masks: any of these may change between minor releases."""
    return unproven("trl", "transformers")


def undo_eval_only_preparation(trainer) -> None:
    """Let ``train()`` wrap the model in DDP after an ``evaluate()`` that came first.

    On a Trainer that has not trained, transformers' ``evaluate()`` calls accelerate's
    ``prepare_model(model, evaluation_mode=True)``: no DDP wrapper, but the model is flagged
    ``_is_accelerate_prepared``, so ``train()``'s ``accelerator.prepare`` returns it unwrapped and every
    process trains its own copy, gradients never averaged (seen as a different grad norm on each rank).
    Undo that preparation: the flag, the registration in ``accelerator._models`` and the mixed-precision
    forward wrapper (``_original_forward``), which ``train()`` then applies again. FSDP and DeepSpeed are
    fully prepared (wrapped) by ``evaluate()`` and need nothing.
    """
    model = trainer.model
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled or trainer.model_wrapped is not model:
        return
    if not getattr(model, "_is_accelerate_prepared", False):
        return
    why = unproven("accelerate", "transformers")
    if why:
        if not isinstance(getattr(trainer.accelerator, "_models", None), list):
            logger.warning("Not undoing accelerate's evaluation-only preparation: %s, and Accelerator._models is "
                           "not there. Under accelerate launch, check that the ranks log the same grad_norm.", why)
            return
        logger.warning("Undoing accelerate's evaluation-only preparation on %s: the attributes it needs are there.",
                       why)
    if "_original_forward" in vars(model):
        model.forward = vars(model).pop("_original_forward")
    del model._is_accelerate_prepared
    trainer.accelerator._models[:] = [m for m in trainer.accelerator._models if m is not model]


def keep_tensorboard_in_output_dir(trainer, output_dir: Path) -> None:
    """``report_to: tensorboard`` logs to OUTPUT_DIR/runs/DATE_HOST.

    transformers' TensorBoardCallback only picks that folder in ``on_train_begin``; the evaluation run
    before training would open its writer first, in ./runs of the current directory, and the training
    curves would follow it there. Setting its ``logging_dir`` up front avoids that.
    """
    from transformers.integrations import integration_utils

    board = getattr(integration_utils, "TensorBoardCallback", None)
    callbacks = [c for c in trainer.callback_handler.callbacks if board is not None and isinstance(c, board)]
    if not callbacks:
        return
    why = unproven("transformers")
    if why:
        if not (hasattr(integration_utils, "default_logdir") and all(hasattr(c, "logging_dir") for c in callbacks)):
            logger.warning("TensorBoard logs may land in ./runs instead of %s/runs: %s, whose TensorBoardCallback "
                           "has no logging_dir to set.", output_dir, why)
            return
        logger.warning("Pointing TensorBoard at %s/runs on %s: the attributes it needs are there.", output_dir, why)
    for callback in callbacks:
        if callback.logging_dir is None:
            callback.logging_dir = str(output_dir / integration_utils.default_logdir())
