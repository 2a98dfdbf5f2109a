"""Chat messages for TRL, and their rendering through the processor's chat template.

The prepared rows keep TRL's conversational layout with string contents; TRL's
``prepare_multimodal_messages`` puts the image block before the question when it collates, so
the model sees SmolVLM's layout:

    <|im_start|>User:<image>QUESTION<end_of_utterance>\\nAssistant: ANSWER<end_of_utterance>\\n

    from data_prep.chat import render
    render(processor, "What is shown?")              # prompt, ends with "Assistant:"
    render(processor, "What is shown?", "A cat.")    # the whole exchange
"""


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
