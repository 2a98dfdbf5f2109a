"""``vlm-dpo infer`` (``python infer.py``): the base and the DPO-tuned model side by side, on images, prompts or a
prepared preference set, or in the app.

Everything comes from the training output folder (adapter, processor, run_config.yaml); the base model is the one
the run was trained on unless ``--model_name_or_path`` names another (e.g. a local copy). The folder, the images
and the data set are checked before any model loads, so a wrong path fails in seconds.

    # questions about your own images
    vlm-dpo infer --adapter outputs/smolvlm-rlhfv --image photo.jpg --question "Describe this image."
    vlm-dpo infer --adapter outputs/tiny --image a.png --image b.jpg --question "What is shown?" --json

    # text-only runs (tiny-smollm2, SmolLM2, GPT-2): prompts instead of images
    vlm-dpo infer --adapter outputs/text-demo --prompt "What is 37 + 48?" --prompt "How many grams in 3 kg?"

    # generations on a prepared preference set, compared with the chosen and rejected answers
    vlm-dpo infer --adapter outputs/tiny --dataset data/tiny --report reports/tiny --limit 20

    # the same in a browser
    vlm-dpo infer --adapter outputs/tiny --app [--port 7860] [--host 127.0.0.1]

Dataset mode writes OUTPUT_DIR/metrics.json (flat base_*, tuned_*, delta_* keys), OUTPUT_DIR/report.html (one
self-contained page: summary, plots, best improvements, worst regressions, every pair) and the plots as PNG.
"""

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from data_prep.chat import control_token
from data_prep.cli import check_writable
from data_prep.images import open_image
from vlm_dpo import app
from vlm_dpo.errors import UserError
from vlm_dpo.eval.generate import generate_answers
from vlm_dpo.models.adapter import check_adapter_folder, load_tuned
from vlm_dpo.models.run_record import RunRecord
from vlm_dpo.report.compare import compare_on_dataset
from vlm_dpo.report.table import summary_table

MODES = "give one of: --image IMG --question Q, --prompt TEXT (text runs), --dataset PATH --report OUT, or --app"


@dataclass
class InferArguments:
    adapter: str = field(metadata={"help": "training output folder (adapter + run_config.yaml)"})
    model_name_or_path: str | None = field(
        default=None, metadata={"aliases": ["--model"],
                                "help": "base model to put the adapter on (default: the run's model_name_or_path)"})
    max_new_tokens: int = field(default=64, metadata={"help": "longest answer, in tokens"})
    batch_size: int = field(default=4, metadata={"help": "prompts generated together"})
    image: list[str] = field(default_factory=list, metadata={
        "action": "extend", "help": "image mode: image file to ask about; repeat (or list several) for more"})
    question: str | None = field(default=None, metadata={"help": "image mode: the question asked about every image"})
    prompt: list[str] = field(default_factory=list, metadata={
        "action": "extend", "help": "text runs: a prompt to answer; repeat for several"})
    json: bool = field(default=False, metadata={
        "help": "print only a JSON list of {image, question, base, tuned} ({prompt, base, tuned} with --prompt)"})
    dataset_name: str | None = field(default=None, metadata={
        "aliases": ["--dataset"], "help": "dataset mode: a folder written by `vlm-dpo prepare`"})
    output_dir: str | None = field(default=None, metadata={
        "aliases": ["--report"], "help": "dataset mode: folder for metrics.json, report.html and the plots"})
    dataset_test_split: str = field(default="test", metadata={
        "aliases": ["--split"], "help": "dataset mode: split to generate on (the only split if there is one)"})
    limit: int | None = field(default=None, metadata={"help": "dataset mode: use only the first N pairs"})
    do_sample: bool = field(default=False, metadata={"help": "sample instead of greedy decoding"})
    seed: int = field(default=0, metadata={"help": "seed for --do_sample"})
    app: bool = field(default=False, metadata={"help": "open the app (base and tuned side by side in a browser)"})
    port: int = field(default=7860, metadata={"help": "with --app: port to serve on"})
    host: str = field(default="127.0.0.1", metadata={"help": "with --app: address to serve on (0.0.0.0: any)"})

    def __post_init__(self):
        if bool(self.image) + bool(self.prompt) + bool(self.dataset_name) + self.app != 1:
            raise UserError(MODES)
        if self.image and not (self.question or "").strip():
            raise UserError("--image needs --question (a question with words in it)")
        for text in [self.question or "", *self.prompt]:
            if token := control_token(text):
                raise UserError(f"the question {text[:60]!r} holds {token}, a control token of the chat template; "
                                "remove it (the image is given with --image)")
        if any(not text.strip() for text in self.prompt):
            raise UserError("--prompt is empty: give a prompt with words in it")
        if self.dataset_name and not self.output_dir:
            raise UserError("--dataset needs --report OUT (the folder for metrics.json and report.html)")
        for name in ("max_new_tokens", "batch_size", "limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.output_dir:
            check_writable(self.output_dir, "--report")


ARGUMENTS = (InferArguments,)


def run(args: InferArguments) -> int:
    record = check_adapter_folder(args.adapter)  # before any model loads
    if args.app:
        return app.run(app.AppArguments(adapter=args.adapter, port=args.port, host=args.host,
                                        model_name_or_path=args.model_name_or_path,
                                        max_new_tokens=args.max_new_tokens))
    if args.prompt and record.vision:
        raise UserError(f"{args.adapter} is a vision-language run: ask with --image IMG --question Q")
    if args.image and not record.vision:
        raise UserError(f"{args.adapter} is a text run: ask with --prompt TEXT")
    if args.image:
        return run_images(args, record)
    if args.prompt:
        return run_prompts(args)
    return run_dataset(args)


def run_prompts(args) -> int:
    """A text model's base and tuned answers to each ``--prompt``; text or JSON on stdout."""
    model, processor, record = load_tuned(args.adapter, args.model_name_or_path)
    base, tuned = answer_both(model, processor, None, args.prompt, args, record)
    results = [{"prompt": p, "base": b, "tuned": t} for p, b, t in zip(args.prompt, base, tuned)]
    return show(results, args.json, lambda result: result["prompt"])


def run_images(args, record: RunRecord) -> int:
    """Both models answer ``--question`` about each ``--image``, decoded as the run's training data was."""
    images = [open_image(path, record.image_longest_edge) for path in args.image]  # before loading
    model, processor, record = load_tuned(args.adapter, args.model_name_or_path)
    base, tuned = answer_both(model, processor, images, [args.question] * len(images), args, record)
    results = [{"image": path, "question": args.question, "base": b, "tuned": t}
               for path, b, t in zip(args.image, base, tuned)]
    return show(results, args.json, lambda result: f"[{result['image']}] {result['question']}")


def answer_both(model, processor, images, questions, args, record: RunRecord) -> tuple[list[str], list[str]]:
    """The base (adapter off) and the tuned model answer the same questions; the tuned model of a Chain of Hindsight
    run after the positive phrase its record names, its answer cut before the negative one."""
    options = {"max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size}
    base = generate_answers(model, processor, images, questions, use_adapter=False, **options)
    return base, generate_answers(model, processor, images, questions, **options, **record.tuned_generation)


def show(results: list[dict], as_json: bool, heading) -> int:
    """A JSON list on stdout, or one readable block per result under ``heading(result)``."""
    if as_json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        for result in results:
            print(f"\n{heading(result)}\n  base : {result['base']}\n  tuned: {result['tuned']}")
    return 0


def read_pairs(path: str, split: str, limit: int | None):
    """(pairs, split used) of a folder saved by ``datasets`` (as ``vlm-dpo prepare`` writes), checked before any
    model loads: a folder of raw data, a missing split or an empty one names the fix."""
    from datasets import DatasetDict, load_from_disk

    if not Path(path).is_dir():
        raise UserError(f"--dataset {path} is not a folder: pass a data set written by `vlm-dpo prepare`.")
    try:
        data = load_from_disk(path)
    except FileNotFoundError:  # datasets: "neither a Dataset directory nor a DatasetDict directory"
        raise UserError(f"--dataset {path} is not a prepared data set (no dataset_dict.json or dataset_info.json). "
                        f"Prepare it first: vlm-dpo prepare --dataset_name {path} --output_dir DIR, then pass "
                        "--dataset DIR.") from None
    if isinstance(data, DatasetDict):
        if split not in data and len(data) == 1:  # e.g. a set saved with only "train"
            print(f"{path} has no split {split!r}; using its only split {next(iter(data))!r}", file=sys.stderr)
            split = next(iter(data))
        if split not in data:
            raise UserError(f"--dataset {path} has no split {split!r}; it has {', '.join(data)} (choose with --split)")
        data = data[split]
    missing = [column for column in ("prompt", "chosen", "rejected") if column not in data.column_names]
    if missing:
        raise UserError(f"--dataset {path} has no {', '.join(missing)} column: it is not a preference set prepared "
                        "by `vlm-dpo prepare`.")
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    if len(data) == 0:
        raise UserError(f"split {split!r} of {path} has no pairs to compare")
    return data, split


def run_dataset(args) -> int:
    """Both models answer every pair of the split; metrics, plots and an HTML report go to ``--report``."""
    data, split = read_pairs(args.dataset_name, args.dataset_test_split, args.limit)
    record = check_adapter_folder(args.adapter)
    has_images = "images" in data.column_names
    if has_images != record.vision:
        run_kind, data_kind = ("a vision-language", "text pairs") if record.vision else ("a text", "image pairs")
        raise UserError(f"{args.adapter} is {run_kind} run and --dataset {args.dataset_name} holds {data_kind}: "
                        "score a run on data of its own kind")
    model, processor, record = load_tuned(args.adapter, args.model_name_or_path)
    details = {"adapter": args.adapter, "model": args.model_name_or_path or record.model_name_or_path,
               "dataset": args.dataset_name, "split": split}
    metrics, metrics_path, html_path = compare_on_dataset(
        model, processor, data, args.output_dir, beta=record.beta,
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, do_sample=args.do_sample, seed=args.seed,
        run_dir=args.adapter, details=details, tuned_generation=record.tuned_generation)
    print(summary_table(metrics))
    print(f"metrics: {metrics_path}\nreport:  {html_path}")
    return 0
