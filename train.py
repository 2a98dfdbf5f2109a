"""Train a LoRA DPO adapter: ``python train.py [--config recipes/NAME.yaml] [--field value ...]`` (= ``vlm-dpo train``).

Without ``--config`` it runs the offline demo (``recipes/demo.yaml``: SmolVLM's architecture on the real
SmolLM2-135M-Instruct, synthetic scenes; its time on a 2-core CPU is in the README), with any overrides given
(``python train.py --max_steps 2``). ``recipes/tiny.yaml`` is the one-minute smoke test.
Every field of ``vlm_dpo.training.config.DataArguments``, TRL's ``DPOConfig`` and TRL's ``ModelConfig``
can be set in the recipe or overridden on the command line; ``python train.py --help`` lists them.
"""

import sys

from vlm_dpo.cli import main as cli
from vlm_dpo.cli import run
from vlm_dpo.training.recipe import parse as parse_recipe

PROG = "python train.py"


def parse(argv: list[str]) -> tuple:
    """The three configs ``argv`` gives, as training would read them."""
    return parse_recipe(argv, PROG)


def main(argv: list[str] | None = None):
    """Train; returns the trainer. Errors propagate (the command line prints them as one line)."""
    return run("train", sys.argv[1:] if argv is None else argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(cli(["train", *sys.argv[1:]], prog=PROG))
