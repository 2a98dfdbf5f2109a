"""Answer with the base and the DPO-tuned model side by side, or compare them on a preference set.

Everything comes from the training output folder (adapter, processor, run_config.yaml); the base
model is the one the run was trained on unless --model names another (e.g. a local copy).

    # questions about your own images
    python infer.py --adapter outputs/smolvlm-rlhfv --image photo.jpg --question "Describe this image."
    python infer.py --adapter outputs/tiny --image a.png --image b.jpg --question "What is shown?" --json

    # text-only models (tiny-smollm2, SmolLM2, GPT-2 runs): prompts instead of images
    python infer.py --adapter outputs/text-demo --prompt "What is 37 + 48?" --prompt "How many grams in 3 kg?"

    # generations on a prepared preference set, compared with the chosen and rejected answers
    python infer.py --adapter outputs/tiny --dataset data/tiny --report reports/tiny --limit 20

Dataset mode writes OUT/metrics.json (flat base_*, tuned_*, delta_* keys), OUT/report.html (one
self-contained page: summary, plots, best improvements, worst regressions, every pair) and the plots as PNG.
"""

import argparse
import json
import sys


def parse_args(argv=None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", required=True, help="training output folder (adapter + run_config.yaml)")
    parser.add_argument("--model", help="base model to put the adapter on (default: the run's model_name_or_path)")
    parser.add_argument("--max_new_tokens", type=int, default=64, help="longest answer, in tokens (default 64)")
    parser.add_argument("--batch_size", type=int, default=4, help="prompts generated together (default 4)")
    images = parser.add_argument_group("image mode")
    images.add_argument("--image", action="append", help="image file to ask about; repeat for several")
    images.add_argument("--question", help="the question asked about every --image")
    images.add_argument("--json", action="store_true", help="print only a JSON list of {image, question, base, tuned} "
                        "(with --prompt: {prompt, base, tuned})")
    parser.add_argument("--prompt", action="append", help="text models: a prompt to answer; repeat for several")
    data = parser.add_argument_group("dataset mode")
    data.add_argument("--dataset", help="folder saved by `python -m data_prep` (datasets.save_to_disk)")
    data.add_argument("--report", help="output folder for metrics.json and report.html")
    data.add_argument("--split", default="test", help="split to generate on (default test; the only split if alone)")
    data.add_argument("--limit", type=int, help="use only the first N pairs of the split")
    data.add_argument("--do_sample", action="store_true", help="sample instead of greedy decoding")
    data.add_argument("--seed", type=int, default=0, help="seed for --do_sample (default 0)")
    args = parser.parse_args(argv)
    if (bool(args.image) + bool(args.dataset) + bool(args.prompt)) != 1:
        parser.error("give either --image IMG --question Q, --prompt TEXT (text models), "
                     "or --dataset PATH --report OUT")
    if args.image and not args.question:
        parser.error("--image needs --question")
    if args.dataset and not args.report:
        parser.error("--dataset needs --report OUT")
    return parser, args


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    from vlm_dpo.eval.generate import read_run_config

    try:  # fail before loading any model when the adapter folder is wrong
        read_run_config(args.adapter)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    if args.image:
        return run_images(parser, args)
    if args.prompt:
        return run_prompts(parser, args)
    return run_dataset(parser, args)


def run_prompts(parser, args) -> int:
    """A text model's base and tuned answers to each ``--prompt``; text or JSON on stdout."""
    from vlm_dpo.eval.generate import load_tuned
    from vlm_dpo.models import is_vision_processor

    model, processor, _ = load_tuned(args.adapter, args.model)
    if is_vision_processor(processor):
        parser.error(f"{args.adapter} is a vision-language run: ask with --image IMG --question Q")
    base, tuned = answer_both(model, processor, None, args.prompt, args)
    results = [{"prompt": p, "base": b, "tuned": t} for p, b, t in zip(args.prompt, base, tuned)]
    return show(results, args.json, lambda result: result["prompt"])


def run_images(parser, args) -> int:
    """Both models answer ``--question`` about each ``--image``; text or JSON on stdout."""
    from vlm_dpo.eval.generate import load_tuned, open_image

    try:
        images = [open_image(path) for path in args.image]
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    model, processor, _ = load_tuned(args.adapter, args.model)
    base, tuned = answer_both(model, processor, images, [args.question] * len(images), args)
    results = [{"image": path, "question": args.question, "base": b, "tuned": t}
               for path, b, t in zip(args.image, base, tuned)]
    return show(results, args.json, lambda result: f"[{result['image']}] {result['question']}")


def answer_both(model, processor, images, questions, args) -> tuple[list[str], list[str]]:
    """The base (adapter off) and the tuned model answer the same questions."""
    from vlm_dpo.eval.generate import generate_answers

    options = {"max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size}
    base = generate_answers(model, processor, images, questions, use_adapter=False, **options)
    return base, generate_answers(model, processor, images, questions, **options)


def show(results: list[dict], as_json: bool, heading) -> int:
    """A JSON list on stdout, or one readable block per result under ``heading(result)``."""
    if as_json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        for result in results:
            print(f"\n{heading(result)}\n  base : {result['base']}\n  tuned: {result['tuned']}")
    return 0


def run_dataset(parser, args) -> int:
    """Both models answer every pair of the split; metrics, plots and an HTML report go to ``--report``."""
    from datasets import DatasetDict, load_from_disk

    from vlm_dpo.eval.compare import compare_on_dataset
    from vlm_dpo.eval.generate import load_tuned
    from vlm_dpo.report import summary_table

    try:
        data = load_from_disk(args.dataset)
    except FileNotFoundError as error:
        parser.error(f"cannot read the data set {args.dataset}: {error}")
    split = args.split
    if isinstance(data, DatasetDict):
        if split not in data and len(data) == 1:  # e.g. a set saved with only "train"
            split = next(iter(data))
            print(f"{args.dataset} has no split {args.split!r}; using its only split {split!r}", file=sys.stderr)
        if split not in data:
            parser.error(f"{args.dataset} has no split {args.split!r}; it has {', '.join(data)}")
        data = data[split]
    if args.limit is not None:
        data = data.select(range(min(args.limit, len(data))))
    if len(data) == 0:
        parser.error(f"split {split!r} of {args.dataset} has no pairs to compare")

    model, processor, run_config = load_tuned(args.adapter, args.model)
    if "beta" not in run_config:
        print(f"{args.adapter}/run_config.yaml has no beta; rewards use DPO's usual beta = 0.1", file=sys.stderr)
    details = {"adapter": args.adapter, "model": args.model or run_config["model_name_or_path"],
               "dataset": args.dataset, "split": split}
    metrics, metrics_path, html_path = compare_on_dataset(
        model, processor, data, args.report, beta=float(run_config.get("beta", 0.1)),
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, do_sample=args.do_sample, seed=args.seed,
        run_dir=args.adapter, details=details)
    print(summary_table(metrics))
    print(f"metrics: {metrics_path}\nreport:  {html_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
