"""Prepare a preference data set for DPO: read, clean, split, save, and say what was dropped (= ``vlm-dpo prepare``).

    python -m data_prep --input openbmb/RLHF-V-Dataset --output data/rlhfv
    python -m data_prep --input rlhfv.parquet --output data/rlhfv --max_length 2048
    python -m data_prep --input synthetic:200 --output data/scenes --model tiny-smolvlm --max_length 512

Writes a ``datasets`` DatasetDict ("train", "test") to ``--output`` and ``--output/prep_report.json``. The command
line lives in ``vlm_dpo.cli`` (the one place that imports from ``vlm_dpo``: it loads the processor that counts
tokens), so that every command shares its option names and its one-line errors.
"""

import sys

PROG = "python -m data_prep"


def main(argv: list[str] | None = None) -> dict:
    """Prepare; returns the report. Errors propagate (the command line prints them as one line)."""
    from vlm_dpo.cli import run

    return run("prepare", sys.argv[1:] if argv is None else argv, prog=PROG)


if __name__ == "__main__":
    from vlm_dpo.cli import main as cli

    sys.exit(cli(["prepare", *sys.argv[1:]], prog=PROG))
