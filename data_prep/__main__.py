"""Prepare a preference data set for DPO: read, clean, split, save, and say what was dropped.

    python -m data_prep --dataset_name openbmb/RLHF-V-Dataset --output_dir data/rlhfv
    python -m data_prep --input rlhfv.parquet --output data/rlhfv --max_length 2048
    python -m data_prep --input synthetic:200 --output data/scenes --max_length 0

Writes a ``datasets`` DatasetDict ("train", "test") to ``--output_dir`` and ``--output_dir/prep_report.json``. Token
limits are counted with the processor of ``--model_name_or_path``, a folder or a hub id; the built-in model names
(``tiny-smolvlm``, ``demo-smolvlm``, ...) belong to ``vlm-dpo``, whose ``vlm-dpo prepare`` takes the same options.
"""

import sys

from data_prep.cli import debug_requested, run_main
from data_prep.command import parse_prepare, run_prepare
from data_prep.processors import folder_or_hub_id, load_processor_from

PROG = "python -m data_prep"
BUILT_IN_HINT = (", and the built-in model names are vlm-dpo's: run `vlm-dpo prepare` with the same options, or pass "
                 "the folder that `vlm-dpo build-model NAME` prints")


def load_processor(name: str):
    return load_processor_from(folder_or_hub_id(name, BUILT_IN_HINT))


def main(argv: list[str] | None = None) -> dict:
    """Prepare; returns the report. Errors propagate (the command line prints them as one line)."""
    args, = parse_prepare(sys.argv[1:] if argv is None else argv, PROG)
    return run_prepare(args, load_processor)


if __name__ == "__main__":
    debug, arguments = debug_requested(sys.argv[1:])
    run_main(lambda: main(arguments), debug)
