"""AdaLink baseline (Wang et al., ICLR 2024, "Non-Intrusive Adaptation: Input-Centric Parameter-efficient
Fine-Tuning for Versatile Multimodal Modeling"); no library implements it, so it is written here.

A residual two-layer low-rank adapter on the input embeddings, one per modality (DESIGN §2, seed 003):

    e' = e + W_up (W_down e)        W_down: hidden -> r,  W_up: r -> hidden,  W_up = 0 at step 0

The model's internals stay untouched, which makes AdaLink the closest conceptual peer of ART: both
change only what enters the frozen language model.

- Text adapter: applied to the output of the language model's token-embedding module
  (`backbone.model.get_input_embeddings()`) by a forward hook that exists only while this method
  runs a forward pass. Nothing stays attached to the backbone between passes, so two AdaLink
  instances (or AdaLink and any other method) share one backbone without stacking hooks. The
  embeddings at image positions are adapted too, but the model then overwrites them with the
  visual embeddings.
- Visual adapter: applied in `transform_image_outputs` to the visual embeddings (`pooler_output`,
  one tensor per image) before they are scattered into the sequence. On Qwen3-VL the deepstack
  features, which are added inside early language layers rather than at the input, are left as
  they are: adapting them would no longer be input-centric.

AdaLink uses no canvas slot (`placement = None`); rows that carry their own picture still pass
through the visual adapter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from artstudio.errors import ConfigError
from artstudio.methods import Method, register
from artstudio.options import option_label
from artstudio.tune.space import Choice, Float, Int

from .lora import check_export_target, write_export_meta


@dataclass
class AdaLinkOptions:
    """AdaLink (Wang et al. 2024): e' = e + W_up W_down e on input embeddings, one adapter per modality.

    The adapters are tiny next to LoRA's (4 * r * hidden parameters in all); rank 4 is this project's
    default, raise it for harder tasks. W_up starts at zero, so step 0 is the frozen model.
    """

    r: int = field(default=4, metadata={"help": "rank of each adapter (W_down: hidden -> r, W_up: r -> hidden)"})
    seed: int | None = field(default=None, metadata={"help": "seed of W_down's initialisation (default: the run's --seed)"})

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ConfigError(f"{option_label('AdaLink', 'r', '--adalink-')} is {self.r}; the rank must be 1 or more")


class LowRankResidual(torch.nn.Module):
    """x + up(down(x)), computed in float32 and returned in x's dtype."""

    def __init__(self, hidden: int, r: int, generator: torch.Generator):
        super().__init__()
        self.down = torch.nn.Linear(hidden, r, bias=False)
        self.up = torch.nn.Linear(r, hidden, bias=False)
        with torch.no_grad():
            # LoRA's A init (Kaiming-uniform bound 1/sqrt(fan_in)), drawn from a seeded generator.
            bound = 1.0 / hidden**0.5
            self.down.weight.copy_(torch.rand(self.down.weight.shape, generator=generator) * 2 * bound - bound)
            self.up.weight.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = self.up(self.down(x.to(self.down.weight.dtype)))
        return x + delta.to(x.dtype)


@register
class AdaLinkMethod(Method):
    """Low-rank residual adapters on the text and visual input embeddings of the frozen model."""

    name = "adalink"
    config_class = AdaLinkOptions
    default_lr = 2e-3  # tuned on studio-tiny's held-out tasks
    starts_frozen = True  # W_up starts at zero
    placement = None
    # What `artstudio tune` searches (artstudio/tune/space.py); the sentences are read by the lgbo sampler.
    search_space = {
        "r": Int(1, 32, log=True, help="rank of the residual adapters on the input embeddings; higher rank adds "
                 "capacity at the model's input"),
        "lr": Float(2e-4, 2e-2, log=True, help="peak AdamW learning rate of the adapters; higher ranks usually "
                    "want a somewhat lower rate"),
        "batch_size": Choice((8, 16, 32), help="examples per step; larger batches give less noisy gradients, "
                             "cost more per step and tolerate a larger learning rate"),
    }

    def __init__(self, backbone, config: AdaLinkOptions | None = None):
        super().__init__(backbone, config)
        hidden = backbone.input_embeddings().embedding_dim
        gen = torch.Generator().manual_seed(0 if self.config.seed is None else self.config.seed)
        self.text = LowRankResidual(hidden, self.config.r, gen)
        self.visual = LowRankResidual(hidden, self.config.r, gen)
        self.to(backbone.device)
        self._handle: Any = None

    # --- text tokens: a hook that lives only during this method's own passes -------------------
    @contextmanager
    def attached(self) -> Iterator[None]:
        """Within this scope the backbone's token embeddings go through the text adapter.

        Re-entrant: a nested scope reuses the live hook instead of stacking a second one.
        """
        if self._handle is not None:
            yield
            return
        embed = self.backbone.input_embeddings()
        self._handle = embed.register_forward_hook(lambda _module, _args, out: self.text(out))
        try:
            yield
        finally:
            self.close()

    def close(self) -> None:
        """Remove the text hook if one is attached (it is only while `attached()` is open)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def forward(self, **inputs):
        with self.attached():
            return self.backbone.forward(**inputs, model=self.model)

    # --- visual tokens ---------------------------------------------------------------------------
    def transform_image_outputs(self, outputs):
        if outputs is None:
            return None
        adapted = tuple(self.visual(t) for t in outputs.pooler_output)
        return dataclasses.replace(outputs, pooler_output=adapted)

    # --- persistence -----------------------------------------------------------------------------
    def export(self, path: str | Path, **metadata) -> Path:
        """safetensors (`text.down.weight`, `text.up.weight`, `visual.*`) + JSON config, loadable by `Method.load`."""
        check_export_target(path)
        folder = self.save(path)
        write_export_meta(self, folder, metadata)
        return folder
