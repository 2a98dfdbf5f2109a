"""Sequence log-probabilities of given answers, under the tuned model and the base (adapter off).

The implicit DPO reward of an answer is beta * (log pi_tuned(answer | prompt, image) - log pi_base(...)),
with the base as the reference (the same ``PeftModel`` with the adapter disabled, as in training).
Answers are tokenized the way TRL's DPO collators do it, so the numbers agree with ``eval_results.json``:
the prompt is the chat template with the generation prompt (``data_prep.chat.render``), the answer is what the
full exchange adds after it (``data_prep.chat.completion``: ``" It is red.<end_of_utterance>\\n"``), each
tokenized without special tokens, then concatenated (positions as if flushed left). Each prompt runs once; its
answers continue from its key/value cache (``answer_set_logprobs``).

    from vlm_dpo.eval.logprobs import answer_logprobs
    sums, counts = answer_logprobs(model, processor, images, questions, answers)                    # tuned
    sums, counts = answer_logprobs(model, processor, images, questions, answers, use_adapter=False)  # base

``next_token_logprobs`` scores single first answer tokens (the "Yes" and "No" of existence questions, found by
``first_answer_tokens``) with one forward per prompt.

``external_sentences`` is the out-of-distribution text for the log-prob histogram: sentences from the
docstrings of Python standard-library modules, which ship with every Python, so the plot needs no download.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import re

from tqdm.auto import tqdm

from data_prep.chat import completion, render
from vlm_dpo.eval.generate import prompt_with_answer_start
from vlm_dpo.models import is_vision_processor

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


def answer_logprobs(model, processor, images, questions, answers, *, batch_size: int = 8,
                    use_adapter: bool = True, desc: str | None = None) -> tuple[list[float], list[int]]:
    """Summed log-probability of each answer given its question (and image), and its number of tokens.

    ``images`` is a list of PIL images (one per answer) or None for a text-only model whose ``processor``
    is a tokenizer. ``use_adapter=False`` scores with the base model. Returns ``(sums, counts)``.
    """
    return answer_set_logprobs(model, processor, images, questions, [answers], batch_size=batch_size,
                               use_adapter=use_adapter, desc=desc)[0]


def answer_set_logprobs(model, processor, images, questions, answer_sets: list[list[str]], *, batch_size: int = 8,
                        use_adapter: bool = True, desc: str | None = None) -> list[tuple[list[float], list[int]]]:
    """``answer_logprobs`` for several answers to each prompt, each prompt (and image) through the model once.

    ``answer_sets[k][i]`` answers ``questions[i]`` (a set may be shorter than ``questions``: it covers the first
    prompts). The prompts of a batch run once, left-padded, with explicit positions (so a row's tokens sit where
    they sit unpadded, as TRL's flushed rows do) and their key/value cache; each set's answers then continue from a
    copy of that cache, right-padded. The first answer token is scored by the prompt's last logits. On SmolVLM a
    prompt is most of the sequence (image tokens), so the chosen, rejected and external answers of a report cost
    little more than one of them. Returns ``(sums, counts)`` per set.
    """
    import torch

    tokenizer = _tokenizer(processor)
    adapter_off = contextlib.nullcontext() if use_adapter else model.disable_adapter()
    results = [([], []) for _ in answer_sets]
    rows = max((len(answers) for answers in answer_sets), default=0)
    label = desc or ("log-probs, " + ("tuned" if use_adapter else "base"))
    device = model.device
    with adapter_off, torch.inference_mode():
        for start in tqdm(range(0, rows, batch_size), desc=label):
            batch = range(start, min(start + batch_size, rows))
            prompts, prompt_mask, out = _prompt_forward(model, processor, images, questions, batch)
            lengths = prompt_mask.sum(1, keepdim=True)
            first = out.logits[:, -1].float().log_softmax(-1)  # (B, V): predicts each answer's first token
            for k, answers in enumerate(answer_sets):
                rows_k = [i for i in batch if i < len(answers)]
                if not rows_k:
                    continue
                completions = [completion(prompt, render(processor, questions[i], answers[i])) if i < len(answers)
                               else "" for prompt, i in zip(prompts, batch)]
                answer_inputs = tokenizer(completions, padding=True, padding_side="right", add_special_tokens=False,
                                          return_tensors="pt").to(device)
                ids, mask = answer_inputs["input_ids"], answer_inputs["attention_mask"]
                logps = first.gather(-1, ids[:, :1]) * mask[:, :1]
                if ids.size(1) > 1:  # the answers' own tokens predict the rest
                    cache = copy.deepcopy(out.past_key_values) if k < len(answer_sets) - 1 else out.past_key_values
                    rest = model(input_ids=ids[:, :-1], attention_mask=torch.cat([prompt_mask, mask[:, :-1]], 1),
                                 position_ids=lengths + torch.arange(ids.size(1) - 1, device=device),
                                 past_key_values=cache, use_cache=True).logits.float()
                    tail = rest.gather(-1, ids[:, 1:, None]).squeeze(-1) - rest.logsumexp(-1)
                    logps = torch.cat([logps, tail * mask[:, 1:]], 1)
                sums, counts = logps.sum(1).tolist(), mask.sum(1).tolist()
                results[k][0].extend(sums[:len(rows_k)])
                results[k][1].extend(int(c) for c in counts[:len(rows_k)])
    return results


def first_answer_tokens(processor, question: str, answers: list[str], answer_prefix: str | None = None) -> list[int]:
    """The first token of each answer to ``question``, tokenised as ``answer_set_logprobs`` tokenises answers (what
    the whole exchange adds after the rendered prompt). With ``answer_prefix`` (a Chain of Hindsight run's positive
    phrase), the first token after it: the prompt then ends with the prefix, as ``generate_answers`` lays it out."""
    tokenizer = _tokenizer(processor)
    prompt = prompt_with_answer_start(processor, question, answer_prefix)
    full = [render(processor, question, f"{answer_prefix} {answer}" if answer_prefix else answer) for answer in answers]
    return [tokenizer(completion(prompt, text), add_special_tokens=False)["input_ids"][0] for text in full]


def next_token_logprobs(model, processor, images, questions, token_ids: list[list[int]], *, batch_size: int = 8,
                        use_adapter: bool = True, answer_prefix: str | None = None) -> list[list[float]]:
    """log p of each of ``token_ids[i]`` as the first answer token after prompt ``i`` (and its image): one forward
    per prompt, rendered with the generation prompt (and ``answer_prefix`` after it, as ``first_answer_tokens``
    takes it) and batched as ``answer_set_logprobs`` batches it."""
    import torch

    adapter_off = contextlib.nullcontext() if use_adapter else model.disable_adapter()
    results = []
    with adapter_off, torch.inference_mode():
        for start in range(0, len(questions), batch_size):
            batch = range(start, min(start + batch_size, len(questions)))
            _, _, out = _prompt_forward(model, processor, images, questions, batch, answer_prefix)
            first = out.logits[:, -1].float().log_softmax(-1)
            results += [first[row, token_ids[i]].tolist() for row, i in enumerate(batch)]
    return results


def _tokenizer(processor):
    """The processor's tokenizer (a text model's processor is its tokenizer), with a pad token (GPT-2 has none)."""
    tokenizer = processor.tokenizer if is_vision_processor(processor) else processor
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _prompt_forward(model, processor, images, questions, batch: range, answer_prefix: str | None = None):
    """The prompts of ``batch`` (each followed by ``answer_prefix``, if given) through the model once, left-padded,
    with explicit positions (so a row's tokens sit where they sit unpadded, as TRL's flushed rows do); returns
    ``(prompts, attention_mask, output)``, the output holding the key/value cache and the last position's logits."""
    _tokenizer(processor)  # sets the pad token the padding below needs
    prompts = [prompt_with_answer_start(processor, questions[i], answer_prefix) for i in batch]
    kwargs = {"images": [[images[i]] for i in batch]} if is_vision_processor(processor) else {}
    inputs = processor(text=prompts, padding=True, padding_side="left", add_special_tokens=False,
                       return_tensors="pt", **kwargs).to(model.device)
    mask = inputs["attention_mask"]
    out = model(**inputs, position_ids=(mask.cumsum(1) - 1).clamp(min=0), use_cache=True, logits_to_keep=1)
    return prompts, mask, out
