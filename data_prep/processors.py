"""A processor (VLM) or tokenizer (text model) from a local folder or a hub id: the one loader behind token
counting in ``data_prep`` and behind ``vlm_dpo.models.load_processor`` (which first builds the built-in names), so
that a model's tokens are counted the same whichever command loaded it.

    processor = load_processor_from("HuggingFaceTB/SmolVLM-256M-Instruct")
"""

from pathlib import Path

from data_prep.errors import MissingInputError
from data_prep.hub import OFFLINE_HINT, cached_or_reachable

# For text models without a chat template (GPT-2): the plain "User: ...\nAssistant: ..." layout of the GPT-2 DPO
# card. The generation prompt ends on "Assistant:" so that the answer's leading space joins its first word's token.
PLAIN_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'assistant' %}"
    "{{ 'Assistant: ' + message['content'] + eos_token + '\\n' }}"
    "{% else %}{{ message['role'] | capitalize + ': ' + message['content'] + '\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def folder_or_hub_id(name: str, not_found_hint: str = "") -> str:
    """``name`` when it is a local folder; the cached folder or the id of a hub model that can be fetched; else a
    ``MissingInputError`` (a path that does not exist, or no hub) that names the offline recipe."""
    if Path(name).is_dir():
        return name
    if Path(name).exists() or name.startswith((".", "/")) or name.count("/") != 1:
        raise MissingInputError(f"Model {name!r} is neither a folder nor a hub id (owner/name){not_found_hint}. "
                                f"{OFFLINE_HINT}")
    return cached_or_reachable(name, repo_type="model")


def load_processor_from(path: str):
    """The processor of the model at ``path`` (a folder or a hub id), or its tokenizer for a text model, which gets
    the plain chat template when it has none."""
    from transformers import AutoProcessor, AutoTokenizer

    try:
        processor = AutoProcessor.from_pretrained(path)
    except (OSError, ValueError):
        processor = AutoTokenizer.from_pretrained(path)
    if not is_vision_processor(processor) and not processor.chat_template:
        processor.chat_template = PLAIN_CHAT_TEMPLATE  # GPT-2 & co.; saved with the adapter, so inference agrees
    return processor


def is_vision_processor(processor) -> bool:
    return hasattr(processor, "image_processor")


def at_training_size(processor, processor_longest_edge: int | None):
    """``processor`` scaling images to ``processor_longest_edge`` (where set, and for a VLM), as training will."""
    if processor_longest_edge and is_vision_processor(processor):
        processor.image_processor.size = {"longest_edge": processor_longest_edge}
    return processor
