"""The batch forward (`artstudio.forward`): answer-only logits give exactly the full-logits log-probs."""

from __future__ import annotations

import pytest
import torch

from artstudio.backbone import load_backbone
from artstudio.data import Example
from artstudio.forward import batch_images, encode, token_logprobs
from artstudio.methods import build_method
from artstudio.prompts import IGNORE_INDEX

from conftest import FACTOR

ROWS = [Example(prompt=f"{a} {b}", answer=str(a + b) * (1 + i % 3), id=str(i))
        for i, (a, b) in enumerate([(1, 2), (3, 4), (2, 2), (5, 1)])]


def _full_logits_reference(method, examples):
    """log p(answer tokens) from the model's full (B, L, V) logits, the way it was computed before."""
    bb = method.backbone
    slot = method.slot_outputs()
    images, grid, extra = batch_images(method, examples, slot)
    batch = encode(method, examples, with_answers=True, extra_image_tokens=extra)
    out = method.forward(input_ids=batch.input_ids.to(bb.device), attention_mask=batch.attention_mask.to(bb.device),
                         mm_token_type_ids=batch.mm_token_type_ids.to(bb.device), image_outputs=images,
                         image_grid_thw=grid)
    labels = batch.labels[:, 1:].to(bb.device)
    mask = labels.ne(IGNORE_INDEX)
    logp = torch.log_softmax(out.logits[:, :-1].float(), -1).gather(-1, labels.clamp_min(0)[..., None]).squeeze(-1)
    return logp * mask, mask, out.logits.numel()


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "qwen3_5"])
@pytest.mark.parametrize("name", ["art", "lora", "base"])
def test_answer_only_logits_equal_the_full_logits(tiny_model_dir, family, name):
    bb = load_backbone(tiny_model_dir(family))
    opts = {"canvas_size": 2 * FACTOR[family], "init": "noise", "seed": 0} if name == "art" else {}
    method = build_method(name, bb, opts)
    ref, ref_mask, full = _full_logits_reference(method, ROWS)
    ours, mask = token_logprobs(method, ROWS)
    assert torch.equal(mask, ref_mask)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    # ... and the head saw only the answer-predicting positions, not every position of every row.
    seen = {}
    handle = method.model.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.update(n=o.shape[:-1].numel()))
    try:
        token_logprobs(method, ROWS)
    finally:
        handle.remove()
    assert seen["n"] == int(mask.sum()) < full // bb.model.config.get_text_config().vocab_size
