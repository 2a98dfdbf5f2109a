"""Token budget: how long each pair is once collated, and whether it fits ``max_length``.

The count is the one TRL's ``DataCollatorForVisionPreference`` produces: the prompt with its
image expanded by the processor (image splitting decides how many tiles, hence tokens), plus
the longer of the two completions. A pair that does not fit is dropped, never truncated:
cutting through image tokens breaks the model's input.

Text pairs (no image) are counted the same way with the tokenizer, as TRL's ``DataCollatorForPreference``
sees them. For them only, ``max_prompt_length`` / ``max_completion_length`` first cut the question's start
and each answer's end (``clip``), as the SmolLM and GPT-2 DPO cards truncate; what still exceeds
``max_length`` is dropped.

    from data_prep.budget import TokenBudget
    budget = TokenBudget(processor, max_length=2048)
    budget.count(pair)   # (prompt, chosen, rejected) token counts
    budget.fits(pair)
    pair = TokenBudget(tokenizer, 160, max_prompt_length=96, max_completion_length=64).clip(pair)   # text pairs
"""

from dataclasses import replace

from PIL import Image

from data_prep.chat import completion, render
from data_prep.images import SkipRow


class TokenBudget:
    def __init__(self, processor, max_length: int | None, max_prompt_length: int | None = None,
                 max_completion_length: int | None = None):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)  # a VLM processor, or a text model's tokenizer
        self.max_length = max_length
        self.max_prompt_length = max_prompt_length
        self.max_completion_length = max_completion_length
        self._image_tokens: dict[tuple[int, int], int] = {}

    def image_tokens(self, size: tuple[int, int]) -> int:
        """Tokens that one image of ``size`` (width, height) expands to.

        The count depends on the size only, so the processor runs once per size on a blank
        image: running it on every row would cost a 2048px resize and up to 17 tiles each.
        """
        if size not in self._image_tokens:
            token = self.processor.image_token
            encoded = self.processor(text=[token], images=[[Image.new("RGB", size)]], add_special_tokens=False)
            self._image_tokens[size] = len(encoded["input_ids"][0])
        return self._image_tokens[size]

    def count(self, pair) -> tuple[int, int, int]:
        """Prompt tokens (image included), chosen tokens and rejected tokens, as the collator counts them."""
        prompt = render(self.processor, pair.question)
        prompt_tokens = len(self._ids(prompt))
        if pair.image is not None:
            # The rendered prompt holds one image placeholder token; the processor replaces it by the image's tokens.
            prompt_tokens += self.image_tokens(pair.image.size) - 1
        chosen_tokens = self._completion_tokens(prompt, pair.question, pair.chosen)
        rejected_tokens = self._completion_tokens(prompt, pair.question, pair.rejected)
        return prompt_tokens, chosen_tokens, rejected_tokens

    def fits(self, pair) -> bool:
        if self.max_length is None:
            return True
        prompt, chosen, rejected = self.count(pair)
        return prompt + max(chosen, rejected) <= self.max_length

    def clip(self, pair):
        """A text pair with the question's first tokens and the answers' last tokens cut so that the rendered
        prompt has at most ``max_prompt_length`` tokens and each completion at most ``max_completion_length``
        (chat-template tokens included); image pairs are returned as they are. Raises ``SkipRow("too_long")``
        when the template alone exceeds a limit."""
        if pair.image is not None:
            return pair
        if self.max_prompt_length is not None:
            excess = len(self._ids(render(self.processor, pair.question))) - self.max_prompt_length
            if excess > 0:
                pair = replace(pair, question=self._cut(pair.question, keep_end=True, excess=excess))
        if self.max_completion_length is not None:
            for side in ("chosen", "rejected"):
                answer = getattr(pair, side)
                excess = self._completion_tokens(render(self.processor, pair.question), pair.question, answer) \
                    - self.max_completion_length
                if excess > 0:
                    pair = replace(pair, **{side: self._cut(answer, keep_end=False, excess=excess)})
            if pair.chosen == pair.rejected:  # the answers differed only after the cut
                raise SkipRow("chosen_equals_rejected_after_clip")
        return pair

    def _cut(self, text: str, keep_end: bool, excess: int) -> str:
        ids = self._ids(text)
        if excess >= len(ids):
            raise SkipRow("too_long")
        kept = self.tokenizer.decode(ids[excess:] if keep_end else ids[:len(ids) - excess]).strip()
        if not kept:
            raise SkipRow("too_long")
        return kept

    def _completion_tokens(self, prompt: str, question: str, answer: str) -> int:
        return len(self._ids(completion(prompt, render(self.processor, question, answer))))

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]
