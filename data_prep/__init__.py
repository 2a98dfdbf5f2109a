"""Preprocessors: raw preference rows (RLHF-V, conversational) -> clean conversational rows for TRL's DPO.

    python -m data_prep --input openbmb/RLHF-V-Dataset --output data/rlhfv

    from data_prep import prepare, is_prepared, load_prepared
"""

from data_prep.prepare import is_prepared, load_prepared, prepare

__all__ = ["is_prepared", "load_prepared", "prepare"]
