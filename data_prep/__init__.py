"""Preprocessors: raw preference rows (RLHF-V, conversational) -> clean conversational rows for TRL's DPO; and the
one image decoder (``data_prep.images``) and chat renderer (``data_prep.chat``) that training, evaluation and
inference share. The bottom layer: it imports nothing from ``vlm_dpo``; callers pass the processor that counts
tokens.

    python -m data_prep --dataset_name openbmb/RLHF-V-Dataset --output_dir data/rlhfv

    from data_prep import PrepareOptions, is_prepared, load_prepared, prepare
"""

from data_prep.options import PrepareOptions
from data_prep.prepare import is_prepared, load_prepared, prepare

__all__ = ["PrepareOptions", "is_prepared", "load_prepared", "prepare"]
