"""A local web page that puts the base and the DPO-tuned model side by side: ask both about an image, score a
chosen and a rejected answer with both, and browse the run's held-out report.

    vlm-dpo app --adapter outputs/tiny [--port 7860] [--host 127.0.0.1]
    python infer.py --adapter outputs/tiny --app

``run(AppArguments(...))`` (the ``app`` command, and ``infer --app``) loads the model once and serves until Ctrl-C
or SIGTERM. It listens on 127.0.0.1 only unless ``--host`` says otherwise. A wrong ``--adapter``,
``--max_new_tokens`` or a taken port raises ``UserError`` before (or instead of) serving.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass, field

from data_prep.errors import UserError
from vlm_dpo.app.panels import load_session


@dataclass
class AppArguments:
    adapter: str = field(metadata={"help": "Training output folder (adapter + run_config.yaml)."})
    port: int = field(default=7860, metadata={"help": "Port to serve the page on."})
    host: str = field(default="127.0.0.1", metadata={
        "help": "Address to listen on; the default serves this machine only (0.0.0.0 serves the network)."})
    model_name_or_path: str | None = field(default=None, metadata={
        "help": "Base model to put the adapter on (default: the run's model_name_or_path)."})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest answer, in tokens."})


ARGUMENTS = (AppArguments,)


def run(args: AppArguments) -> int:
    """Serve ``args`` until Ctrl-C or SIGTERM, then close the server (the port is free when this returns) and delete
    the files uploaded to it."""
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}.")
    uploads = tempfile.mkdtemp(prefix="vlm-dpo-app-")
    previous_dir = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = uploads  # where gradio keeps uploads: read before its import, and per upload
    try:
        return _serve(args)
    finally:
        shutil.rmtree(uploads, ignore_errors=True)
        if previous_dir is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = previous_dir


def _serve(args: AppArguments) -> int:
    try:
        import gradio  # noqa: F401 -- checked before the model loads, not after
    except ModuleNotFoundError:
        raise UserError("the app needs the package 'gradio': pip install gradio (or pip install -r "
                        "requirements.txt)") from None
    session = load_session(args.adapter, args.model_name_or_path, args.max_new_tokens)
    from vlm_dpo.app.ui import serve  # gradio, imported only once the run has loaded

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        serve(session, args.host, args.port, stop)
    except KeyboardInterrupt:  # Ctrl-C: serve() closed the server on its way out
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
