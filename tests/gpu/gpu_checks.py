"""The checks behind tests/gpu/test_gpu.py, each run in its own process with the GPU visible (the rest of the suite
hides it: see tests/conftest.py). ``python tests/gpu/gpu_checks.py NAME OUT.json`` writes what the test asserts on.

- ``bf16_fast_vs_trl``: the tiny model in bf16 on the GPU, TRL's DPOTrainer and FastDPOTrainer on the same pairs and
  seed for two epochs: each arm's logged numbers per step, where the fast arm's images went, and its checkpointing.
- ``qlora``: the tiny model quantised to 4 bits (NF4, bf16 compute) as ``load_in_4bit: true`` loads it, two LoRA DPO
  steps through the trainer the pipeline picks.
- ``batched_generation``: greedy answers on the GPU in batches of 4 and one by one (float32, TF32 off).
"""

import json
import sys

import torch


def pairs(n: int, side: int = 64):
    from datasets import Dataset

    from data_prep.chat import messages
    from data_prep.images import load_image
    from data_prep.synthetic.scenes import make_row

    rows = []
    for i in range(n):
        row = make_row(i, seed=11)
        text = json.loads(row["text"])
        image = load_image(row["image"]["bytes"]).resize((side, side))
        rows.append({**messages(text["question"], text["chosen"], text["rejected"]), "images": [image]})
    return Dataset.from_list(rows)


def trainer(cls, data, out, dtype="bfloat16", quantization=None, **settings):
    from trl import ModelConfig

    from vlm_dpo.models import load_model, load_processor, lora_config
    from vlm_dpo.models.tiny import ensure_tiny_model
    from vlm_dpo.training.config import TrainConfig

    ensure_tiny_model()
    args = TrainConfig(output_dir=out, per_device_train_batch_size=4, learning_rate=5e-3, num_train_epochs=2,
                       logging_steps=1, report_to="none", save_strategy="no", seed=0, gradient_checkpointing=True,
                       **settings)
    model = load_model("tiny-smolvlm", dtype, quantization=quantization)
    return cls(model=model, args=args, train_dataset=data, processing_class=load_processor("tiny-smolvlm"),
               peft_config=lora_config(ModelConfig(use_peft=True, lora_r=8, lora_alpha=16), True))


class Recording:
    """A collator that notes, per batch, whether it carried pixels."""

    def __init__(self, collate, pixels: list):
        self.collate, self.pixels = collate, pixels

    def __call__(self, rows):
        batch = self.collate(rows)
        self.pixels.append("pixel_values" in batch)
        return batch


def bf16_fast_vs_trl(out: str) -> dict:
    from trl import DPOTrainer

    from vlm_dpo.training.trainers.fast_dpo import FastDPOTrainer

    data, result = pairs(16), {}
    for cls in (DPOTrainer, FastDPOTrainer):
        run = trainer(cls, data, f"{out}-{cls.__name__}")
        pixels = []
        if cls is FastDPOTrainer:
            run.data_collator = Recording(run.data_collator, pixels)
        run.train()
        result[cls.__name__] = {
            "logs": [e for e in run.state.log_history if "loss" in e],
            "device": str(next(run.model.parameters()).device), "bf16": run.args.bf16,
            "dtype": str(run.accelerator.unwrap_model(run.model).dtype),
            "checkpointing": bool(run.args.gradient_checkpointing), "batches_with_pixels": pixels,
        }
    return result


def qlora(out: str) -> dict:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        return {"skip": f"bitsandbytes does not import here: {error}"}
    from trl import ModelConfig

    from vlm_dpo.models import quantization_config
    from vlm_dpo.training.trainers.choose import choose_trainer

    data = pairs(8)
    quantization = quantization_config(ModelConfig(load_in_4bit=True, dtype="bfloat16"))
    probe = trainer(__import__("trl").DPOTrainer, data, out + "-probe", quantization=quantization, max_steps=2)
    cls, reason = choose_trainer(probe.args, probe.model, None, data)
    run = trainer(cls, data, out, quantization=quantization, max_steps=2)
    lora = {n: p.detach().clone() for n, p in run.model.named_parameters() if "lora_B" in n}
    run.train()
    moved = sum(not torch.equal(p.detach(), lora[n]) for n, p in run.model.named_parameters() if n in lora)
    kinds = {type(m).__name__ for m in run.model.modules()}
    return {"trainer": cls.__name__, "reason": reason, "losses": [e["loss"] for e in run.state.log_history
                                                                   if "loss" in e],
            "lora_b_moved": moved, "lora_b": len(lora), "four_bit": "Linear4bit" in kinds}


def batched_generation(out: str) -> dict:
    from data_prep.images import load_image
    from data_prep.synthetic.scenes import make_row
    from vlm_dpo.eval.generate import generate_answers
    from vlm_dpo.models import load_model, load_processor
    from vlm_dpo.models.tiny import ensure_tiny_model

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    ensure_tiny_model()
    model = load_model("tiny-smolvlm", "float32").to("cuda" if torch.cuda.is_available() else "cpu").eval()
    torch.manual_seed(0)
    with torch.no_grad():  # larger random weights than the tiny model's: answers that differ by image and question
        for param in model.parameters():
            param.normal_(std=0.2)
    processor = load_processor("tiny-smolvlm")
    rows = [make_row(i, seed=5) for i in range(6)]
    images = [load_image(r["image"]["bytes"]).resize((64, 48 + 8 * i)) for i, r in enumerate(rows)]
    questions = [json.loads(r["text"])["question"] for r in rows]
    kwargs = dict(max_new_tokens=12, progress=False)
    return {"batched": generate_answers(model, processor, images, questions, batch_size=4, **kwargs),
            "single": generate_answers(model, processor, images, questions, batch_size=1, **kwargs),
            "device": str(next(model.parameters()).device)}


if __name__ == "__main__":
    name, path = sys.argv[1], sys.argv[2]
    with open(path, "w") as handle:
        json.dump(globals()[name](path + ".run"), handle)
