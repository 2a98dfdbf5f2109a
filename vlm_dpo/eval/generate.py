"""Batched generation with the base and the tuned model, from one adapter folder.

The tuned model is the base with the trained LoRA adapter; the base answers come from the same
``PeftModel`` with the adapter switched off (``disable_adapter``), so there is never a second copy
of the weights in memory.

    from vlm_dpo.eval.generate import generate_answers
    model, processor, record = vlm_dpo.models.adapter.load_tuned("outputs/tiny")
    tuned = generate_answers(model, processor, images, questions)
    base = generate_answers(model, processor, images, questions, use_adapter=False)

Images and chat come from data_prep, as in training: ``data_prep.images.open_image(path,
record.image_longest_edge)`` decodes a file exactly as the run's data was decoded.
"""

import contextlib
import json
from pathlib import Path

from tqdm.auto import tqdm

from data_prep.chat import completion, render
from vlm_dpo.models import is_vision_processor


def generate_answers(model, processor, images, questions, *, max_new_tokens: int = 64, batch_size: int = 4,
                     use_adapter: bool = True, do_sample: bool = False, seed: int = 0, answer_prefix: str | None = None,
                     stop_at: str | None = None, progress: bool = True) -> list[str]:
    """Answer each question (about the image at the same index) and return the stripped answers.

    ``images`` is a list of PIL images, or ``None`` for a text-only model whose ``processor`` is a
    tokenizer. Prompts are padded on the left so that every row's new tokens start at the same column.
    ``use_adapter=False`` answers with the base model (the adapter disabled for the call).
    ``answer_prefix``: the answer's first words, given to the model (``prompt_with_answer_start``), not returned;
    ``stop_at``: the answer is cut before this text; ``progress``: a progress bar per call. A Chain of Hindsight run
    is asked this way, with its feedback phrases (``RunRecord.tuned_generation``).
    """
    import torch

    vision = is_vision_processor(processor)
    tokenizer = processor.tokenizer if vision else processor
    if tokenizer.pad_token is None:  # GPT-2 has none; padding on the left with EOS is harmless (masked)
        tokenizer.pad_token = tokenizer.eos_token
    if do_sample:
        torch.manual_seed(seed)
    adapter_off = contextlib.nullcontext() if use_adapter else model.disable_adapter()
    answers = []
    with adapter_off, torch.inference_mode():
        for start in tqdm(range(0, len(questions), batch_size), desc="tuned" if use_adapter else "base",
                          disable=not progress):
            batch_questions = questions[start:start + batch_size]
            texts = [prompt_with_answer_start(processor, question, answer_prefix) for question in batch_questions]
            kwargs = {"images": [[image] for image in images[start:start + batch_size]]} if vision else {}
            # The rendered template already holds the special tokens; do not add a second BOS.
            inputs = processor(text=texts, return_tensors="pt", padding=True, padding_side="left",
                               add_special_tokens=False, **kwargs).to(model.device)
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                    pad_token_id=tokenizer.pad_token_id)
            new_tokens = output[:, inputs["input_ids"].shape[1]:]
            texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            answers += [(text.split(stop_at)[0] if stop_at else text).strip() for text in texts]
    return answers


def prompt_with_answer_start(processor, question: str, answer_start: str | None = None) -> str:
    """The generation prompt, followed by ``answer_start`` laid out as the chat template lays out an answer that
    begins with it (SmolVLM's template, for one, puts a space between "Assistant:" and the answer)."""
    prompt = render(processor, question)
    if not answer_start:
        return prompt
    answer = completion(prompt, render(processor, question, f"{answer_start} ..."))
    return prompt + answer[:answer.index(answer_start) + len(answer_start)]


def read_saved_answers(path: Path, key: str) -> dict[str, str]:
    """``{row[key]: row["answer"]}`` of a JSON-lines file of answers appended as they were generated. A line that
    does not parse, or lacks either field (a run killed mid-write), is left out: its question is asked again."""
    answers = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
                answers[str(row[key])] = str(row["answer"])
            except (ValueError, KeyError, TypeError):
                continue
    return answers
