"""The Method interface that ART and every baseline implement, and the registry that names them.

A method decides three things and nothing else, so that the one training loop, the one evaluation
and the one export treat all methods alike (DESIGN §3, "The Method interface"):

1. what the prompt carries in the *canvas slot* (`placement`, `slot_tokens`, `slot_outputs()`):
   ART puts the encoded canvas there, a soft prompt puts trainable vectors there, LoRA leaves the
   slot out (`placement = None`, text-only prompts);
2. which module runs (`model`): the frozen backbone, or a PEFT wrapper around it;
3. which parameters train (`trainable_parameters()`), how they are saved, loaded and exported.

`slot_outputs()` is called once per optimisation step: the canvas is encoded by the vision tower
one time and the result shared by every row of the batch (`artstudio.forward`).

Everything the training loop, the comparison harness and the app need to know about a method is a
class attribute of the method itself (its default learning rate, whether it trains anything, whether
it is seed-free, whether it needs a model of its own), so a new method is one module and its
`@register`, and no table elsewhere lists method names. The prompt format (keep the chat template's
default system turn or not) belongs to the method instance too: it is saved with the method and with
an artwork, so two artworks served from one backbone never change each other's prompts.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from safetensors.torch import load_file

from .artwork import check_compatible, export_artwork, metadata_for, read_artwork
from .atomic import atomic_save_file, atomic_write_text
from .canvas import init_file_missing
from .errors import ArtworkError, ConfigError
from .options import field_names, from_dict, option_label
from .prompts import Placement
from .tune.space import CanvasSize, Choice, Float

METHOD_FILE = "method.json"
WEIGHTS_FILE = "method.safetensors"
EXPORT_META_FILE = "artstudio.json"  # beside an exported adapter folder's weights: method, model, task, accuracy


class Method(torch.nn.Module):
    """Base class: a frozen backbone plus whatever a method trains. Subclasses set `name`."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = dict
    # Facts about the method, read by the training loop, `compare` and the app (never a table of names).
    default_lr: ClassVar[float] = 1e-3  # SFT learning rate when none is given (other objectives scale it)
    trains: ClassVar[bool] = True  # False: nothing to optimise; a comparison only evaluates it
    seed_free: ClassVar[bool] = False  # True: no randomness at all; one evaluation serves every seed
    own_backbone: ClassVar[bool] = False  # True: its wrapper must not share a model with other live methods
    starts_frozen: ClassVar[bool] = False  # True: before any step it answers exactly as the frozen model
    standalone: ClassVar[bool] = True  # False: needs more than a backbone (a hypernetwork trained for it)
    placement: Placement = None

    def __init__(self, backbone, config=None):
        super().__init__()
        self.backbone = backbone
        self.config = config if config is not None else self.config_class()
        # Prompt format: keep the chat template's default system turn (Qwen2/2.5-VL insert one)?
        # Off by default, as in the paper; every prompt of this method (training, evaluation, serving) follows it.
        self.keep_default_system: bool = False
        # Run the rows' common prefix (template opening + canvas) once per batch (`artstudio.forward`);
        # a run-time choice of the training loop (`TrainConfig.shared_prefix`), exact either way.
        self.shared_prefix: bool = True

    @classmethod
    def lr_for(cls, objective: str = "sft") -> float:
        """The learning rate a run uses when none is given: the method's, scaled by the objective's factor."""
        from .objectives import get_objective

        return cls.default_lr * get_objective(objective).lr_scale

    @classmethod
    def check_option(cls, backbone, name: str, value) -> None:
        """Refuse (ConfigError) an option value this backbone cannot take, before anything trains: `tune`
        checks each choice of a search space with it. Most options need no model to check; none here."""

    @classmethod
    def takes_canvas_size(cls) -> bool:
        """Whether the method's slot is sized like a canvas (`canvas_size` option): ART, its controls and
        the soft prompt. The one rule the CLI, `compare` (same slot size for every such method) and the
        app use for canvas-size options."""
        return "canvas_size" in field_names(cls.config_class)

    @classmethod
    def paints(cls) -> bool:
        """Whether the method's config is a canvas config (ArtConfig): the canvas options apply to it."""
        return isinstance(cls.config_class, type) and issubclass(cls.config_class, ArtConfig)

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

    def forget_encoding(self) -> None:
        """Drop a remembered slot encoding, if the method keeps one (ART's frozen canvas does)."""

    def transform_image_outputs(self, outputs):
        """Hook for methods that adapt visual embeddings (AdaLink); identity by default."""
        return outputs

    def bind_task(self, card: dict) -> None:
        """Called by the training loop with the task card before training: zero-shot methods (Text-to-LoRA,
        Text-to-Canvas) generate their weights from its description; others ignore it."""

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
        # A frozen tensor in trainable_state (a loaded artwork's canvas) may be absent from an older save.
        missing = {k for k in self.trainable_state() if k not in state and own[k].requires_grad}
        if missing:
            raise ConfigError(f"saved {self.name} state lacks {', '.join(sorted(missing))}")
        extra = sorted(k for k in state if k not in own)
        if extra:
            raise ConfigError(f"saved {self.name} state holds {', '.join(extra)}, which this {self.name} method lacks: "
                              "it was saved with other options (method.json)")
        for k, v in state.items():
            if tuple(v.shape) != tuple(own[k].shape):
                raise ConfigError(f"saved {self.name} state has {k} of shape {tuple(v.shape)}; this {self.name} method's "
                                  f"is {tuple(own[k].shape)}: it was saved with other options (method.json)")
        with torch.no_grad():
            for k, v in state.items():
                own[k].copy_(v.to(own[k].device, own[k].dtype))

    # --- persistence ---------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_save_file(self.trainable_state(), folder / WEIGHTS_FILE)
        meta = {"method": self.name, "config": asdict(self.config) if hasattr(self.config, "__dataclass_fields__") else {},
                "model_id": self.backbone.model_id, "family": self.backbone.family,
                "keep_default_system": self.keep_default_system}
        atomic_write_text(folder / METHOD_FILE, json.dumps(meta, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path, backbone) -> "Method":
        """The method `save` wrote in `folder` (a run's `final/`), on `backbone` (a Backbone, or a model name or
        folder to load)."""
        folder = Path(folder)
        if not (folder / METHOD_FILE).is_file():
            raise ConfigError(_not_a_saved_method(folder))
        if isinstance(backbone, (str, Path)):  # Method.load(folder, "studio-tiny"), as load_artwork takes it
            from .backbone import load_backbone

            backbone = load_backbone(str(backbone))
        try:
            meta = json.loads((folder / METHOD_FILE).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"{folder / METHOD_FILE} is not readable JSON ({err}); save the method again") from None
        config = dict(meta.get("config") or {})
        init = config.get("init")
        if (folder / WEIGHTS_FILE).exists() and isinstance(init, str) and init_file_missing(init):
            # The saved weights are the whole trained picture; the start image (a path relative to where the
            # run was trained, or a run folder since moved) only set the regulariser's reference.
            config["init"] = "gray"
        method = build_method(meta["method"], backbone, config)
        method.keep_default_system = bool(meta.get("keep_default_system", False))
        if (folder / WEIGHTS_FILE).exists():
            method.load_trainable_state(load_file(str(folder / WEIGHTS_FILE)))
        return method

    def export(self, path: str | Path, **metadata) -> Path:
        """The deployable artefact (an artwork PNG, an adapter folder). A method with none (the frozen model
        itself) refuses: its export was a folder that `info`, `infer` and `serve` all turned away."""
        raise ConfigError(f"method {self.name!r} changes nothing in the frozen model, so it has nothing to export; "
                          "the model needs no file to be served as it is (`artstudio eval --data ...` scores it)")

    def describe(self) -> dict:
        return {"method": self.name, "trainable_params": self.num_trainable(),
                "placement": self.placement, "slot_tokens": self.slot_tokens}


def _not_a_saved_method(folder: Path) -> str:
    """Why `Method.load(folder)` finds no saved method there, and what to load instead."""
    if folder.is_file() and folder.suffix.lower() == ".png":
        return f"{folder} is a PNG; an artwork loads with artstudio.load_artwork({str(folder)!r}, backbone)"
    if (folder / "final" / METHOD_FILE).is_file():
        return f"{folder} is a run folder; its trained method is in {folder / 'final'}: Method.load({str(folder / 'final')!r}, backbone)"
    if (folder / "adapter_config.json").is_file():
        return (f"{folder} is a PEFT adapter folder (an export); load it with "
                f"artstudio.baselines.lora.load_adapter({str(folder)!r}, backbone), or eval/infer --adapter {folder}")
    if not folder.exists():
        return f"{folder}: no such folder; expected one that Method.save wrote (a run's final/ folder)"
    return f"{folder} holds no {METHOD_FILE}; expected a folder that Method.save wrote (a run's final/ folder)"


# --- registry -----------------------------------------------------------------------------------
METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


def _register_baselines() -> None:
    # The baselines register themselves when imported; they import this module, so not at its top.
    import artstudio.baselines  # noqa: F401


def method_names() -> list[str]:
    _register_baselines()
    return list(METHODS)


def get_method(name: str) -> type[Method]:
    _register_baselines()
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def method_config(name: str, options: dict[str, Any] | None = None) -> Any:
    """Method `name`'s config from `options`, defaults filled in (a plain dict for a dict-configured method)."""
    config_class = get_method(name).config_class
    return from_dict(config_class, options) if config_class is not dict else dict(options or {})


def build_method(name: str, backbone, config: Any = None) -> Method:
    """Method `name` on `backbone` (a Backbone, or a model name or folder to load), with `config` (its config
    dataclass, a dict of its fields, or None for the defaults)."""
    if isinstance(backbone, (str, Path)):  # build_method("art", "studio-tiny"), as load_artwork takes it
        from .backbone import load_backbone

        backbone = load_backbone(str(backbone))
    elif not hasattr(backbone, "geometry"):
        raise ConfigError("backbone must be an artstudio Backbone (artstudio.load_backbone(model)) or a model name "
                          f"or folder, not {type(backbone).__name__}")
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
    default_lr = 0.0
    trains = False
    seed_free = True
    starts_frozen = True


@dataclass
class ArtConfig:
    """ART: a trainable picture in the canvas slot (paper: 256x256 canvas, 64 visual tokens)."""

    canvas_size: int | None = field(default=None, metadata={"help": "canvas side in pixels; a multiple of patch x merge (default: the model's recommended size, else 256)"})
    init: str = field(default="gray", metadata={"help": "gray | noise | a colour | an image path | icon+texture:PATH"})
    # pixels is the default: measured on studio-tiny (SFT, batch 8, 200 steps, lr 0.05, seed 0) it reached
    # 49.5 % on add-json and 61.5 % on sub-answer where sigmoid logits reached 22.5 % and 21.5 %.
    parametrization: Literal["pixels", "sigmoid"] = field(default="pixels", metadata={"help": "pixels (clamped, gradients kept at the bounds) or sigmoid (logits)"})
    quantize: bool = field(default=True, metadata={"help": "train through uint8 rounding (straight-through), so the PNG serves exactly"})
    texture: float = field(default=0.1, metadata={"help": "amplitude of high-frequency noise added to an icon init"})
    tv_weight: float = field(default=0.0, metadata={"help": "total-variation regulariser weight (smoother artworks)"})
    l2_weight: float = field(default=0.0, metadata={"help": "weight of the L2 distance to the initial image (keeps it recognisable)"})
    placement: Literal["first", "after-text"] = field(default="first", metadata={"help": "first (prefix-cacheable) or after-text"})
    seed: int | None = field(default=None, metadata={"help": "seed of the canvas initialisation (default: the run's --seed)"})
    starts: int | None = field(default=None, metadata={"help": "canvases trained briefly from different starts (own init, the Text-to-Canvas artwork where one fits, noise); the best on a validation split carved from the training rows is trained for the run (artstudio/starts.py). Default: 1 when --init names a picture (an image file), else 2 where a Text-to-Canvas start fits (studio-tiny, a task with a description), else 1"})
    start_steps: float = field(default=0.15, metadata={"help": "with --starts > 1: fraction of the run's steps each start trains before the pick"})

    def __post_init__(self) -> None:
        """The checks that need no model, so `compare` refuses a bad value before it writes anything."""
        if self.placement not in ("first", "after-text"):
            raise ConfigError(f"{option_label('canvas', 'placement', '--')} is {self.placement!r}; choose first or after-text")
        if self.starts is not None and self.starts < 1:
            raise ConfigError(f"{option_label('canvas', 'starts', '--')} is {self.starts}; expected 1 or more (the canvases tried before the run)")
        if not 0 < self.start_steps < 1:
            raise ConfigError(f"{option_label('canvas', 'start_steps', '--')} is {self.start_steps}; expected the fraction of the run's steps each start "
                              "trains, between 0 and 1")
        for name, value in (("tv_weight", self.tv_weight), ("l2_weight", self.l2_weight), ("texture", self.texture)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                # a negative penalty rewards what it should penalise; NaN or inf made every step's loss NaN
                raise ConfigError(f"{option_label('canvas', name, '--')} is {value}; expected 0 (off) or a positive value")


@dataclass
class SingleStartConfig(ArtConfig):
    """ART with one start: the canvas trains from its own initialisation only."""

    starts: int | None = field(default=1, metadata={"help": "canvases trained from different starts (1: the plain method)"})


def recommended_canvas_size(backbone) -> int:
    """The model folder's `artstudio.json` may recommend a size (studio-tiny: its cue pictures' 96)."""
    hint = getattr(backbone, "recommended_canvas_size", None)
    if hint:
        return int(hint)
    factor = backbone.geometry.factor
    return max(factor, round(256 / factor) * factor)


def canvas_side(backbone, size: int | None) -> int:
    """The square side a canvas-shaped slot uses: `size` (0 and below are refused, never read as "unset"),
    or the model's recommended one; checked against the model's patch grid."""
    side = recommended_canvas_size(backbone) if size is None else size
    backbone.geometry.check(side, side)
    return side


def slot_tokens_of(name: str, backbone, options: dict | None) -> int | None:
    """The visual tokens of the slot method `name` prompts with under `options`, without building it (training
    checks its rows' lengths before the starts build any): a canvas-sized slot's, None for text-only methods."""
    if not get_method(name).takes_canvas_size():
        return None
    side = canvas_side(backbone, (options or {}).get("canvas_size"))
    return backbone.geometry.tokens(side, side)


@register
class ArtMethod(Method):
    """The canvas is the only trainable thing; gradients reach it through the vision tower."""

    name = "art"
    config_class = ArtConfig
    # Measured on studio-tiny's held-out tasks (SFT, batch 16): 0.05 reaches the gallery's accuracies in 300 steps.
    default_lr = 0.05
    # What `artstudio tune` searches (artstudio/tune/space.py); the sentences are read by the lgbo sampler.
    search_space = {
        "lr": Float(0.005, 0.5, log=True, help="peak AdamW learning rate of the canvas pixels; the pixel "
                    "parametrisation moves pixels directly and tolerates larger rates than sigmoid logits; "
                    "larger batches give cleaner gradients and tolerate larger rates"),
        "canvas_size": CanvasSize(64, 256, help="canvas side in pixels; a larger canvas gives the model more "
                                  "visual tokens to carry the task (more capacity) but makes every step slower "
                                  "and may need a smaller learning rate"),
        "parametrization": Choice(("pixels", "sigmoid"), help="pixels are optimised directly (clamped to [0, 1]); "
                                  "sigmoid optimises logits, which slows changes near black and white"),
        "init": Choice(("gray", "noise"), help="starting picture; gray is neutral, noise starts from random "
                       "pixels that the optimisation must first overwrite"),
        "schedule": Choice(("cosine", "constant"), help="learning-rate schedule after warm-up; cosine decays to "
                           "a tenth of the peak, which settles the canvas late in training"),
        "tv_weight": Float(0.0, 0.05, help="total-variation penalty for smoother artworks; large values fight "
                           "the high-frequency texture the task may need, most with a high learning rate"),
        "batch_size": Choice((8, 16, 32), help="examples per step; larger batches average more examples "
                             "into the one shared canvas gradient, cost more per step and allow a larger "
                             "learning rate"),
    }

    def __init__(self, backbone, config: ArtConfig | None = None, canvas=None):
        super().__init__(backbone, config)
        from .canvas import Canvas

        cfg = self.config
        if cfg.seed is None:
            # Record a concrete seed, so a saved (frozen, random) canvas is redrawn identically on load.
            cfg.seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        cfg.__post_init__()  # a config changed after it was made
        self.placement = cfg.placement
        if canvas is None:
            side = canvas_side(backbone, cfg.canvas_size)
            canvas = Canvas(side, init=cfg.init, parametrization=cfg.parametrization, quantize=cfg.quantize,
                            seed=cfg.seed, texture=cfg.texture)
        self._set_canvas(canvas)

    def _set_canvas(self, canvas) -> None:
        self.backbone.geometry.check(*canvas.size)
        self.canvas = canvas.to(self.backbone.device)
        h, w = self.canvas.size
        self._grid = torch.tensor([[1, h // self.backbone.geometry.patch_size, w // self.backbone.geometry.patch_size]],
                                  device=self.backbone.device)

    @property
    def slot_tokens(self) -> int:
        return self.backbone.geometry.tokens(*self.canvas.size)

    @property
    def slot_grid(self) -> torch.Tensor:
        return self._grid

    def slot_outputs(self):
        """The canvas through the vision tower. A frozen canvas (a served artwork) is encoded once per
        process and reused by every request, until its pixels change."""
        from .vision import to_pixel_values

        frozen = not self.canvas.param.requires_grad
        key = (self.canvas.param._version, self.canvas.param.data_ptr())
        memo = self.__dict__.get("_slot_memo")
        if frozen and memo is not None and memo[0] == key:
            return memo[1]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            pixels, grid = to_pixel_values(self.canvas().to(self.backbone.dtype), self.backbone.geometry)
            out = self.backbone.encode_images(pixels, grid)
        self.__dict__["_slot_memo"] = (key, out) if frozen else None
        return out

    def forget_encoding(self) -> None:
        """Drop the frozen canvas's remembered encoding: the next `slot_outputs` runs the vision tower again
        (benchmarks measure what remembering it saves)."""
        self.__dict__.pop("_slot_memo", None)

    def regularization(self):
        return self.canvas.regularization(self.config.tv_weight, self.config.l2_weight)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The canvas, also when frozen (a loaded artwork, the random-canvas control): it is the whole method, so
        `save` keeps it (a loaded artwork saved an empty file, which `Method.load` then refused)."""
        return {"canvas.param": self.canvas.param}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        saved = state.get("canvas.param")
        if saved is not None and tuple(saved.shape[1:]) != self.canvas.size and self.config.canvas_size is None:
            # A saved artwork of another shape (a loaded PNG may be non-square; its config names no side): the
            # saved pixels set the canvas's size, as the PNG did.
            from .canvas import Canvas

            cfg, trains = self.config, self.canvas.param.requires_grad
            self._set_canvas(Canvas(tuple(saved.shape[1:]), parametrization=cfg.parametrization, quantize=cfg.quantize,
                                    seed=cfg.seed, texture=cfg.texture))
            self.canvas.requires_grad_(trains)
        super().load_trainable_state(state)

    def image(self):
        """The canvas as served: a uint8 PIL image."""
        return self.canvas.to_pil()

    def export(self, path: str | Path, **metadata) -> Path:
        loaded = getattr(self, "artwork", None)  # a loaded artwork keeps what its file said of it
        if loaded is not None and loaded.metadata is not None:
            import numpy as np

            same = np.array_equal(np.asarray(self.image()), np.asarray(loaded.image))
            known = {"task": loaded.metadata.task, "objective": loaded.metadata.objective, "extra": loaded.metadata.extra}
            if same:  # its scores and steps describe these pixels only
                known |= {"steps": loaded.metadata.steps, "metrics": loaded.metadata.metrics}
            metadata = {k: v for k, v in known.items() if v} | metadata
        if self.keep_default_system:
            metadata["extra"] = {**metadata.get("extra", {}), "keep_default_system": True}
        meta = metadata_for(self.backbone, canvas_size=list(self.canvas.size), placement=self.placement, **metadata)
        return export_artwork(self.image(), path, meta)


@register
class SingleStartArtMethod(ArtMethod):
    """Plain ART, one start: beside `art` in a comparison, it shows what the starts add."""

    name = "art-single"
    config_class = SingleStartConfig


@dataclass
class RandomCanvasConfig(ArtConfig):
    """Control: an untrained noise canvas in the slot (the paper's random-image control)."""

    init: str = "noise"


@register
class RandomCanvasMethod(ArtMethod):
    name = "random-canvas"
    config_class = RandomCanvasConfig
    default_lr = 0.0
    trains = False

    def __init__(self, backbone, config=None, canvas=None):
        super().__init__(backbone, config, canvas)
        self.canvas.requires_grad_(False)


def description_option(method: str) -> str:
    """How a user gives `method` (t2l, t2c, t2c+art) the task description, in each of the three places."""
    return (f"--{method}-description \"...\" (artstudio train), --method-options '{{\"{method}\": {{\"description\": "
            f"\"...\"}}}}' (artstudio compare), or description=\"...\" (Python)")


# --- artworks as methods --------------------------------------------------------------------------
def check_method(method: object) -> None:
    """Refuse what is not a Method where one is needed (a path or a name passed by mistake)."""
    if not (hasattr(method, "backbone") and hasattr(method, "slot_outputs")):  # a Method, or one in all but name
        raise ConfigError(f"expected a method (artstudio.load_artwork(PNG, backbone), or a run's .method), got "
                          f"{method!r} ({type(method).__name__})")


def load_artwork(path: str | Path, backbone=None, *, model: str | None = None, allow_mismatch: bool = False,
                 device: str | None = None, dtype: str | None = None) -> ArtMethod:
    """An `ArtMethod` serving the PNG at `path`: its canvas frozen, its placement and prompt format from
    the metadata.

    Without `backbone`, loads `model`, else the model the metadata names; a plain PNG (no ArtStudio
    metadata) says nothing about its model, so then `model` (or a backbone) is required. The artwork
    is checked against the backbone with `check_compatible` (`allow_mismatch` lets a mismatch through
    with a warning; a size that does not fit is always refused).
    """
    from .backbone import load_backbone
    from .canvas import Canvas

    if isinstance(backbone, (str, Path)):  # load_artwork(path, "Qwen/Qwen3.5-0.8B"): a model, named
        model, backbone = str(backbone), None
    artwork = read_artwork(path)
    if backbone is None:
        model_id = model or (artwork.metadata.model_id if artwork.metadata is not None else None)
        if model_id is None:
            raise ArtworkError(
                f"{artwork.path}: a plain PNG without ArtStudio metadata does not say which model it is for; "
                "name the model (--model M on the command line, load_artwork(path, model=M) in Python)"
            )
        backbone = load_backbone(model_id, device=device, dtype=dtype)
    check_compatible(artwork, backbone, allow_mismatch=allow_mismatch)
    placement = artwork.metadata.placement if artwork.metadata is not None else "first"
    height, width = artwork.image.height, artwork.image.width
    # The served pixels are exactly the PNG's: the "pixels" parametrisation holds k/255 values as they
    # are, and rounding them again is the identity, so this canvas feeds the model the file's bytes.
    canvas = Canvas.from_image(artwork.image, parametrization="pixels", quantize=True)
    config = ArtConfig(canvas_size=height if height == width else None, init="gray",
                       parametrization="pixels", placement=placement)
    method = ArtMethod(backbone, config, canvas=canvas)
    method.canvas.requires_grad_(False)
    if artwork.metadata is not None:
        # Served with the prompt format it was trained with; this method's own, never the backbone's.
        method.keep_default_system = bool(artwork.metadata.extra.get("keep_default_system", False))
    method.artwork = artwork
    return method


def artwork_or_base(model: str | None, canvas: str | Path | None, *, allow_mismatch: bool = False,
                    device: str | None = None, dtype: str | None = None, backbone=None,
                    adapter: str | Path | None = None) -> Method:
    """The method that serves `canvas` (an artwork PNG) or `adapter` (a PEFT adapter folder), or the base
    model with no picture when there is neither."""
    from .backbone import DEFAULT_MODEL, load_backbone

    if canvas is not None and adapter is not None:
        raise ConfigError("--canvas and --adapter: give one (an artwork PNG or a PEFT adapter folder)")
    if adapter is not None:
        from .baselines.lora import load_adapter

        return load_adapter(adapter, backbone, model=model, allow_mismatch=allow_mismatch, device=device, dtype=dtype)
    if canvas is not None:
        return load_artwork(canvas, backbone, model=model, allow_mismatch=allow_mismatch, device=device, dtype=dtype)
    return build_method("base", backbone or load_backbone(model or DEFAULT_MODEL, device=device, dtype=dtype))
