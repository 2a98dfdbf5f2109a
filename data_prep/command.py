"""The ``prepare`` command's options and work, shared by ``python -m data_prep`` and ``vlm-dpo prepare``: they differ
only in how a model name becomes the processor that counts tokens (``vlm-dpo`` also builds its built-in models).

    python -m data_prep --dataset_name rlhfv.parquet --output_dir data/rlhfv --max_length 2048
"""

from dataclasses import dataclass, field

from data_prep.cli import check_writable, make_parser, parse
from data_prep.errors import UserError
from data_prep.options import PrepareOptions, check_limit
from data_prep.prepare import prepare
from data_prep.processors import at_training_size

DEFAULT_MODEL = "HuggingFaceTB/SmolVLM-256M-Instruct"
# Shorter spellings, kept as aliases of the fields' names (``--seed`` cannot be a field alias: training has its own).
ALIASES = {"--input": "--dataset_name", "--output": "--output_dir", "--model": "--model_name_or_path",
           "--longest_edge": "--image_longest_edge", "--seed": "--data_seed_split"}
DESCRIPTION = ("Read, clean, split and save a preference data set for DPO: a DatasetDict (train, test) in "
               "--output_dir and prep_report.json beside it (read = kept + skipped, with each skip's reason). "
               "Aliases: " + ", ".join(f"{short} = {name}" for short, name in ALIASES.items()) + ".")


@dataclass
class PrepareArguments(PrepareOptions):
    output_dir: str = field(default="", metadata={"help": (
        "folder to write the prepared DatasetDict (train, test) and prep_report.json (required)")})
    model_name_or_path: str = field(default=DEFAULT_MODEL, metadata={"help": (
        "model whose processor counts the tokens, at the size training uses (processor_longest_edge); loaded only "
        "when a token limit is set")})
    max_length: int = field(default=1024, metadata={"help": (
        "drop pairs whose prompt (image tokens included) + longer answer exceed this many tokens; use the "
        "trainer's max_length; 0 keeps all (TRL's default)")})
    limit: int | None = field(default=None, metadata={"help": "read only the first N rows of each split"})
    split: str | None = field(default=None, metadata={"help": (
        "read only this split of the input (default: train, plus test if present; all splits when there is no "
        "train)")})

    def __post_init__(self):
        super().__post_init__()
        if not self.output_dir:
            raise UserError("--output_dir is required: the folder to write the prepared data set to")
        check_limit("limit", self.limit)
        check_writable(self.output_dir, "--output_dir")

    @property
    def counts_tokens(self) -> bool:
        return bool(self.max_length or self.max_prompt_length or self.max_completion_length)


def parse_prepare(argv: list[str], prog: str) -> list:
    """``[PrepareArguments]`` from ``argv``, the aliases read as the fields they stand for."""
    argv = [ALIASES.get(name, name) + sep + value for name, sep, value in (arg.partition("=") for arg in argv)]
    parser = make_parser(PrepareArguments, prog, DESCRIPTION)
    if not {"-h", "--help"} & set(argv) and not any(arg.partition("=")[0] == "--dataset_name" for arg in argv):
        raise UserError(f"--dataset_name is required: the data to prepare (see {prog} --help)")
    return parse(parser, argv)


def run_prepare(args: PrepareArguments, load_processor) -> dict:
    """Prepare as ``args`` say, counting tokens with ``load_processor(model_name_or_path)``; print a summary and
    return the report."""
    processor = at_training_size(load_processor(args.model_name_or_path), args.processor_longest_edge) \
        if args.counts_tokens else None
    report = prepare(PrepareOptions.of(args), args.output_dir, processor=processor, model_name=args.model_name_or_path,
                     max_length=args.max_length or None, limit=args.limit, split=args.split)
    print(f"read {report['read']} rows ({report['layout']} layout, splits {', '.join(report['read_from'])})")
    print(f"kept {report['kept']}: " + ", ".join(f"{name} {count}" for name, count in report["splits"].items()))
    for reason, count in report["skipped"].items():
        print(f"skipped {count}: {reason}")
    print(f"written to {args.output_dir} (report: {args.output_dir}/prep_report.json)")
    return report
