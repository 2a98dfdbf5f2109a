"""The errors a user can fix, in one place: ``UserError`` (from ``data_prep.errors``, shared by both packages) and its
kinds. Entry points print a ``UserError`` as one line and exit non-zero; anything else is a bug and keeps its
traceback."""

from data_prep.errors import HubUnavailableError, UserError
from vlm_dpo.models.load import GPURequiredError

__all__ = ["GPURequiredError", "HubUnavailableError", "UserError"]
