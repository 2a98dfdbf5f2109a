"""The app's session on a real tiny training run (the ``tiny_run`` fixture of tests/conftest.py)."""

import pytest


@pytest.fixture(scope="session")
def session(tiny_run):
    from vlm_dpo.app.panels import load_session

    return load_session(tiny_run, max_new_tokens=8)
