"""``vlm-dpo``: one command for the whole pipeline, built from one table of commands, with one option style and
errors as one line.

    vlm-dpo prepare --dataset_name openbmb/RLHF-V-Dataset --output_dir data/rlhfv
    vlm-dpo train --config recipes/tiny.yaml [--max_steps 2 ...]
    vlm-dpo infer --adapter outputs/tiny --image photo.jpg --question "Describe the image."
    vlm-dpo eval --benchmark scenes --adapter outputs/demo --output_dir bench/scenes
    vlm-dpo export --adapter outputs/tiny --output_dir outputs/tiny-merged
    vlm-dpo build-model tiny-smolvlm
    vlm-dpo build-demo-stage1 --steps 200
    vlm-dpo build-demo-stage2 --output S2.safetensors
    vlm-dpo app --adapter outputs/tiny

Each command is a module that exposes ``ARGUMENTS`` (its dataclasses, read with transformers' ``HfArgumentParser``)
and ``run(*arguments)``, and ``parse(argv, prog)`` where it parses differently (``train``: TRL's ``TrlParser`` with
``--config`` recipes); the table below names the module, which is imported only when its command runs. An option
has one name everywhere (``dataset_name``, ``model_name_or_path``, ``output_dir``, ``image_longest_edge``, ...),
also spelt with dashes. ``train.py``, ``infer.py`` and ``python -m data_prep`` are entry points over the same code.

A mistake the user can fix is printed as one line, ``error: ...``, with exit status 2 (``data_prep.cli``);
``--debug`` or ``VLM_DPO_DEBUG=1`` shows the traceback. Anything else is a bug and keeps its traceback.
"""

import importlib
import logging
import sys
import warnings
from dataclasses import dataclass

from data_prep.cli import DEBUG_ENV, debug_requested, make_parser, parse, run_main
from data_prep.errors import UserError


@dataclass(frozen=True)
class Command:
    module: str  # exposes ARGUMENTS and run(*arguments), and parse(argv, prog) where it parses otherwise
    about: str


COMMANDS = {
    "prepare": Command("vlm_dpo.prepare", "read, clean, split and save a preference data set for DPO"),
    "train": Command("vlm_dpo.training.recipe", "train a LoRA DPO adapter from a YAML recipe (--config) and overrides"),
    "infer": Command("vlm_dpo.inference", "base and tuned answers side by side: images, prompts, a prepared data set, "
                                          "or the app"),
    "eval": Command("vlm_dpo.benchmark", "POPE, CHAIR, AMBER or the offline scenes benchmark: base vs tuned"),
    "export": Command("vlm_dpo.export", "merge an adapter into its base and save a plain transformers model"),
    "build-model": Command("vlm_dpo.models.registry", "build (or reuse) a built-in offline model and print its folder"),
    "build-demo-stage1": Command("vlm_dpo.training.demo_stages", "retrain the demo model's shipped stage-1 vision "
                                                                 "weights"),
    "build-demo-stage2": Command("vlm_dpo.training.demo_instruct", "instruction-tune the demo model (stage 2; "
                                                                   "resumable)"),
    "app": Command("vlm_dpo.app", "a local web page to question the base and the tuned model"),
}


def command_module(name: str):
    """The module of command ``name``, imported now: a command pays only for its own imports."""
    if name not in COMMANDS:
        raise UserError(f"unknown command {name!r}: choose one of {', '.join(COMMANDS)} (see vlm-dpo --help)")
    return importlib.import_module(COMMANDS[name].module)


def run(name: str, argv: list[str], prog: str | None = None):
    """Parse ``argv`` for command ``name`` and run it; returns what the command returns (the trainer for ``train``,
    the report for ``prepare``, an exit status otherwise). Errors propagate: ``main`` makes them one line."""
    quiet_libraries()
    prog = prog or f"vlm-dpo {name}"
    module = command_module(name)
    if hasattr(module, "parse"):
        arguments = module.parse(argv, prog)
    else:
        arguments = parse(make_parser(module.ARGUMENTS, prog, module.__doc__), argv)
    return module.run(*arguments)


def usage() -> str:
    lines = [__doc__.split("\n\n")[0].replace("``", ""), "", "usage: vlm-dpo COMMAND [options]", "",
             "commands (vlm-dpo COMMAND --help lists a command's options):"]
    lines += [f"  {name:<19}{command.about}" for name, command in COMMANDS.items()]
    lines += ["", f"--debug (or {DEBUG_ENV}=1) shows the traceback of an error."]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The console script: run a command; a user's mistake becomes ``error: ...`` on stderr and exit status 2.

    ``prog`` is how the command was called (``python train.py``), for its help and messages."""
    debug, argv = debug_requested(list(sys.argv[1:] if argv is None else argv))
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    result = run_main(lambda: run(argv[0], argv[1:], prog), debug)
    return result if isinstance(result, int) else 0


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
