"""The errors a user can fix, in one place: ``UserError`` (from ``data_prep.errors``, shared by both packages) and its
kinds. ``vlm_dpo.cli`` prints a ``UserError`` as one line and exits non-zero; anything else is a bug and keeps its
traceback.

The kinds raised by ``vlm_dpo`` itself are defined here rather than next to their code, so that any module (the
training config, the model loaders, the CLI) can import them without importing torch or transformers.
"""

from data_prep.errors import HubUnavailableError, ImageError, InputError, MissingInputError, UserError


class GPURequiredError(UserError):
    """An option that only works on a CUDA GPU (4-bit / 8-bit loading) was asked for on a machine without one."""


class SmolLM2Unavailable(UserError):
    """Neither the GGUF wheel nor the hub can provide SmolLM2-135M-Instruct."""


class AdapterError(UserError):
    """A training output folder that is incomplete or damaged, or an adapter put on a base it was not trained on."""


__all__ = ["AdapterError", "GPURequiredError", "HubUnavailableError", "ImageError", "InputError", "MissingInputError",
           "SmolLM2Unavailable", "UserError"]
