"""Answer checks against ground truth: synthetic scenes, exact arithmetic results, and the COCO-object proxy."""
