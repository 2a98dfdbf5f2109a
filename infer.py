"""Answer with the base and the DPO-tuned model side by side (= ``vlm-dpo infer``; see ``vlm_dpo.inference``).

    python infer.py --adapter outputs/tiny --image photo.jpg --question "Describe this image." [--json]
    python infer.py --adapter outputs/text-demo --prompt "What is 37 + 48?"
    python infer.py --adapter outputs/tiny --dataset data/tiny --report reports/tiny [--limit 20]
    python infer.py --adapter outputs/tiny --app [--port 7860] [--host 127.0.0.1]
    python infer.py --adapter outputs/demo --benchmark scenes --output_dir bench/scenes     # = vlm-dpo eval
"""

import sys

from vlm_dpo.cli import main as cli


def main(argv: list[str] | None = None) -> int:
    """Exit status 0; a user's mistake is printed as one line and raises ``SystemExit(2)``. With ``--benchmark``
    it is ``vlm-dpo eval``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "eval" if any(arg.split("=")[0] == "--benchmark" for arg in argv) else "infer"
    return cli([command, *argv], prog="python infer.py")


if __name__ == "__main__":
    sys.exit(main())
