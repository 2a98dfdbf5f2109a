"""Errors a user can cause and fix: every entry point prints them as one line, without a traceback.

``UserError`` lives here, in the lower package, so that ``data_prep`` and ``vlm_dpo`` raise the same kind of
error and one handler (``vlm_dpo.cli``) turns all of them into one line on stderr and a non-zero exit.
"""


class UserError(Exception):
    """A mistake in the input, the options or the machine's setup; the message names the culprit and the fix."""


class HubUnavailableError(UserError):
    """The model or data set needs the Hugging Face Hub and the hub cannot be reached."""
