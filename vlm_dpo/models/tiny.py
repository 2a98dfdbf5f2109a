"""A tiny SmolVLM-shaped model, built locally so that tests and the offline recipe need no hub.

It has SmolVLM's architecture (``Idefics3ForConditionalGeneration``), special tokens, chat template
and image-splitting processor, only scaled down: 32px tiles of 8px patches, pixel-shuffle factor 2,
so 4 image tokens per tile; a 2-layer vision tower and a 2-layer Llama decoder. Its byte-level BPE
tokenizer is trained here on a small fixed corpus, so every text still tokenizes.

    vlm-dpo build-model tiny-smolvlm --output_dir /tmp/tiny-smolvlm   # build (or reuse) and print the folder

``tiny-smollm2`` is the text-only counterpart for text recipes and tests: the same tokenizer with
SmolLM2-Instruct's ChatML template, on a 2-layer Llama causal LM (``ensure_tiny_text_model``).
"""

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from vlm_dpo.models.cache import default_cache_dir, save_atomically

TINY_MODEL_NAME = "tiny-smolvlm"
TINY_TEXT_MODEL_NAME = "tiny-smollm2"  # the text-only counterpart: a tiny Llama with SmolLM2's chat template

# SmolVLM v1's chat template, as shipped with HuggingFaceTB/SmolVLM-256M-Instruct.
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# SmolLM2-Instruct's chat template, as shipped with HuggingFaceTB/SmolLM2-135M-Instruct (ChatML, default system turn).
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = (
    ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<fake_token_around_image>", "<image>",
     "<end_of_utterance>", "<global-img>"]
    + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
)

TILE = 32  # max_image_size: one tile
LONGEST_EDGE = 64  # images are scaled to this longest edge, so at most 2x2 tiles + 1 global
PATCH = 8
SCALE_FACTOR = 2
IMAGE_SEQ_LEN = (TILE // PATCH) ** 2 // SCALE_FACTOR**2


def _corpus() -> list[str]:
    words = (
        "the a an is are there of in on with and or no yes one two three four image picture photo "
        "circle square triangle red green blue yellow white black gray background shape shapes color "
        "colour how many what describe this that it left right top bottom small large big a man woman "
        "person dog cat car table chair tree sky water building street people sitting standing holding"
    ).split()
    lines = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    lines += ["User: Describe the image.", "Assistant: There is a red circle.", "0 1 2 3 4 5 6 7 8 9 . , ? !"]
    return lines


def build_tokenizer():
    """A byte-level BPE tokenizer with SmolLM2/SmolVLM's special tokens and chat template."""
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<|im_start|>", eos_token="<end_of_utterance>", pad_token="<|im_end|>",
        unk_token="<|endoftext|>", additional_special_tokens=SPECIAL_TOKENS[3:],
        chat_template=SMOLVLM_CHAT_TEMPLATE, model_max_length=8192,
    )


def build_processor(tokenizer=None):
    """SmolVLM's processor with image splitting on, scaled to the tiny tiles."""
    from transformers import Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=True, size={"longest_edge": LONGEST_EDGE}, max_image_size={"longest_edge": TILE},
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    return Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer or build_tokenizer(), image_seq_len=IMAGE_SEQ_LEN,
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )


def build_model(tokenizer, seed: int = 0):
    """Random-weight Idefics3 model with SmolVLM's layout (SigLIP-style tower, connector, Llama decoder)."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration

    config = Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=TILE, patch_size=PATCH),
        text_config=dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tokenizer),
                         max_position_embeddings=2048, tie_word_embeddings=True, rms_norm_eps=1e-5,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        scale_factor=SCALE_FACTOR,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def ensure_tiny_model(folder: str | Path | None = None) -> Path:
    """Build the tiny model + processor into ``folder`` once; later calls reuse it."""
    folder = Path(folder) if folder else default_cache_dir() / TINY_MODEL_NAME
    if (folder / "config.json").exists() and (folder / "processor_config.json").exists():
        return folder

    processor = build_processor()
    return save_atomically(folder, build_model(processor.tokenizer), processor)


def build_text_tokenizer():
    """The tiny tokenizer with SmolLM2-Instruct's ChatML template and its end/pad token, for the text model."""
    tokenizer = build_tokenizer()
    tokenizer.chat_template = SMOLLM2_CHAT_TEMPLATE
    tokenizer.eos_token = tokenizer.pad_token = "<|im_end|>"
    return tokenizer


def build_text_model(tokenizer, seed: int = 0):
    """Random-weight 2-layer Llama causal LM, SmolLM2's architecture scaled down."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=2048,
                         tie_word_embeddings=True, rms_norm_eps=1e-5, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def ensure_tiny_text_model(folder: str | Path | None = None) -> Path:
    """Build the tiny text model + tokenizer (``tiny-smollm2``) into ``folder`` once; later calls reuse it."""
    folder = Path(folder) if folder else default_cache_dir() / TINY_TEXT_MODEL_NAME
    if (folder / "config.json").exists() and (folder / "tokenizer_config.json").exists():
        return folder
    tokenizer = build_text_tokenizer()
    return save_atomically(folder, build_text_model(tokenizer), tokenizer)
