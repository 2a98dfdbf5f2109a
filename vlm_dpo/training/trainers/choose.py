"""Which trainer runs: the one place that decides between the packed fast path and TRL's plain path.

``choose_trainer`` looks at what the trainer will be given (config, model, LoRA config, data) before anything is
built, returns the class and, when it is TRL's plain path, the reason, and logs that reason once. What the fast path
needs is ``eligibility.fast_path_reason``, which ``FastDPOTrainer`` asks again on the wrapped model; only this module
imports the trainer classes.

    trainer_cls, reason = choose_trainer(training_args, model, peft_config, train_set)
"""

import logging

from vlm_dpo.errors import UserError
from vlm_dpo.training import compat
from vlm_dpo.training.trainers.ddpo import DDPOTrainer, FastDDPOTrainer
from vlm_dpo.training.trainers.eligibility import fast_path_reason
from vlm_dpo.training.trainers.fast_dpo import FastDPOTrainer

logger = logging.getLogger(__name__)


def choose_trainer(args, model, peft_config, train_dataset, role: str = "this run") -> tuple[type, str | None]:
    """The trainer class for this run (FastDPOTrainer, TRL's DPOTrainer, or DDPO's packed or plain trainer) and,
    when TRL's plain path runs, why. ``role`` names what it serves in that log line (the held-out evaluation of an
    SFT run, the DPO stage of sft_then_dpo)."""
    from trl import DPOTrainer

    dense = "ddpo" in args.loss_type
    if dense:
        check_ddpo_seam()
    reason = fast_path_reason(args, model, peft_config, train_dataset) if args.fast_dpo else "fast_dpo is off"
    if reason is None:
        return (FastDDPOTrainer if dense else FastDPOTrainer), None
    log = logger.warning if args.fast_dpo else logger.info  # off: as asked, nothing to warn about
    log("fast_dpo: %s, so %s takes TRL's plain DPOTrainer path.", reason, role)
    return (DDPOTrainer if dense else DPOTrainer), reason


def note_sft_path(args, stage: str) -> None:
    """SFT (methods sft and coh, the first stage of sft_then_dpo) trains through TRL's SFTTrainer: the packed path
    packs preference pairs, so it has nothing to pack there; it still serves the run's DPO parts. Said as a
    warning, like any other place where fast_dpo is asked for and does not apply."""
    if args.fast_dpo:
        logger.warning("fast_dpo: the %s training runs TRL's SFTTrainer, which the packed path does not cover (it "
                       "packs preference pairs); it serves the held-out DPO evaluation%s.", stage,
                       " and the DPO stage" if args.method == "sft_then_dpo" else "")


def check_ddpo_seam() -> None:
    """DDPO weights the per-token log-probs that TRL's private ``_compute_loss`` and ``compute_ref_log_probs`` read:
    without them it would silently train plain DPO."""
    from trl import DPOTrainer

    why = compat.unproven("trl")
    if why is None:
        return
    missing = [name for name in ("_compute_loss", "compute_ref_log_probs") if not hasattr(DPOTrainer, name)]
    if missing:
        raise UserError(f"--loss_type ddpo hooks TRL's DPOTrainer.{missing[0]}, which this {why} does not have: "
                        "install the trl version in requirements.txt, or choose another loss_type.")
    logger.warning("loss_type ddpo hooks TRL's private DPOTrainer._compute_loss: %s.", why)
