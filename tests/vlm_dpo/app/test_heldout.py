"""The held-out report as the app reads it: a hand-made report with known changes and hallucinations, then the
tiny run's own report, images and plots."""

import json

import pytest
from PIL import Image

from vlm_dpo.app.heldout import filter_rows, heldout_pair, plot_files, prepared_dir, read_report, report_image
from vlm_dpo.models.run_record import RunRecord


def scores(rouge_chosen, rouge_rejected, hallucinated, reward_margin=0.0):
    return {"rouge_chosen": rouge_chosen, "rouge_rejected": rouge_rejected,
            "hallucination": {"hallucinated": hallucinated, "bad": []}, "reward_margin": reward_margin}


def pair(question, base, tuned):
    return {"question": question, "chosen": "c", "rejected": "r", "base": "b", "tuned": "t",
            "scores": {"base": base, "tuned": tuned}}


# change = (tuned ROUGE gap - base ROUGE gap) + base hallucinated - tuned hallucinated
REPORT = [
    pair("What color is the circle?", scores(0.2, 0.5, False), scores(0.6, 0.1, False, 0.25)),  # +0.8: improved
    pair("Is there a red square?", scores(0.5, 0.1, False), scores(0.5, 0.1, True)),  # -1: regressed
    {"question": "Describe the image.", "chosen": "c", "rejected": "r", "base": "b", "tuned": "t"},  # not scored
    pair("Is there a blue circle?", scores(0.3, 0.3, True), scores(0.3, 0.3, True)),  # 0: unchanged
]


@pytest.fixture
def report_rows(tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "answers.jsonl").write_text("".join(json.dumps(row) + "\n" for row in REPORT) + "\n")
    (tmp_path / "report" / "metrics.json").write_text(json.dumps({"n": 4, "tuned_reward_accuracy": 0.5}))
    rows, metrics = read_report(tmp_path)
    assert metrics == {"n": 4, "tuned_reward_accuracy": 0.5}
    return rows


def test_read_report_classifies_every_pair(report_rows):
    assert [row["change"] for row in report_rows] == ["improved", "regressed", "unknown", "unchanged"]
    assert [row["question_type"] for row in report_rows] == ["color", "exists", "describe", "exists"]
    assert [row["tuned_hallucinated"] for row in report_rows] == [False, True, None, True]
    assert [row["tuned_reward_margin"] for row in report_rows] == [0.25, 0.0, None, 0.0]
    assert [row["index"] for row in report_rows] == [0, 1, 2, 3]


@pytest.mark.parametrize(("filters", "expected"), [
    ({}, [0, 1, 2, 3]),
    ({"change": "improved"}, [0]),
    ({"change": "regressed"}, [1]),
    ({"change": "unchanged"}, [3]),
    ({"question_type": "exists"}, [1, 3]),
    ({"hallucination": "tuned hallucinates"}, [1, 3]),
    ({"hallucination": "base hallucinates"}, [3]),
    ({"hallucination": "neither hallucinates"}, [0, 2]),
    ({"question_type": "exists", "hallucination": "base hallucinates"}, [3]),
    ({"question_type": "color", "change": "regressed"}, []),
])
def test_filters(report_rows, filters, expected):
    assert [row["index"] for row in filter_rows(report_rows, **filters)] == expected


def test_a_run_without_a_report_has_no_rows(tmp_path):
    assert read_report(tmp_path) == ([], {})


def test_plots_come_from_the_run_and_its_report_once_per_name(tmp_path):
    (tmp_path / "report").mkdir()
    for name in ("training_curves.png", "report/training_curves.png", "report/margins.png", "report/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert plot_files(tmp_path) == [tmp_path / "training_curves.png", tmp_path / "report" / "margins.png"]


def test_the_tiny_runs_report_pairs_with_its_heldout_images(session, tiny_run):
    from data_prep.prepare import load_prepared

    elsewhere = {"folder": tiny_run / "elsewhere", "model_name_or_path": "tiny-smolvlm", "vision": True}
    assert prepared_dir(session.record) == tiny_run / "data"
    assert prepared_dir(RunRecord(**elsewhere, dataset_name=str(tiny_run / "data"))) == tiny_run / "data"
    assert prepared_dir(RunRecord(**elsewhere, dataset_name="synthetic:8")) is None
    rows, metrics = read_report(tiny_run)
    answers = (tiny_run / "report" / "answers.jsonl").read_text().splitlines()
    assert len(rows) == len(answers) == metrics["n"] == 16  # the recipe's report_pairs
    test = load_prepared(tiny_run / "data")["test"]
    image = report_image(session.heldout, rows[3])
    assert image.tobytes() == test[3]["images"][0].convert("RGB").tobytes()
    assert heldout_pair(session.heldout, 3)["question"] == rows[3]["question"]
    assert report_image(session.heldout, rows[3] | {"question": "Something else?"}) is None
    assert report_image(None, rows[3]) is None
    assert isinstance(image, Image.Image)
