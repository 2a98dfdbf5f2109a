"""compare_on_dataset on the tiny model: log-probs given by the training run's evaluation are taken, not computed
again, and give the metrics that computing them gives; the Yes / No margins of existence questions."""

import json

import pytest
import torch
from PIL import Image

SIDES = ("chosen", "rejected", "chosen_tokens", "rejected_tokens")
SCENE = {"objects": [{"shape": "circle", "color": "red", "bbox": [1, 1, 9, 9]},
                     {"shape": "square", "color": "blue", "bbox": [12, 1, 20, 9]}]}
PAIRS = [("Is there a red circle?", "Yes, there is a red circle.", "No, there is no red circle.", SCENE),
         ("Is there a blue circle?", "No, there is no blue circle.", "Yes, there is a blue circle.", SCENE),
         ("How many squares are there?", "There is one square in the image.", "There are two squares in the image.",
          SCENE),
         ("Is there a red square?", "No, there is no red square.", "Yes, there is a red square.", None)]


@pytest.fixture(scope="module")
def pairs():
    from datasets import Dataset

    images = [Image.new("RGB", (24, 12), color) for color in ("red", "blue", "white", "green")]
    return Dataset.from_dict({
        "images": [[image] for image in images],
        "prompt": [[{"role": "user", "content": q}] for q, *_ in PAIRS],
        "chosen": [[{"role": "assistant", "content": c}] for _, c, _, _ in PAIRS],
        "rejected": [[{"role": "assistant", "content": r}] for _, _, r, _ in PAIRS],
        "ground_truth": [json.dumps(g) if g else "" for *_, g in PAIRS],
    })


@pytest.fixture
def spy(monkeypatch):
    """Record the answer sets every answer_set_logprobs call scores; no embedding model (cosine 0)."""
    import vlm_dpo.eval.compare as compare
    import vlm_dpo.eval.embeddings as embeddings

    calls, real = [], compare.answer_set_logprobs

    def recording(model, processor, images, questions, answer_sets, **kwargs):
        calls.append(answer_sets)
        return real(model, processor, images, questions, answer_sets, **kwargs)

    monkeypatch.setattr(compare, "answer_set_logprobs", recording)
    monkeypatch.setattr(embeddings, "cosine", lambda a, b: [0.0] * len(a))
    return calls


def trainer_logps(model, processor, pairs, use_adapter: bool) -> dict:
    """The per-pair log-probs as DPOTrainer's evaluation gets them: TRL's vision collator, one forward, summed."""
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    from vlm_dpo.eval.functional import sequence_logps

    batch = DataCollatorForVisionPreference(processor)([dict(row) for row in pairs])
    mask = batch.pop("completion_mask")
    with torch.inference_mode(), (model.disable_adapter() if not use_adapter else torch.enable_grad()):
        sums, counts = sequence_logps(model(**batch).logits, batch["input_ids"], mask)
    n = len(pairs)  # TRL stacks the chosen rows, then the rejected ones
    return {"chosen": sums[:n].tolist(), "rejected": sums[n:].tolist(), "chosen_tokens": counts[:n].int().tolist(),
            "rejected_tokens": counts[n:].int().tolist()}


def test_given_logps_are_taken_not_recomputed(tiny_peft, pairs, spy, tmp_path):
    from vlm_dpo.eval.logprobs import external_sentences
    from vlm_dpo.report.compare import compare_on_dataset

    model, processor = tiny_peft
    options = {"beta": 0.1, "max_new_tokens": 3, "batch_size": 2}
    computed, _, _ = compare_on_dataset(model, processor, pairs, tmp_path / "computed", **options)
    assert [len(sets) for sets in spy] == [3, 3]  # chosen, rejected, external; base then tuned
    spy.clear()
    given = {"base": trainer_logps(model, processor, pairs, False), "tuned": trainer_logps(model, processor, pairs, True)}
    taken, _, _ = compare_on_dataset(model, processor, pairs, tmp_path / "taken", given_logps=given, **options)
    assert spy == [[external_sentences(4)]] * 2  # only the external text was scored
    for key, value in computed.items():
        if isinstance(value, float):
            assert taken[key] == pytest.approx(value, abs=1e-3), key
        else:
            assert taken[key] == value, key
    assert computed["tuned_logps_chosen"] != computed["base_logps_chosen"]  # the adapter matters: a real check

    # the given numbers are the ones used: one nat more on every tuned chosen answer moves the means by 1 and beta
    shifted = {**given, "tuned": {**given["tuned"], "chosen": [x + 1.0 for x in given["tuned"]["chosen"]]}}
    moved, _, _ = compare_on_dataset(model, processor, pairs, tmp_path / "moved", given_logps=shifted, **options)
    assert moved["tuned_logps_chosen"] == pytest.approx(taken["tuned_logps_chosen"] + 1.0)
    assert moved["tuned_rewards_chosen"] == pytest.approx(taken["tuned_rewards_chosen"] + 0.1)
    assert moved["base_logps_chosen"] == taken["base_logps_chosen"]

    # one model given, the other computed
    spy.clear()
    half, _, _ = compare_on_dataset(model, processor, pairs, tmp_path / "half", given_logps={"tuned": given["tuned"]},
                                    **options)
    assert [len(sets) for sets in spy] == [3, 1] and half["base_logps_chosen"] == computed["base_logps_chosen"]


def test_given_logps_of_the_wrong_length_are_refused(tiny_peft, pairs, spy, tmp_path):
    from vlm_dpo.report.compare import compare_on_dataset

    model, processor = tiny_peft
    short = {side: [0.0] * 3 for side in SIDES}
    with pytest.raises(ValueError, match=r"given_logps\['base'\] needs chosen, rejected.*one value per pair \(4\)"):
        compare_on_dataset(model, processor, pairs, tmp_path, beta=0.1, max_new_tokens=1, given_logps={"base": short})


def test_yes_no_margins_of_existence_questions_with_a_scene(tiny_peft, pairs, monkeypatch):
    import vlm_dpo.eval.compare as compare
    import vlm_dpo.eval.logprobs as logprobs
    from data_prep.chat import message_text
    from vlm_dpo.eval.compare import yes_no_margins

    model, processor = tiny_peft
    rows = [{"question": message_text(p), "ground_truth": g} for p, g in zip(pairs["prompt"], pairs["ground_truth"])]
    images = [imgs[0].convert("RGB") for imgs in pairs["images"]]
    yes_no_margins(model, processor, images, rows, batch_size=2)
    # the tiny tokenizer starts "Yes, ..." and "No, ..." with the same token (a space): no margin to read
    assert not any("no_minus_yes" in row for row in rows)

    monkeypatch.setattr(compare, "first_answer_tokens", lambda processor, question, answers, prefix=None: [5, 9])
    yes_no_margins(model, processor, images, rows, batch_size=2)
    assert ["no_minus_yes" in row for row in rows] == [True, True, False, False]  # not a count, not without a scene
    expected = {m: logprobs.next_token_logprobs(model, processor, images[:2], [r["question"] for r in rows[:2]],
                                                [[5, 9]] * 2, use_adapter=m == "tuned") for m in ("base", "tuned")}
    for i in range(2):
        for m in ("base", "tuned"):
            assert rows[i]["no_minus_yes"][m] == pytest.approx(expected[m][i][1] - expected[m][i][0], abs=1e-5)
    assert rows[0]["no_minus_yes"]["base"] != pytest.approx(rows[0]["no_minus_yes"]["tuned"])


def test_a_chain_of_hindsight_run_is_asked_and_scored_after_its_phrase(tiny_peft, pairs, spy, monkeypatch, tmp_path):
    """tuned_generation reaches the tuned model's generation only; every scored answer, both models', follows the
    positive phrase; the yes/no margin is read after it."""
    import vlm_dpo.eval.compare as compare
    from vlm_dpo.report.compare import compare_on_dataset

    asked, margins, real = [], [], compare.generate_answers
    monkeypatch.setattr(compare, "generate_answers", lambda *a, **kw: asked.append(kw) or real(*a, **kw))
    monkeypatch.setattr(compare, "next_token_logprobs",
                        lambda *a, **kw: margins.append(kw["answer_prefix"]) or [[-1.0, -2.0]] * len(a[3]))
    monkeypatch.setattr(compare, "first_answer_tokens", lambda processor, question, answers, prefix=None: [5, 9])
    options = {"answer_prefix": "A helpful answer:", "stop_at": "An unhelpful answer"}
    model, processor = tiny_peft
    compare_on_dataset(model, processor, pairs, tmp_path, beta=0.1, max_new_tokens=2, batch_size=2,
                       tuned_generation=options)
    assert [kw.get("use_adapter", True) for kw in asked] == [False, True]
    assert "answer_prefix" not in asked[0] and {k: asked[1][k] for k in options} == options
    assert len(spy) == 2  # base, tuned
    for sets in spy:
        assert [answer for answers in sets for answer in answers] and all(
            answer.startswith("A helpful answer: ") for answers in sets for answer in answers)
    assert sets[0][0] == "A helpful answer: Yes, there is a red circle."
    assert margins == ["A helpful answer:"] * 2


def test_first_pairs_copies_the_first_n():
    from vlm_dpo.eval.compare import first_pairs

    logps = {"chosen": [-1.0, -2.0, -3.0], "rejected": [-4.0, -5.0, -6.0], "chosen_tokens": [1, 2, 3],
             "rejected_tokens": [4, 5, 6]}
    first = first_pairs(logps, 2)
    logps["chosen"][0] = 0.0  # the trainer's next evaluation overwrites its lists
    assert first == {"chosen": [-1.0, -2.0], "rejected": [-4.0, -5.0], "chosen_tokens": [1, 2],
                     "rejected_tokens": [4, 5]}
    assert first_pairs(None, 2) is None
