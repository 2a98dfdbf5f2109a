"""Sequence log-probabilities of given answers, under the tuned model and the base (adapter off).

The implicit DPO reward of an answer is beta * (log pi_tuned(answer | prompt, image) - log pi_base(...)),
with the base as the reference (the same ``PeftModel`` with the adapter disabled, as in training).
Answers are tokenized the way TRL's DPO collators do it, so the numbers agree with ``eval_results.json``:
the prompt is the chat template with the generation prompt, the answer is what the full exchange adds
after it (``" It is red.<end_of_utterance>\\n"``), each tokenized without special tokens, then
concatenated and flushed left. One forward per answer, in batches.

    from vlm_dpo.logprobs import answer_logprobs
    sums, counts = answer_logprobs(model, processor, images, questions, answers)                    # tuned
    sums, counts = answer_logprobs(model, processor, images, questions, answers, use_adapter=False)  # base

``external_sentences`` is the out-of-distribution text for the log-prob histogram: sentences from the
docstrings of Python standard-library modules, which ship with every Python, so the plot needs no download.
"""

from __future__ import annotations

import contextlib
import re

# Modules whose docstrings are prose (not option lists); the order fixes which sentences come first.
EXTERNAL_MODULES = ("abc", "argparse", "ast", "asyncio", "base64", "bisect", "calendar", "cmd", "codecs",
                    "collections", "colorsys", "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime",
                    "decimal", "difflib", "doctest", "enum", "fractions", "functools", "getopt", "gettext", "glob",
                    "heapq", "hmac", "html", "imaplib", "inspect", "ipaddress", "json", "locale", "logging",
                    "mailbox", "numbers", "operator", "optparse", "pickle", "pprint", "queue", "random", "re",
                    "sched", "secrets", "shelve", "shlex", "shutil", "smtplib", "socket", "statistics", "string",
                    "subprocess", "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize", "trace",
                    "typing", "unittest", "uuid", "warnings", "weakref", "zipfile", "bz2", "gzip", "hashlib", "io",
                    "lzma", "mimetypes", "os", "pdb", "pkgutil", "platform", "posixpath", "quopri", "selectors",
                    "signal", "site", "sqlite3", "stat", "struct", "sysconfig", "types", "wave", "zlib", "zipimport")
EXTERNAL_SOURCE = "sentences from Python standard-library module docstrings"
EXTERNAL_LABEL = "Python stdlib docstring sentences"  # shorter, for plot legends
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def external_sentences(n: int) -> list[str]:
    """The first ``n`` prose sentences (6 to 40 words, letters and ordinary punctuation only, not all capitals) of the
    docstrings of ``EXTERNAL_MODULES``, in that order (about 200 in all on Python 3.11); the same list on every
    machine with the same Python minor version."""
    import importlib

    sentences = []
    for name in EXTERNAL_MODULES:
        try:
            doc = importlib.import_module(name).__doc__ or ""
        except ImportError:  # e.g. a Python built without one of them
            continue
        for paragraph in doc.split("\n\n"):
            for sentence in _SENTENCE_END.split(" ".join(paragraph.split())):
                if (6 <= len(sentence.split()) <= 40 and re.fullmatch(r"[A-Z][A-Za-z ,;:'()-]+[.!?]", sentence)
                        and not sentence.isupper()):  # licence shouting
                    sentences.append(sentence)
                    if len(sentences) == n:
                        return sentences
    return sentences


def _render(processor, question: str, answer: str | None, vision: bool) -> str:
    """Prompt (answer None, with the generation prompt) or whole exchange, through the chat template."""
    user = [{"type": "image"}, {"type": "text", "text": question}] if vision else question
    conversation = [{"role": "user", "content": user}]
    if answer is not None:
        conversation.append({"role": "assistant", "content": [{"type": "text", "text": answer}] if vision else answer})
    return processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=answer is None)


def _split(prompt: str, whole: str) -> str:
    """What the answer adds after the prompt; where a template rewrites the prompt's end (TRL's DeepSeek case),
    the common prefix is the prompt, as TRL's ``apply_chat_template`` decides it."""
    if whole.startswith(prompt):
        return whole[len(prompt):]
    common = 0
    while common < min(len(prompt), len(whole)) and prompt[common] == whole[common]:
        common += 1
    return whole[common:]


def answer_logprobs(model, processor, images, questions, answers, *, batch_size: int = 8,
                    use_adapter: bool = True, desc: str | None = None) -> tuple[list[float], list[int]]:
    """Summed log-probability of each answer given its question (and image), and its number of tokens.

    ``images`` is a list of PIL images (one per answer) or None for a text-only model whose ``processor``
    is a tokenizer. ``use_adapter=False`` scores with the base model. Returns ``(sums, counts)``.
    """
    import torch
    from tqdm.auto import tqdm
    from trl.trainer.utils import flush_left

    from .metrics import sequence_logps
    from .models import is_vision_processor

    vision = is_vision_processor(processor)
    tokenizer = processor.tokenizer if vision else processor
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    adapter_off = contextlib.nullcontext() if use_adapter else model.disable_adapter()
    sums, counts = [], []
    with adapter_off, torch.inference_mode():
        for start in tqdm(range(0, len(answers), batch_size), desc=desc or ("log-probs, " + ("tuned" if use_adapter
                                                                                            else "base"))):
            batch = range(start, min(start + batch_size, len(answers)))
            prompts = [_render(processor, questions[i], None, vision) for i in batch]
            completions = [_split(prompt, _render(processor, questions[i], answers[i], vision))
                           for prompt, i in zip(prompts, batch)]
            kwargs = {"images": [[images[i]] for i in batch]} if vision else {}
            prompt_inputs = processor(text=prompts, padding=True, padding_side="left", add_special_tokens=False,
                                      return_tensors="pt", **kwargs)
            answer_inputs = tokenizer(completions, padding=True, padding_side="right", add_special_tokens=False,
                                      return_tensors="pt")
            input_ids = torch.cat([prompt_inputs.pop("input_ids"), answer_inputs["input_ids"]], dim=1)
            prompt_mask = prompt_inputs.pop("attention_mask")
            attention_mask = torch.cat([prompt_mask, answer_inputs["attention_mask"]], dim=1)
            completion_mask = torch.cat([torch.zeros_like(prompt_mask), answer_inputs["attention_mask"]], dim=1)
            # Left padding would shift the positions of real tokens; TRL flushes every row left the same way.
            attention_mask, input_ids, completion_mask = flush_left(attention_mask, input_ids, completion_mask)
            extra = {key: value.to(model.device) for key, value in prompt_inputs.items()}  # pixel_values, ...
            logits = model(input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device),
                           **extra).logits
            batch_sums, batch_counts = sequence_logps(logits, input_ids.to(model.device),
                                                      completion_mask.to(model.device))
            sums += batch_sums.tolist()
            counts += [int(c) for c in batch_counts.tolist()]
    return sums, counts
