"""Tiny models keep their tokenizer through save_pretrained / from_pretrained (every family)."""

from __future__ import annotations

import pytest
from transformers import AutoProcessor

from artstudio.tiny import FAMILIES, char_tokenizer

TEXT = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>a b\nc<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("family", FAMILIES)
def test_reloaded_tokenizer_gives_the_same_ids(tiny_model_dir, family):
    reloaded = AutoProcessor.from_pretrained(tiny_model_dir(family)).tokenizer
    ours = char_tokenizer()
    ids = ours(TEXT, add_special_tokens=False)["input_ids"]
    assert reloaded(TEXT, add_special_tokens=False)["input_ids"] == ids
    assert ids[0] == ours.convert_tokens_to_ids("<|im_start|>"), "special tokens must stay whole"
    assert reloaded.decode(ids) == TEXT
