"""Where a run's time went (vlm_dpo.training.timing): phases, their table, and the run's ``timings_s``."""

import json
from pathlib import Path

import pytest

from vlm_dpo.training import timing
from vlm_dpo.training.timing import Stopwatch, phase

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def clock(monkeypatch):
    """A stopwatch on a fake clock that reads 0, 1, 2, ... seconds, one tick per reading."""
    ticks = iter(range(1000))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: float(next(ticks)))
    watch = Stopwatch().start()  # reads 0
    yield watch
    watch.stop()


def test_nested_and_repeated_phases_add_up_to_the_total(clock):
    with phase("load"):  # 1 .. 6
        with phase("load: weights"):  # 2 .. 3
            pass
        with phase("load: weights"):  # 4 .. 5: a phase entered twice adds up
            pass
    with clock.phase("train"):  # 7 .. 8
        pass
    clock.stop()  # 9
    assert clock.seconds() == {"load": 3.0, "load: weights": 2.0, "train": 1.0, "other": 3.0, "total": 9.0}


def test_phase_times_nothing_without_a_running_stopwatch(clock):
    clock.stop()
    with phase("report: answers"):
        pass
    assert clock.phases == {}
    assert timing._current is None


def test_table_lists_every_phase_with_seconds_minutes_and_share(clock):
    with phase("training"):  # 1 .. 91
        for _ in range(89):
            timing.time.perf_counter()
    clock.stop()  # 92, so 90 s training of 92
    lines = clock.table().splitlines()
    assert lines[0].split() == ["where", "the", "time", "went", "seconds", "min", "share"]
    assert lines[1].split() == ["training", "90.0", "1.5", "97.8%"]
    assert lines[2].split() == ["other", "2.0", "0.0", "2.2%"]
    assert lines[3].split() == ["total", "92.0", "1.5", "100.0%"]
    assert len({len(line) for line in lines}) == 1  # aligned columns


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_model_dir):
    from data_prep import PrepareOptions, prepare
    from vlm_dpo.models import load_processor

    out = tmp_path_factory.mktemp("timing") / "data"
    prepare(PrepareOptions("synthetic:16", image_longest_edge=64, test_size=0.25), out, model_name="tiny-smolvlm", processor=load_processor("tiny-smolvlm"), max_length=512)
    return out


def test_a_run_ends_with_its_timings_table_and_writes_them(prepared, tmp_path, capsys):
    import train

    out = tmp_path / "out"
    train.main(["--config", str(ROOT / "recipes/tiny.yaml"), "--max_steps", "1", "--output_dir", str(out),
                "--eval_strategy", "no", "--report_pairs", "2", "--dataset_name", str(prepared)])
    timings = json.loads((out / "eval_results.json").read_text())["timings_s"]
    phases = ["model/processor load", "data preparation", "trainer setup", "base evaluation", "training",
              "tuned evaluation", "saving", "report"]
    assert [name for name in timings if name in phases] == phases  # in the order they ran
    assert list(timings)[-2:] == ["other", "total"]
    assert all(value >= 0 for value in timings.values())
    assert sum(value for name, value in timings.items() if name != "total") == pytest.approx(timings["total"],
                                                                                             abs=0.1)
    printed = capsys.readouterr().out
    table = printed[printed.index("where the time went"):]
    assert printed.index("Held-out pairs") < printed.index("where the time went")  # after the summary
    assert all(name in table for name in phases) and table.strip().splitlines()[-1].startswith("total")
