"""Token budget: how long each pair is once collated, and whether it fits ``max_length``.

The count is the one TRL's ``DataCollatorForVisionPreference`` produces: the prompt with its
image expanded by the processor (image splitting decides how many tiles, hence tokens), plus
the longer of the two completions. A pair that does not fit is dropped, never truncated:
cutting through image tokens breaks the model's input (DESIGN.md, principle 7).

    from data_prep.budget import TokenBudget
    budget = TokenBudget(processor, max_length=2048)
    budget.count(pair)   # (prompt, chosen, rejected) token counts
    budget.fits(pair)
"""

import os

from PIL import Image

from .chat import render


class TokenBudget:
    def __init__(self, processor, max_length: int):
        self.processor = processor
        self.max_length = max_length
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
        # The rendered prompt holds one image placeholder token; the processor replaces it by the image's tokens.
        prompt_tokens = len(self._ids(prompt)) - 1 + self.image_tokens(pair.image.size)
        chosen_tokens = self._completion_tokens(prompt, pair.question, pair.chosen)
        rejected_tokens = self._completion_tokens(prompt, pair.question, pair.rejected)
        return prompt_tokens, chosen_tokens, rejected_tokens

    def fits(self, pair) -> bool:
        prompt, chosen, rejected = self.count(pair)
        return prompt + max(chosen, rejected) <= self.max_length

    def _completion_tokens(self, prompt: str, question: str, answer: str) -> int:
        # As TRL does: the completion is what follows the longest common prefix of prompt and whole exchange.
        whole = render(self.processor, question, answer)
        return len(self._ids(whole[len(os.path.commonprefix([prompt, whole])) :]))

    def _ids(self, text: str) -> list[int]:
        return self.processor.tokenizer(text, add_special_tokens=False)["input_ids"]
