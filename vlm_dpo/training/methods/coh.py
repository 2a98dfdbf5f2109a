"""Chain of Hindsight (Liu et al. 2023, "Chain of Hindsight aligns language models with feedback"): method ``coh``.

Each pair becomes two training sequences, one per order, with the answers behind natural-language feedback in the
assistant turn of the chat template:

    PROMPT -> "A helpful answer: CHOSEN\\nAn unhelpful answer: REJECTED" + end of turn
    PROMPT -> "An unhelpful answer: REJECTED\\nA helpful answer: CHOSEN" + end of turn

The loss is the NLL of the answer tokens (and of the end-of-turn tokens, which close the last answer); the prompt,
the image and the feedback phrases are masked, so the model learns to write the answer the feedback announces, not
the feedback. At inference the tuned model is prompted with the positive phrase after the generation prompt, and its
answer is cut before any negative phrase (``RunRecord.tuned_generation``, which infer.py, the app and the report
read from run_config.yaml). The phrases are the ``coh_positive`` / ``coh_negative`` fields. The paper's random
masking of a few past tokens and its pretraining-data regulariser are left out.

The held-out DPO metrics score a CoH model as it is used: chosen and rejected both follow the positive phrase
(``after_positive``), for the base and the tuned model alike; the phrase's own log-prob is the same in both
answers, so margins and accuracies are those of the answers given the phrase.
"""

import dataclasses
import logging

from data_prep.chat import message_text
from vlm_dpo.errors import UserError
from vlm_dpo.training.methods.sft import fine_tune

logger = logging.getLogger(__name__)


def hindsight_segments(chosen: str, rejected: str, helpful_first: bool, positive: str,
                       negative: str) -> list[tuple[str, bool]]:
    """The assistant turn as ``(text, in the loss)`` pieces, in one of the two orders; their texts joined are the
    turn's content."""
    helpful = [(positive, False), (f" {chosen}", True)]
    unhelpful = [(negative, False), (f" {rejected}", True)]
    first, second = (helpful, unhelpful) if helpful_first else (unhelpful, helpful)
    return [*first, ("\n", False), *second]


def hindsight_rows(pairs):
    """Each pair twice, in both orders (``helpful_first`` True, then False): the rows the collator renders."""
    keep = [name for name in ("images", "prompt", "chosen", "rejected") if name in pairs.column_names]

    def both_orders(batch):
        rows = {name: [value for value in values for _ in (0, 1)] for name, values in batch.items()}
        return {**rows, "helpful_first": [True, False] * len(batch["prompt"])}

    return pairs.select_columns(keep).map(both_orders, batched=True, desc="Chain of Hindsight rows")


def after_positive(pairs, positive: str):
    """The pairs as a CoH model is scored: both answers after the positive phrase."""
    def prefix(row):
        return {name: [{"role": "assistant", "content": f"{positive} {message_text(row[name])}"}]
                for name in ("chosen", "rejected")}

    return pairs.map(prefix, desc="answers after the positive phrase")


def render_hindsight(processor, example: dict, positive: str, negative: str) -> tuple[str, str, list[tuple[int, int]]]:
    """(prompt text, completion text, character spans of the completion in the loss) of one row, rendered by TRL's
    chat-template code as its SFT collator renders a prompt-completion row."""
    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    segments = hindsight_segments(message_text(example["chosen"]), message_text(example["rejected"]),
                                  example["helpful_first"], positive, negative)
    content = "".join(text for text, _ in segments)
    row = {"prompt": example["prompt"], "completion": [{"role": "assistant", "content": content}]}
    if "images" in example:
        row = {"prompt": prepare_multimodal_messages(row["prompt"], images=example["images"]),
               "completion": prepare_multimodal_messages(row["completion"])}
    rendered = apply_chat_template(row, processor)
    completion = rendered["completion"]
    start = completion.find(content)
    if start < 0:
        raise UserError("method coh: the chat template rewrites the answer text, so the feedback phrases cannot be "
                        "located in the rendered sequence; use another --method with this model.")
    spans, offset = [], start
    for text, in_loss in segments:
        if in_loss:
            spans.append((offset, offset + len(text)))
        offset += len(text)
    spans.append((offset, len(completion)))  # the end-of-turn tokens close the last answer
    return rendered["prompt"], completion, spans


@dataclasses.dataclass
class HindsightCollator:
    """Rows of ``hindsight_rows`` -> a batch for SFTTrainer, vision or text: prompt (and images) through the
    processor, padded on the left as TRL's collators do, then the completion, whose labels keep only the tokens
    that overlap an answer span (offsets of the fast tokenizer). Sequences keep their first ``max_length`` tokens."""

    processor: object
    positive: str
    negative: str
    max_length: int | None = None
    cut_warned: bool = dataclasses.field(default=False, init=False)

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        if not tokenizer.is_fast:
            raise UserError("method coh needs a fast tokenizer (character offsets) to mask the feedback phrases.")
        if tokenizer.pad_token is None:  # padded positions are masked out of attention and loss
            tokenizer.pad_token = tokenizer.eos_token
        rendered = [render_hindsight(self.processor, example, self.positive, self.negative) for example in examples]
        kwargs = {"images": [example["images"] for example in examples]} if "images" in examples[0] else {}
        batch = self.processor(text=[prompt for prompt, _, _ in rendered], padding=True, padding_side="left",
                               add_special_tokens=False, return_tensors="pt", **kwargs)
        completions = tokenizer([completion for _, completion, _ in rendered], add_special_tokens=False,
                                return_offsets_mapping=True)
        ids, labels, cut = [], [], False
        for row, (_, _, spans) in enumerate(rendered):
            prompt = batch["input_ids"][row][batch["attention_mask"][row].bool()]
            answer = torch.tensor(completions["input_ids"][row], dtype=prompt.dtype)
            scored = [any(start < end_span and end > start_span for start_span, end_span in spans)
                      for start, end in completions["offset_mapping"][row]]
            cut |= self.max_length is not None and len(prompt) + len(answer) > self.max_length
            ids.append(torch.cat([prompt, answer])[:self.max_length])
            label = torch.cat([torch.full_like(prompt, -100), answer.masked_fill(~torch.tensor(scored), -100)])
            labels.append(label[:self.max_length])
        if cut and not self.cut_warned:
            self.cut_warned = True
            logger.warning("method coh: sequences longer than max_length %s are cut at their end.", self.max_length)
        batch.pop("token_type_ids", None)  # ours are longer now, and no model here reads them
        pad = torch.nn.utils.rnn.pad_sequence
        batch["input_ids"] = pad(ids, batch_first=True, padding_value=tokenizer.pad_token_id)
        batch["attention_mask"] = pad([torch.ones_like(row) for row in ids], batch_first=True, padding_value=0)
        batch["labels"] = pad(labels, batch_first=True, padding_value=-100)
        return batch


def train_coh(args, model, processor, train_set, eval_set, resume):
    """Method ``coh``: the whole step budget on both orders of every pair."""
    collator = HindsightCollator(processor, args.coh_positive, args.coh_negative, args.max_length)
    # The collator renders and tokenizes: TRL must pass the rows through as they are.
    return [fine_tune(args, model, processor, hindsight_rows(train_set), hindsight_rows(eval_set), name="coh",
                      resume=resume, collator=collator, remove_unused_columns=False,
                      dataset_kwargs={"skip_prepare_dataset": True})]
