"""Prompt rendering and batching match the stock processor token for token, with answer-only labels."""

from __future__ import annotations

import types

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor

from artstudio.data import Example
from artstudio.errors import ConfigError, DataError
from artstudio.prompts import (
    IGNORE_INDEX,
    default_system_prefix,
    encode_batch,
    expand_image_tokens,
    render_prompt,
)

FAMILIES = ["qwen2_5_vl", "qwen3_5"]


@pytest.fixture(params=FAMILIES)
def family_processor(request, tiny_model_dir):
    return request.param, AutoProcessor.from_pretrained(tiny_model_dir(request.param))


def _factor(proc) -> int:
    return proc.image_processor.patch_size * proc.image_processor.merge_size


def _tokens(proc, side: int) -> int:
    """Visual tokens of a square image whose side is a multiple of the factor (no resize)."""
    return (side // _factor(proc)) ** 2


def test_no_system_prompt_by_default(family_processor):
    _, proc = family_processor
    text = render_prompt(proc, "What is 2+2?")
    assert text.startswith("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What is 2+2?")
    assert text.endswith("<|im_start|>assistant\n")
    assert "system" not in text


def test_keep_default_system_keeps_qwen2_5_template_default(tiny_model_dir):
    proc = AutoProcessor.from_pretrained(tiny_model_dir("qwen2_5_vl"))
    assert default_system_prefix(proc) == "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    kept = render_prompt(proc, "hi", keep_default_system=True)
    assert kept == default_system_prefix(proc) + render_prompt(proc, "hi")
    qwen35 = AutoProcessor.from_pretrained(tiny_model_dir("qwen3_5"))
    assert default_system_prefix(qwen35) == ""


def test_placements(family_processor):
    _, proc = family_processor
    img = "<|vision_start|><|image_pad|><|vision_end|>"
    assert f"user\n{img}{img}Q<|im_end|>" in render_prompt(proc, "Q", extra_image=True)
    assert f"user\nQ{img}{img}<|im_end|>" in render_prompt(proc, "Q", placement="after-text", extra_image=True)
    assert f"user\n{img}Q<|im_end|>" in render_prompt(proc, "Q", placement=None, extra_image=True)
    assert "<|image_pad|>" not in render_prompt(proc, "Q", placement=None)
    with pytest.raises(ConfigError, match="unknown canvas placement"):
        render_prompt(proc, "Q", placement="last")


def test_expand_image_tokens():
    assert expand_image_tokens("a<I>b<I>c", "<I>", [2, 3]) == "a<I><I>b<I><I><I>c"
    with pytest.raises(DataError, match="2 image placeholder"):
        expand_image_tokens("a<I>b<I>c", "<I>", [2])


@pytest.mark.parametrize("placement", ["first", "after-text"])
def test_ids_match_stock_processor(family_processor, placement):
    _, proc = family_processor
    side = 2 * _factor(proc)
    n = _tokens(proc, side)
    ex = Example("How many?", "")
    batch = encode_batch(proc, [ex], image_tokens=n, placement=placement, with_answers=False)
    rendered = render_prompt(proc, ex.prompt, placement=placement)
    stock = proc(text=[rendered], images=[Image.new("RGB", (side, side))], return_tensors="pt")
    assert torch.equal(batch.input_ids, stock["input_ids"])
    assert torch.equal(batch.attention_mask, stock["attention_mask"])
    assert torch.equal(batch.mm_token_type_ids, stock["mm_token_type_ids"])
    assert int(batch.mm_token_type_ids.sum()) == n
    assert batch.labels is None


def test_extra_image_ids_match_stock_processor(family_processor, tmp_path):
    _, proc = family_processor
    canvas, extra = 2 * _factor(proc), 3 * _factor(proc)
    ex = Example("Which colour?", "red", "0", str(tmp_path / "x.png"))
    batch = encode_batch(proc, [ex], image_tokens=_tokens(proc, canvas),
                         extra_image_tokens=[_tokens(proc, extra)], with_answers=False)
    rendered = render_prompt(proc, ex.prompt, extra_image=True)
    images = [Image.new("RGB", (canvas, canvas)), Image.new("RGB", (extra, extra))]
    stock = proc(text=[rendered], images=images, return_tensors="pt")
    assert torch.equal(batch.input_ids, stock["input_ids"])


def test_labels_cover_exactly_the_answer_and_end_token(family_processor):
    _, proc = family_processor
    tok = proc.tokenizer
    examples = [Example("2+2?", "Answer: 4", "a"), Example("A longer question here?", "no", "b")]
    batch = encode_batch(proc, examples, image_tokens=4)
    for i, ex in enumerate(examples):
        keep = batch.labels[i] != IGNORE_INDEX
        expected = tok(ex.answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        assert batch.labels[i][keep].tolist() == expected
        assert batch.labels[i][keep][-1] == tok.convert_tokens_to_ids("<|im_end|>")
        assert torch.equal(batch.labels[i][keep], batch.input_ids[i][keep])
        start = batch.prompt_lengths[i]  # right padding: the answer starts right after the prompt
        assert keep.nonzero()[0].item() == start
    # Right padding: padded positions are masked out of attention and loss.
    short = 1 if batch.attention_mask[1].sum() < batch.attention_mask[0].sum() else 0
    assert batch.attention_mask[short, -1] == 0 and batch.labels[short, -1] == IGNORE_INDEX
    assert batch.input_ids[short, -1] == tok.pad_token_id


def test_left_padding_for_generation(family_processor):
    _, proc = family_processor
    examples = [Example("short", ""), Example("a much longer prompt", "")]
    batch = encode_batch(proc, examples, image_tokens=4, with_answers=False, padding_side="left")
    assert batch.attention_mask[:, -1].tolist() == [1, 1]
    assert batch.attention_mask[0, 0] == 0
    suffix = proc.tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    assert batch.input_ids[0, -len(suffix):].tolist() == suffix
    assert batch.prompt_lengths == batch.attention_mask.sum(1).tolist()


def test_after_text_puts_image_tokens_after_prompt(family_processor):
    _, proc = family_processor
    batch = encode_batch(proc, [Example("QUESTION", "A")], image_tokens=4, placement="after-text")
    ids = batch.input_ids[0].tolist()
    text_ids = proc.tokenizer("QUESTION", add_special_tokens=False)["input_ids"]
    text_end = next(i for i in range(len(ids)) if ids[i:i + len(text_ids)] == text_ids) + len(text_ids)
    image_at = batch.mm_token_type_ids[0].nonzero().flatten().tolist()
    assert len(image_at) == 4 and min(image_at) > text_end - 1


def test_text_only_prompts(family_processor):
    _, proc = family_processor
    batch = encode_batch(proc, [Example("Q", "A")], image_tokens=None, placement=None)
    assert batch.mm_token_type_ids.sum() == 0
    with pytest.raises(ConfigError, match="image_tokens=None exactly when placement is None"):
        encode_batch(proc, [Example("Q", "A")], image_tokens=4, placement=None)


def test_bad_inputs_are_refused(family_processor):
    _, proc = family_processor
    with pytest.raises(DataError, match="reserved image token"):
        encode_batch(proc, [Example("look <|image_pad|>", "A", "7")], image_tokens=4)
    with pytest.raises(ConfigError, match="extra image token count"):
        encode_batch(proc, [Example("Q", "A", "0", "/x.png")], image_tokens=4)
    with pytest.raises(DataError, match="no examples"):
        encode_batch(proc, [], image_tokens=4)


# --- the positions a row may take (RowRoom) ----------------------------------------------------------------

def test_a_rows_room_is_what_its_layout_leaves_of_the_models_positions(qwen35, tmp_path):
    """A fixed allowance of 96 positions for the template and the canvas refused rows that fit beside a small
    canvas and let through rows that ran past the model's positions beside a large canvas or a picture."""
    from artstudio.prompts import RowRoom, check_row_lengths

    picture = tmp_path / "p.png"
    Image.new("RGB", (512, 512)).save(picture)
    rows = [Example(prompt="12 + 30", answer="42"), Example(prompt="what is it", answer="a cat", image=str(picture))]
    for tokens in (None, 4, 256):
        room = RowRoom(qwen35, tokens)
        for ex, picture_tokens in zip(rows, (None, 256)):
            assert room.picture_tokens(ex.image) == picture_tokens
            encoded = encode_batch(qwen35.processor, [ex], image_tokens=tokens, placement=tokens and "first",
                                   extra_image_tokens=picture_tokens and [picture_tokens])
            text = len(qwen35.tokenizer(ex.prompt + ex.answer, add_special_tokens=False)["input_ids"])
            assert abs(room.overhead(picture_tokens) + text - encoded.input_ids.shape[1]) <= 1, (tokens, ex)
    small, large = RowRoom(qwen35, 4), RowRoom(qwen35, 256)
    assert large.room() == small.room() - 252 and small.room(256) == small.room() - 258  # 256 and its two markers
    # A row that fits beside a 64-pixel canvas (4 tokens) but not beside a 512-pixel one (256 tokens).
    long = [Example(prompt="1 " * ((small.room() - 20) // 2), answer="3", id="long")]
    check_row_lengths(small, long, "rows")
    with pytest.raises(DataError, match=r"rows: row 'long': the row is too long: its prompt and answer take [\d,]+ "
                                        r"tokens, and with the chat template and the canvas \(256 tokens\) it must fit "
                                        r"the model's 4,096 positions \(at most 3,8\d\d\); shorten or drop the row"):
        check_row_lengths(large, long, "rows")
    with pytest.raises(DataError, match=r"the canvas \(4 tokens\) and the row's picture \(256 tokens\)"):
        check_row_lengths(small, [Example(prompt=long[0].prompt, answer="3", image=str(picture))], "rows")
    assert RowRoom(types.SimpleNamespace(max_positions=None), 4).over("x" * 10**6, 10) is None  # no stated limit
