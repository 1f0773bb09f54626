"""Soft-prompt baseline (Lester et al., 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning"),
in the form the ART paper uses as its control: k trainable vectors in the embedding space, placed
exactly where the canvas's visual tokens go, with the same count (DESIGN §2).

Implementation: the vectors are handed to the model as the *visual embeddings* of the canvas slot
(`slot_outputs()` returns a vision output whose `pooler_output` is the (k, hidden) prompt), so they
are scattered into the image positions of `inputs_embeds` by the model's own code, and the slot keeps
the canvas's `image_grid_thw`: multimodal RoPE positions are identical to ART's. On Qwen3-VL, whose
visual tokens also feed deepstack features into early language layers, those features are zeros:
the soft prompt acts at the input only. This is not PEFT's prompt tuning (which misbehaves on
Qwen2.5-VL); it is also not servable by engines that only take token ids and pictures, which is why
the paper treats it as an upper bound for ART.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from artstudio.errors import ConfigError
from artstudio.methods import Method, canvas_side, register
from artstudio.options import option_label
from artstudio.tune.space import CanvasSize, Choice, Float
from artstudio.vision import to_pixel_values

from .lora import check_export_target, write_export_meta

INITS = ("normal", "vocab")


@dataclass
class SoftPromptOptions:
    """Soft prompt (Lester et al. 2021): k trainable embeddings in the canvas slot, k = the canvas's token count.

    The ART paper's control uses the same number of tokens as the 256x256 canvas (64 on Qwen3.5).
    Lester et al. recommend initialising from vocabulary embeddings; "normal" draws N(0, std of the
    embedding table) instead.
    """

    canvas_size: int | None = field(default=None, metadata={"help": "side of the equivalent canvas, which fixes k and the M-RoPE grid (default: the model's recommended canvas size, else 256)"})
    init: Literal["normal", "vocab"] = field(default="normal", metadata={"help": "normal (scaled to the embedding table's std) or vocab (copies of random token embeddings)"})
    placement: Literal["first", "after-text"] = field(default="first", metadata={"help": "first (prefix-cacheable) or after-text, as for a canvas"})
    seed: int | None = field(default=None, metadata={"help": "seed of the initialisation (default: the run's --seed)"})

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ConfigError(f"{option_label('soft-prompt', 'init', '--soft-prompt-')} is {self.init!r}; choose one of {', '.join(INITS)}")
        if self.placement not in ("first", "after-text"):
            raise ConfigError(f"{option_label('soft-prompt', 'placement', '--soft-prompt-')} is {self.placement!r}; choose first or after-text")


@register
class SoftPromptMethod(Method):
    """Trainable vectors in the canvas slot, at exactly the canvas's token positions."""

    name = "soft-prompt"
    config_class = SoftPromptOptions
    default_lr = 0.01  # tuned on studio-tiny's held-out tasks
    # What `artstudio tune` searches (artstudio/tune/space.py); the sentences are read by the lgbo sampler.
    search_space = {
        "lr": Float(1e-3, 1e-1, log=True, help="peak AdamW learning rate of the prompt vectors; vectors "
                    "initialised from the vocabulary sit at the embedding scale and need smaller steps"),
        "canvas_size": CanvasSize(64, 256, help="side of the equivalent canvas, which fixes the number of prompt "
                                  "vectors; more vectors add capacity and make every step slower"),
        "init": Choice(("normal", "vocab"), help="normal draws random vectors at the embedding scale, vocab "
                       "copies random token embeddings"),
        "batch_size": Choice((8, 16, 32), help="examples per step; larger batches give less noisy gradients, "
                             "cost more per step and tolerate a larger learning rate"),
    }

    def __init__(self, backbone, config: SoftPromptOptions | None = None):
        super().__init__(backbone, config)
        cfg: SoftPromptOptions = self.config
        self.placement = cfg.placement
        side = canvas_side(backbone, cfg.canvas_size)
        geometry = backbone.geometry
        self.side = side
        self._tokens = geometry.tokens(side, side)
        self._grid = torch.tensor([[1, side // geometry.patch_size, side // geometry.patch_size]], device=backbone.device)
        self._output_class, self._deepstack_layers = _vision_output_layout(backbone)
        self.prompt = torch.nn.Parameter(_initial_prompt(backbone, self._tokens, cfg.init, cfg.seed))

    @property
    def slot_tokens(self) -> int:
        return self._tokens

    @property
    def slot_grid(self) -> torch.Tensor:
        return self._grid

    def slot_outputs(self):
        embeds = self.prompt.to(self.backbone.dtype)
        fields = {"pooler_output": (embeds,)}
        if self._deepstack_layers:
            zeros = torch.zeros_like(embeds)
            fields["deepstack_features"] = [(zeros,) for _ in range(self._deepstack_layers)]
        return self._output_class(**fields)

    def export(self, path: str | Path, **metadata) -> Path:
        """safetensors (`prompt`, shape (k, hidden)) + JSON config, loadable by `Method.load`."""
        check_export_target(path)
        folder = self.save(path)
        write_export_meta(self, folder, metadata | {"slot_grid": self._grid.tolist()})
        return folder



def _initial_prompt(backbone, k: int, init: str, seed: int | None) -> torch.Tensor:
    """(k, hidden) float32 vectors on the backbone's device, drawn with a seeded generator."""
    table = backbone.input_embeddings().weight.detach()
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    if init == "vocab":
        rows = torch.randint(0, table.shape[0], (k,), generator=gen)
        out = table[rows.to(table.device)].float().clone()
    else:
        out = torch.randn(k, table.shape[1], generator=gen) * table.float().std().item()
    return out.to(backbone.device)


def _vision_output_layout(backbone) -> tuple[type, int]:
    """The vision tower's output class and its number of deepstack layers (0 without deepstack).

    Read from one encoding of the smallest valid image rather than from a table of families, so a
    new family with another output layout still gets a slot output of the right shape.
    """
    g = backbone.geometry
    side = g.valid_sizes()[0]
    pixels = torch.zeros(3, side, side)
    with torch.no_grad():
        values, grid = to_pixel_values(pixels.to(backbone.device, backbone.dtype), g)
        out = backbone.encode_images(values, grid)
    deep = getattr(out, "deepstack_features", None)
    return type(out), len(deep) if deep is not None else 0
