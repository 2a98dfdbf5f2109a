"""Evaluation: generation, log-probs of given answers, answer checks, similarity, per-row scores (``scoring``) and
the metrics built on them (``registry`` defines each once, ``aggregate`` computes them)."""
