"""The Method interface that ART and every baseline implement, and the registry that names them.

A method decides three things and nothing else, so that the one training loop, the one evaluation
and the one export treat all methods alike (DESIGN §3, "The Method interface"):

1. what the prompt carries in the *canvas slot* (`placement`, `slot_tokens`, `slot_outputs()`):
   ART puts the encoded canvas there, a soft prompt puts trainable vectors there, LoRA leaves the
   slot out (`placement = None`, text-only prompts);
2. which module runs (`model`): the frozen backbone, or a PEFT wrapper around it;
3. which parameters train (`trainable_parameters()`), how they are saved, loaded and exported.

`slot_outputs()` is called once per optimisation step: the canvas is encoded by the vision tower
one time and the result broadcast to every row of the batch (`Backbone.repeat_image_outputs`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file

from .atomic import atomic_save_file, atomic_write_text
from .errors import ConfigError
from .prompts import Placement

METHOD_FILE = "method.json"
WEIGHTS_FILE = "method.safetensors"


def config_from_dict(cls, values: dict[str, Any] | None):
    """Build dataclass `cls` from `values`, naming unknown keys in the error."""
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} for {cls.__name__}; valid: {', '.join(sorted(known))}")
    return cls(**values)


class Method(torch.nn.Module):
    """Base class: a frozen backbone plus whatever a method trains. Subclasses set `name`."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = dict
    placement: Placement = None

    def __init__(self, backbone, config=None):
        super().__init__()
        self.backbone = backbone
        self.config = config if config is not None else self.config_class()

    # --- what goes into the canvas slot ---------------------------------------------------------
    @property
    def slot_tokens(self) -> int | None:
        """Visual tokens in the canvas slot, or None when prompts carry no slot."""
        return None

    @property
    def slot_grid(self) -> torch.Tensor | None:
        """`image_grid_thw` row of the slot image (M-RoPE needs it), or None."""
        return None

    def slot_outputs(self):
        """Vision-tower outputs for the slot, for ONE image (broadcast by the caller), or None."""
        return None

    def transform_image_outputs(self, outputs):
        """Hook for methods that adapt visual embeddings (AdaLink); identity by default."""
        return outputs

    # --- what runs -------------------------------------------------------------------------------
    @property
    def model(self) -> torch.nn.Module:
        return self.backbone.model

    def forward(self, **inputs):
        """One pass of the model this method runs (see `Backbone.forward` for the inputs)."""
        return self.backbone.forward(**inputs, model=self.model)

    def regularization(self) -> torch.Tensor | float:
        return 0.0

    # --- what trains -----------------------------------------------------------------------------
    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Tensors that define the trained method (what checkpoints and `save` store)."""
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        own = dict(self.named_parameters())
        missing = set(self.trainable_state()) - set(state)
        if missing:
            raise ConfigError(f"saved {self.name} state lacks {', '.join(sorted(missing))}")
        with torch.no_grad():
            for k, v in state.items():
                own[k].copy_(v.to(own[k].device, own[k].dtype))

    # --- persistence ---------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_save_file(self.trainable_state(), folder / WEIGHTS_FILE)
        meta = {"method": self.name, "config": asdict(self.config) if hasattr(self.config, "__dataclass_fields__") else {},
                "model_id": self.backbone.model_id, "family": self.backbone.family}
        atomic_write_text(folder / METHOD_FILE, json.dumps(meta, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path, backbone) -> "Method":
        folder = Path(folder)
        meta = json.loads((folder / METHOD_FILE).read_text(encoding="utf-8"))
        method = build_method(meta["method"], backbone, meta.get("config"))
        if (folder / WEIGHTS_FILE).exists():
            method.load_trainable_state(load_file(str(folder / WEIGHTS_FILE)))
        return method

    def export(self, path: str | Path, **metadata) -> Path:
        """The deployable artefact. Default: safetensors + JSON config in a folder."""
        return self.save(path)

    def describe(self) -> dict:
        return {"method": self.name, "trainable_params": self.num_trainable(),
                "placement": self.placement, "slot_tokens": self.slot_tokens}


# --- registry -----------------------------------------------------------------------------------
METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


def _load_plugins() -> None:
    try:  # baselines register themselves on import
        import artstudio.baselines  # noqa: F401
    except ImportError:  # pragma: no cover - the package always ships baselines
        pass


def method_names() -> list[str]:
    _load_plugins()
    return list(METHODS)


def get_method(name: str) -> type[Method]:
    _load_plugins()
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def method_config(name: str, options: dict[str, Any] | None = None) -> Any:
    """Method `name`'s config from `options`, defaults filled in (a plain dict for a dict-configured method)."""
    config_class = get_method(name).config_class
    return config_from_dict(config_class, options) if config_class is not dict else dict(options or {})


def build_method(name: str, backbone, config: Any = None) -> Method:
    if isinstance(config, dict) or config is None:
        config = method_config(name, config)
    return get_method(name)(backbone, config)


# --- the methods that live in the core ----------------------------------------------------------
@dataclass
class BaseConfig:
    """The frozen model with nothing trained: the reference every method is compared to."""


@register
class BaseMethod(Method):
    name = "base"
    config_class = BaseConfig


@dataclass
class ArtConfig:
    """ART: a trainable picture in the canvas slot (paper: 256x256 canvas, 64 visual tokens)."""

    canvas_size: int | None = field(default=None, metadata={"help": "canvas side in pixels; a multiple of patch x merge (default: the model's recommended size, else 256)"})
    init: str = field(default="gray", metadata={"help": "gray | noise | a colour | an image path | icon+texture:PATH"})
    # pixels is the default: measured on studio-tiny (SFT, batch 8, 200 steps, lr 0.05, seed 0) it reached
    # 49.5 % on add-json and 61.5 % on sub-answer where sigmoid logits reached 22.5 % and 21.5 %.
    parametrization: str = field(default="pixels", metadata={"help": "pixels (clamped, gradients kept at the bounds) or sigmoid (logits)"})
    quantize: bool = field(default=True, metadata={"help": "train through uint8 rounding (straight-through), so the PNG serves exactly"})
    texture: float = field(default=0.1, metadata={"help": "amplitude of high-frequency noise added to an icon init"})
    tv_weight: float = field(default=0.0, metadata={"help": "total-variation regulariser weight (smoother artworks)"})
    l2_weight: float = field(default=0.0, metadata={"help": "weight of the L2 distance to the initial image (keeps it recognisable)"})
    placement: str = field(default="first", metadata={"help": "first (prefix-cacheable) or after-text"})
    seed: int | None = field(default=None, metadata={"help": "seed of the canvas initialisation (default: the run's --seed)"})


def recommended_canvas_size(backbone) -> int:
    """The model folder's `artstudio.json` may recommend a size (studio-tiny: its cue pictures' 96)."""
    hint = getattr(backbone, "recommended_canvas_size", None)
    if hint:
        return int(hint)
    factor = backbone.geometry.factor
    return max(factor, round(256 / factor) * factor)


@register
class ArtMethod(Method):
    """The canvas is the only trainable thing; gradients reach it through the vision tower."""

    name = "art"
    config_class = ArtConfig

    def __init__(self, backbone, config: ArtConfig | None = None, canvas=None):
        super().__init__(backbone, config)
        from .canvas import Canvas

        cfg = self.config
        if cfg.seed is None:
            # Record a concrete seed, so a saved (frozen, random) canvas is redrawn identically on load.
            cfg.seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        if cfg.placement not in ("first", "after-text"):
            raise ConfigError(f"placement must be 'first' or 'after-text', got {cfg.placement!r}")
        self.placement = cfg.placement
        if canvas is None:
            side = cfg.canvas_size or recommended_canvas_size(backbone)
            backbone.geometry.check(side, side)
            canvas = Canvas(side, init=cfg.init, parametrization=cfg.parametrization, quantize=cfg.quantize,
                            seed=cfg.seed, texture=cfg.texture)
        else:
            backbone.geometry.check(*canvas.size)
        self.canvas = canvas.to(backbone.device)
        h, w = self.canvas.size
        g = backbone.geometry
        self._grid = torch.tensor([[1, h // g.patch_size, w // g.patch_size]], device=backbone.device)

    @property
    def slot_tokens(self) -> int:
        return self.backbone.geometry.tokens(*self.canvas.size)

    @property
    def slot_grid(self) -> torch.Tensor:
        return self._grid

    def slot_outputs(self):
        from .vision import to_pixel_values

        pixels, grid = to_pixel_values(self.canvas().to(self.backbone.dtype), self.backbone.geometry)
        return self.backbone.encode_images(pixels, grid)

    def regularization(self):
        return self.canvas.regularization(self.config.tv_weight, self.config.l2_weight)

    def image(self):
        """The canvas as served: a uint8 PIL image."""
        return self.canvas.to_pil()

    def export(self, path: str | Path, **metadata) -> Path:
        from .artwork import export_artwork, metadata_for

        if self.backbone.keep_default_system:
            metadata["extra"] = {**metadata.get("extra", {}), "keep_default_system": True}
        meta = metadata_for(self.backbone, canvas_size=list(self.canvas.size), placement=self.placement, **metadata)
        return export_artwork(self.image(), path, meta)


@dataclass
class RandomCanvasConfig(ArtConfig):
    """Control: an untrained noise canvas in the slot (the paper's random-image control)."""

    init: str = "noise"


@register
class RandomCanvasMethod(ArtMethod):
    name = "random-canvas"
    config_class = RandomCanvasConfig

    def __init__(self, backbone, config=None, canvas=None):
        super().__init__(backbone, config, canvas)
        self.canvas.requires_grad_(False)
