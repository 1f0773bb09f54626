"""The batch forward pass: examples + a method -> token ids, pictures, and per-token log-probabilities.

This is the one place on the data path (DESIGN §3) where a batch meets a method; SFT, GRPO,
evaluation and generation all go through it:

1. `encode` renders each example's chat text and tokenises it with the method's prompt facts: where
   the canvas slot goes (`method.placement`), how many visual tokens it has (`method.slot_tokens`),
   and the prompt format (`method.keep_default_system`);
2. `row_images` puts the batch's pictures together in sequence order: the method's slot encoding
   (computed ONCE per step by the caller and shared by every row, so its gradient sums over the
   batch) and each row's own picture (through the stock image processor and the vision tower once);
3. `token_logprobs` runs the method's model on the batch and returns log p(token) at the answer
   positions (or at given completion ids, for GRPO), with their mask. Only the positions that predict
   an answer token go through the language-model head (`logits_to_keep`): the batch × length ×
   vocabulary logits of the prompt, most of the activation memory on a 151k-token vocabulary, are
   never made.
"""

from __future__ import annotations

from typing import Any

import torch

from .data import Example
from .prompts import IGNORE_INDEX, Batch, encode_batch


def encode(method, examples: list[Example], *, with_answers: bool, padding_side: str = "right",
           extra_image_tokens: list[int | None] | None = None) -> Batch:
    """Token ids of `examples` laid out as `method` prompts them (slot, placement, prompt format)."""
    return encode_batch(method.backbone.processor, examples, image_tokens=method.slot_tokens,
                        extra_image_tokens=extra_image_tokens, placement=method.placement,
                        keep_default_system=method.keep_default_system, with_answers=with_answers,
                        padding_side=padding_side)


def row_images(method, examples: list[Example], slot=None):
    """Per row, the vision outputs and grid rows of its pictures in sequence order (the slot, then the
    row's own `image`), and the visual-token count of each row's own picture (None without one).

    Each distinct row picture goes through the stock image processor and the vision tower once.
    """
    from PIL import Image

    backbone = method.backbone
    encoded = {}
    for path in dict.fromkeys(e.image for e in examples if e.image is not None):
        with Image.open(path) as im:
            enc = backbone.processor.image_processor(images=[im.convert("RGB")], return_tensors="pt")
        grid = enc["image_grid_thw"]
        encoded[path] = (backbone.encode_images(enc["pixel_values"], grid), grid.to(backbone.device),
                         int(grid.prod()) // backbone.geometry.merge_size ** 2)
    images, grids, tokens = [], [], []
    for ex in examples:
        own = [encoded[ex.image]] if ex.image is not None else []
        images.append(([slot] if slot is not None else []) + [o for o, _, _ in own])
        grids.append(([method.slot_grid] if slot is not None else []) + [g for _, g, _ in own])
        tokens.append(own[0][2] if own else None)
    return images, grids, tokens


def batch_images(method, examples: list[Example], slot=None) -> tuple[Any, torch.Tensor | None, list[int | None]]:
    """Every picture of a batch joined in sequence order (the shared slot once per row, by reference),
    their `image_grid_thw` rows, and each row's own-picture token count."""
    images, grids, tokens = row_images(method, examples, slot)
    outputs = [o for row in images for o in row]
    if not outputs:
        return None, None, tokens
    joined = method.transform_image_outputs(method.backbone.concat_image_outputs(outputs))
    return joined, torch.cat([g for row in grids for g in row]), tokens


def token_logprobs(method, examples: list[Example], *, completion_ids: list[list[int]] | None = None,
                   slot=None, temperature: float = 1.0, banned: list[int] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities of the answers and their mask, (B, L-1) each.

    With `completion_ids`, row i scores those token ids after example i's prompt instead of its
    reference answer (GRPO works on the sampled ids themselves, so a completion cut at the token
    budget carries no end token it never produced). `slot` is the method's canvas-slot encoding when
    the caller already computed it this step; `temperature` and `banned` reproduce a sampler's
    distribution.
    """
    backbone = method.backbone
    if slot is None:
        slot = method.slot_outputs()
    images, grid, extra_tokens = batch_images(method, examples, slot)
    batch = encode(method, examples, with_answers=completion_ids is None, extra_image_tokens=extra_tokens)
    if completion_ids is None:
        input_ids, attention, labels = batch.input_ids, batch.attention_mask, batch.labels
    else:
        input_ids, attention, labels = _append(batch, completion_ids, backbone.pad_token_id)
    mm_types = (input_ids.eq(backbone.image_token_id) & attention.bool()).long()
    labels = labels.to(backbone.device)
    mask = labels[:, 1:].ne(IGNORE_INDEX)
    keep = torch.nn.functional.pad(mask, (0, 1))  # position t predicts token t + 1
    out = method.forward(input_ids=input_ids.to(backbone.device), attention_mask=attention.to(backbone.device),
                         mm_token_type_ids=mm_types.to(backbone.device), image_outputs=images, image_grid_thw=grid,
                         logits_to_keep=keep)
    logp = _gather_logprobs(out.logits, labels[:, 1:][mask], temperature, banned)
    return torch.zeros(mask.shape, dtype=logp.dtype, device=logp.device).masked_scatter(mask, logp), mask


def _gather_logprobs(logits: torch.Tensor, targets: torch.Tensor, temperature: float, banned: list[int] | None,
                     chunk: int = 1024) -> torch.Tensor:
    """log p(targets[i]) from (N, V) logits, in float32, `chunk` rows at a time (one float copy of a chunk)."""
    pieces = []
    for start in range(0, logits.shape[0], chunk):
        rows = logits[start:start + chunk].float()
        if temperature != 1.0:
            rows = rows / temperature
        if banned:
            rows = rows.index_fill(-1, torch.tensor(banned, device=rows.device), float("-inf"))
        pieces.append(torch.log_softmax(rows, -1).gather(-1, targets[start:start + chunk, None]).squeeze(-1))
    return torch.cat(pieces) if pieces else logits.new_zeros(0, dtype=torch.float32)


def _append(batch: Batch, completion_ids: list[list[int]], pad_id: int | None):
    """Prompt ids + completion ids per row, right-padded, with labels on the completion only."""
    rows, labels = [], []
    for i, (n, completion) in enumerate(zip(batch.prompt_lengths, completion_ids)):
        prompt = batch.input_ids[i, :n]
        done = torch.tensor(list(completion), dtype=torch.long)
        rows.append(torch.cat([prompt, done]))
        labels.append(torch.cat([torch.full_like(prompt, IGNORE_INDEX), done]))
    pad = torch.nn.utils.rnn.pad_sequence
    input_ids = pad(rows, batch_first=True, padding_value=pad_id if pad_id is not None else 0)
    label_ids = pad(labels, batch_first=True, padding_value=IGNORE_INDEX)
    attention = pad([torch.ones_like(r) for r in rows], batch_first=True)
    return input_ids, attention, label_ids
