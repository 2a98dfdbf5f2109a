"""Preprocessors: raw preference rows (RLHF-V, conversational) -> clean conversational rows for TRL's DPO; and the
one image decoder (``data_prep.images``) and chat renderer (``data_prep.chat``) that training, evaluation and
inference share. Only the ``__main__`` entry point imports ``vlm_dpo``: callers pass the processor that counts tokens.

    python -m data_prep --input openbmb/RLHF-V-Dataset --output data/rlhfv

    from data_prep import prepare, is_prepared, load_prepared
"""

from data_prep.prepare import is_prepared, load_prepared, prepare

__all__ = ["is_prepared", "load_prepared", "prepare"]
