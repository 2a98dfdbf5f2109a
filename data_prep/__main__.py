"""Prepare a preference data set for DPO: read, clean, split, save, and say what was dropped.

    python -m data_prep --input openbmb/RLHF-V-Dataset --output data/rlhfv
    python -m data_prep --input rlhfv.parquet --output data/rlhfv --max_length 2048
    python -m data_prep --input synthetic:200 --output data/scenes --model tiny-smolvlm --max_length 512

Writes a ``datasets`` DatasetDict ("train", "test") to ``--output`` and ``--output/prep_report.json``.
"""

import argparse

DEFAULT_MODEL = "HuggingFaceTB/SmolVLM-256M-Instruct"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True,
                        help="hub data set id (owner/name), .parquet file / folder / glob, .json(l) file, "
                             "folder saved by datasets, or synthetic:N for N generated scenes")
    parser.add_argument("--output", required=True, help="folder to write the prepared DatasetDict and prep_report.json")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help="processor (hub id, folder or tiny-smolvlm) whose chat template and image splitting "
                             "count the tokens; loaded only with --max_length (default: %(default)s)")
    parser.add_argument("--max_length", type=int, default=1024,
                        help="drop pairs whose prompt (image tokens included) + longer answer exceed this many "
                             "tokens; use the trainer's max_length; 0 keeps all (default: %(default)s, TRL's)")
    parser.add_argument("--max_prompt_length", type=int, default=None,
                        help="text pairs only: cut the prompt's start so that the rendered prompt has at most this "
                             "many tokens (image pairs are never cut; default: no cut)")
    parser.add_argument("--max_completion_length", type=int, default=None,
                        help="text pairs only: cut each answer's end to at most this many tokens (default: no cut)")
    parser.add_argument("--processor_longest_edge", type=int, default=None,
                        help="longest edge the image processor scales images to before tiling, as the recipe's "
                             "processor_longest_edge (default: the processor's own, 2048 for SmolVLM-256M)")
    parser.add_argument("--longest_edge", type=int, default=512,
                        help="shrink images so that their longest edge is at most this many pixels; "
                             "the remedy for out-of-memory (default: %(default)s)")
    parser.add_argument("--test_size", type=float, default=0.1,
                        help="fraction held out as the test split, grouped by image; ignored when the input "
                             "has a test split (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the train/test split and of synthetic:N")
    parser.add_argument("--limit", type=int, default=None, help="read only the first N rows of each split")
    parser.add_argument("--split", default=None,
                        help="read only this split of the input (default: train, plus test if present; "
                             "all splits concatenated when there is no train)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from data_prep.prepare import prepare
    from vlm_dpo.models import HubUnavailableError, load_processor

    try:
        processor = None
        if args.max_length and args.processor_longest_edge:  # count tokens at the size the trainer will use
            processor = load_processor(args.model)
            processor.image_processor.size = {"longest_edge": args.processor_longest_edge}
        report = prepare(args.input, args.output, processor_name=args.model, processor=processor,
                         max_length=args.max_length or None,
                         longest_edge=args.longest_edge, test_size=args.test_size, seed=args.seed,
                         limit=args.limit, split=args.split, max_prompt_length=args.max_prompt_length,
                         max_completion_length=args.max_completion_length)
    except (FileNotFoundError, ValueError, HubUnavailableError) as error:  # the user's input, not our bug
        raise SystemExit(f"error: {error}") from None
    print(f"read {report['read']} rows ({report['layout']} layout, splits {', '.join(report['read_from'])})")
    print(f"kept {report['kept']}: " + ", ".join(f"{name} {count}" for name, count in report["splits"].items()))
    for reason, count in report["skipped"].items():
        print(f"skipped {count}: {reason}")
    print(f"written to {args.output} (report: {args.output}/prep_report.json)")
    return report


if __name__ == "__main__":
    main()
