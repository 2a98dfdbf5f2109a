"""The seam with TRL: our answer log-probs equal those of TRL's DPO collator + a forward, on the tiny model.

This is what makes infer.py's rewards agree with eval_results.json (computed by DPOTrainer).
"""

import pytest
import torch
from PIL import Image


def test_answer_logprobs_match_trl_collator(tiny_peft):
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    from vlm_dpo.eval.functional import sequence_logps
    from vlm_dpo.eval.logprobs import answer_logprobs, answer_set_logprobs

    model, processor = tiny_peft
    images = [Image.new("RGB", (40, 30), "red"), Image.new("RGB", (64, 64), "blue"), Image.new("RGB", (20, 50), "green")]
    questions = ["What color is it?", "Describe the image in a few words.", "Is there a square?"]
    chosen = ["It is red.", "A blue square fills the whole picture.", "No."]
    rejected = ["It is green and large.", "A cat.", "Yes, there is a small yellow square."]
    examples = [{"images": [image], "prompt": [{"role": "user", "content": q}],
                 "chosen": [{"role": "assistant", "content": c}], "rejected": [{"role": "assistant", "content": r}]}
                for image, q, c, r in zip(images, questions, chosen, rejected)]
    batch = DataCollatorForVisionPreference(processor)(examples)
    completion_mask = batch.pop("completion_mask")
    for use_adapter in (True, False):
        with torch.inference_mode(), (model.disable_adapter() if not use_adapter else torch.enable_grad()):
            trl_sums, trl_counts = sequence_logps(model(**batch).logits, batch["input_ids"], completion_mask)
        sums, counts = answer_logprobs(model, processor, images * 2, questions * 2, chosen + rejected, batch_size=4,
                                       use_adapter=use_adapter)
        assert counts == trl_counts.int().tolist()
        assert sums == pytest.approx(trl_sums.tolist(), abs=1e-3)
        # several answers per prompt, each prompt once (its cache copied per set), a set shorter than the prompts
        sets = answer_set_logprobs(model, processor, images, questions, [chosen, rejected, rejected[:2]], batch_size=2,
                                   use_adapter=use_adapter)
        assert [counts for _, counts in sets] == [trl_counts[:3].int().tolist(), trl_counts[3:].int().tolist(),
                                                  trl_counts[3:5].int().tolist()]
        assert sets[0][0] + sets[1][0] + sets[2][0] == pytest.approx(trl_sums.tolist() + trl_sums[3:5].tolist(),
                                                                     abs=1e-3)
    # the adapter changes the log-probs (so base and tuned really differ)
    assert answer_logprobs(model, processor, images, questions, chosen)[0] != pytest.approx(
        answer_logprobs(model, processor, images, questions, chosen, use_adapter=False)[0], abs=1e-3)


def test_next_token_logprobs_match_one_unpadded_forward(tiny_peft):
    """The batched, left-padded prompt forward scores a first answer token as one prompt alone does; the token is the
    first one ``answer_set_logprobs`` scores (the first of what the whole exchange adds after the prompt)."""
    from data_prep.chat import completion, render
    from vlm_dpo.eval.logprobs import first_answer_tokens, next_token_logprobs

    model, processor = tiny_peft
    images = [Image.new("RGB", (40, 30), "red"), Image.new("RGB", (64, 64), "blue"), Image.new("RGB", (20, 50), "green")]
    questions = ["Is there a red circle?", "Is there a blue square in the middle of the image?", "Is there a cat?"]
    tokens = [first_answer_tokens(processor, q, ["Yes, there is one.", "No, there is none."]) for q in questions]
    whole = render(processor, questions[0], "Yes, there is one.")
    assert tokens[0][0] == processor.tokenizer(completion(render(processor, questions[0]), whole),
                                               add_special_tokens=False)["input_ids"][0]
    tokens = [[ids[0], 7, 11] for ids in tokens]  # any tokens: the tiny tokenizer starts both answers with a space
    for use_adapter in (True, False):
        got = next_token_logprobs(model, processor, images, questions, tokens, batch_size=2, use_adapter=use_adapter)
        for image, question, ids, values in zip(images, questions, tokens, got):
            inputs = processor(text=[render(processor, question)], images=[[image]], add_special_tokens=False,
                               return_tensors="pt")
            with torch.inference_mode(), (model.disable_adapter() if not use_adapter else torch.enable_grad()):
                expected = model(**inputs).logits[0, -1].float().log_softmax(-1)[ids]
            assert values == pytest.approx(expected.tolist(), abs=1e-4)


def test_the_first_token_after_an_answer_prefix(tiny_peft):
    """With a prefix (a Chain of Hindsight run's positive phrase) the prompt ends with it, as generation lays it out,
    and the token scored is the first one after it."""
    from data_prep.chat import completion, render
    from vlm_dpo.eval.generate import prompt_with_answer_start
    from vlm_dpo.eval.logprobs import first_answer_tokens, next_token_logprobs

    model, processor = tiny_peft
    prefix, question, image = "A helpful answer:", "Is there a red circle?", Image.new("RGB", (40, 30), "red")
    prompt = prompt_with_answer_start(processor, question, prefix)
    tokens = first_answer_tokens(processor, question, ["Yes, there is one.", "No, there is none."], prefix)
    rest = completion(prompt, render(processor, question, f"{prefix} Yes, there is one."))
    assert rest.startswith(" Yes") and tokens[0] == processor.tokenizer(rest, add_special_tokens=False)["input_ids"][0]
    got = next_token_logprobs(model, processor, [image], [question], [[3, 7]], answer_prefix=prefix)[0]
    inputs = processor(text=[prompt], images=[[image]], add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        expected = model(**inputs).logits[0, -1].float().log_softmax(-1)[[3, 7]]
    assert got == pytest.approx(expected.tolist(), abs=1e-4)
    assert got != pytest.approx(next_token_logprobs(model, processor, [image], [question], [[3, 7]])[0], abs=1e-3)


def test_external_sentences_are_stable_prose():
    from vlm_dpo.eval.logprobs import external_sentences

    sentences = external_sentences(50)
    assert len(sentences) == 50 and sentences == external_sentences(50)
    assert all(6 <= len(s.split()) <= 40 and s[0].isupper() and s[-1] in ".!?" for s in sentences)
    assert len(external_sentences(10_000)) > 150


def test_answer_logprobs_text_only_model():
    """A text model (tokenizer as processor, no images): the answer's log-prob is the log-prob of the tokens the
    whole exchange adds after the prompt, from one forward over the whole exchange."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from vlm_dpo.eval.logprobs import answer_logprobs
    from vlm_dpo.models.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                               "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config).eval()
    questions, answers = ["What is it?", "a b c d e f"], ["A cat.", "Nothing at all, really."]
    sums, counts = answer_logprobs(model, tokenizer, None, questions, answers, batch_size=2, use_adapter=True)
    for question, answer, total, count in zip(questions, answers, sums, counts):
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                               add_generation_prompt=True)
        whole = tokenizer.apply_chat_template([{"role": "user", "content": question},
                                               {"role": "assistant", "content": answer}], tokenize=False)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(whole[len(prompt):], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + answer_ids])
        with torch.no_grad():
            logps = model(ids).logits[0, :-1].log_softmax(-1).gather(-1, ids[0, 1:, None]).squeeze(-1)
        assert count == len(answer_ids)
        assert total == pytest.approx(logps[-len(answer_ids):].sum().item(), abs=1e-4)
