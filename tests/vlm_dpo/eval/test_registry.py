"""The metric registry: well-formed, TRL's names where TRL logs the quantity, and what reads it."""

import json
import re
from pathlib import Path

import trl

from vlm_dpo.eval.registry import COUNTS, HIGHER, LOWER, METRIC_KEYS, METRICS, NEITHER, training_eval_keys
from vlm_dpo.report.compare import training_eval_results


def test_keys_unique_and_fields_valid():
    keys = METRIC_KEYS + [count.key for count in COUNTS]
    assert len(keys) == len(set(keys))
    for metric in METRICS:
        assert metric.direction in (HIGHER, LOWER, NEITHER), metric.key
        assert metric.label and metric.meaning and metric.group and callable(metric.compute), metric.key


def test_trl_names_are_what_the_installed_trl_logs():
    source = (Path(trl.__file__).parent / "trainer" / "dpo_trainer.py").read_text()
    logged = set(re.findall(r'_metrics\[mode\]\["((?:rewards|logps)/\w+)"\]', source))
    assert logged == {metric.trl for metric in METRICS if metric.trl}  # every one TRL logs, and no other
    for metric in METRICS:
        if metric.trl:
            assert metric.key == metric.trl.replace("/", "_"), metric.key  # as eval_results.json flattens them


def test_training_eval_results_reads_trls_keys_under_the_same_names(tmp_path):
    assert training_eval_results(tmp_path) == {}  # no eval_results.json: nothing to show
    results = {"n_eval_pairs": 4, "base_loss": 0.69, "tuned_rewards_accuracies": 0.75, "tuned_logps_chosen": -3.0,
               "base_hallucination_rate": 0.5}
    (tmp_path / "eval_results.json").write_text(json.dumps(results))
    assert training_eval_results(tmp_path) == {"train_eval_tuned_rewards_accuracies": 0.75,
                                               "train_eval_tuned_logps_chosen": -3.0, "train_eval_n_eval_pairs": 4}
    assert "base_rewards_margins" in training_eval_keys() and "tuned_win_rate" not in training_eval_keys()
