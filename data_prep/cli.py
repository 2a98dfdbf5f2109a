"""The command-line plumbing every command of the project shares, at the bottom layer so that ``python -m data_prep``
and ``vlm-dpo`` print the same help and the same one-line errors without ``data_prep`` importing ``vlm_dpo``.

    parser = make_parser((PrepareArguments,), "python -m data_prep", "Prepare a preference data set.")
    args, = parse(parser, argv)                 # an unknown option is a UserError, not argparse's usage + exit
    sys.exit(run_main(lambda: work(args)))      # a UserError becomes "error: ..." and exit status 2

A mistake the user can fix (a ``UserError``, a bad option, a path that does not exist or cannot be written) is
printed as one line, ``error: ...``, with exit status 2; ``--debug`` or ``VLM_DPO_DEBUG=1`` shows the traceback.
Anything else is a bug and keeps its traceback. Ctrl-C is one line too, exit status 130.
"""

import argparse
import os
import sys
from pathlib import Path

from transformers import HfArgumentParser

from data_prep.errors import UserError

DEBUG_ENV = "VLM_DPO_DEBUG"


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Docstring examples kept as written; a default shown unless it is empty or the help already tells it."""

    def _get_help_string(self, action):
        if action.default in (None, [], False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def make_parser(dataclass_types, prog: str, description: str | None, base=HfArgumentParser):
    """``base`` (transformers' ``HfArgumentParser``, or TRL's ``TrlParser`` for ``--config``) whose errors are
    ``UserError``s naming the command's help, not argparse's usage and exit."""

    class Parser(base):
        def error(self, message):
            raise UserError(f"{message} (see {self.prog} --help)")

    return Parser(dataclass_types, prog=prog, description=description, formatter_class=HelpFormatter)


def parse(parser, argv: list[str]) -> list:
    """The dataclasses (and the namespace of plain arguments, if any); an unknown option is a ``UserError``."""
    *parsed, remaining = parser.parse_args_into_dataclasses(argv, return_remaining_strings=True,
                                                            look_for_args_file=False)
    if remaining:
        raise UserError(f"unknown option {' '.join(remaining)} (see {parser.prog} --help)")
    return parsed


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


def debug_requested(argv: list[str]) -> tuple[bool, list[str]]:
    """(whether tracebacks are wanted, ``argv`` without ``--debug``)."""
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    return debug, [arg for arg in argv if arg != "--debug"]


def run_main(work, debug: bool = False):
    """``work()``'s result, with a user's mistake printed as ``error: ...`` (exit status 2) and Ctrl-C as one line
    (exit status 130); a bug keeps its traceback, as does everything under ``debug``."""
    try:
        return work()
    except KeyboardInterrupt:
        if debug:
            raise
        print("\ninterrupted: nothing half-written was published; run the same command again to start over "
              "(training: add --resume_from_checkpoint true where checkpoints were saved)", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as error:
        message = user_message(error)
        if message is None or debug:
            raise
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


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
