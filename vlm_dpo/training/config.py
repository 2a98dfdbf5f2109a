"""The typed configuration that ``train.py`` reads with TRL's ``TrlParser``: YAML recipe, then CLI overrides.

Three dataclasses, as in TRL's own scripts: ``DataArguments`` (ours: ``data_prep.PrepareOptions`` and how training
reads the data), ``TrainConfig`` (TRL's
``DPOConfig`` with a CPU-aware precision default, DDPO's ``ddpo_gamma`` and early checks of ``loss_type`` and the
lengths) and TRL's ``ModelConfig`` (model id, LoRA, 4-bit). Values that cannot work fail here, as a ``UserError``
naming the option, before anything loads.
"""

import logging
import math
from dataclasses import dataclass, field

import torch
from trl import DPOConfig

from data_prep.options import PrepareOptions
from vlm_dpo.errors import UserError
from vlm_dpo.models.load import cpu_has_native_bf16
from vlm_dpo.training.methods import check_method

logger = logging.getLogger(__name__)

# TRL 1.16's DPOTrainer losses (dpo_trainer.py, _compute_loss), plus ours: ddpo (vlm_dpo.training.trainers.ddpo).
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm", "ddpo")


@dataclass
class DataArguments(PrepareOptions):
    """What the data are (``PrepareOptions``, shared with the prepare command) and how training reads them."""

    prepared_dir: str | None = field(
        default=None, metadata={"help": "Where to write data prepared on the fly (default: OUTPUT_DIR/data)."}
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = field(default="test", metadata={"help": "Held-out split, evaluated before and after."})
    eval_limit: int | None = field(
        default=None, metadata={"help": "Evaluate on at most this many held-out pairs (default: all)."}
    )
    report_pairs: int = field(
        default=64,
        metadata={"help": "At the end of training, base and tuned answer this many held-out pairs for "
                  "OUTPUT_DIR/report/ (report.html, metrics.json, plots); 0 skips the report."},
    )
    report_max_new_tokens: int = field(default=48, metadata={"help": "Longest generated answer in that report."})
    own_negatives: bool = field(
        default=False,
        metadata={"help": "Before training, the base model answers every training question that has a ground truth "
                  "(synthetic scenes, arithmetic); each answer the checker finds wrong is added as a pair, the "
                  "chosen answer against it (vlm_dpo.training.own_negatives; answers cached per base model)."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.eval_limit is not None and self.eval_limit < 1:
            raise UserError(f"--eval_limit must be at least 1, got {self.eval_limit}; leave it unset for no limit.")
        if self.report_pairs < 0:
            raise UserError(f"--report_pairs must be 0 (no report) or more, got {self.report_pairs}.")
        if self.report_max_new_tokens < 1:
            raise UserError(f"--report_max_new_tokens must be at least 1, got {self.report_max_new_tokens}.")


@dataclass
class TrainConfig(DPOConfig):
    """TRL's DPOConfig plus DDPO's gamma, fast_dpo and the training method. ``bf16`` left unset means bf16 on CUDA
    and float32 on the CPU; ``bf16: true`` on a CPU with AMX (native bf16 matrix units) trains under bf16 autocast,
    ~2x faster there."""

    ddpo_gamma: float = field(
        default=5.0,
        metadata={"help": "loss_type [ddpo] only (RLHF-V's dense DPO, vlm_dpo.training.trainers.ddpo): weight of "
                  "the answer tokens "
                  "that differ between chosen and rejected, in the sequence log-prob normalised by "
                  "|unchanged| + gamma * |changed|. 1 weighs every token alike; the paper uses 5 (with beta 0.5)."},
    )
    fast_dpo: bool = field(
        default=False,
        metadata={"help": "Train with vlm_dpo.training.trainers.fast_dpo.FastDPOTrainer: each image through the "
                  "frozen vision tower once, each pair's prompt through the language model once (chosen and "
                  "rejected packed on top of it), reference log-probs computed once and cached on disk. Same losses "
                  "and metrics as TRL's DPOTrainer; where it cannot apply (vision side trained, no LoRA, other "
                  "library versions, ...) it says why and runs TRL's plain path. loss_type ddpo takes it too."},
    )
    method: str = field(
        default="dpo",
        metadata={"help": "How to train (docs/methods.md): dpo (the losses of loss_type), sft (TRL's SFTTrainer on "
                  "the chosen answers), sft_then_dpo (SFT, then DPO against the SFT model), coh (Chain of "
                  "Hindsight: both answers after feedback phrases). Every method gets the same held-out evaluation."},
    )
    sft_steps: int | None = field(
        default=None,
        metadata={"help": "method sft_then_dpo: optimizer steps of the SFT stage; the DPO stage runs the rest of the "
                  "budget (max_steps, or the steps num_train_epochs makes). Default: half, rounded down."},
    )
    coh_positive: str = field(default="A helpful answer:", metadata={
        "help": "method coh: the phrase before the chosen answer, and what the tuned model is prompted with."})
    coh_negative: str = field(default="An unhelpful answer:", metadata={
        "help": "method coh: the phrase before the rejected answer; generations are cut before it."})

    def __post_init__(self):
        # TRL's default sets the deprecated gradient_checkpointing; carrying it over to its new name keeps
        # transformers from warning on every run (an explicit activation_checkpointing wins).
        if self.activation_checkpointing is None:
            self.activation_checkpointing = self.gradient_checkpointing
        self._check_numbers()
        self._check_losses()
        check_method(self)
        for name in ("max_length", "per_device_train_batch_size", "per_device_eval_batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name} must be at least 1, got {value}"
                                + ("; leave it unset (null) for no limit." if name == "max_length" else "."))

        if not torch.cuda.is_available():
            native = cpu_has_native_bf16()
            if self.bf16 and not native:  # unset (None) means float32 on the CPU
                logger.warning("bf16 needs a CUDA GPU or a CPU with native bf16 units (AMX), and neither is here: "
                               "training in float32.")
            self.bf16 = bool(self.bf16) and native  # autocast on the CPU; weights stay float32
            self.fp16 = False
            # Under a torchrun-style launch (accelerate launch --multi_gpu / recipes/accelerate/cpu.yaml) this
            # makes accelerate join the processes over gloo (MULTI_CPU) instead of running each one alone.
            self.use_cpu = True
        super().__post_init__()

    def _check_numbers(self):
        """Numbers that would train silently wrong (a NaN beta publishes NaN weights, a negative one trains towards
        the rejected answers, zero epochs an untrained adapter) fail here, before any data or model work."""
        must = {"beta": (self.beta, "a positive number (0.1 is DPO's usual)", lambda v: v > 0),
                "learning_rate": (self.learning_rate, "a positive number", lambda v: v > 0),
                "num_train_epochs": (self.num_train_epochs, "positive, or set --max_steps", lambda v: v > 0
                                     or self.max_steps > 0)}
        for name, (value, need, ok) in must.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and ok(value)):
                raise UserError(f"--{name} {value} is invalid: it must be {need}.")
        for weight in self.loss_weights or []:
            if not (math.isfinite(weight) and weight >= 0):
                raise UserError(f"--loss_weights {self.loss_weights} is invalid: each weight must be a finite number "
                                "of at least 0.")

    def _check_losses(self):
        """Unknown names fail here, not after the model loaded (TRL checks them at the first step). ``ddpo``
        replaces TRL's sequence log-prob, so it cannot be mixed with losses or options that use it too."""
        losses = [self.loss_type] if isinstance(self.loss_type, str) else list(self.loss_type)
        unknown = [name for name in losses if name not in LOSS_TYPES]
        if unknown:
            raise UserError(f"Unknown --loss_type {unknown}: choose among {', '.join(LOSS_TYPES)}.")
        if self.ddpo_gamma <= 0:
            raise UserError(
                f"--ddpo_gamma must be positive (1 = no extra weight, the paper uses 5), got {self.ddpo_gamma}."
            )
        if "ddpo" not in losses:
            return
        if losses not in (["ddpo"], ["ddpo", "sft"]):
            raise UserError(f"loss_type ddpo can only be followed by sft ({losses}): use --loss_type ddpo "
                            "or --loss_type ddpo sft.")
        if self.ld_alpha is not None or self.use_weighting or self.f_divergence_type != "reverse_kl":
            raise UserError("loss_type ddpo weights the sequence log-prob itself: leave ld_alpha unset, "
                            "use_weighting false and f_divergence_type reverse_kl.")


def check_lora(model_args) -> None:
    """TRL's ``ModelConfig`` checks no LoRA number; PEFT and torch would fail on them after the data and the model
    loaded, or (a NaN alpha) train NaN weights."""
    if not model_args.use_peft:
        return
    if not (isinstance(model_args.lora_r, int) and model_args.lora_r >= 1):
        raise UserError(f"--lora_r {model_args.lora_r} is invalid: the LoRA rank must be a whole number of at least 1.")
    if not (math.isfinite(model_args.lora_alpha) and model_args.lora_alpha > 0):
        raise UserError(f"--lora_alpha {model_args.lora_alpha} is invalid: it must be a positive number.")
    if not (math.isfinite(model_args.lora_dropout) and 0 <= model_args.lora_dropout < 1):
        raise UserError(f"--lora_dropout {model_args.lora_dropout} is invalid: it must be in [0, 1).")
