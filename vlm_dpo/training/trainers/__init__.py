"""Trainers built on TRL's DPOTrainer: the fast path (``fast_dpo``) and dense DPO (``ddpo``)."""
