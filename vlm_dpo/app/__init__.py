"""A local web page that puts the base and the DPO-tuned model side by side: ask both about an image, score a
chosen and a rejected answer with both, and browse the run's held-out report.

    vlm-dpo app --adapter outputs/tiny [--port 7860] [--host 127.0.0.1]
    python infer.py --adapter outputs/tiny --app

``main(argv)`` parses ``AppArguments`` with transformers' ``HfArgumentParser``, loads the model once and serves
until Ctrl-C or SIGTERM. It listens on 127.0.0.1 only unless ``--host`` says otherwise. A wrong ``--adapter``,
``--max_new_tokens`` or a taken port raises ``UserError`` before (or instead of) serving.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field


@dataclass
class AppArguments:
    adapter: str = field(metadata={"help": "Training output folder (adapter + run_config.yaml)."})
    port: int = field(default=7860, metadata={"help": "Port to serve the page on."})
    host: str = field(default="127.0.0.1", metadata={
        "help": "Address to listen on; the default serves this machine only (0.0.0.0 serves the network)."})
    model_name_or_path: str | None = field(default=None, metadata={
        "help": "Base model to put the adapter on (default: the run's model_name_or_path)."})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest answer, in tokens."})


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line), load the run and serve the page until stopped; returns 0."""
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(AppArguments).parse_args_into_dataclasses(args=argv)
    return run(args)


def run(args: AppArguments) -> int:
    """Serve ``args`` until Ctrl-C or SIGTERM, then close the server (the port is free when this returns)."""
    from vlm_dpo.app.panels import load_session

    session = load_session(args.adapter, args.model_name_or_path, args.max_new_tokens)
    from vlm_dpo.app.ui import serve  # imports gradio: only once the run has loaded

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        serve(session, args.host, args.port, stop)
    except KeyboardInterrupt:  # Ctrl-C: serve() closed the server on its way out
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
