"""Text-to-LoRA as a compared method: a LoRA adapter generated zero-shot from the task's description.

    artstudio compare --methods t2l,lora,base --tasks heldout                 # the shipped hypernetwork
    artstudio compare --methods t2l --method-options '{"t2l": {"hyper": "runs/t2l/final"}}'

Nothing trains: the hypernetwork (`artstudio.hyper.t2l`, trained on the task library, never on the
held-out tasks) reads the task card's description and emits rank-8 q/v LoRA weights in one forward
pass; the cell is then scored like any other method. Like `base`, the method has no trainable
parameters (`trains = False`) and no seed: the same description always gives the same adapter.

The description comes from, in order: the `description` option; the task card, which the training
loop hands to `bind_task` (the card's `description` field); else a clear error when the method is used.
Its export is the generated adapter as a standard PEFT folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from artstudio.errors import ConfigError
from artstudio.methods import Method, description_option, register

def shipped_t2l() -> Path:
    """The T2L hypernetwork shipped for studio-tiny (inside the installed package)."""
    import artstudio

    return Path(artstudio.__file__).resolve().parent / "models" / "hyper" / "t2l"


@dataclass
class T2LOptions:
    """Zero-shot Text-to-LoRA: the adapter comes from a trained hypernetwork and a task description."""

    hyper: str = field(default="", metadata={"help": "hypernetwork folder (artstudio hyper train --kind t2l ... /final); default: the shipped one for studio-tiny"})
    description: str = field(default="", metadata={"help": "task description (default: the task card's)"})
    encoder: str = field(default="", metadata={"help": "task encoder (default: the one the hypernetwork was trained with)"})


@register
class T2LMethod(Method):
    """A generated LoRA on the frozen language model; prompts carry no canvas; nothing trains."""

    name = "t2l"
    config_class = T2LOptions
    placement = None
    default_lr = 0.0
    trains = False  # zero-shot, like `base`: the harness gives it no steps ...
    seed_free = True  # ... and no seeds: the same description always gives the same adapter
    standalone = False  # needs a T2L hypernetwork trained for the backbone

    def __init__(self, backbone, config: T2LOptions | None = None):
        super().__init__(backbone, config)
        from artstudio.hyper import TaskEncoder
        from artstudio.hyper.t2l import T2LHypernetwork

        folder = Path(self.config.hyper).expanduser() if self.config.hyper else shipped_t2l()
        hyper = T2LHypernetwork.from_pretrained(folder, backbone)
        encoder = TaskEncoder.load(self.config.encoder or hyper.encoder_name, backbone)
        hyper.check_encoder(encoder)
        object.__setattr__(self, "_hyper", hyper)  # not a submodule: its weights are not this method's parameters
        object.__setattr__(self, "_encoder", encoder)
        object.__setattr__(self, "_inner", None)
        self.hyper_folder = str(folder)
        self.generation_seconds: float | None = None
        if self.config.description.strip():
            self._generate(self.config.description)

    # --- the task's description -------------------------------------------------------------------
    def bind_task(self, card: dict) -> None:
        """Called by the training loop with the task card: generate from its description unless given one."""
        if self._inner is not None:
            return
        description = str((card or {}).get("description") or "").strip()
        if not description:
            raise ConfigError(f"task {card.get('name', '?')!r} has no description in its card.json, and t2l generates "
                              f"its adapter from one; add a description to the card, or pass one: {description_option(self.name)}")
        self._generate(description)

    def _generate(self, description: str) -> None:
        t0 = time.perf_counter()
        generated = self._hyper.generate(self._encoder, [description])[0]
        self.generation_seconds = time.perf_counter() - t0
        self.config.description = description  # recorded by save(), so a loaded method is the same adapter
        object.__setattr__(self, "_inner", self._hyper.method_for(self.backbone, generated, description=description))

    @property
    def inner(self):
        if self._inner is None:
            raise ConfigError("t2l has no task description yet: run it on a task whose card.json has a description, "
                              f"or pass one: {description_option(self.name)}")
        return self._inner

    # --- what runs --------------------------------------------------------------------------------
    @property
    def model(self) -> torch.nn.Module:
        return self.inner.model

    def forward(self, **inputs):
        return self.inner.forward(**inputs)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return []

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {}

    def export(self, path: str | Path, **metadata) -> Path:
        """The generated adapter as a standard PEFT folder (plus artstudio.json naming the hypernetwork)."""
        return self.inner.export(path, hypernetwork_folder=self.hyper_folder, **metadata)

    def describe(self) -> dict:
        return super().describe() | {"hypernetwork": self.hyper_folder, "description": self.config.description,
                                     "generation_seconds": self.generation_seconds}
