"""Chat rendering, canvas placement and label masks: JSONL examples -> token ids the model trains on.

The prompt follows the paper (DESIGN §1): one user turn, the canvas image first, then the question,
no system prompt, greedy decoding. Image order inside the user turn:

- placement "first" (default): canvas, extra image (if the example has one), text. The canvas is the
  very first thing after the turn header, so a serving engine's prefix cache covers it.
- placement "after-text": text, canvas, extra image.
- placement None (no canvas: base model, LoRA, ... evaluated without a picture): extra image, text.

So the extra image always directly follows the canvas position, and image placeholders appear in the
text in the order canvas, extra image. The processor's placeholder (`<|image_pad|>`) is expanded here
into as many visual tokens as the image yields, exactly as the stock processor would do it, so the
differentiable canvas path and the stock `processor(text, images)` path see the same ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from artstudio.data import Example
from artstudio.errors import ConfigError, DataError

Placement = Literal["first", "after-text"] | None
PLACEMENTS: tuple[Placement, ...] = ("first", "after-text", None)
IGNORE_INDEX = -100

# Markers for probing a chat template; unlikely to occur in a template's own text.
_PROBE_USER = "ARTSTUDIO-PROBE-USER-7f3a"
_PROBE_SYSTEM = "ARTSTUDIO-PROBE-SYSTEM-7f3a"
_default_system_cache: dict[str, str] = {}


def conversation(prompt: str, *, placement: Placement = "first", extra_image: bool = False) -> list[dict]:
    """The one-user-turn chat for `prompt`, with image items placed as the module docstring says."""
    _check_placement(placement)
    images = [{"type": "image"}] * ((placement is not None) + extra_image)
    text = {"type": "text", "text": prompt}
    content = [text, *images] if placement == "after-text" else [*images, text]
    return [{"role": "user", "content": content}]


def render_prompt(
    processor,
    prompt: str,
    *,
    placement: Placement = "first",
    extra_image: bool = False,
    keep_default_system: bool = False,
    template_kwargs: Mapping | None = None,
) -> str:
    """Chat text up to and including the assistant header, one placeholder per image.

    The template's default system turn (Qwen2/2.5-VL add "You are a helpful assistant.") is removed
    unless `keep_default_system`; `template_kwargs` go to the template (e.g. `enable_thinking`).
    """
    kwargs = dict(template_kwargs or {})
    text = processor.apply_chat_template(
        conversation(prompt, placement=placement, extra_image=extra_image),
        add_generation_prompt=True, tokenize=False, **kwargs,
    )
    if not keep_default_system:
        prefix = default_system_prefix(processor, template_kwargs=kwargs)
        if prefix and text.startswith(prefix):
            text = text[len(prefix):]
    return text


def default_system_prefix(processor, *, template_kwargs: Mapping | None = None) -> str:
    """The text a chat template inserts before the user turn when no system message is given ("" if none).

    Found by probing, not from a list of known sentences: a probe with an explicit system message
    shows how a turn opens (the text before the role name, e.g. `<|im_start|>`); in a probe with only
    a user message, everything before the last such opening ahead of the user's text is the default.
    """
    kwargs = dict(template_kwargs or {})
    key = repr((_template_of(processor), sorted(kwargs.items())))
    if key not in _default_system_cache:
        _default_system_cache[key] = _probe_default_system(processor, kwargs)
    return _default_system_cache[key]


def _probe_default_system(processor, kwargs: dict) -> str:
    user = {"role": "user", "content": [{"type": "text", "text": _PROBE_USER}]}
    plain = processor.apply_chat_template([user], add_generation_prompt=False, tokenize=False, **kwargs)
    try:
        with_system = processor.apply_chat_template(
            [{"role": "system", "content": _PROBE_SYSTEM}, user],
            add_generation_prompt=False, tokenize=False, **kwargs,
        )
    except Exception:  # noqa: BLE001 - a template that rejects system turns cannot insert a default one
        return ""
    if _PROBE_SYSTEM not in with_system or _PROBE_USER not in plain:
        return ""
    system_header = with_system[: with_system.index(_PROBE_SYSTEM)]
    role_at = system_header.rfind("system")
    turn_open = system_header[:role_at] if role_at > 0 else ""
    if not turn_open:
        return ""
    user_at = plain.rfind(turn_open, 0, plain.index(_PROBE_USER))
    return plain[:user_at] if user_at > 0 else ""


def expand_image_tokens(text: str, image_token: str, counts: Sequence[int]) -> str:
    """Replace the i-th `image_token` in `text` by `image_token * counts[i]`, as the processor does."""
    pieces = text.split(image_token)
    if len(pieces) - 1 != len(counts):
        raise DataError(
            f"the text has {len(pieces) - 1} image placeholder(s) {image_token!r} but {len(counts)} image(s) "
            f"were given; expected one placeholder per image (a prompt must not contain {image_token!r} itself)"
        )
    out = [pieces[0]]
    for count, piece in zip(counts, pieces[1:]):
        if int(count) < 1:
            raise ConfigError(f"an image must yield at least one visual token, got {count}")
        out.append(image_token * int(count))
        out.append(piece)
    return "".join(out)


@dataclass
class Batch:
    """Padded token ids of a batch; `labels` is None when encoded without answers.

    `prompt_lengths[i]` is the unpadded number of prompt tokens of example i (the answer starts
    right after them; with left padding add the pad offset `L - attention_mask[i].sum()`).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mm_token_type_ids: torch.Tensor
    labels: torch.Tensor | None
    prompt_lengths: list[int]

    def to(self, device: torch.device | str) -> "Batch":
        """The same batch on `device`."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Batch(move(self.input_ids), move(self.attention_mask), move(self.mm_token_type_ids),
                     move(self.labels), list(self.prompt_lengths))


def image_token_of(processor) -> tuple[str, int]:
    """The processor's image placeholder token and its id."""
    token = getattr(processor, "image_token", None) or getattr(processor.tokenizer, "image_token", None)
    if token is None:
        raise ConfigError("the processor has no image token; expected a Qwen vision-language processor")
    return token, int(processor.tokenizer.convert_tokens_to_ids(token))


def end_of_turn_token(tokenizer) -> str:
    """The token that closes the assistant turn: ChatML's `<|im_end|>`, else the tokenizer's EOS."""
    unk = tokenizer.unk_token_id
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if im_end is not None and im_end != unk:
        return "<|im_end|>"
    if tokenizer.eos_token is None:
        raise ConfigError("the tokenizer has neither <|im_end|> nor an EOS token to end the answer with")
    return tokenizer.eos_token


def encode_batch(
    processor,
    examples: Sequence[Example],
    *,
    image_tokens: int | None,
    extra_image_tokens: Sequence[int | None] | None = None,
    placement: Placement = "first",
    with_answers: bool = True,
    keep_default_system: bool = False,
    padding_side: Literal["left", "right"] = "right",
    template_kwargs: Mapping | None = None,
) -> Batch:
    """Render, expand and tokenise `examples` into one padded batch with answer-only labels.

    `image_tokens` is the canvas's visual token count (None exactly when `placement` is None);
    `extra_image_tokens[i]` the count of example i's extra image. Training uses right padding,
    generation left padding. Labels are -100 except on the answer tokens and the end-of-turn token.
    """
    _check_encode_args(examples, image_tokens, extra_image_tokens, placement, padding_side)
    tokenizer = processor.tokenizer
    image_token, image_token_id = image_token_of(processor)
    end_token = end_of_turn_token(tokenizer)
    rows: list[list[int]] = []
    label_rows: list[list[int]] = []
    prompt_lengths: list[int] = []
    for i, ex in enumerate(examples):
        _check_no_placeholder(ex, image_token)
        extra = extra_image_tokens[i] if extra_image_tokens is not None else None
        counts = [c for c in (image_tokens, extra) if c is not None]
        text = render_prompt(processor, ex.prompt, placement=placement, extra_image=ex.image is not None,
                             keep_default_system=keep_default_system, template_kwargs=template_kwargs)
        prompt_ids = _tokenize(tokenizer, expand_image_tokens(text, image_token, counts))
        # The answer is tokenised on its own: generation sees the prompt's ids followed by whatever
        # it emits, so a BPE merge across the prompt/answer boundary must not leak into training.
        answer_ids = _tokenize(tokenizer, ex.answer + end_token) if with_answers else []
        rows.append(prompt_ids + answer_ids)
        label_rows.append([IGNORE_INDEX] * len(prompt_ids) + answer_ids)
        prompt_lengths.append(len(prompt_ids))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids, attention_mask = _pad(rows, pad_id, padding_side)
    labels = _pad(label_rows, IGNORE_INDEX, padding_side)[0] if with_answers else None
    mm_token_type_ids = ((input_ids == image_token_id) & attention_mask.bool()).long()
    return Batch(input_ids, attention_mask, mm_token_type_ids, labels, prompt_lengths)


class RowRoom:
    """How many of a model's positions a row's text may take in one prompt layout: the model's
    `max_positions` less what the layout adds around the text (the chat template and its end-of-turn token,
    the canvas slot, the row's own picture, each with its vision markers), counted by encoding an empty row.

    `backbone` needs `processor`, `tokenizer`, `geometry` and `max_positions` (None: no limit);
    `image_tokens` is the slot's visual tokens (None: no slot). The text is tokenised on its own, so a
    merge across its boundary with the template may move the count by a token.
    """

    def __init__(self, backbone, image_tokens: int | None, *, keep_default_system: bool = False) -> None:
        self.backbone, self.image_tokens, self.keep_default_system = backbone, image_tokens, keep_default_system
        self.max_positions: int | None = backbone.max_positions
        self._overheads: dict[int | None, int] = {}
        self._pictures: dict[str, int] = {}  # a picture file many rows share is opened once

    def overhead(self, picture_tokens: int | None = None) -> int:
        """Positions the layout adds to a row whose own picture has `picture_tokens` (None: no picture)."""
        if picture_tokens not in self._overheads:
            empty = Example(prompt="", answer="", image=None if picture_tokens is None else "picture")
            batch = encode_batch(self.backbone.processor, [empty], image_tokens=self.image_tokens,
                                 placement=None if self.image_tokens is None else "first",
                                 extra_image_tokens=None if picture_tokens is None else [picture_tokens],
                                 keep_default_system=self.keep_default_system)
            self._overheads[picture_tokens] = int(batch.input_ids.shape[1])
        return self._overheads[picture_tokens]

    def picture_tokens(self, picture) -> int | None:
        """Visual tokens of a row's own picture: a path or a PIL image (None: the row has none)."""
        if picture is None:
            return None
        if hasattr(picture, "size"):
            width, height = picture.size
            return self.backbone.geometry.picture_tokens(height, width)
        if picture not in self._pictures:
            from PIL import Image

            with Image.open(picture) as im:
                width, height = im.size
            self._pictures[picture] = self.backbone.geometry.picture_tokens(height, width)
        return self._pictures[picture]

    def room(self, picture_tokens: int | None = None) -> int | None:
        """Tokens of text (prompt, answer, new tokens) a row may hold; None when the model states no limit."""
        return None if not self.max_positions else self.max_positions - self.overhead(picture_tokens)

    def over(self, text: str, new_tokens: int = 0, picture_tokens: int | None = None) -> int | None:
        """The tokens of `text` plus `new_tokens` when they do not fit the room; None when they fit."""
        if not self.max_positions:
            return None
        budget = self.room(picture_tokens)
        if len(text.encode("utf-8")) + new_tokens <= budget:  # never more tokens than bytes: most texts stop here
            return None
        n = len(_tokenize(self.backbone.tokenizer, text)) + new_tokens
        return n if n > budget else None

    def beside(self, picture_tokens: int | None = None) -> str:
        """What the room is shared with, for messages: 'the chat template and the canvas (64 tokens)'."""
        parts = ["the chat template"]
        if self.image_tokens is not None:
            parts.append(f"the canvas ({self.image_tokens:,} tokens)")
        if picture_tokens is not None:
            parts.append(f"the row's picture ({picture_tokens:,} tokens)")
        return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


def check_row_lengths(room: RowRoom, examples: Sequence[Example], source: str, *, answers: bool = True,
                      max_new_tokens: int = 0, tokens_option: str = "--max-new-tokens") -> None:
    """Refuse a row the model cannot read: its prompt and answer (or `max_new_tokens` to generate) take more
    positions than the model has beside the layout. Such a row trained at 18 s a step, or ran out of memory
    without a word."""
    if not room.max_positions:
        return
    for ex in examples:
        picture = room.picture_tokens(ex.image)
        n = room.over(ex.prompt + (ex.answer if answers else ""), max_new_tokens, picture)
        if n is not None:
            what = "prompt and answer" if answers else f"prompt and {max_new_tokens} new tokens"
            where = ex.source or (f"{source}: row {ex.id!r}" if ex.id else source)
            fix = "shorten or drop the row" if answers else "shorten the prompt" \
                if n - max_new_tokens > room.max_positions // 2 else f"ask for fewer new tokens ({tokens_option}), or shorten the prompt"
            raise DataError(f"{where}: the row is too long: its {what} take {n:,} tokens, and with "
                            f"{room.beside(picture)} it must fit the model's {room.max_positions:,} positions "
                            f"(at most {room.room(picture):,}); {fix}")


def _tokenize(tokenizer, text: str) -> list[int]:
    # The chat template already wrote every special token; the tokenizer must not add a BOS/EOS.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _pad(rows: list[list[int]], value: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        start = width - len(row) if side == "left" else 0
        ids[i, start:start + len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, start:start + len(row)] = 1
    return ids, mask


def _template_of(processor) -> str:
    template = getattr(processor, "chat_template", None) or getattr(processor.tokenizer, "chat_template", None)
    return repr(template)


def _check_placement(placement: Placement) -> None:
    if placement not in PLACEMENTS:
        raise ConfigError(f"unknown canvas placement {placement!r}; expected 'first', 'after-text' or None (no canvas)")


def _check_encode_args(examples, image_tokens, extra_image_tokens, placement, padding_side) -> None:
    _check_placement(placement)
    if not examples:
        raise DataError("no examples to encode; expected at least one example")
    if padding_side not in ("left", "right"):
        raise ConfigError(f"padding_side {padding_side!r} is not 'left' or 'right'")
    if (placement is None) != (image_tokens is None):
        raise ConfigError(
            f"placement {placement!r} with image_tokens={image_tokens!r}; expected image_tokens=None "
            "exactly when placement is None (no canvas)"
        )
    if extra_image_tokens is not None and len(extra_image_tokens) != len(examples):
        raise ConfigError(
            f"extra_image_tokens has {len(extra_image_tokens)} entries for {len(examples)} examples; expected one per example"
        )
    for i, ex in enumerate(examples):
        extra = extra_image_tokens[i] if extra_image_tokens is not None else None
        if (ex.image is None) != (extra is None):
            raise ConfigError(
                f"example {ex.id!r}: image={ex.image!r} but extra image token count {extra!r}; expected a "
                "count exactly for the examples that have an extra image"
            )


def _check_no_placeholder(example: Example, image_token: str) -> None:
    for name in ("prompt", "answer"):
        if image_token in getattr(example, name):
            raise DataError(
                f"example {example.id!r}: the {name} contains the reserved image token {image_token!r}; "
                "remove it from the dataset (images are added by ArtStudio)"
            )
