"""Evaluation: generation, log-probs of given answers, answer checks, similarity, and the metrics built on them."""
