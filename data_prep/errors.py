"""Errors a user can cause and fix: every entry point prints them as one line, without a traceback.

``UserError`` lives here, in the lower package, so that ``data_prep`` and ``vlm_dpo`` raise the same kind of
error and one handler turns all of them into one line on stderr and a non-zero exit.

data_prep's own kinds also derive from the built-in error they refine (``ValueError``, ``FileNotFoundError``), so
that code catching those catches them too.
"""


class UserError(Exception):
    """A mistake in the input, the options or the machine's setup; the message names the culprit and the fix."""


class HubUnavailableError(UserError):
    """The model or data set needs the Hugging Face Hub and the hub cannot be reached."""


class InputError(UserError, ValueError):
    """An option of ``prepare`` out of range, or input data that yields nothing usable (empty, malformed)."""


class MissingInputError(InputError, FileNotFoundError):
    """The input names no file, folder, generator or hub data set that exists."""


class ImageError(InputError):
    """An image file a person named (at inference) cannot be used; the message names the file and why."""
