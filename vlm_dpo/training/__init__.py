"""Training: the typed config, the run (data -> model + LoRA -> TRL trainer -> evaluation -> output folder),
checkpoints, version-checked workarounds and the trainers (``trainers.fast_dpo``, ``trainers.ddpo``)."""
