"""Text-to-Canvas as compare methods: `t2c` (zero-shot) and `t2c+art` (a generated start for ART).

    t2c      the canvas a trained T2C hypernetwork paints from the task card's description, frozen:
             zero-shot, no training on the task (`train` runs it with 0 steps)
    t2c+art  an ART canvas that starts from that generated artwork and is fine-tuned for the run's
             steps with the ordinary ART recipe (the shipped ART learning rate)

Both need the task's description. Pass it as the `description` option, or let the harness bind the
task card: a method with `bind_task(card)` gets the card before training (see the note in
docs/hyper.md). The hypernetwork is the shipped T2C for studio-tiny unless `hyper` names a folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from artstudio.errors import ConfigError
from artstudio.hyper.generate import DEFAULT_HYPER
from artstudio.methods import ArtConfig, ArtMethod, description_option, register

_GENERATORS: dict = {}


def _generator(hyper: str, backbone, encoder: str | None):
    """One loaded hypernetwork per (folder, encoder), on the backbone it was last asked for: a comparison
    builds many methods on one backbone; a new backbone replaces the entry (never keeps an old one alive)."""
    from artstudio.hyper.generate import HyperGenerator

    key = (str(hyper), encoder)
    if key not in _GENERATORS or _GENERATORS[key].backbone is not backbone:
        _GENERATORS[key] = HyperGenerator(hyper, backbone=backbone, encoder=encoder)
    return _GENERATORS[key]


@dataclass
class T2COptions(ArtConfig):
    """Text-to-Canvas: the artwork a T2C hypernetwork generates from the task's description."""

    hyper: str = field(default=DEFAULT_HYPER, metadata={"help": "T2C hypernetwork folder (default: the shipped one for studio-tiny)"})
    description: str = field(default="", metadata={"help": "task description (default: the task card's, bound by the harness)"})
    encoder: str | None = field(default=None, metadata={"help": "task encoder (default: the one the hypernetwork was trained with)"})
    starts: int | None = field(default=1, metadata={"help": "one start: the generated artwork is the start"})


@register
class T2CMethod(ArtMethod):
    """The generated artwork in the canvas slot, frozen: T2C's zero-shot score."""

    name = "t2c"
    config_class = T2COptions
    default_lr = 0.0
    trains = False
    seed_free = True  # the canvas is a function of the description alone
    standalone = False  # needs a T2C hypernetwork trained for the backbone

    def __init__(self, backbone, config: T2COptions | None = None, canvas=None) -> None:
        config = config if config is not None else T2COptions()
        self._hyper_generator = _generator(config.hyper, backbone, config.encoder)
        if config.canvas_size is None:
            config.canvas_size = int(self._hyper_generator.hyper.target["canvas_size"])
        super().__init__(backbone, config, canvas)
        self.description = ""
        if config.description:
            self.bind_task({"description": config.description})
        self.canvas.requires_grad_(self.trains)

    def bind_task(self, card: dict) -> None:
        """Paint the canvas from `card["description"]` (the harness calls this with the task card)."""
        description = str(card.get("description") or "").strip()
        if not description and self.description:
            return  # no card description: keep the one given as an option
        if not description:
            raise ConfigError(f"{self.name} needs the task's description: give the task a card.json with a "
                              f"description, or pass one: {description_option(self.name)}")
        generated = self._hyper_generator.generated(description)
        if tuple(generated.shape[1:]) != tuple(self.canvas.size):
            if not self.trains:  # frozen, the painting only means something at the size it was painted at
                raise ConfigError(f"the hypernetwork paints {tuple(generated.shape[1:])} canvases, this method has "
                                  f"{tuple(self.canvas.size)}; leave canvas_size unset (t2c+art, which trains, "
                                  "starts from the painting resized)")
            generated = resized_start(generated, tuple(self.canvas.size))
        self.canvas.start_from(generated)  # (under the sigmoid parametrisation the parameter is its logit)
        self.description = description
        self.config.description = description  # saved with the method, so `Method.load` repaints it

    def slot_outputs(self):
        if not self.description:
            raise ConfigError(f"{self.name} has no task description yet; pass the method option description "
                              "or bind the task card (method.bind_task(card))")
        return super().slot_outputs()

    def export(self, path, **metadata):
        extra = metadata.get("extra", {}) | {"description": self.description,
                                              "hypernetwork": {"kind": "t2c", "source": str(self.config.hyper)}}
        return super().export(path, **(metadata | {"extra": extra}))


def resized_start(canvas: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (3, h, w) painting, in pixels in [0, 1], resized bicubically to the start of a (3, *size) canvas.

    Resized, the painting scores nothing by itself (0 % on sub-answer at 192 and 288 px), but it is a far
    better start than grey. sub-answer, 150 steps, one seed: at 192 px 99.0 % from it bicubic (90.5 %
    nearest-neighbour) against 12.0 % from grey; at 288 px 97.5 % (either) against 16.5 % (docs/robust.md).
    """
    resized = torch.nn.functional.interpolate(canvas[None].float(), size=size, mode="bicubic", align_corners=False)
    return resized[0].clamp(0.0, 1.0).to(canvas.dtype)


@dataclass
class T2CArtOptions(T2COptions):
    """ART started from the T2C artwork of the task's description, then fine-tuned."""


@register
class T2CArtMethod(T2CMethod):
    name = "t2c+art"
    config_class = T2CArtOptions
    default_lr = ArtMethod.default_lr  # an ordinary ART run, from a generated start
    trains = True
    seed_free = False

