"""``vlm-dpo prepare``: ``python -m data_prep``'s command (``data_prep.command``), whose model names also include the
built-in offline models (``tiny-smolvlm``, ``demo-smolvlm``, ...), built on first use.

    vlm-dpo prepare --dataset_name synthetic:200 --output_dir data/scenes --model_name_or_path tiny-smolvlm
"""

from data_prep.command import PrepareArguments, parse_prepare, run_prepare
from vlm_dpo.models import load_processor

ARGUMENTS = (PrepareArguments,)


def parse(argv: list[str], prog: str) -> list:
    return parse_prepare(argv, prog)


def run(args: PrepareArguments) -> dict:
    return run_prepare(args, load_processor)
