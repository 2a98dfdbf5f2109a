"""vlm-dpo: LoRA DPO for small vision-language models (SmolVLM) and text models, on one CPU or many GPUs."""
