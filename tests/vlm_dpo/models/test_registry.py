"""Built-in model names: one table that loading and `vlm-dpo build-model` share."""

import importlib

import pytest

from vlm_dpo.errors import MissingInputError, UserError
from vlm_dpo.models.load import resolve_model_path
from vlm_dpo.models.registry import BUILT_IN, ensure_built_in


def test_every_builder_exists():
    for name, (module, builder, about) in BUILT_IN.items():
        assert callable(getattr(importlib.import_module(module), builder)), name
        assert about


def test_built_in_name_resolves_to_its_cached_build(tiny_model_dir):
    assert resolve_model_path("tiny-smolvlm") == str(tiny_model_dir)
    assert ensure_built_in("tiny-smolvlm") == tiny_model_dir


def test_unknown_name_lists_the_built_in_ones():
    with pytest.raises(MissingInputError, match="tiny-smolvlm, tiny-smollm2") as error:
        resolve_model_path("tiny-smolvml")
    assert isinstance(error.value, UserError) and isinstance(error.value, FileNotFoundError)
