"""``vlm-dpo``: one command for the whole pipeline, one option style, and errors as one line.

    vlm-dpo prepare --dataset_name openbmb/RLHF-V-Dataset --output_dir data/rlhfv
    vlm-dpo train --config recipes/tiny.yaml [--max_steps 2 ...]
    vlm-dpo infer --adapter outputs/tiny --image photo.jpg --question "Describe the image."
    vlm-dpo export --adapter outputs/tiny --output_dir outputs/tiny-merged
    vlm-dpo build-model tiny-smolvlm
    vlm-dpo build-demo-stage1 --steps 200
    vlm-dpo app --adapter outputs/tiny

Every subcommand reads dataclasses with transformers' ``HfArgumentParser`` (``train``: TRL's ``TrlParser``, with
``--config`` YAML recipes), so an option has one name everywhere (``dataset_name``, ``model_name_or_path``,
``output_dir``, ``image_longest_edge``, ...), also spelt with dashes; the older spellings (``--input``, ``--model``,
``--report``, ...) are aliases. ``train.py``, ``infer.py`` and ``python -m data_prep`` are this module under their
old names.

A mistake the user can fix (a ``UserError``, a bad option, a path that does not exist or cannot be written) is
printed as one line, ``error: ...``, with exit status 2; ``--debug`` or ``VLM_DPO_DEBUG=1`` shows the traceback.
Anything else is a bug and keeps its traceback.
"""

import argparse
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.errors import MissingInputError, UserError

DEBUG_ENV = "VLM_DPO_DEBUG"
DEFAULT_RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "demo.yaml"
DEFAULT_PREPARE_MODEL = "HuggingFaceTB/SmolVLM-256M-Instruct"
TRAIN_HELP = ("Train a LoRA DPO adapter. Without --config it runs the offline demo (recipes/demo.yaml); "
              "recipes/tiny.yaml is the seconds-long smoke test. Every option below can be set in the recipe or "
              "overridden here: vlm-dpo train --config recipes/tiny.yaml --max_steps 2 --output_dir outputs/smoke")


@dataclass
class PrepareArguments:
    dataset_name: str = field(metadata={"aliases": ["--input"], "help": (
        "hub data set id (owner/name), .parquet file / folder / glob, .json(l) file, folder saved by datasets, "
        "synthetic:N (generated scenes) or arithmetic:N (generated text pairs)")})
    output_dir: str = field(metadata={"aliases": ["--output"], "help": (
        "folder to write the prepared DatasetDict (train, test) and prep_report.json")})
    model_name_or_path: str = field(default=DEFAULT_PREPARE_MODEL, metadata={"aliases": ["--model"], "help": (
        "model (hub id, folder or built-in name) whose processor counts the tokens; loaded only when a length "
        "limit is set")})
    max_length: int = field(default=1024, metadata={"help": (
        "drop pairs whose prompt (image tokens included) + longer answer exceed this many tokens; use the "
        "trainer's max_length; 0 keeps all (TRL's default)")})
    max_prompt_length: int | None = field(default=None, metadata={"help": (
        "text pairs only: cut the prompt's start so that the rendered prompt has at most this many tokens")})
    max_completion_length: int | None = field(default=None, metadata={"help": (
        "text pairs only: cut each answer's end to at most this many tokens")})
    processor_longest_edge: int | None = field(default=None, metadata={"help": (
        "longest edge the image processor scales images to before tiling, as the recipe's processor_longest_edge "
        "(default: the processor's own, 2048 for SmolVLM-256M)")})
    image_longest_edge: int = field(default=512, metadata={"aliases": ["--longest_edge"], "help": (
        "shrink images so that their longest edge is at most this many pixels; the remedy for out-of-memory")})
    test_size: float = field(default=0.1, metadata={"help": (
        "fraction held out as the test split, grouped by image; ignored when the input has a test split")})
    data_seed_split: int = field(default=42, metadata={"aliases": ["--seed"], "help": (
        "seed of the train/test split and of synthetic:N")})
    limit: int | None = field(default=None, metadata={"help": "read only the first N rows of each split"})
    split: str | None = field(default=None, metadata={"help": (
        "read only this split of the input (default: train, plus test if present; all splits when there is no "
        "train)")})
    image_root: str | None = field(default=None, metadata={"help": (
        "also allow image paths under this folder (by default relative image paths resolve against the data "
        "file's folder, and paths outside it are skipped)")})


@dataclass
class BuildModelArguments:
    output_dir: str | None = field(default=None, metadata={"help": "where to build it (default: the model cache, "
                                                           "$VLM_DPO_CACHE or ~/.cache/vlm_dpo)"})


# name -> what it does, for `vlm-dpo --help`
COMMANDS = {
    "prepare": "read, clean, split and save a preference data set for DPO",
    "train": "train a LoRA DPO adapter from a YAML recipe (--config) and overrides",
    "infer": "base and tuned answers side by side: images, prompts, a prepared data set, or the app",
    "export": "merge an adapter into its base and save a plain transformers model",
    "build-model": "build (or reuse) a built-in offline model and print its folder",
    "build-demo-stage1": "retrain the demo model's shipped stage-1 vision weights",
    "app": "the browser app (its own options: vlm-dpo app --help)",
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Docstring examples kept as written; a default shown unless it is empty or the help already tells it."""

    def _get_help_string(self, action):
        if action.default in (None, [], False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def make_parser(dataclass_types, prog: str, description: str, trl: bool = False):
    """``HfArgumentParser`` (``TrlParser`` for ``--config``) whose errors are ``UserError``s, not usage + exit."""
    from transformers import HfArgumentParser

    base = HfArgumentParser
    if trl:
        from trl import TrlParser as base

    class Parser(base):
        def error(self, message):
            raise UserError(f"{message} (see {self.prog} --help)")

    return Parser(dataclass_types, prog=prog, description=description, formatter_class=HelpFormatter)


def parse(parser, argv: list[str]):
    """The dataclasses (and the namespace of plain arguments, if any); an unknown option is a ``UserError``."""
    *parsed, remaining = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True,
                                                            look_for_args_file=False)
    if remaining:
        raise UserError(f"unknown option {' '.join(remaining)} (see {parser.prog} --help)")
    return parsed


def parse_train(argv: list[str], prog: str = "vlm-dpo train"):
    """(DataArguments, TrainConfig, ModelConfig) from ``--config RECIPE`` (default: the demo recipe) and overrides.

    A recipe that cannot be read is a ``UserError`` naming it; invalid values raise what the configs raise
    (``ValueError`` from TRL, ``UserError`` from ours), which ``main`` prints as one line.
    """
    import yaml
    from trl import ModelConfig

    from vlm_dpo.training.config import DataArguments, TrainConfig

    argv, recipe = list(argv), None
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
    parser = make_parser((DataArguments, TrainConfig, ModelConfig), prog, TRAIN_HELP, trl=True)
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
    return tuple(parsed)


def check_writable(path: str | Path, option: str, folder: bool = True) -> None:
    """Fail before any work when ``path`` (a folder to create or fill, else a file to write) cannot be written."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"{option} {path} is a file, not a folder: choose another path.")
    if not folder and path.is_dir():
        raise UserError(f"{option} {path} is a folder: name the file to write.")
    existing = path if path.exists() else path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{option} {path} cannot be created: {existing} is a file, not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path} is not writable ({existing} does not let this user write): choose a "
                        "folder you can write to.")


def launch_app(argv: list[str]) -> int:
    """``vlm_dpo.app.main(argv)``, imported only now: the app's dependencies are not needed by anything else."""
    import importlib

    try:
        app = importlib.import_module("vlm_dpo.app")
    except ModuleNotFoundError as error:
        if error.name not in ("vlm_dpo.app", "vlm_dpo"):
            raise UserError(f"the app needs the package {error.name!r}: pip install {error.name}") from None
        app = None
    if getattr(app, "main", None) is None:
        raise UserError("this installation has no app (vlm_dpo.app.main): update vlm-dpo, or use vlm-dpo infer "
                        "--image / --prompt / --dataset instead")
    return app.main(argv) or 0


def prepare(args: PrepareArguments) -> dict:
    from data_prep.prepare import prepare as prepare_data
    from vlm_dpo.models import is_vision_processor, load_processor

    processor = None  # only a length limit needs one: it counts the tokens
    if args.max_length or args.max_prompt_length or args.max_completion_length:
        processor = load_processor(args.model_name_or_path)
        if args.processor_longest_edge and is_vision_processor(processor):  # count at the size training will use
            processor.image_processor.size = {"longest_edge": args.processor_longest_edge}
    report = prepare_data(args.dataset_name, args.output_dir, processor_name=args.model_name_or_path,
                          processor=processor, max_length=args.max_length or None,
                          longest_edge=args.image_longest_edge, test_size=args.test_size, seed=args.data_seed_split,
                          limit=args.limit, split=args.split, max_prompt_length=args.max_prompt_length,
                          max_completion_length=args.max_completion_length, image_root=args.image_root)
    print(f"read {report['read']} rows ({report['layout']} layout, splits {', '.join(report['read_from'])})")
    print(f"kept {report['kept']}: " + ", ".join(f"{name} {count}" for name, count in report["splits"].items()))
    for reason, count in report["skipped"].items():
        print(f"skipped {count}: {reason}")
    print(f"written to {args.output_dir} (report: {args.output_dir}/prep_report.json)")
    return report


def run(command: str, argv: list[str], prog: str | None = None):
    """Parse ``argv`` for ``command`` and run it; returns what the command returns (the trainer for ``train``, the
    report for ``prepare``, an exit status otherwise). Errors propagate: ``main`` is where they become one line."""
    quiet_libraries()
    prog = prog or f"vlm-dpo {command}"
    if command == "app":
        return launch_app(argv)
    if command == "train":
        try:
            data_args, training_args, model_args = parse_train(argv, prog)[:3]
        except ValueError as error:  # a value TRL's or our config refuses: the user's option
            raise UserError(f"{' '.join(str(error).split())} (see {prog} --help)") from None
        check_writable(training_args.output_dir, "--output_dir")
        from vlm_dpo.training.run import main as train

        return train(data_args, training_args, model_args)
    if command == "prepare":
        args, = parse(make_parser(PrepareArguments, prog, COMMANDS[command]), argv)
        check_writable(args.output_dir, "--output_dir")
        return prepare(args)
    if command == "infer":
        from vlm_dpo import inference

        args, = parse(make_parser(inference.InferArguments, prog, inference.__doc__), argv)
        if args.output_dir:
            check_writable(args.output_dir, "--report")
        return inference.infer(args)
    if command == "export":
        from vlm_dpo import export

        args, = parse(make_parser(export.ExportArguments, prog, export.__doc__), argv)
        check_writable(args.output_dir, "--output_dir")
        return export.run(args)
    if command == "build-model":
        from vlm_dpo.models.registry import BUILT_IN, ensure_built_in

        parser = make_parser(BuildModelArguments, prog, COMMANDS[command])
        parser.add_argument("name", choices=list(BUILT_IN), metavar="NAME", help="one of: " + "; ".join(
            f"{name}: {about}" for name, (_, _, about) in BUILT_IN.items()))
        args, names = parse(parser, argv)
        if args.output_dir:
            check_writable(args.output_dir, "--output_dir")
        print(ensure_built_in(names.name, args.output_dir))
        return 0
    if command == "build-demo-stage1":
        from vlm_dpo.models import demo_stages

        args, = parse(make_parser(demo_stages.Stage1Arguments, prog, demo_stages.__doc__), argv)
        check_writable(args.output, "--output", folder=False)
        if args.resume and not Path(args.resume).is_file():
            raise MissingInputError(f"--resume {args.resume}: no such stage-1 weights file")
        demo_stages.build_stage1(args)
        return 0
    raise UserError(f"unknown command {command!r}: choose one of {', '.join(COMMANDS)} (see vlm-dpo --help)")


def usage() -> str:
    lines = [__doc__.split("\n\n")[0].replace("``", ""), "", "usage: vlm-dpo COMMAND [options]", "",
             "commands (vlm-dpo COMMAND --help lists a command's options):"]
    lines += [f"  {name:<19}{about}" for name, about in COMMANDS.items()]
    lines += ["", f"--debug (or {DEBUG_ENV}=1) shows the traceback of an error."]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The console script: run a command; a user's mistake becomes ``error: ...`` on stderr and exit status 2.

    ``prog`` is how the command was called (``python train.py``), for its help and messages."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    argv = [arg for arg in argv if arg != "--debug"]
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    try:
        result = run(argv[0], argv[1:], prog)
    except Exception as error:
        message = user_message(error)
        if message is None or debug:
            raise
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    return result if isinstance(result, int) else 0


def user_message(error: Exception) -> str | None:
    """The one line to print for an error the user can fix, or None for a bug (which keeps its traceback)."""
    if isinstance(error, UserError):
        return " ".join(str(error).split())
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
                          FileExistsError)):
        if error.filename is None:  # raised by our code or a library with its own message
            return " ".join(str(error).split())
        return f"{error.filename}: {error.strerror} (check the path you gave)"
    return None


def _not_the_cpu_4bit_kernel(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Failed to load CPU gemm_4bit_forward")


def quiet_libraries() -> None:
    """Silence two library messages that every command printed and that say nothing about the user's run."""
    # peft imports bitsandbytes at import time (peft/helpers.py), and on CPUs with AVX512-BF16 bitsandbytes then
    # logs that it cannot fetch an optional CPU 4-bit kernel from the hub. 4-bit loading needs a CUDA GPU here
    # (GPURequiredError), so that kernel is never used: drop that one record and keep the logger's others.
    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_not_the_cpu_4bit_kernel)
    # peft 0.21 (PeftModel.__init__) and TRL 1.16 read model.is_gradient_checkpointing, deprecated in transformers
    # 5.x; no argument of ours avoids that read.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


if __name__ == "__main__":
    sys.exit(main())
