"""The frozen task encoder: a task description in words -> one vector (the task embedding).

Text-to-LoRA embeds descriptions with a frozen sentence encoder (gte-large in the paper). No hub is
reachable here, so the default is the backbone's own language model: its last hidden states over
the description's tokens, mean-pooled over the non-padding positions. `backbone:N` pools hidden
state N instead (0: the token embeddings, a bag of words; the last layer: the default), to measure
which depth generalises to unseen descriptions (docs/hyper.md). Any local transformers model
folder (a sentence-embedding model a user has) works the same way through `from_pretrained`.

The encoder never trains: `encode` runs under `torch.no_grad` and returns float32 on the CPU, so a
hypernetwork's task embeddings can be computed once per run and cached.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from artstudio.errors import ConfigError, ModelLoadError

log = logging.getLogger(__name__)

BACKBONE_ENCODER = "backbone"  # the `name` recorded for the backbone's own language model
SHOWN_PER_CALL = 3  # descriptions a warning names one by one; more are counted in one line


def backbone_layer(name: str) -> int | None:
    """The hidden-state index of a 'backbone' / 'backbone:N' encoder name (None: the last layer).

    Returns None too for a name that is not the backbone's (a folder)."""
    if name == BACKBONE_ENCODER:
        return None
    prefix = BACKBONE_ENCODER + ":"
    if not name.startswith(prefix):
        return None
    try:
        return int(name[len(prefix):])
    except ValueError:
        raise ConfigError(f"task encoder {name!r}: after 'backbone:' give a hidden-state index, e.g. backbone:0 "
                          "(token embeddings) or backbone:-1 (the last layer)") from None


def is_backbone_encoder(name: str | None) -> bool:
    return not name or name == BACKBONE_ENCODER or name.startswith(BACKBONE_ENCODER + ":")


def check_descriptions(descriptions) -> list[str]:
    """A non-empty list of non-empty strings, else a ConfigError saying which one is wrong."""
    if isinstance(descriptions, str):
        descriptions = [descriptions]
    descriptions = list(descriptions)
    if not descriptions:
        raise ConfigError("no task description given; pass at least one sentence describing the task")
    for i, d in enumerate(descriptions):
        if not isinstance(d, str) or not d.strip():
            which = "the task description" if len(descriptions) == 1 else f"task description {i + 1} of {len(descriptions)}"
            raise ConfigError(f"{which} is empty; describe the task in words, e.g. "
                              "'The prompt is two digits separated by a space, with no instruction. Reply with their sum, "
                              "written as a bare value.'")
    return [d.strip() for d in descriptions]


class TaskEncoder:
    """Frozen text encoder with mean pooling. Build with `from_backbone` or `from_pretrained`."""

    def __init__(self, model, tokenizer, name: str, *, device=None, max_length: int = 512,
                 text_only_call=None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_length = max_length
        self.device = device if device is not None else next(model.parameters()).device
        self._call = text_only_call
        self._dim: int | None = None
        self._known: dict[str, str] = {}  # character -> "ok" | "dropped" | "unknown" (the tokenizer's verdict)

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def from_backbone(cls, backbone, layer: int | None = None) -> "TaskEncoder":
        """The backbone's own language model (text only, no image), mean-pooled hidden states.

        `layer` picks the hidden state (0: token embeddings; None or -1: the last layer)."""
        lm = backbone.model.model.language_model if hasattr(backbone.model, "model") and hasattr(
            backbone.model.model, "language_model") else None
        n_layers = backbone.model.config.get_text_config().num_hidden_layers
        if layer is not None and not -(n_layers + 1) <= layer <= n_layers:
            raise ConfigError(f"task encoder backbone:{layer}: this model has hidden states 0..{n_layers}")
        name = BACKBONE_ENCODER if layer is None or layer == -1 else f"{BACKBONE_ENCODER}:{layer}"
        index = None if layer is None else layer % (n_layers + 1)  # hidden state index 0..n
        direct = lm is not None and hasattr(lm, "embed_tokens") and hasattr(lm, "layers")

        def call(input_ids, attention_mask):
            # Hidden state N without output_hidden_states: transformers records those with forward hooks
            # it installs on first use and leaves on the model, which a comparison's backbone check (and
            # anyone fingerprinting the model) sees as a changed backbone. Equal to hidden_states[N]
            # (tests/test_hyper.py): 0 = the token embeddings, N = decoder layer N's output, n = normed.
            if direct and (index is None or index == n_layers):
                return lm(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            if direct and index == 0:
                return lm.embed_tokens(input_ids)
            if direct:
                caught = []
                hook = lm.layers[index - 1].register_forward_hook(
                    lambda mod, args, out: caught.append(out[0] if isinstance(out, tuple) else out))
                try:
                    lm(input_ids=input_ids, attention_mask=attention_mask)
                finally:
                    hook.remove()
                return caught[0]
            model = lm if lm is not None else backbone.model
            out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            return out.hidden_states[-1 if index is None else index]

        return cls(backbone.model, backbone.tokenizer, name, device=backbone.device, text_only_call=call)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, device: str | None = None) -> "TaskEncoder":
        """Any local transformers model folder (AutoModel + AutoTokenizer), mean-pooled."""
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"task encoder folder {folder} does not exist; pass a local transformers model "
                              f"folder (with config.json and a tokenizer), or '{BACKBONE_ENCODER}:0' for the backbone's own "
                              "token embeddings (the default and the shipped hypernetworks' encoder; "
                              f"'{BACKBONE_ENCODER}:N' reads its hidden state N)")
        if not (folder / "config.json").is_file():
            raise ModelLoadError(f"task encoder folder {folder} has no config.json, so it is not a saved "
                                 "transformers model; pass a folder written by save_pretrained")
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelLoadError(f"cannot load the task encoder in {folder}: {e}") from None
        model.eval().requires_grad_(False)
        if device:
            model.to(device)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token

        def call(input_ids, attention_mask):
            out = model(input_ids=input_ids, attention_mask=attention_mask)
            hidden = getattr(out, "last_hidden_state", None)
            return hidden if hidden is not None else out[0]

        return cls(model, tokenizer, str(folder.resolve()), text_only_call=call)

    @classmethod
    def load(cls, name: str, backbone=None) -> "TaskEncoder":
        """By the name a checkpoint recorded: 'backbone' / 'backbone:N' (needs the backbone) or a folder."""
        if is_backbone_encoder(name):
            if backbone is None:
                raise ConfigError("the backbone task encoder needs the backbone; pass one")
            return cls.from_backbone(backbone, backbone_layer(name or BACKBONE_ENCODER))
        return cls.from_pretrained(name)

    # --- use ------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.encode(["x"]).shape[1])
        return self._dim

    @torch.no_grad()
    def encode(self, descriptions: list[str], *, chunk: int = 64) -> torch.Tensor:
        """(N, dim) float32 on the CPU: mean of the hidden states over each description's tokens.

        Descriptions go through the model `chunk` at a time (thousands of training wordings would
        otherwise make one batch of thousands of rows)."""
        texts = check_descriptions(descriptions)
        full = [self.tokenizer(t, add_special_tokens=False, verbose=False)["input_ids"] for t in texts]
        self.warn_unread(texts, full)
        rows = [r[: self.max_length] for r in full]
        for text, row in zip(texts, rows):
            # "😀😀 éé" left a space token alone: a picture was painted from nothing the user wrote
            if not row or not any(not ch.isspace() and self.character_verdict(ch) == "ok" for ch in set(text)):
                raise ConfigError(f"the task description {text[:40]!r} has no character this task encoder reads "
                                  "(its tokenizer drops them or knows them only as unknown); use ordinary words")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        out = []
        for at in range(0, len(rows), chunk):
            part = rows[at: at + chunk]
            width = max(len(r) for r in part)
            ids = torch.full((len(part), width), pad, dtype=torch.long)
            mask = torch.zeros((len(part), width), dtype=torch.long)
            for i, r in enumerate(part):  # right padding: a causal model's real tokens never see the pads
                ids[i, : len(r)] = torch.tensor(r)
                mask[i, : len(r)] = 1
            hidden = self._call(ids.to(self.device), mask.to(self.device)).float()
            m = mask.to(hidden.device).unsqueeze(-1).float()
            out.append(((hidden * m).sum(1) / m.sum(1).clamp_min(1.0)).cpu())
        return torch.cat(out)

    # --- what the encoder does not read -------------------------------------------------------------
    def character_verdict(self, ch: str) -> str:
        """'ok', 'dropped' (the tokenizer gives no token for it) or 'unknown' (only its unknown token)."""
        verdict = self._known.get(ch)
        if verdict is None:
            ids = self.tokenizer(ch, add_special_tokens=False, verbose=False)["input_ids"]
            unk = getattr(self.tokenizer, "unk_token_id", None)
            verdict = "dropped" if not ids else "unknown" if unk is not None and unk in ids else "ok"
            self._known[ch] = verdict
        return verdict

    def unread(self, text: str, ids: list[int] | None = None) -> list[str]:
        """What of `text` the encoder does not read, one sentence each (empty: it reads all of it):
        characters its tokenizer drops or knows only as unknown, and tokens past `max_length`."""
        notes = []
        verdicts: dict[str, list[str]] = {"dropped": [], "unknown": []}
        for ch in dict.fromkeys(text):
            if not ch.isspace() and self.character_verdict(ch) != "ok":
                verdicts[self.character_verdict(ch)].append(ch)
        for verdict, chars in verdicts.items():
            if chars:
                shown = ", ".join(repr(c) for c in chars[:8]) + (f" and {len(chars) - 8} more" if len(chars) > 8 else "")
                notes.append(f"has {len(chars)} character{'s' if len(chars) > 1 else ''} the task encoder does not know "
                             f"({shown}); it reads the description " + ("without them" if verdict == "dropped" else
                                                                         "with an unknown token for each"))
        if ids is None:
            ids = self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        if len(ids) > self.max_length:
            read = self.tokenizer.decode(ids[: self.max_length]).rstrip()
            notes.append(f"is {len(text)} characters ({len(ids)} tokens); the task encoder reads the first "
                         f"{self.max_length} tokens, up to '...{read[-30:]}', and ignores the rest")
        return notes

    def warn_unread(self, texts: list[str], rows: list[list[int]] | None = None) -> None:
        """Log a warning for each description the encoder does not read in full (a long list: the first
        few by number, then a count), so the hypernetwork is never handed less than the user wrote unsaid."""
        found = [(i, notes) for i, t in enumerate(texts)
                 if (notes := self.unread(t, None if rows is None else rows[i]))]
        for i, notes in found[:SHOWN_PER_CALL]:
            which = "the task description" if len(texts) == 1 else \
                f"task description {i + 1} of {len(texts)} ({texts[i][:40]!r}{'...' if len(texts[i]) > 40 else ''})"
            for note in notes:
                log.warning("%s %s", which, note)
        if len(found) > SHOWN_PER_CALL:
            log.warning("%d more of the %d task descriptions are not read in full (characters the task encoder does "
                        "not know, or more than %d tokens)", len(found) - SHOWN_PER_CALL, len(texts), self.max_length)

    def __repr__(self) -> str:
        return f"TaskEncoder(name={self.name!r})"
