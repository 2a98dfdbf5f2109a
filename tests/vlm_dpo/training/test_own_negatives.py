"""The base model's wrong answers become extra rejected answers: which ones, in what form, and from the cache."""

from collections import Counter

import pytest


@pytest.fixture(scope="module")
def tiny_base_and_train(tiny_model_dir, tmp_path_factory):
    from data_prep import PrepareOptions, load_prepared, prepare
    from vlm_dpo.models import load_model_and_processor

    folder = tmp_path_factory.mktemp("scenes")
    prepare(PrepareOptions("synthetic:12", test_size=0.25, data_seed_split=0, image_longest_edge=64), folder)
    model, processor = load_model_and_processor("tiny-smolvlm")
    return model.eval(), processor, load_prepared(folder)["train"]


def test_wrong_answers_are_added_as_rejected_and_right_ones_are_not(tiny_base_and_train, monkeypatch):
    from vlm_dpo.eval.checks.scenes import answer_correct, question_type
    from vlm_dpo.training import own_negatives

    model, processor, train = tiny_base_and_train
    # A base whose answers are known: the chosen answer for even rows (right), a wrong colour claim for odd rows.
    chosen = [m[0]["content"] for m in train["chosen"]]
    wanted = [c if i % 2 == 0 else "There is a purple star." for i, c in enumerate(chosen)]
    monkeypatch.setattr("vlm_dpo.training.own_negatives.generate_answers", lambda *a, **k: [wanted[i] for i in range(len(a[3]))])
    out, record = own_negatives.add_own_negatives(model, processor, train, max_new_tokens=8, batch_size=4)

    odd = [i for i in range(len(train)) if i % 2]
    types = Counter(question_type(train[i]["prompt"][0]["content"]) for i in odd)
    assert record == {"checked": len(train), "added": len(odd), "added_by_type": dict(sorted(types.items()))}
    assert len(out) == len(train) + len(odd)
    extra = out.select(range(len(train), len(out)))
    assert [m[0]["content"] for m in extra["rejected"]] == ["There is a purple star."] * len(odd)
    assert extra["chosen"] == [train[i]["chosen"] for i in odd] and extra["prompt"] == [train[i]["prompt"] for i in odd]
    assert extra["images"][0][0].size == train[odd[0]]["images"][0].size
    question = train[odd[0]]["prompt"][0]["content"]
    assert answer_correct(question, chosen[odd[0]], train[odd[0]]["ground_truth"])


def test_answers_come_from_the_cache_the_second_time(tiny_base_and_train, monkeypatch):
    from vlm_dpo.training import own_negatives

    model, processor, train = tiny_base_and_train
    first, record = own_negatives.add_own_negatives(model, processor, train, max_new_tokens=6, batch_size=4)
    assert record["checked"] == len(train) and len(first) == len(train) + record["added"]
    assert own_negatives.cache_file(model, 6).is_file()

    def no_generation(*args, **kwargs):
        raise AssertionError("answers were generated again")

    monkeypatch.setattr("vlm_dpo.training.own_negatives.generate_answers", no_generation)
    second, again = own_negatives.add_own_negatives(model, processor, train, max_new_tokens=6, batch_size=4)
    assert again == record and second["rejected"] == first["rejected"]


def test_rows_without_ground_truth_are_left_alone(tiny_base_and_train):
    from vlm_dpo.training import own_negatives

    model, processor, train = tiny_base_and_train
    plain = train.map(lambda row: {"ground_truth": ""})
    out, record = own_negatives.add_own_negatives(model, processor, plain, max_new_tokens=4, batch_size=4)
    assert out is plain and record == {"checked": 0, "added": 0}

