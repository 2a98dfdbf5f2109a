"""Batched generation with the base and the tuned model, from one adapter folder.

The tuned model is the base with the trained LoRA adapter; the base answers come from the same
``PeftModel`` with the adapter switched off (``disable_adapter``), so there is never a second copy
of the weights in memory.

    from vlm_dpo.eval.generate import load_tuned, generate_answers
    model, processor, run_config = load_tuned("outputs/tiny")
    tuned = generate_answers(model, processor, images, questions)
    base = generate_answers(model, processor, images, questions, use_adapter=False)
"""

import contextlib
from pathlib import Path


def read_run_config(adapter_dir: str | Path) -> dict:
    """The resolved training config saved next to the adapter; fails with the fix when the folder is wrong."""
    import yaml

    folder = Path(adapter_dir)
    missing = [name for name in ("adapter_config.json", "run_config.yaml") if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} is not a training output folder: it has no {' and no '.join(missing)}. "
            "Pass the output_dir of a finished `python train.py` run."
        )
    config = yaml.safe_load((folder / "run_config.yaml").read_text()) or {}
    if "model_name_or_path" not in config:
        raise ValueError(f"{folder / 'run_config.yaml'} does not name the base model (model_name_or_path).")
    return config


def load_tuned(adapter_dir: str | Path, model: str | None = None):
    """Load base model + LoRA adapter in eval mode; returns ``(peft_model, processor, run_config)``.

    The base is ``model`` when given (e.g. a local copy of the hub checkpoint), else the one the run
    was trained on. The processor saved with the adapter wins over the base's, because training may
    have changed it (e.g. a smaller ``longest_edge``).
    """
    import torch
    from peft import PeftModel

    from vlm_dpo.models import load_model_and_processor, load_processor

    run_config = read_run_config(adapter_dir)
    base, processor = load_model_and_processor(model or run_config["model_name_or_path"])
    folder = Path(adapter_dir)
    if any((folder / name).is_file() for name in ("processor_config.json", "tokenizer_config.json")):
        processor = load_processor(str(folder))
    tuned = PeftModel.from_pretrained(base, str(folder))
    if torch.cuda.is_available():
        tuned.to("cuda")
    tuned.eval()
    return tuned, processor, run_config


def open_image(path: str | Path):
    """Decode an image file the way data_prep does (EXIF orientation applied, RGB); names the file on failure."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            return ImageOps.exif_transpose(image).convert("RGB")
    except FileNotFoundError:
        raise FileNotFoundError(f"Image file not found: {path}") from None
    except (OSError, ValueError) as error:  # PIL.UnidentifiedImageError is an OSError
        raise ValueError(f"Cannot decode image file {path}: {error}") from None


def message_text(messages) -> str:
    """The text of a prompt or answer column: a string, or chat messages whose content is a string
    or a list of blocks (``[{"type": "image"}, {"type": "text", "text": ...}]``)."""
    if isinstance(messages, str):
        return messages.strip()
    parts = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            parts.append(content)
        else:
            parts += [block["text"] for block in content if block.get("type") == "text" and block.get("text")]
    return " ".join(part.strip() for part in parts).strip()


def _user_message(question: str, vision: bool) -> dict:
    """SmolVLM's template wants content blocks with an image slot; text templates (SmolLM2) want a string."""
    content = [{"type": "image"}, {"type": "text", "text": question}] if vision else question
    return {"role": "user", "content": content}


def generate_answers(model, processor, images, questions, *, max_new_tokens: int = 64, batch_size: int = 4,
                     use_adapter: bool = True, do_sample: bool = False, seed: int = 0) -> list[str]:
    """Answer each question (about the image at the same index) and return the stripped answers.

    ``images`` is a list of PIL images, or ``None`` for a text-only model whose ``processor`` is a
    tokenizer. Prompts are padded on the left so that every row's new tokens start at the same column.
    ``use_adapter=False`` answers with the base model (the adapter disabled for the call).
    """
    import torch
    from tqdm.auto import tqdm

    from vlm_dpo.models import is_vision_processor

    vision = is_vision_processor(processor)
    tokenizer = processor.tokenizer if vision else processor
    if tokenizer.pad_token is None:  # GPT-2 has none; padding on the left with EOS is harmless (masked)
        tokenizer.pad_token = tokenizer.eos_token
    if do_sample:
        torch.manual_seed(seed)
    adapter_off = contextlib.nullcontext() if use_adapter else model.disable_adapter()
    answers = []
    with adapter_off, torch.inference_mode():
        for start in tqdm(range(0, len(questions), batch_size), desc="tuned" if use_adapter else "base"):
            batch_questions = questions[start:start + batch_size]
            texts = [processor.apply_chat_template([_user_message(q, vision)], add_generation_prompt=True,
                                                   tokenize=False)
                     for q in batch_questions]
            kwargs = {"images": [[image] for image in images[start:start + batch_size]]} if vision else {}
            # The rendered template already holds the special tokens; do not add a second BOS.
            inputs = processor(text=texts, return_tensors="pt", padding=True, padding_side="left",
                               add_special_tokens=False, **kwargs).to(model.device)
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                    pad_token_id=tokenizer.pad_token_id)
            new_tokens = output[:, inputs["input_ids"].shape[1]:]
            answers += [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return answers
