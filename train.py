"""Train a LoRA DPO adapter: ``python train.py [--config recipes/NAME.yaml] [--field value ...]``.

Without ``--config`` it runs the offline demo (``recipes/demo.yaml``: SmolVLM's architecture on the real
SmolLM2-135M-Instruct, synthetic scenes, about 7 minutes on a 2-core CPU), with any overrides given
(``python train.py --max_steps 2``). ``recipes/tiny.yaml`` is the seconds-long smoke test.
Every field of ``vlm_dpo.training.config.DataArguments``, TRL's ``DPOConfig`` and TRL's ``ModelConfig``
can be set in the recipe or overridden on the command line; ``python train.py --help`` lists them.
"""

import sys
from pathlib import Path

DEFAULT_RECIPE = Path(__file__).resolve().parent / "recipes" / "demo.yaml"


def parse(argv: list[str]):
    from trl import ModelConfig, TrlParser

    from vlm_dpo.training.config import DataArguments, TrainConfig

    if "--config" not in argv and not {"-h", "--help"} & set(argv):
        argv = ["--config", str(DEFAULT_RECIPE), *argv]  # overrides apply on top of the default recipe
    parser = TrlParser((DataArguments, TrainConfig, ModelConfig))
    return parser.parse_args_and_config(argv)


def main(argv: list[str] | None = None):
    data_args, training_args, model_args = parse(sys.argv[1:] if argv is None else argv)[:3]
    from vlm_dpo.training.run import main as run

    return run(data_args, training_args, model_args)


if __name__ == "__main__":
    from vlm_dpo.models import GPURequiredError, HubUnavailableError

    try:
        main()
    except (HubUnavailableError, GPURequiredError, FileNotFoundError) as error:  # the user's setup: no traceback
        raise SystemExit(f"error: {error}") from None
