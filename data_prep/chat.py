"""Chat messages: the one place that builds them, renders them and reads their text back.

Training data, token budgets, generation and log-probs all render through ``render`` and cut the answer
with ``completion``, so the text the model is trained on is the text it is asked and scored with.

The prepared rows keep TRL's conversational layout with string contents; TRL's
``prepare_multimodal_messages`` puts the image block before the question when it collates, so
the model sees SmolVLM's layout:

    <|im_start|>User:<image>QUESTION<end_of_utterance>\\nAssistant: ANSWER<end_of_utterance>\\n

    from data_prep.chat import completion, message_text, render
    prompt = render(processor, "What is shown?")              # ends with "Assistant:"
    whole = render(processor, "What is shown?", "A cat.")     # the whole exchange
    completion(prompt, whole)                                  # " A cat.<end_of_utterance>\\n"
    message_text(row["prompt"])                                # "What is shown?"
"""

import os
import re

# Control tokens of the chat templates we render (SmolVLM's image and turn markers, ChatML's, GPT-2's end of text).
# In user text they would be tokenised as control tokens: an "<image>" with no image, a forged turn.
CONTROL_TOKEN = re.compile(r"<\|[A-Za-z_]+\|>|<(?:image|end_of_utterance|fake_token_around_image|global-img|"
                           r"row_\d+_col_\d+)>")


def control_token(text: str) -> str | None:
    """The first control token in ``text``, or None."""
    found = CONTROL_TOKEN.search(text)
    return found.group(0) if found else None


def messages(question: str, chosen: str, rejected: str) -> dict:
    """``prompt`` / ``chosen`` / ``rejected`` columns as DPOTrainer reads them."""
    return {
        "prompt": [{"role": "user", "content": question}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def render(processor, question: str, answer: str | None = None) -> str:
    """The text the model sees: the generation prompt when ``answer`` is None, else the whole exchange.

    A VLM processor gets SmolVLM's content blocks with the image slot; a text model's tokenizer gets string
    contents, as TRL renders text pairs.
    """
    if hasattr(processor, "image_processor"):
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        if answer is not None:
            conversation.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    else:
        conversation = [{"role": "user", "content": question}]
        if answer is not None:
            conversation.append({"role": "assistant", "content": answer})
    return processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=answer is None)


def completion(prompt: str, whole: str) -> str:
    """What the answer adds after the prompt, as TRL cuts it: what follows the longest common prefix of the
    rendered prompt and the whole exchange (a template may rewrite the prompt's end once an answer follows)."""
    return whole[len(os.path.commonprefix([prompt, whole])):]


def message_text(messages, role: str | None = None):
    """The text of a prompt or answer column, stripped: a plain string as is, else the last message (the last of
    ``role`` when given; pairs are single-turn), its text blocks joined one per line. Image blocks are dropped:
    the image comes from its own column. None when there is no such message; non-text content is returned as is."""
    if not isinstance(messages, (list, tuple)):  # a plain string (or None, or a malformed value for the caller)
        return messages.strip() if isinstance(messages, str) else messages
    turns = [message for message in messages if isinstance(message, dict) and role in (None, message.get("role"))]
    if not turns:
        return None
    content = turns[-1].get("content")
    if isinstance(content, list):  # blocks {"type": "image" | "text", "text": ...}
        texts = [block.get("text") for block in content if isinstance(block, dict) and block.get("type") == "text"]
        content = "\n".join(text.strip() for text in texts if isinstance(text, str) and text.strip())
    return content.strip() if isinstance(content, str) else content
