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

Shared prefix. Every row of a batch starts with the same tokens: the chat template's opening and,
with placement "first", the canvas (there is no system turn). `token_logprobs` runs that prefix ONCE
(batch 1), broadcasts its cache to the rows (`Cache.reorder_cache` with index 0 repeated, which
exists for every layer kind: keys and values, and the convolution and recurrent states of Qwen3.5's
linear-attention layers) with the autograd graph kept, and runs each row on its own tokens only.
Attention is causal and the recurrent layers run left to right, so a row's result is exactly that of
the unshared pass (tests check loss and canvas gradient on every family). Positions are the ones the
model computes for the whole batch (`get_rope_index`), sliced. The prefix never splits a picture,
holds no row's own picture, and stops before the first position that predicts an answer token.
Under gradient checkpointing transformers turns the cache off, so that path runs unshared.

GRPO scores G completions of each prompt. On models of at least `GROUP_SHARING_MIN_PARAMETERS`,
rows that repeat one prompt (a group) share more than the batch's opening: each group runs its whole
prompt once, then its completions, so a batch of B prompts runs B prompts, not B × G. (One pass over
every group at once would put the shorter prompts' padding between prompt and completion, inside
the recurrent layers' state.)
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

import torch

from .backbone import cache_of
from .data import Example
from .prompts import IGNORE_INDEX, Batch, RowRoom, encode_batch


def encode(method, examples: list[Example], *, with_answers: bool, padding_side: str = "right",
           extra_image_tokens: list[int | None] | None = None) -> Batch:
    """Token ids of `examples` laid out as `method` prompts them (slot, placement, prompt format)."""
    return encode_batch(method.backbone.processor, examples, image_tokens=method.slot_tokens,
                        extra_image_tokens=extra_image_tokens, placement=method.placement,
                        keep_default_system=method.keep_default_system, with_answers=with_answers,
                        padding_side=padding_side)


def row_room(method) -> RowRoom:
    """The positions a row's text may take when `method` prompts it (its slot and prompt format)."""
    return RowRoom(method.backbone, method.slot_tokens, keep_default_system=method.keep_default_system)


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
    return *_joined(method, images, grids), tokens


def _joined(method, images: list[list], grids: list[list]) -> tuple[Any, torch.Tensor | None]:
    """Per-row vision outputs and grid rows joined in sequence order, through the method's image hook."""
    outputs = [o for row in images for o in row]
    if not outputs:
        return None, None
    joined = method.transform_image_outputs(method.backbone.concat_image_outputs(outputs))
    return joined, torch.cat([g for row in grids for g in row])


def image_runs(ids: list[int], image_token_id: int) -> list[tuple[int, int]]:
    """(start, end) of each run of image tokens."""
    runs, pos = [], 0
    for is_img, grp in groupby(ids, key=lambda t: t == image_token_id):
        n = len(list(grp))
        if is_img:
            runs.append((pos, pos + n))
        pos += n
    return runs


def shared_prefix_length(rows: list[list[int]], limit: int, image_token_id: int, has_slot: bool) -> int:
    """Length of the longest prefix common to every row, at most `limit`, that splits no picture and
    holds none but the slot (the first picture of every row, when the method has one)."""
    first, n = rows[0], max(limit, 0)
    for ids in rows[1:]:
        k = 0
        while k < n and ids[k] == first[k]:
            k += 1
        n = k
    for j, (s, e) in enumerate(image_runs(first, image_token_id)):
        if s < n and (e > n or j > 0 or not has_slot):
            return s
    return n


# Sharing each GRPO group's whole prompt costs one more forward per group; it pays when the prompt
# tokens it saves outweigh that fixed cost, which grows with the model. Measured (bench_scale.py
# --grpo 2x4, bench_art_vs_lora.py --grpo 4x8): 1.62x faster than sharing only the batch's opening on
# Qwen3.5-0.8B's shapes (4 layers), 0.88x on studio-tiny (3.9 M parameters). Below this size a batch
# shares only its common opening.
GROUP_SHARING_MIN_PARAMETERS = 50_000_000


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
    groups = _groups(examples) if completion_ids is not None and method.shared_prefix else []
    if len(groups) > 1 and backbone.num_parameters >= GROUP_SHARING_MIN_PARAMETERS and not _checkpointing(method):
        # Rows that repeat one prompt (a GRPO group) share the whole prompt, not only the batch's
        # opening: each group runs its prompt once and its completions on their own tokens. Right
        # padding makes a group's columns the batch's first columns, so the groups' results are
        # padded on the right to the batch's width, exactly the layout of one pass.
        parts = [token_logprobs(method, examples[a:b], completion_ids=completion_ids[a:b], slot=slot,
                                temperature=temperature, banned=banned) for a, b in groups]
        width = max(lp.shape[1] for lp, _ in parts)
        pad = torch.nn.functional.pad
        return (torch.cat([pad(lp, (0, width - lp.shape[1])) for lp, _ in parts]),
                torch.cat([pad(m, (0, width - m.shape[1])) for _, m in parts]))
    images, grids, extra_tokens = row_images(method, examples, slot)
    batch = encode(method, examples, with_answers=completion_ids is None, extra_image_tokens=extra_tokens)
    if completion_ids is None:
        input_ids, attention, labels = batch.input_ids, batch.attention_mask, batch.labels
    else:
        input_ids, attention, labels = _append(batch, completion_ids, backbone.pad_token_id)
    device = backbone.device
    input_ids, attention = input_ids.to(device), attention.to(device)
    mm_types = (input_ids.eq(backbone.image_token_id) & attention.bool()).long()
    labels = labels.to(device)
    mask = labels[:, 1:].ne(IGNORE_INDEX)
    keep = torch.nn.functional.pad(mask, (0, 1))  # position t predicts token t + 1
    p = 0
    if method.shared_prefix and len(examples) > 1 and not _checkpointing(method):
        # The position before the first answer token predicts it, so the prefix stops there.
        p = shared_prefix_length(input_ids.tolist(), min(batch.prompt_lengths) - 1, backbone.image_token_id,
                                 slot is not None)
    if p > 0:
        out = _shared_forward(method, input_ids, attention, mm_types, images, grids, keep, p)
    else:
        joined, grid = _joined(method, images, grids)
        out = method.forward(input_ids=input_ids, attention_mask=attention, mm_token_type_ids=mm_types,
                             image_outputs=joined, image_grid_thw=grid, logits_to_keep=keep)
    logp = _gather_logprobs(out.logits, labels[:, 1:][mask], temperature, banned)
    return torch.zeros(mask.shape, dtype=logp.dtype, device=logp.device).masked_scatter(mask, logp), mask


def _checkpointing(method) -> bool:
    """Gradient checkpointing is on (transformers then turns the cache off, so nothing can be shared)."""
    return method.model.training and any(getattr(m, "gradient_checkpointing", False) for m in method.model.modules())


def _groups(examples: list[Example]) -> list[tuple[int, int]]:
    """(start, end) of each run of consecutive rows with the same example; [] when no example repeats."""
    bounds = [i for i in range(1, len(examples)) if examples[i] != examples[i - 1]]
    if len(bounds) == len(examples) - 1:
        return []
    starts = [0, *bounds]
    return list(zip(starts, [*bounds, len(examples)]))


def _shared_forward(method, input_ids, attention, mm_types, images, grids, keep, p: int):
    """The batch's forward with its first `p` tokens run once and their cache broadcast to every row."""
    backbone = method.backbone
    slot_in_prefix = bool(mm_types[0, :p].any())  # only the slot can be there (`shared_prefix_length`)
    every = [g for row in grids for g in row]
    grid = torch.cat(every) if every else None  # the batch's pictures, for the model's own positions
    if grid is None:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).view(1, 1, -1).expand(3, len(input_ids), -1)
    else:
        positions, _ = backbone.model.model.get_rope_index(input_ids, mm_token_type_ids=mm_types, image_grid_thw=grid,
                                                         attention_mask=attention)
    head, rest = ([images[0][:1]], [row[1:] for row in images]) if slot_in_prefix else ([[]], images)
    head_grids, rest_grids = ([grids[0][:1]], [row[1:] for row in grids]) if slot_in_prefix else ([[]], grids)
    prefix_images, prefix_grid = _joined(method, head, head_grids)
    prefix = method.forward(input_ids=input_ids[:1, :p], attention_mask=attention[:1, :p],
                            mm_token_type_ids=mm_types[:1, :p], image_outputs=prefix_images,
                            image_grid_thw=prefix_grid, position_ids=positions[:, :1, :p], use_cache=True,
                            logits_to_keep=torch.zeros(1, p, dtype=torch.bool))
    cache = cache_of(prefix)
    # Index 0 repeated: the one-row prefix becomes every row's (index_select keeps the graph to it).
    cache.reorder_cache(torch.zeros(len(input_ids), dtype=torch.long, device=input_ids.device))
    _replace_instead_of_copy(cache)
    row_images_, row_grid = _joined(method, rest, rest_grids)
    return method.forward(input_ids=input_ids[:, p:], attention_mask=attention, mm_token_type_ids=mm_types[:, p:],
                          image_outputs=row_images_, image_grid_thw=row_grid, position_ids=positions[:, :, p:],
                          past_key_values=cache, use_cache=True, logits_to_keep=keep[:, p:])


def _replace_instead_of_copy(cache) -> None:
    """Make the cache's linear-attention layers (Qwen3.5) store a new recurrent state by replacing the old one.

    They copy it into the old tensor in place (a fixed address for CUDA graphs), but the rows' pass has
    read that tensor as its initial state and needs it unchanged for the backward pass. Only this
    cache object, which lives for one forward, is changed; attention layers are left as they are.
    """
    for layer in getattr(cache, "layers", ()):
        states = getattr(layer, "recurrent_states", None)
        if states is None:
            continue

        def update(recurrent_states, state_idx: int = 0, _states=states, **_):
            last = recurrent_states if isinstance(recurrent_states, torch.Tensor) else recurrent_states[-1]
            _states[state_idx] = last
            return last

        layer.update_recurrent_state = update


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
