"""Synthetic preference data with ground truth: scenes of coloured shapes (vision) and arithmetic (text)."""
