"""Pure metric functions over tensors and numbers: sequence log-probs, DPO rewards and margins, rates.

No model is loaded here; ``vlm_dpo.eval.logprobs`` runs the forwards and ``vlm_dpo.eval.aggregate`` aggregates.
Shapes are in each docstring (B = batch, T = sequence length, V = vocabulary, N = pairs).

    >>> import torch
    >>> r = dpo_rewards(torch.tensor([-4.0]), torch.tensor([-9.0]), torch.tensor([-5.0]), torch.tensor([-8.0]), 0.1)
    >>> r["chosen"], r["rejected"], r["margin"], r["chosen_wins"]
    (tensor([0.1000]), tensor([-0.1000]), tensor([0.2000]), tensor([True]))
"""

from __future__ import annotations


def sequence_logps(logits, input_ids, completion_mask):
    """Summed log-probability of the answer tokens of each row, and how many tokens were summed.

    logits: (B, T, V) float; input_ids: (B, T) long; completion_mask: (B, T) 0/1 with 1 on the answer
    tokens (as TRL's collators build it). Token t is predicted by the logits at position t - 1, so the
    first position is never scored. Returns ``(sums, counts)``, both (B,) float.
    log p(token) = logit[token] - logsumexp(logits), which avoids materialising a (B, T, V) log-softmax.
    """
    logits = logits[:, :-1].float()
    targets = input_ids[:, 1:].unsqueeze(-1)
    token_logps = logits.gather(-1, targets).squeeze(-1) - logits.logsumexp(-1)
    mask = completion_mask[:, 1:].to(token_logps.dtype)
    return (token_logps * mask).sum(-1), mask.sum(-1)


def dpo_rewards(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta: float) -> dict:
    """Implicit DPO rewards of each pair (Rafailov et al. 2023, "Direct Preference Optimization", eq. 5).

    Inputs: (N,) summed log-probs of the chosen / rejected answer under the policy (the tuned model) and
    the reference (the base: the same weights with the adapter off). r(x, y) = beta * (log pi(y|x) -
    log pi_ref(y|x)). Returns (N,) tensors ``chosen``, ``rejected``, ``margin = chosen - rejected`` and
    boolean ``chosen_wins = margin > 0`` (a tie loses, as TRL's ``rewards/accuracies`` counts it). With
    the policy equal to the reference every reward is 0 and no pair is won.
    """
    chosen = beta * (policy_chosen - reference_chosen)
    rejected = beta * (policy_rejected - reference_rejected)
    margin = chosen - rejected
    return {"chosen": chosen, "rejected": rejected, "margin": margin, "chosen_wins": margin > 0}


def mean(values) -> float | None:
    """Arithmetic mean of numbers or booleans; None for no values (written as null in metrics.json)."""
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else None


def pooled_rate(bad_counts, total_counts) -> float | None:
    """sum(bad) / sum(total) over answers (CHAIR-i pools mentions this way); None when nothing was mentioned."""
    total = sum(total_counts)
    return sum(bad_counts) / total if total else None


def delta(tuned: float | None, base: float | None) -> float | None:
    """tuned - base, or None when either is undefined."""
    return None if tuned is None or base is None else tuned - base
