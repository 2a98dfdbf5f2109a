"""score_pairs / compare / render_html on hand-made rows: every aggregate checked by hand.

The embedding model is replaced by word-set overlap (Jaccard) here, so these tests need no model;
tests/test_embeddings.py and tests/test_infer.py run the real one.
"""

import json
import re

import pytest
from PIL import Image

from vlm_dpo.eval.similarity import words
from vlm_dpo.report import compare, make_plots, pair_change, render_html, score_pairs, summary_table, write_report

SCENE = json.dumps({"objects": [{"shape": "circle", "color": "red", "bbox": [1, 1, 9, 9]}]})


def jaccard(texts_a, texts_b):
    return [len(set(words(a)) & set(words(b))) / max(len(set(words(a)) | set(words(b))), 1)
            for a, b in zip(texts_a, texts_b)]


def logp(base_chosen, base_rejected, tuned_chosen, tuned_rejected, tokens=4):
    return {"base": {"chosen": base_chosen, "rejected": base_rejected, "chosen_tokens": tokens, "rejected_tokens": tokens},
            "tuned": {"chosen": tuned_chosen, "rejected": tuned_rejected, "chosen_tokens": tokens,
                      "rejected_tokens": tokens}}


def hand_rows():
    return [
        # scene pair: base repeats the rejected (hallucinated) answer, tuned says the chosen one
        {"question": "What color is the circle?", "chosen": "The circle is red.", "rejected": "The circle is blue.",
         "base": "The circle is blue.", "tuned": "The circle is red.", "ground_truth": SCENE,
         "logp": logp(-6.0, -5.0, -4.0, -7.0)},
        # no ground truth: base names the dog that only the rejected answer has; tuned equals the chosen answer
        {"question": "Describe the image.", "chosen": "A man holds a cup.", "rejected": "A man holds a cup and a dog.",
         "base": "A man holds a cup and a dog.", "tuned": "A man holds a cup.", "ground_truth": None,
         "logp": logp(-8.0, -9.0, -8.0, -11.0)},
    ]


def test_generation_equal_to_chosen_or_rejected_and_known_hallucinations():
    rows = score_pairs(hand_rows(), beta=0.5, cosine=jaccard)
    base, tuned = rows[0]["scores"]["base"], rows[0]["scores"]["tuned"]
    assert tuned["rouge_chosen"] == 1.0 and tuned["closer_rouge"] and tuned["closer_embedding"]
    assert base["rouge_rejected"] == 1.0 and not base["closer_rouge"] and not base["closer_embedding"]
    assert base["hallucination"]["bad"] == ["blue circle"] and base["correct"] is False
    assert not tuned["hallucination"]["hallucinated"] and tuned["correct"] is True
    assert rows[1]["scores"]["base"]["hallucination"] == {"kind": "proxy", "mentions": 3, "bad": ["dog"],
                                                          "hallucinated": True}
    # rewards: 0.5 * (tuned - base); pair 0: chosen +1.0, rejected -1.0, margin 2.0
    assert (tuned["reward_chosen"], tuned["reward_rejected"], tuned["reward_margin"]) == pytest.approx((1.0, -1.0, 2.0))
    assert base["reward_margin"] == 0.0 and not base["chosen_wins"] and tuned["chosen_wins"]
    assert base["logp_margin"] == -1.0 and tuned["token_logp_chosen"] == -1.0
    # change: ROUGE gap from -x to +x, plus 1 for the removed hallucination
    gap = base["rouge_rejected"] - base["rouge_chosen"]
    assert pair_change(rows[0]) == pytest.approx(2 * gap + 1)


def test_compare_aggregates_by_hand():
    metrics = compare(score_pairs(hand_rows(), beta=0.5, cosine=jaccard),
                      external={"base": ([-20.0, -30.0], [4, 6]), "tuned": ([-24.0, -30.0], [4, 6])})
    assert (metrics["n"], metrics["n_ground_truth"], metrics["n_proxy"]) == (2, 1, 1)
    assert metrics["base_win_rate"] == 0.0 and metrics["tuned_win_rate"] == 1.0 and metrics["delta_win_rate"] == 1.0
    assert metrics["tuned_win_rate_embedding"] == 1.0 and metrics["tuned_mean_rouge_l_chosen"] == 1.0
    assert metrics["base_hallucination_rate"] == 1.0 and metrics["tuned_hallucination_rate"] == 0.0
    assert metrics["base_hallucination_mention_rate"] == 1.0  # 1 false mention out of 1
    assert metrics["base_proxy_hallucination_rate"] == 1.0 and metrics["tuned_proxy_hallucination_rate"] == 0.0
    assert metrics["base_proxy_hallucination_mention_rate"] == pytest.approx(1 / 3)  # dog out of man, cup, dog
    assert metrics["base_attribute_accuracy"] == 0.0 and metrics["tuned_attribute_accuracy"] == 1.0
    # pair 0 margin 0.5 * (3 - -1) = 2.0; pair 1: 0.5 * (3 - 1) = 1.0
    assert metrics["tuned_reward_accuracy"] == 1.0 and metrics["tuned_mean_reward_margin"] == pytest.approx(1.5)
    assert metrics["base_reward_accuracy"] == 0.0 and metrics["base_mean_reward_margin"] == 0.0
    assert metrics["base_logp_accuracy"] == 0.5 and metrics["base_mean_logp_margin"] == 0.0
    assert metrics["tuned_mean_logp_chosen"] == -6.0 and metrics["tuned_mean_token_logp_rejected"] == -2.25
    assert metrics["base_mean_token_logp_external"] == -5.0 and metrics["delta_mean_token_logp_external"] == -0.5
    assert metrics["base_mean_answer_words"] == 6.0 and metrics["tuned_mean_answer_words"] == 4.5
    assert (metrics["n_improved"], metrics["n_regressed"], metrics["n_hallucinations_removed"]) == (2, 0, 2)
    assert "win_rate" in summary_table(metrics)


def test_rates_without_ground_truth_or_logps_are_null():
    rows = [{k: v for k, v in row.items() if k != "logp"} for row in hand_rows()[1:]]
    metrics = compare(score_pairs(rows, cosine=jaccard))
    assert metrics["base_hallucination_rate"] is None and metrics["delta_hallucination_rate"] is None
    assert metrics["tuned_reward_accuracy"] is None
    names = [line.split()[0] for line in summary_table(metrics).splitlines()]
    assert "hallucination_rate" not in names and "proxy_hallucination_rate" in names  # no values: no line


def test_report_is_self_contained_with_anchors(tmp_path):
    rows = score_pairs(hand_rows(), beta=0.5, cosine=jaccard)
    rows[0]["question"] = "What <b>color</b> & why? http://example.com"
    metrics = compare(rows) | {"split": "test", "train_eval_tuned_rewards_accuracies": 1.0,
                               "train_eval_n_eval_pairs": 2}
    plots = make_plots(rows, tmp_path, beta=0.5, log_history=[{"step": 1, "loss": 0.69}, {"step": 2, "loss": 0.5}])
    assert set(plots) == {"Training curves", "Margins, base vs tuned", "Log-probs: in-distribution vs external text"}
    images = [Image.new("RGB", (30, 20), "red"), Image.effect_noise((1024, 768), 60)]  # a scene and a "photo"
    _, html_path = write_report(rows, images, metrics, tmp_path / "out", plots)
    page = html_path.read_text()
    assert page.count('class="card"') == 2 and page.count("data:image/png;base64,") == 1 + 3
    assert page.count("data:image/jpeg;base64,") == 1 and len(page) < 1_000_000  # the photo is a small thumbnail
    for anchor in ("summary", "plots", "best", "worst", "pairs", "pair-0", "pair-1"):
        assert f'id="{anchor}"' in page and f'href="#{anchor}"' in page
    assert "&lt;b&gt;color&lt;/b&gt; &amp; why?" in page and "<b>color</b>" not in page
    assert "eval_results.json" in page  # the agreement table
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no remote resource
    assert "<script" not in page and "@import" not in page and "url(" not in page
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["n"] == 2
    answers = [json.loads(line) for line in (tmp_path / "out" / "answers.jsonl").read_text().splitlines()]
    assert [a["tuned"] for a in answers] == [row["tuned"] for row in rows] and "scores" in answers[0]
    assert render_html(rows, images, metrics).count('class="card"') == 2
