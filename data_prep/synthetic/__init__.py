"""Synthetic preference data with ground truth: scenes of coloured shapes (vision) and arithmetic (text).

``VERSION`` changes whenever the same seed would give different rows; training records it with the prepared
data, so data prepared by another version of the generators is prepared again rather than reused.
"""

VERSION = "2"
