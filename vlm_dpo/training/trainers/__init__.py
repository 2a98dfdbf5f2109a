"""Trainers built on TRL's DPOTrainer: the fast path (``fast_dpo``), dense DPO (``ddpo``), and ``choose``, which
decides between them and TRL's plain path."""
