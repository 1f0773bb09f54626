"""Shared-prefix training (`artstudio.forward`): the batch's common prefix run once gives exactly the
loss and the gradients of the unshared pass, on every family and for every method whose rows share one."""

from __future__ import annotations

import pytest
import torch

from artstudio.backbone import load_backbone
from artstudio.data import Example
from artstudio import forward
from artstudio.forward import encode, shared_prefix_length, token_logprobs
from artstudio.methods import build_method
from artstudio.objectives.sft import compute_loss

from artstudio.tiny import FAMILIES
from conftest import FACTOR

ROWS = [Example(prompt=f"{a} plus {b}" + " please" * (i % 2), answer=str(a + b) * (1 + i % 3), id=str(i))
        for i, (a, b) in enumerate([(1, 2), (3, 4), (2, 2), (5, 1)])]


def _loss_and_grads(method, shared: bool, examples=ROWS, completion_ids=None):
    method.shared_prefix = shared
    for q in method.trainable_parameters():
        q.grad = None
    if completion_ids is None:
        loss = compute_loss(method, examples)
    else:
        logp, mask = token_logprobs(method, examples, completion_ids=completion_ids)
        loss = -(logp.sum() / mask.sum())
    loss.backward()
    return loss.detach(), [None if q.grad is None else q.grad.clone() for q in method.trainable_parameters()]


def _assert_same(method, **kw):
    loss0, grads0 = _loss_and_grads(method, False, **kw)
    loss1, grads1 = _loss_and_grads(method, True, **kw)
    torch.testing.assert_close(loss1, loss0, atol=1e-5, rtol=1e-5)
    assert any(g is not None and g.abs().sum() > 0 for g in grads0)
    for g1, g0 in zip(grads1, grads0):
        assert (g1 is None) == (g0 is None)  # AdaLink's picture adapter gets none on text-only rows
        if g0 is not None:
            torch.testing.assert_close(g1, g0, atol=1e-5, rtol=1e-4)


def _counting_tokens(method):
    """A hook on the embedding table counting the token positions the language model runs."""
    seen = []
    handle = method.backbone.input_embeddings().register_forward_hook(lambda m, i, o: seen.append(i[0].numel()))
    return seen, handle


@pytest.mark.parametrize("family", FAMILIES)
def test_art_loss_and_canvas_gradient_equal_the_unshared_pass(tiny_model_dir, family):
    torch.manual_seed(0)
    bb = load_backbone(tiny_model_dir(family), dtype="fp32")
    method = build_method("art", bb, {"canvas_size": 2 * FACTOR[family], "init": "noise", "seed": 0})
    _assert_same(method)
    # ... and the canvas tokens really ran once: the rows' pass saw every row minus the prefix.
    seen, handle = _counting_tokens(method)
    try:
        _loss_and_grads(method, True)
    finally:
        handle.remove()
    prefix, rows = seen  # two passes: the prefix (one row), then the rows' own tokens
    assert prefix > method.slot_tokens
    method.shared_prefix = False
    seen_unshared, handle = _counting_tokens(method)
    try:
        compute_loss(method, ROWS)
    finally:
        handle.remove()
    assert rows == seen_unshared[0] - len(ROWS) * prefix


@pytest.mark.parametrize("name", ["soft-prompt", "lora", "adalink", "vera"])
def test_every_method_whose_rows_share_a_prefix_gets_the_same_gradients(tiny_model_dir, name):
    torch.manual_seed(0)
    bb = load_backbone(tiny_model_dir("qwen3_vl"), dtype="fp32")
    opts = {"canvas_size": 64} if name == "soft-prompt" else {}
    if name == "lora":
        opts["dropout"] = 0.0  # a dropout mask is random: equal only without one
    method = build_method(name, bb, opts)
    if name == "lora":  # B starts at zero; move it so the A gradient is not zero too
        with torch.no_grad():
            for q in method.trainable_parameters():
                q.add_(0.05 * torch.randn_like(q))
    _assert_same(method)


@pytest.mark.parametrize("family", FAMILIES)
def test_grpo_groups_share_their_whole_prompt(tiny_model_dir, family, monkeypatch):
    """GRPO's policy-gradient pass scores sampled ids after each prompt: each group of rows repeating one
    prompt runs that prompt once (canvas included), with the loss and gradients of the unshared pass."""
    torch.manual_seed(0)
    bb = load_backbone(tiny_model_dir(family), dtype="fp32")
    method = build_method("art", bb, {"canvas_size": 2 * FACTOR[family], "init": "noise", "seed": 0})
    monkeypatch.setattr(forward, "GROUP_SHARING_MIN_PARAMETERS", 0)  # tiny models are below the size where it pays
    rows = [ROWS[0]] * 3 + [ROWS[1]] * 3  # two groups of three samples; the second prompt is longer
    tok = bb.tokenizer
    completions = [tok.encode(t) for t in ["3", "33<|im_end|>", "x", "7", "7<|im_end|>", "seven"]]
    _assert_same(method, examples=rows, completion_ids=completions)
    seen, handle = _counting_tokens(method)
    try:
        _loss_and_grads(method, True, examples=rows, completion_ids=completions)
    finally:
        handle.remove()
    prompt_lengths = encode(method, [ROWS[0], ROWS[1]], with_answers=False).prompt_lengths
    # Per group: its prompt once (up to the position that predicts the first completion token), then
    # its three completions on their own tokens (padded to the group's longest).
    assert seen[0::2] == [n - 1 for n in prompt_lengths]
    own = [[len(c) + 1 for c in completions[:3]], [len(c) + 1 for c in completions[3:]]]
    assert seen[1::2] == [3 * max(o) for o in own]


def test_the_prefix_stops_before_answers_and_never_splits_a_picture():
    img = 9
    rows = [[1, 2, img, img, 3, 4, 5], [1, 2, img, img, 3, 4, 6]]
    assert shared_prefix_length(rows, 6, img, has_slot=True) == 6
    assert shared_prefix_length(rows, 3, img, has_slot=True) == 2  # would split the slot
    assert shared_prefix_length(rows, 6, img, has_slot=False) == 2  # a row's own picture is not shared
    assert shared_prefix_length([[1, img, 2, img, 5], [1, img, 2, img, 6]], 4, img, has_slot=True) == 3  # second picture
    assert shared_prefix_length([[7, 1], [8, 1]], 1, img, has_slot=True) == 0


def test_small_models_share_only_the_batch_opening_in_grpo(tiny_model_dir):
    """Below GROUP_SHARING_MIN_PARAMETERS the extra forward per group costs more than it saves: one
    prefix pass for the whole batch, then every row."""
    bb = load_backbone(tiny_model_dir("qwen3_5"), dtype="fp32")
    assert bb.num_parameters < forward.GROUP_SHARING_MIN_PARAMETERS
    method = build_method("art", bb, {"canvas_size": 64, "init": "noise", "seed": 0})
    rows = [ROWS[0]] * 2 + [ROWS[1]] * 2
    completions = [bb.tokenizer.encode(t) for t in ["3", "33", "7", "77"]]
    seen, handle = _counting_tokens(method)
    try:
        _loss_and_grads(method, True, examples=rows, completion_ids=completions)
    finally:
        handle.remove()
    assert len(seen) == 2
