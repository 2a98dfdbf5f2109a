"""score_pairs / compare / render_html / the terminal tables on hand-made rows: every aggregate checked by hand.

The embedding model is replaced by word-set overlap (Jaccard) here, so these tests need no model;
tests/vlm_dpo/eval/test_embeddings.py and tests/integration/test_infer.py run the real one.
"""

import json
import re

import pytest
from PIL import Image

from vlm_dpo.eval.aggregate import compare
from vlm_dpo.eval.scoring import pair_change, score_pairs
from vlm_dpo.eval.similarity import words
from vlm_dpo.report.html import render_html, write_report
from vlm_dpo.report.plots import make_plots
from vlm_dpo.report.table import summary_table, training_summary

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
    assert metrics["tuned_rewards_accuracies"] == 1.0 and metrics["tuned_rewards_margins"] == pytest.approx(1.5)
    assert metrics["base_rewards_accuracies"] == 0.0 and metrics["base_rewards_margins"] == 0.0
    assert metrics["base_logp_accuracy"] == 0.5 and metrics["base_mean_logp_margin"] == 0.0
    assert metrics["tuned_logps_chosen"] == -6.0 and metrics["tuned_mean_token_logp_rejected"] == -2.25
    # pair 0: chosen 0.5 * (-4 - -6) = 1, rejected 0.5 * (-7 - -5) = -1; pair 1: chosen 0, rejected -1
    assert metrics["tuned_rewards_chosen"] == 0.5 and metrics["tuned_rewards_rejected"] == -1.0
    assert metrics["base_mean_token_logp_external"] == -5.0 and metrics["delta_mean_token_logp_external"] == -0.5
    assert metrics["base_mean_answer_words"] == 6.0 and metrics["tuned_mean_answer_words"] == 4.5
    assert (metrics["n_improved"], metrics["n_regressed"], metrics["n_hallucinations_removed"]) == (2, 0, 2)
    # per question type: only pair 0 has ground truth, a colour question
    assert metrics["n_color"] == 1 and "n_describe" not in metrics and "n_other" not in metrics
    assert (metrics["base_attribute_accuracy_color"], metrics["tuned_attribute_accuracy_color"]) == (0.0, 1.0)
    assert (metrics["base_hallucination_rate_color"], metrics["tuned_rewards_accuracies_color"]) == (1.0, 1.0)
    table = summary_table(metrics).splitlines()
    assert table[0].split() == ["metric", "base", "tuned", "delta"]
    assert "rewards_accuracies                     0.000     1.000     1.000" in table
    assert table[-1] == "pairs: 2 (with ground truth: 1); improved 2, regressed 0"


def test_rates_without_ground_truth_or_logps_are_null():
    rows = [{k: v for k, v in row.items() if k != "logp"} for row in hand_rows()[1:]]
    metrics = compare(score_pairs(rows, cosine=jaccard))
    assert metrics["base_hallucination_rate"] is None and metrics["delta_hallucination_rate"] is None
    assert metrics["tuned_rewards_accuracies"] is None and metrics["delta_rewards_margins"] is None
    names = [line.split()[0] for line in summary_table(metrics).splitlines()]
    assert "hallucination_rate" not in names and "proxy_hallucination_rate" in names  # no values: no line


def test_report_is_self_contained_with_anchors(tmp_path):
    rows = score_pairs(hand_rows(), beta=0.5, cosine=jaccard)
    rows[0]["question"] = "What <b>color</b> & why? http://example.com"
    rows[1]["tuned"] = "<script>alert('x')</script> A man."
    rows[1]["scores"]["tuned"]["hallucination"]["bad"] = ["<img src=x onerror=alert(1)>"]
    metrics = compare(rows) | {"split": "<i>test</i>", "train_eval_tuned_rewards_accuracies": 0.75,
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
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; A man." in page  # an answer, escaped
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    assert "<code>&lt;i&gt;test&lt;/i&gt;</code>" in page
    # the agreement table: this report's tuned reward accuracy (1.000) next to eval_results.json's (0.750)
    assert "<tr><td>reward accuracy, tuned</td><td>1.000</td><td>0.750</td></tr>" in page
    assert "reward accuracy, base" not in page  # no train_eval_ number for it
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no remote resource
    assert "<script" not in page and "@import" not in page and "url(" not in page
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["n"] == 2
    # the headline leads with comparisons fair to both models; reward accuracy (0 for the base) is not among them
    cards = re.findall(r'<div class="headline">(.*?)</div>\s*(?:<h2|<section|<table|<p)', page, re.S)[0]
    labels = re.findall(r"<div><span>(.*?)</span>", cards)
    assert labels[0] == "hallucination rate" and "reward accuracy" not in labels
    answers = [json.loads(line) for line in (tmp_path / "out" / "answers.jsonl").read_text().splitlines()]
    assert [a["tuned"] for a in answers] == [row["tuned"] for row in rows] and "scores" in answers[0]
    assert render_html(rows, images, metrics).count('class="card"') == 2


def test_tie_in_rouge_loses():
    row = {"question": "Q?", "chosen": "there is a red circle", "rejected": "there is a blue square",
           "base": "there is a", "tuned": "a red circle", "ground_truth": None}
    scores = score_pairs([row], cosine=jaccard)[0]["scores"]
    assert scores["base"]["rouge_chosen"] == scores["base"]["rouge_rejected"] and not scores["base"]["closer_rouge"]
    assert scores["tuned"]["closer_rouge"]


def test_training_summary_lists_registry_metrics_from_eval_results(tmp_path):
    results = {"n_eval_pairs": 8, "global_step": 2, "base_loss": 0.6931, "tuned_loss": 0.5,
               "base_rewards_accuracies": 0.0, "tuned_rewards_accuracies": 0.625, "tuned_rewards_margins": 0.1,
               "base_hallucination_rate": 0.5, "tuned_hallucination_rate": 0.25, "delta_hallucination_rate": -0.25}
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.html").write_text("")
    lines = training_summary(tmp_path, results).splitlines()
    assert "Held-out pairs: 8   steps: 2" in lines
    assert [line.split()[0] for line in lines[lines.index("Held-out pairs: 8   steps: 2") + 2:][:3]] == [
        "loss", "rewards_accuracies", "hallucination_rate"]  # rewards_margins has no base value: no line
    assert "rewards_accuracies                      0.0000      0.6250" in lines
    assert f"Report: {tmp_path}/report/report.html" in lines
    assert lines[-1] == f'Next: python infer.py --adapter {tmp_path} --prompt "YOUR QUESTION"'  # no processor: text


def test_report_shows_the_dodge_probes_per_question_type():
    def row(question, base, tuned):
        return {"question": question, "chosen": base, "rejected": "There is a green star.", "base": base,
                "tuned": tuned, "ground_truth": SCENE}

    rows = score_pairs([row("Is there a red circle?", "Yes, there is a red circle.", "Yes, there is a red circle."),
                        row("Is there a blue circle?", "No, there is no blue circle.", "Yes, there is a red circle."),
                        row("How many circles are there?", "There is one circle in the image.", "There is one.")],
                       cosine=jaccard)
    metrics = compare(rows)
    page = render_html(rows, [None] * 3, metrics)
    assert 'href="#probes"' in page and 'id="probes"' in page
    # exists: yes and no, so always-yes gets 0.5; the tuned dodge gets exactly that (marked), base gets both right
    assert ('<tr><td>exists</td><td>2</td><td>0.500</td><td class="">1.000</td><td class="bad">0.500</td>'
            '<td>1.000</td><td>0.500</td></tr>') in page
    # one count question: the baseline is 1, so no accuracy shows looking; "There is one." names no circle
    assert ('<tr><td>count</td><td>1</td><td>1.000</td><td class="bad">1.000</td><td class="bad">0.000</td>'
            '<td>1.000</td><td>0.000</td></tr>') in page
    assert "on other objects): 0;" in page  # no blue anywhere: the absent blue circle is not adversarial
    assert "<td>yes ratio, existence</td><td>0.500</td><td>1.000</td>" in page  # in the summary table
    no_scene = score_pairs(hand_rows()[1:], beta=0.5, cosine=jaccard)
    assert 'id="probes"' not in render_html(no_scene, [None], compare(no_scene))


def test_the_loss_panel_names_each_stages_loss():
    from vlm_dpo.report.plots import loss_title

    assert loss_title([{"step": 1, "loss": 0.7}, {"step": 1, "eval_loss": 0.6}]) == "DPO loss"
    assert loss_title([{"step": 1, "loss": 2.0, "stage": "sft"}, {"step": 2, "loss": 1.5, "stage": "sft"},
                       {"step": 3, "loss": 0.7, "stage": "dpo"}]) == "SFT loss (NLL), then DPO loss"
    assert loss_title([{"step": 1, "loss": 2.0, "stage": "coh"}, {"step": 1, "train_runtime": 3.0}]) == "CoH loss (NLL)"
    assert loss_title([]) == "DPO loss"
