"""Build small random-weight Qwen vision-language models of any family, with a character tokenizer.

The test suite uses these to run the real transformers classes of every family in seconds, and
`scripts/pretrain_studio_tiny.py` starts studio-tiny from one. Everything is saved with
`save_pretrained`, so a tiny model loads through exactly the code path of `Qwen/Qwen3.5-0.8B`.

Facts this file encodes (see ../shared/NOTES.md): the config's special-token ids must match the
tokenizer; the multimodal RoPE section must sum to half the rotary dimension; Qwen3.5 needs one
`layer_types` entry per layer; the default `bos_token_id` is out of range for a small vocabulary.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe")

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|image_pad|>", "<|video_pad|>", "<|unk|>",
]
# Byte-level characters, as in Qwen's own BPE: printable ASCII stands for itself, space is "Ġ" and
# newline "Ċ". transformers loads a saved qwen* tokenizer with its Qwen tokenizer class, which always
# byte-level encodes; with these names our ids survive that (plain " " and "\n" entries were dropped).
CHARACTERS = [("Ġ" if c == " " else c) for c in string.printable[:95]] + ["Ċ", "×", "÷", "→"]

# A Qwen-style chat template: `<|im_start|>role\n...<|im_end|>\n`, images as
# `<|vision_start|><|image_pad|><|vision_end|>` where they appear in the content list.
_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' and DEFAULT_SYSTEM -%}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' or 'image' in item -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif item['type'] == 'text' -%}{{- item['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def chat_template(default_system: bool) -> str:
    """Qwen2/2.5-VL templates insert a default system turn; Qwen3-VL/3.5 templates do not."""
    return _TEMPLATE.replace("DEFAULT_SYSTEM", "true" if default_system else "false")


def char_tokenizer(default_system: bool = False):
    """A character-level `PreTrainedTokenizerFast` with the Qwen special tokens and chat template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<|unk|>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    # Registered on the tokenizers object itself, so `tokenizer.json` keeps every one of them whole
    # after save_pretrained (a token named nowhere else, like <|im_start|>, was otherwise split).
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|unk|>",
        additional_special_tokens=SPECIAL_TOKENS[1:7],
        extra_special_tokens={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
        },
        chat_template=chat_template(default_system),
        padding_side="left",
    )
    return tok


def _mrope_section(head_dim: int, partial_rotary_factor: float = 1.0) -> list[int]:
    half = int(head_dim * partial_rotary_factor) // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def tiny_config(
    family: str,
    tokenizer,
    *,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
    intermediate_size: int = 64,
    vision_hidden_size: int = 32,
    vision_depth: int = 2,
    vision_heads: int = 2,
    vision_intermediate_size: int = 64,
    partial_rotary_factor: float | None = None,
):
    """A config of `family` shrunk to the given sizes, token ids taken from `tokenizer`.

    `partial_rotary_factor` overrides the family's fraction of each head that rotates (Qwen3.5: 0.25).
    """
    from transformers import AutoConfig

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    cfg = AutoConfig.for_model(family)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    head_dim = hidden_size // heads
    text = cfg.text_config
    text.vocab_size = len(tokenizer)
    text.hidden_size = hidden_size
    text.intermediate_size = intermediate_size
    text.num_hidden_layers = layers
    text.num_attention_heads = heads
    text.num_key_value_heads = heads
    text.max_position_embeddings = 4096
    if hasattr(text, "head_dim"):
        text.head_dim = head_dim
    text.bos_token_id = None
    text.eos_token_id = ids["<|im_end|>"]
    text.pad_token_id = ids["<|endoftext|>"]
    rope = dict(text.rope_parameters or {})
    if partial_rotary_factor is not None:
        rope["partial_rotary_factor"] = partial_rotary_factor
    rope["mrope_section"] = _mrope_section(head_dim, rope.get("partial_rotary_factor", 1.0))
    text.rope_parameters = rope
    if getattr(text, "layer_types", None) is not None:
        text.layer_types = ["full_attention"] * layers
    if family.startswith("qwen3_5"):
        # Mix both layer kinds, as the real model does (3 linear-attention layers per full one).
        text.layer_types = ["linear_attention" if (i + 1) % 4 else "full_attention" for i in range(layers)]
        if layers < 4:
            text.layer_types = ["linear_attention"] * (layers - 1) + ["full_attention"]
        text.linear_key_head_dim = head_dim
        text.linear_value_head_dim = head_dim
        text.linear_num_key_heads = heads
        text.linear_num_value_heads = heads
    if family.endswith("moe"):
        text.num_experts = 4
        text.num_local_experts = 4
        text.num_experts_per_tok = 2
        text.moe_intermediate_size = intermediate_size // 2
        if hasattr(text, "shared_expert_intermediate_size"):
            text.shared_expert_intermediate_size = intermediate_size // 2
        if hasattr(text, "decoder_sparse_step"):
            text.decoder_sparse_step = 1

    vis = cfg.vision_config
    vis.depth = vision_depth
    vis.num_heads = vision_heads
    if family == "qwen2_vl":
        vis.embed_dim = vision_hidden_size
        vis.hidden_size = hidden_size  # Qwen2-VL's merger output size is `hidden_size`
        vis.mlp_ratio = max(1, vision_intermediate_size // vision_hidden_size)
    else:
        vis.hidden_size = vision_hidden_size
        vis.intermediate_size = vision_intermediate_size
        vis.out_hidden_size = hidden_size
    if family == "qwen2_5_vl":
        vis.fullatt_block_indexes = [vision_depth - 1]
    if hasattr(vis, "num_position_embeddings"):
        vis.num_position_embeddings = 256
    if hasattr(vis, "deepstack_visual_indexes"):
        vis.deepstack_visual_indexes = [0]

    cfg.image_token_id = ids["<|image_pad|>"]
    cfg.video_token_id = ids["<|video_pad|>"]
    cfg.vision_start_token_id = ids["<|vision_start|>"]
    cfg.vision_end_token_id = ids["<|vision_end|>"]
    cfg.tie_word_embeddings = False
    return cfg


def tiny_processor(family: str, tokenizer, *, min_pixels: int = 32 * 32, max_pixels: int = 512 * 512):
    """The family's real processor class, configured for a tiny model."""
    from transformers import Qwen2VLImageProcessor

    qwen2 = family in ("qwen2_vl", "qwen2_5_vl")
    patch = 14 if qwen2 else 16
    mean, std = (
        ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]) if qwen2
        else ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    )
    image_processor = Qwen2VLImageProcessor(
        patch_size=patch, merge_size=2, temporal_patch_size=2, image_mean=mean, image_std=std,
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
    )
    if family == "qwen2_vl":
        from transformers import Qwen2VLProcessor as P, Qwen2VLVideoProcessor as V
    elif family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLProcessor as P, Qwen2VLVideoProcessor as V
    else:
        from transformers import Qwen3VLProcessor as P, Qwen3VLVideoProcessor as V
    video = V(patch_size=patch, merge_size=2, temporal_patch_size=2, image_mean=mean, image_std=std)
    return P(image_processor=image_processor, tokenizer=tokenizer, video_processor=video,
             chat_template=tokenizer.chat_template)


def build_tiny(family: str, out_dir: str | Path, *, seed: int = 0, **sizes) -> Path:
    """Create a random-weight model of `family`, save model + processor to `out_dir`, return it."""
    from transformers import AutoModelForImageTextToText

    out = Path(out_dir)
    tokenizer = char_tokenizer(default_system=family in ("qwen2_vl", "qwen2_5_vl"))
    proc_kw = {k: sizes.pop(k) for k in ("min_pixels", "max_pixels") if k in sizes}
    config = tiny_config(family, tokenizer, **sizes)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.generation_config.bos_token_id = None
    model.save_pretrained(out)
    tiny_processor(family, tokenizer, **proc_kw).save_pretrained(out)
    return out
