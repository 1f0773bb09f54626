"""Decoding with a shared prefix: greedy for evaluation, sampled groups for GRPO.

Every prompt of a run starts with the same tokens: the chat template's opening and, with placement
"first", the canvas. That prefix is run through the model once; its key/value cache is then copied
to every prompt, so only each prompt's own tokens are computed (as vLLM's prefix cache does for the
served artwork). Prompts are grouped by the layout of their remaining tokens, so a group needs no
padding at all: no attention-mask tricks, and exactly the positions an unbatched run would use.
A test checks the result against `model.generate` on the stock processor's inputs.

Sampled groups (GRPO, `num_return_sequences = G > 1`) share one step further: each prompt's own
tokens are run ONCE and the resulting cache is copied to its G samples (`Cache.reorder_cache` with
each row index repeated G times, which exists for every cache layer kind, Qwen3.5's linear-attention
layers included), so a group costs one prompt forward plus G decodes, not G prompt forwards.
`benchmarks/bench_grpo_sampling.py` measures the saving.

Positions follow the model's own multimodal RoPE (`get_rope_index`), passed explicitly with a
leading text-position row, which every Qwen VL family accepts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from itertools import groupby
from typing import Callable

import torch

from .backbone import cache_of
from .data import Example, as_examples
from .errors import ConfigError
from .methods import check_method
from .forward import encode, row_images, row_room, shared_prefix_length
from .prompts import check_row_lengths


@dataclass
class GenerationConfig:
    max_new_tokens: int = field(default=32, metadata={"help": "longest answer, in tokens"})
    do_sample: bool = field(default=False, metadata={"help": "sample instead of greedy decoding"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    num_return_sequences: int = field(default=1, metadata={"help": "completions per prompt (GRPO group size)"})
    prefix_reuse: bool = field(default=True, metadata={"help": "compute the shared prefix once and reuse its KV cache"})
    batch_size: int = field(default=64, metadata={"help": "rows decoded together"})
    ignore_eos: bool = field(default=False, metadata={"help": "decode max_new_tokens tokens even past an end token (vLLM's option of that name; for benchmarks)"})

    def __post_init__(self) -> None:
        # From Python a string or 0 failed deep inside decoding (or returned empty answers without a word).
        for name in ("max_new_tokens", "num_return_sequences", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"GenerationConfig {name} is {value!r}; expected a whole number of at least 1")
        for name in ("do_sample", "prefix_reuse", "ignore_eos"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"GenerationConfig {name} is {getattr(self, name)!r}; expected True or False")
        for name, low in (("temperature", 0.0), ("top_p", 0.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not low < value < float("inf"):
                raise ConfigError(f"GenerationConfig {name} is {value!r}; expected a number above {low:g}")
        if self.top_p > 1:
            raise ConfigError(f"GenerationConfig top_p is {self.top_p!r}; expected a probability mass in (0, 1]")


@dataclass
class Generation:
    texts: list[list[str]]  # per example, num_return_sequences completions
    token_ids: list[list[list[int]]]  # the generated ids, up to and including the end token
    prompt_ids: list[list[int]]


def rope_positions(backbone, ids: torch.Tensor, grids: list[torch.Tensor]) -> torch.Tensor:
    """(4, 1, L) positions of one unpadded row: text position, then the model's M-RoPE rows."""
    ids = ids.to(backbone.device)[None]
    if grids:
        mrope, _ = backbone.model.model.get_rope_index(
            ids, mm_token_type_ids=backbone.image_token_types(ids), image_grid_thw=torch.cat(grids),
        )
    else:
        mrope = torch.arange(ids.shape[1], device=ids.device).view(1, 1, -1).expand(3, 1, -1)
    text = torch.arange(ids.shape[1], device=ids.device).view(1, 1, -1)
    return torch.cat([text, mrope.to(ids.device)], dim=0)


def prepare_rows(method, examples: list[Example], slot=None):
    """Token ids, per-row image outputs (in sequence order) and positions for each prompt."""
    backbone = method.backbone
    images, grids, extra_tokens = row_images(method, examples, slot)
    batch = encode(method, examples, with_answers=False, padding_side="left", extra_image_tokens=extra_tokens)
    rows = []
    for i, n in enumerate(batch.prompt_lengths):
        ids = batch.input_ids[i, -n:]
        rows.append({"ids": ids, "images": images[i], "pos": rope_positions(backbone, ids, grids[i])})
    return rows


def _forward(method, ids, pos, images, cache):
    backbone = method.backbone
    outputs = None
    if images:
        outputs = method.transform_image_outputs(backbone.concat_image_outputs(images))
    return method.forward(input_ids=ids, attention_mask=None, image_outputs=outputs,
                          position_ids=pos, past_key_values=cache, use_cache=True)


def placeholder_ids(backbone) -> list[int]:
    """Token ids that stand for pictures: a completion holding one could not be fed back to the model."""
    ids = (backbone.image_token_id, getattr(backbone.model.config, "video_token_id", None))
    return [i for i in ids if isinstance(i, int) and i >= 0]


def _sample(logits: torch.Tensor, cfg: GenerationConfig, gen: torch.Generator | None,
            banned: list[int] | None = None) -> torch.Tensor:
    if not cfg.do_sample:
        return logits.argmax(-1)
    logits = logits.float()
    if banned:
        logits = logits.index_fill(-1, torch.tensor(banned, device=logits.device), float("-inf"))
    probs = torch.softmax(logits / max(cfg.temperature, 1e-5), -1)
    if cfg.top_p < 1.0:
        sorted_p, idx = probs.sort(-1, descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < cfg.top_p
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter(-1, idx, sorted_p)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


def stop_ids(backbone) -> set[int]:
    """The token ids that end an answer: the model's EOS, ChatML's `<|im_end|>` and `<|endoftext|>`."""
    tok = backbone.tokenizer
    ids = (backbone.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>"))
    return {i for i in ids if isinstance(i, int) and i >= 0}


@torch.no_grad()
def generate(method, examples: list[Example], config: GenerationConfig | None = None, *,
             seed: int | None = None, progress=None, slot=None,
             on_token: Callable[[int, int], None] | None = None) -> Generation:
    """Complete every prompt; returns texts and ids per example (`num_return_sequences` each).

    `slot` is the method's canvas-slot encoding when the caller already computed it this step
    (GRPO samples and then trains with one encoding); by default it is computed here. `on_token(i, id)`
    is called as each token of example i is chosen (a server streams with it).
    """
    check_method(method)
    examples = as_examples(examples)
    if isinstance(config, dict):  # generate(method, rows, {"max_new_tokens": 4}) reads as GenerationConfig(**it)
        from .options import from_dict

        config = from_dict(GenerationConfig, config, what="generation")
    elif config is not None and not isinstance(config, GenerationConfig):
        raise ConfigError(f"generate() takes a GenerationConfig or a dict of its fields, not a "
                          f"{type(config).__name__}")
    cfg = config or GenerationConfig()
    backbone = method.backbone
    # A prompt longer than the model's positions decoded garbage (the command line refused it; Python did not).
    check_row_lengths(row_room(method), examples, "the prompts", answers=False, max_new_tokens=cfg.max_new_tokens)
    tok = backbone.tokenizer
    gen = None
    if cfg.do_sample:
        # The generator lives where the logits are: torch.multinomial needs them on one device.
        gen = torch.Generator(device=backbone.device).manual_seed(0 if seed is None else seed)
    stop = stop_ids(backbone)
    if slot is None:
        slot = method.slot_outputs()
    rows = prepare_rows(method, examples, slot)
    k = cfg.num_return_sequences
    banned = placeholder_ids(backbone)  # never sampled; greedy decoding stays exactly model.generate's

    ids = [r["ids"].tolist() for r in rows]
    p = shared_prefix_length(ids, min(map(len, ids)) - 1, backbone.image_token_id, slot is not None) if cfg.prefix_reuse else 0
    prefix_cache = None
    if p > 0:
        r0 = rows[0]
        slot_in_prefix = slot is not None and backbone.image_token_id in r0["ids"][:p].tolist()
        prefix_cache = _prefix_cache(method, r0, p, slot if slot_in_prefix else None)
    else:
        slot_in_prefix = False

    def layout(i):  # rows with the same layout after the prefix decode together without padding
        ids = rows[i]["ids"][p:]
        return (len(ids), tuple(ids.eq(backbone.image_token_id).nonzero().flatten().tolist()))

    results: dict[int, list[list[int]]] = {}
    order = sorted(range(len(rows)), key=layout)
    per = max(1, cfg.batch_size // k)
    groups = [list(g) for _, g in groupby(order, key=layout)]
    chunks = [g[j:j + per] for g in groups for j in range(0, len(g), per)]
    for chunk in chunks:
        idx = [i for i in chunk for _ in range(k)]
        cache, logits, next_pos = _prompt_forward(method, rows, chunk, p, prefix_cache, slot_in_prefix)
        if k > 1:
            # Each prompt was computed once; its cache, last logits and position go to its k samples.
            group = torch.arange(len(chunk), device=logits.device).repeat_interleave(k)
            cache.reorder_cache(group)
            logits, next_pos = logits[group], next_pos[:, group]
        done = torch.zeros(len(idx), dtype=torch.bool, device=logits.device)
        produced: list[list[int]] = [[] for _ in idx]
        for _ in range(cfg.max_new_tokens):
            nxt = _sample(logits, cfg, gen, banned).to(logits.device)
            for r, t in enumerate(nxt.tolist()):
                if not done[r]:
                    produced[r].append(t)
                    if on_token is not None:
                        on_token(idx[r], t)
            if not cfg.ignore_eos:
                done |= torch.tensor([t in stop for t in nxt.tolist()], device=done.device)
            if bool(done.all()):
                break
            out = method.forward(input_ids=nxt[:, None], attention_mask=None, image_outputs=None,
                                 position_ids=next_pos, past_key_values=cache, use_cache=True)
            cache, logits = cache_of(out), out.logits[:, -1]
            next_pos = next_pos + 1
        for r, i in enumerate(idx):
            results.setdefault(i, []).append(produced[r])
        if progress is not None:
            progress(len(chunk))

    token_ids = [results[i] for i in range(len(rows))]
    texts = [[tok.decode(t, skip_special_tokens=True).strip() for t in seqs] for seqs in token_ids]
    return Generation(texts=texts, token_ids=token_ids, prompt_ids=[r["ids"].tolist() for r in rows])


def _prefix_cache(method, row: dict, p: int, slot):
    """The shared prefix's KV cache. For a method with nothing trainable (a served artwork, the base
    model) it is computed once per process and reused by every call, as a serving engine's prefix cache
    is; callers copy it before decoding on top of it."""
    backbone = method.backbone
    frozen = not any(q.requires_grad for q in method.parameters()) and not any(
        q.requires_grad for q in method.model.parameters())
    key = (tuple(row["ids"][:p].tolist()), id(slot), None if slot is None else id(slot.pooler_output[0]))
    memo = method.__dict__.get("_prefix_memo")
    if frozen and memo is not None and memo[0] == key:
        return memo[1]
    cache = cache_of(_forward(method, row["ids"][None, :p].to(backbone.device), row["pos"][:, :, :p],
                              [slot] if slot is not None else [], None))
    # The memo holds the slot too: while it lives, no other encoding can take its id.
    method.__dict__["_prefix_memo"] = (key, cache, slot) if frozen else None
    return cache


def _prompt_forward(method, rows, chunk: list[int], p: int, prefix_cache, slot_in_prefix: bool):
    """Run the rows `chunk` after the shared prefix: (cache, last-position logits, next positions)."""
    device = method.backbone.device
    ids = torch.stack([rows[i]["ids"][p:] for i in chunk]).to(device)
    pos = torch.cat([rows[i]["pos"][:, :, p:] for i in chunk], dim=1)
    images = [im for i in chunk for im in (rows[i]["images"][1:] if slot_in_prefix else rows[i]["images"])]
    cache = None
    if prefix_cache is not None:
        # Beam-search reordering with index 0 repeated copies the one-row prefix to every row;
        # unlike batch_repeat_interleave it exists for every cache layer kind (Qwen3.5 linear ones too).
        cache = copy.deepcopy(prefix_cache)
        cache.reorder_cache(torch.zeros(len(chunk), dtype=torch.long, device=device))
    out = _forward(method, ids, pos, images, cache)
    return cache_of(out), out.logits[:, -1], pos[:, :, -1:] + 1
