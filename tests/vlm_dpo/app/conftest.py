"""A real tiny training run (adapter, prepared data, held-out report, plots) and the app's session on it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, model_cache) -> Path:
    """``train.py`` on the tiny recipe for two steps: about a minute, and every file the app reads."""
    out = tmp_path_factory.mktemp("app_run")
    result = subprocess.run([sys.executable, "train.py", "--config", "recipes/tiny.yaml", "--max_steps", "2",
                             "--output_dir", str(out)], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def session(tiny_run):
    from vlm_dpo.app.panels import load_session

    return load_session(tiny_run, max_new_tokens=8)
