"""``vlm-dpo eval`` (``python infer.py --benchmark ...``): the field's hallucination benchmarks, from their own files,
base vs tuned side by side (``--adapter``) or one model (``--model_name_or_path``).

    vlm-dpo eval --benchmark pope --adapter outputs/run --question_file coco_pope_random.json \\
        --question_file coco_pope_popular.json --question_file coco_pope_adversarial.json --image_folder val2014 \\
        --output_dir bench/pope
    vlm-dpo eval --benchmark chair --adapter outputs/run --annotation_file annotations/instances_val2014.json \\
        --image_folder val2014 --limit 500 --output_dir bench/chair
    vlm-dpo eval --benchmark amber --adapter outputs/run --data_dir AMBER/data --image_folder AMBER/image \\
        --output_dir bench/amber
    vlm-dpo eval --benchmark scenes --adapter outputs/demo --output_dir bench/scenes     # offline, built here

Each model's answers are appended to ``OUTPUT_DIR/answers_{base,tuned,model}.jsonl`` as they come, so an interrupted
run started again with the same command asks only the questions not answered yet. Scores follow the benchmarks'
reference scorers (``vlm_dpo.eval.benchmarks``); ``OUTPUT_DIR/benchmark.json`` holds every figure of every model,
``benchmark.html`` the table, and the terminal shows it too. Nothing is fetched: a missing file is a one-line error.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from data_prep.cli import check_writable
from data_prep.errors import ImageError, MissingInputError, UserError
from data_prep.images import open_image
from data_prep.synthetic.scenes_pope import write_benchmark
from vlm_dpo.eval.benchmarks import amber, chair, pope, scenes
from vlm_dpo.eval.generate import generate_answers, read_saved_answers
from vlm_dpo.models import is_vision_processor, load_model_and_processor
from vlm_dpo.models.adapter import load_tuned
from vlm_dpo.models.run_record import DEFAULT_LONGEST_EDGE
from vlm_dpo.report.benchmark import write_benchmark_report

BENCHMARKS = ("pope", "chair", "amber", "scenes")
# Longest answer each benchmark needs: a yes/no or a count is short, a description is not.
MAX_NEW_TOKENS = {"pope": 16, "scenes": 24, "chair": 128, "amber": 128}


@dataclass
class BenchmarkArguments:
    benchmark: str = field(metadata={"help": "pope, chair, amber or scenes (built offline from the scene generator)"})
    output_dir: str = field(metadata={"help": "folder for answers_*.jsonl, benchmark.json and benchmark.html"})
    adapter: str | None = field(default=None, metadata={
        "help": "training output folder: its base (adapter off) and tuned model are both scored"})
    model_name_or_path: str | None = field(default=None, metadata={
        "help": "one model to score (hub id, folder or built-in name); with --adapter, the base to put it on"})
    question_file: list[str] = field(default_factory=list, metadata={"action": "extend", "help": (
        "pope: a question file as published (coco_pope_random.json, ...; repeat for several); amber: the query "
        "file (default: DATA_DIR/query/query_all.json)")})
    image_folder: str | None = field(default=None, metadata={"help": "pope / chair: COCO's images; amber: AMBER's"})
    annotation_file: str | None = field(default=None, metadata={"help": "chair: COCO's instances_*.json"})
    captions_file: str | None = field(default=None, metadata={
        "help": "chair: COCO's captions_*.json, whose objects also count as present (as the reference)"})
    data_dir: str | None = field(default=None, metadata={"help": (
        "amber: AMBER's data/ folder (annotations.json, relation.json, safe_words.txt, query/); scenes: a folder "
        "written by python -m data_prep.synthetic.scenes_pope (default: OUTPUT_DIR/scenes_data, built here)")})
    scenes: int = field(default=300, metadata={"help": "scenes: how many scenes to build (each gives 7 questions)"})
    limit: int | None = field(default=None, metadata={"help": "ask only the first N questions of each split"})
    batch_size: int = field(default=8, metadata={"help": "questions generated together"})
    max_new_tokens: int | None = field(default=None, metadata={
        "help": "longest answer (default: 16 pope, 24 scenes, 128 chair and amber)"})
    image_longest_edge: int | None = field(default=None, metadata={
        "help": "shrink images to this longest edge, as data_prep does (default: the run's, else 512)"})

    def __post_init__(self):
        if self.benchmark not in BENCHMARKS:
            raise UserError(f"--benchmark {self.benchmark!r}: choose one of {', '.join(BENCHMARKS)}")
        if not (self.adapter or self.model_name_or_path):
            raise UserError("give --adapter OUTPUT_DIR (base vs tuned) or --model_name_or_path MODEL (one model)")
        for name in ("scenes", "limit", "batch_size", "max_new_tokens", "image_longest_edge"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name} must be at least 1, got {value}")
        needs = {"pope": ("question_file", "image_folder"), "chair": ("annotation_file", "image_folder"),
                 "amber": ("data_dir", "image_folder"), "scenes": ()}[self.benchmark]
        missing = [f"--{name}" for name in needs if not getattr(self, name)]
        if missing:
            raise UserError(f"--benchmark {self.benchmark} needs {' and '.join(missing)} (see vlm-dpo eval --help)")
        check_writable(self.output_dir, "--output_dir")


ARGUMENTS = (BenchmarkArguments,)


def load_questions(args: BenchmarkArguments) -> tuple[list[dict], dict]:
    """(the questions, what the scorer needs besides the answers), read from the benchmark's own files."""
    if args.benchmark == "pope":
        return pope.load_questions(args.question_file, args.image_folder), {}
    if args.benchmark == "chair":
        return chair.load_questions(args.annotation_file, args.image_folder, args.captions_file), {}
    if args.benchmark == "amber":
        data = Path(args.data_dir)
        query = args.question_file[0] if args.question_file else data / "query" / "query_all.json"
        questions = amber.load_questions(query, args.image_folder, data / "annotations.json")
        generative = any(q["type"] == amber.GENERATIVE for q in questions)
        words = amber.load_word_lists(data / "relation.json", data / "safe_words.txt") if generative else None
        return questions, {"words": words}
    folder = Path(args.data_dir) if args.data_dir else Path(args.output_dir) / "scenes_data"
    if not (folder / "scenes_counts.json").is_file():
        if args.data_dir:
            raise MissingInputError(f"--data_dir {folder} holds no scenes benchmark (scenes_counts.json): write one "
                                    "with python -m data_prep.synthetic.scenes_pope --output_dir DIR")
        write_benchmark(folder, args.scenes)
    return scenes.load_questions(folder), {}


SCORERS = {"pope": pope.score, "chair": chair.score, "amber": amber.score, "scenes": scenes.score}


def first_of_each_split(questions: list[dict], limit: int | None) -> list[dict]:
    """The first ``limit`` questions of each split (POPE's three, AMBER's dimensions), in file order."""
    if limit is None:
        return questions
    seen: dict[str, int] = {}
    kept = []
    for question in questions:
        split = question.get("split") or question.get("dimension") or "all"
        seen[split] = seen.get(split, 0) + 1
        if seen[split] <= limit:
            kept.append(question)
    return kept


def answer_all(model, processor, questions: list[dict], path: Path, *, role: str, use_adapter: bool,
               longest_edge: int, batch_size: int, max_new_tokens: int, options: dict, skipped: dict) -> dict:
    """Every question answered by one model, resuming from ``path``; new answers are appended as they come.
    Images that cannot be read are counted in ``skipped`` (reason -> ids) and not asked."""
    answers = read_saved_answers(path, "id")
    pending = [q for q in questions if q["id"] not in answers and q["id"] not in skipped.get("image_unreadable", ())]
    with path.open("a") as out, tqdm(total=len(questions), initial=len(questions) - len(pending), desc=role,
                                     unit="question", dynamic_ncols=True) as bar:
        for start in range(0, len(pending), batch_size):
            batch, images = [], []
            for question in pending[start:start + batch_size]:
                try:
                    images.append(open_image(question["image"], longest_edge))
                    batch.append(question)
                except ImageError:
                    skipped.setdefault("image_unreadable", set()).add(question["id"])
                    bar.update(1)
            if not batch:
                continue
            texts = generate_answers(model, processor, images, [q["question"] for q in batch], use_adapter=use_adapter,
                                     batch_size=batch_size, max_new_tokens=max_new_tokens, progress=False, **options)
            for question, text in zip(batch, texts):
                answers[question["id"]] = text
                out.write(json.dumps({"id": question["id"], "answer": text}, ensure_ascii=False) + "\n")
            out.flush()
            bar.update(len(batch))
    return answers


def run(args: BenchmarkArguments) -> int:
    questions, extra = load_questions(args)
    questions = first_of_each_split(questions, args.limit)
    missing = {q["id"] for q in questions if not Path(q["image"]).is_file()}
    asked = [q for q in questions if q["id"] not in missing]
    if not asked:
        first = questions[0]["image"] if questions else "-"
        raise MissingInputError(f"none of the {len(questions)} questions' images is in --image_folder "
                                f"{args.image_folder} (first looked for: {first})")
    if args.adapter:
        model, processor, record = load_tuned(args.adapter, args.model_name_or_path)
        roles = [("base", False, {}), ("tuned", True, record.tuned_generation)]
        longest_edge = args.image_longest_edge or record.image_longest_edge
    else:
        model, processor = load_model_and_processor(args.model_name_or_path)
        roles = [("model", True, {})]
        longest_edge = args.image_longest_edge or DEFAULT_LONGEST_EDGE
    if not is_vision_processor(processor):
        raise UserError(f"{args.adapter or args.model_name_or_path} is a text model; the benchmarks ask about images")
    model.eval()
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    skipped: dict[str, set] = {}
    results = {}
    known = {q["id"] for q in asked}
    for role, use_adapter, options in roles:
        answers = answer_all(model, processor, asked, output_dir / f"answers_{role}.jsonl", role=role,
                             use_adapter=use_adapter, longest_edge=longest_edge, batch_size=args.batch_size,
                             max_new_tokens=args.max_new_tokens or MAX_NEW_TOKENS[args.benchmark], options=options,
                             skipped=skipped)
        results[role] = SCORERS[args.benchmark](questions, {k: v for k, v in answers.items() if k in known}, **extra)
    summary = {
        "benchmark": args.benchmark, "adapter": args.adapter,
        "model": args.model_name_or_path or (record.model_name_or_path if args.adapter else None),
        "n_questions": len(questions), "n_asked": len(asked) - len(skipped.get("image_unreadable", ())),
        "skipped": {"image_missing": len(missing), **{reason: len(ids) for reason, ids in skipped.items()}},
        "limit": args.limit, "max_new_tokens": args.max_new_tokens or MAX_NEW_TOKENS[args.benchmark],
        "image_longest_edge": longest_edge, "results": results,
    }
    table, html_path = write_benchmark_report(summary, output_dir)
    print(table)
    print(f"\nbenchmark: {output_dir / 'benchmark.json'}\nreport:    {html_path}")
    return 0
