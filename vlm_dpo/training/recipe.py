"""``vlm-dpo train`` (``python train.py``): a YAML recipe plus command-line overrides -> the three configs -> a run.

    python train.py                                           # the offline demo, recipes/demo.yaml
    python train.py --config recipes/tiny.yaml --max_steps 2 --output_dir outputs/smoke

Parsed with TRL's ``TrlParser``, as TRL's own scripts do: the recipe's keys and the overrides are fields of
``DataArguments``, ``TrainConfig`` (TRL's ``DPOConfig`` and ours) and TRL's ``ModelConfig``. A recipe key or an
option that names no field is a one-line error, and so is a value that a config refuses.
"""

import contextlib
from pathlib import Path

import yaml
from trl import ModelConfig, TrlParser

from data_prep.cli import check_writable, make_parser
from data_prep.errors import MissingInputError, UserError
from vlm_dpo.training.config import DataArguments, TrainConfig, check_lora
from vlm_dpo.training.run import main as train

DEFAULT_RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
ARGUMENTS = (DataArguments, TrainConfig, ModelConfig)
DESCRIPTION = ("Train a LoRA DPO adapter. Without --config it runs the offline demo (recipes/demo.yaml); "
               "recipes/tiny.yaml is the seconds-long smoke test. Every option below can be set in the recipe or "
               "overridden here: vlm-dpo train --config recipes/tiny.yaml --max_steps 2 --output_dir outputs/smoke")


def parse(argv: list[str], prog: str = "vlm-dpo train") -> tuple:
    """(DataArguments, TrainConfig, ModelConfig) from ``--config RECIPE`` (default: the demo recipe) and overrides;
    a recipe that cannot be read, an unknown key or option and a value a config refuses are ``UserError``s."""
    try:
        return _parse(list(argv), prog)
    except ValueError as error:  # a value TRL's or our config refuses: the user's option
        if isinstance(error, UserError):
            raise
        raise UserError(f"{' '.join(str(error).split())} (see {prog} --help)") from None


def _parse(argv: list[str], prog: str) -> tuple:
    recipe = None
    if "--config" not in argv and not {"-h", "--help"} & set(argv):
        if not DEFAULT_RECIPE.is_file():
            raise UserError(f"no --config given, and the default recipe {DEFAULT_RECIPE} is not here (it comes with "
                            "the repository): pass --config RECIPE.yaml")
        argv = ["--config", str(DEFAULT_RECIPE), *argv]  # overrides apply on top of the default recipe
    if "--config" in argv:
        index = argv.index("--config")
        recipe = argv[index + 1] if index + 1 < len(argv) else None
        if recipe is None or recipe.startswith("--"):
            raise UserError(f"--config needs a recipe file (see {prog} --help)")
        if not Path(recipe).is_file():
            raise MissingInputError(f"--config {recipe}: no such recipe file (the recipes are in recipes/*.yaml)")
        check_unique_keys(recipe)
    parser = make_parser(ARGUMENTS, prog, DESCRIPTION, base=TrlParser)
    try:
        *parsed, from_recipe, from_command_line = parser.parse_args_and_config(
            argv, return_remaining_strings=True, separate_remaining_strings=True)
    except yaml.YAMLError as error:
        raise UserError(f"--config {recipe} is not valid YAML: {' '.join(str(error).split())}") from None
    if from_recipe:
        keys = [item[2:] for item in from_recipe[::2]]
        raise UserError(f"--config {recipe}: unknown key(s) {', '.join(keys)} (see {prog} --help for the options)")
    if from_command_line:
        raise UserError(f"unknown option {' '.join(from_command_line)} (see {prog} --help)")
    check_lora(parsed[2])
    return tuple(parsed)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last, silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise UserError(f"--config {self.name}: the key {key!r} is given twice (line "
                                f"{key_node.start_mark.line + 1}); keep one")
            seen.add(key)
        return super().construct_mapping(node, deep)


def check_unique_keys(recipe: str) -> None:
    with open(recipe) as handle, contextlib.suppress(yaml.YAMLError):  # the parser below reports those
        yaml.load(handle, Loader=_UniqueKeyLoader)


def run(data_args: DataArguments, training_args: TrainConfig, model_args: ModelConfig):
    """Train; returns the trainer."""
    check_writable(training_args.output_dir, "--output_dir")
    return train(data_args, training_args, model_args)
