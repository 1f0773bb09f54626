"""The interface every hypernetwork implements (Text-to-Canvas, Text-to-LoRA), and their registry.

A hypernetwork maps task embeddings (from a frozen `TaskEncoder`) to whatever adapts the frozen
backbone for that task: a canvas for T2C, LoRA matrices for T2L. One generic training loop
(`artstudio.hyper.training`) drives every kind through five methods:

    forward(task_embeddings (N, dim))   -> list of N generated outputs, with gradients
    method_for(backbone, generated)     -> an artstudio Method that uses the generated tensors
                                           (so `compute_loss(method, rows)` trains the hypernetwork)
    reconstruction_loss(generated, target)  for `mode="reconstruction"`
    train_target(backbone, task, cache)     the per-task target of reconstruction (trained once, cached)
    export(backbone, generated, path, description)  the deployable artefact (PNG / PEFT folder)

Saved as a folder: `hyper.safetensors` (weights) + `hyper.json` (kind, config, the backbone it was
made for, the encoder's name, the embedding size). Loading it for another model is refused with a
clear error, as an artwork made for another model is.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from safetensors.torch import load_file

from artstudio.atomic import atomic_save_file, atomic_write_text
from artstudio.errors import ConfigError

from .encoder import BACKBONE_ENCODER, TaskEncoder, check_descriptions

HYPER_FILE = "hyper.json"
WEIGHTS_FILE = "hyper.safetensors"
FORMAT_VERSION = 1

Preset = Literal["S", "M", "L"]


@dataclass
class HyperConfig:
    """Options shared by every hypernetwork; `preset` picks the mixer's width and depth."""

    preset: Preset = field(default="S", metadata={"help": "size preset S | M | L (see the kind's PRESETS)"})
    hidden: int | None = field(default=None, metadata={"help": "mixer width (default: the preset's)"})
    blocks: int | None = field(default=None, metadata={"help": "residual MLP blocks (default: the preset's)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout inside the residual blocks while training"})
    standardise: Literal["dim", "global"] = field(default="dim", metadata={"help": "scale task embeddings per dimension (dim) or by one number (global) after centring them on the library's mean"})


def config_from_dict(cls, values: dict | None):
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown hypernetwork option(s) {', '.join(unknown)} for {cls.__name__}; "
                          f"valid: {', '.join(sorted(known))}")
    # A value of the wrong kind failed deep in the network's constructor ('<' between str and int) or was
    # kept ("palette": "x" written into hyper.json)
    from artstudio.options import check_choices, check_kinds

    what = f"{cls.__name__.removesuffix('Config').lower()} hypernetwork"  # "t2c hypernetwork option palette"
    check_kinds(cls, values, what=what)
    check_choices(cls, values, what=what)
    return cls(**values)


class ResidualBlock(torch.nn.Module):
    """x + W2 act(W1 LN(x)): the mixer block of Text-to-LoRA."""

    def __init__(self, width: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = torch.nn.LayerNorm(width)
        self.up = torch.nn.Linear(width, 2 * width)
        self.down = torch.nn.Linear(2 * width, width)
        self.drop = torch.nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.down(torch.nn.functional.gelu(self.up(self.norm(x)))))


def backbone_target(backbone) -> dict:
    """What identifies the model a hypernetwork is made for (recorded in `hyper.json`)."""
    return {"model_id": str(backbone.model_id), "family": str(backbone.family),
            "geometry": json.loads(json.dumps(backbone.geometry.to_dict()))}


class Hypernetwork(torch.nn.Module):
    """Base class. Subclasses set `kind`, `config_class`, `PRESETS` and implement the abstract methods."""

    kind: ClassVar[str] = ""
    config_class: ClassVar[type] = HyperConfig
    PRESETS: ClassVar[dict[str, dict[str, int]]] = {"S": {"hidden": 256, "blocks": 2},
                                                     "M": {"hidden": 512, "blocks": 3},
                                                     "L": {"hidden": 1024, "blocks": 4}}

    def __init__(self, config, embed_dim: int, target: dict, encoder_name: str = BACKBONE_ENCODER) -> None:
        super().__init__()
        if config.preset not in self.PRESETS:
            raise ConfigError(f"unknown preset {config.preset!r}; choose one of {', '.join(self.PRESETS)}")
        if config.standardise not in ("dim", "global"):
            raise ConfigError(f"standardise must be dim or global, got {config.standardise!r}")
        self.config = config
        self.embed_dim = int(embed_dim)
        self.target = dict(target)
        self.encoder_name = encoder_name
        # Descriptions of one library share most of their words, so their mean-pooled embeddings are
        # close together; standardising with the training tasks' statistics lets the mixer see the
        # differences. Set once by `set_embedding_stats` before training; saved with the weights.
        self.register_buffer("embed_mean", torch.zeros(self.embed_dim))
        self.register_buffer("embed_std", torch.ones(self.embed_dim))

    # --- sizes ----------------------------------------------------------------------------------
    @property
    def width(self) -> int:
        return int(self.config.hidden or self.PRESETS[self.config.preset]["hidden"])

    @property
    def depth(self) -> int:
        return int(self.config.blocks if self.config.blocks is not None else self.PRESETS[self.config.preset]["blocks"])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def mixer_size(self) -> dict:
        """The mixer as built: its width and its residual blocks. Not the preset's letter, which says neither
        where `hidden` or `blocks` replace it (the shipped T2C is preset S with blocks=0); `hyper.json` keeps
        the whole config."""
        return {"width": self.width, "blocks": self.depth}

    def describe(self) -> dict:
        return {"kind": self.kind, **self.mixer_size(), "parameters": self.num_parameters(),
                "encoder": self.encoder_name, "embed_dim": self.embed_dim, "model_id": self.target.get("model_id")}

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def target_of(cls, backbone, config) -> dict:
        """The shapes this hypernetwork emits for `backbone` (subclasses add theirs to the base)."""
        return backbone_target(backbone)

    @classmethod
    def build(cls, backbone, encoder: TaskEncoder, config=None, **options) -> "Hypernetwork":
        """A fresh hypernetwork for `backbone`, taking `encoder`'s embeddings."""
        if config is None or isinstance(config, dict):
            config = config_from_dict(cls.config_class, {**(config or {}), **options})
        return cls(config, encoder.dim, cls.target_of(backbone, config), encoder.name)

    # --- embeddings -----------------------------------------------------------------------------
    @torch.no_grad()
    def set_embedding_stats(self, embeddings: torch.Tensor) -> None:
        e = embeddings.float()
        self.embed_mean.copy_(e.mean(0))
        std = e.std(0) if e.shape[0] > 1 else torch.ones_like(e[0])
        if self.config.standardise == "global":
            std = torch.full_like(std, float(std.square().mean().sqrt()))
        self.embed_std.copy_(std.clamp_min(1e-3 * float(std.mean()) + 1e-6))

    def normalise(self, task_embeddings: torch.Tensor) -> torch.Tensor:
        e = task_embeddings.to(self.embed_mean.device, torch.float32)
        if e.dim() != 2 or e.shape[1] != self.embed_dim:
            raise ConfigError(f"task embeddings must have shape (N, {self.embed_dim}), got {tuple(e.shape)}; "
                              f"was this hypernetwork made with another encoder than {self.encoder_name!r}?")
        return (e - self.embed_mean) / self.embed_std

    # --- the abstract interface -----------------------------------------------------------------
    def forward(self, task_embeddings: torch.Tensor) -> list[Any]:
        raise NotImplementedError

    def method_for(self, backbone, generated):
        """A Method using `generated` (one task's output) with its gradients attached."""
        raise NotImplementedError

    def export(self, backbone, generated, path: str | Path, description: str, **extra) -> Path:
        raise NotImplementedError

    def reconstruction_loss(self, generated, target) -> torch.Tensor:
        raise NotImplementedError

    fit_report: dict | None = None  # what `prepare_reconstruction` fitted, for the run's result.json

    def prepare_reconstruction(self, embeddings: list[torch.Tensor], targets: list) -> None:
        """Called once before the first step of a fresh reconstruction run, with each task's (n, dim)
        embeddings (its wordings) and its target; a kind may fit part of itself in closed form here
        (and say what in `fit_report`)."""

    def reconstruction_objective(self, embedding: torch.Tensor, target) -> torch.Tensor:
        """One task's loss in reconstruction mode, from its (1, dim) embedding: by default the generated
        output against the target; a kind may fit something else that yields the target (T2C's choices)."""
        return self.reconstruction_loss(self(embedding)[0], target)

    def train_target(self, backbone, task, cache_dir: str | Path, *, steps: int, seed: int = 0):
        """The per-task target of reconstruction mode (e.g. an ART canvas), trained once and cached."""
        raise NotImplementedError

    # --- convenience ----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, encoder: TaskEncoder, descriptions: list[str] | str) -> list[Any]:
        """Outputs for descriptions, without gradients (eval mode)."""
        was = self.training
        self.eval()
        try:
            return [self._detach(g) for g in self(encoder.encode(check_descriptions(descriptions)))]
        finally:
            self.train(was)

    @staticmethod
    def _detach(g):
        if torch.is_tensor(g):
            return g.detach()
        if isinstance(g, dict):
            return {k: Hypernetwork._detach(v) for k, v in g.items()}
        if isinstance(g, (list, tuple)):
            return type(g)(Hypernetwork._detach(v) for v in g)
        return g

    # --- compatibility --------------------------------------------------------------------------
    def check_backbone(self, backbone) -> None:
        """Refuse a backbone this hypernetwork was not made for (model id, family or geometry differ)."""
        have = backbone_target(backbone)
        problems = [f"{k} {self.target.get(k)!r} (this model: {have[k]!r})" for k in ("model_id", "family", "geometry")
                    if self.target.get(k) != have[k]]
        if problems:
            raise ConfigError(f"this {self.kind} hypernetwork was made for another model: " + "; ".join(problems)
                              + f". Use it with --model {self.target.get('model_id')}, or train one for this model "
                              "with `artstudio hyper train`")

    def check_encoder(self, encoder: TaskEncoder) -> None:
        if encoder.name != self.encoder_name:
            raise ConfigError(f"this hypernetwork was trained with task encoder {self.encoder_name!r}, not "
                              f"{encoder.name!r}; pass --encoder {self.encoder_name}")
        if encoder.dim != self.embed_dim:
            raise ConfigError(f"task encoder {encoder.name!r} gives {encoder.dim}-dim embeddings; this hypernetwork "
                              f"takes {self.embed_dim}")

    # --- persistence ----------------------------------------------------------------------------
    def meta(self) -> dict:
        return {"format_version": FORMAT_VERSION, "kind": self.kind, "config": asdict(self.config),
                "embed_dim": self.embed_dim, "target": self.target, "encoder": self.encoder_name,
                "parameters": self.num_parameters()}

    def save_pretrained(self, folder: str | Path, **info) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_save_file(dict(self.state_dict()), folder / WEIGHTS_FILE)
        atomic_write_text(folder / HYPER_FILE, json.dumps(self.meta() | ({"info": info} if info else {}), indent=2) + "\n")
        return folder

    @staticmethod
    def read_meta(folder: str | Path) -> dict:
        folder = Path(folder).expanduser()
        path = folder / HYPER_FILE
        if not path.is_file():
            raise ConfigError(f"{folder} is not a hypernetwork folder (no {HYPER_FILE}); pass the folder written by "
                              "`artstudio hyper train` (its final/ subfolder) or a shipped one")
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        for key in ("kind", "config", "embed_dim", "target"):
            if key not in meta:
                raise ConfigError(f"{path} has no {key!r} field; expected a file written by save_pretrained")
        if int(meta.get("format_version", 1)) > FORMAT_VERSION:
            raise ConfigError(f"{path} has format_version {meta['format_version']}, newer than this ArtStudio; upgrade artstudio")
        return meta

    @classmethod
    def from_pretrained(cls, folder: str | Path, backbone=None) -> "Hypernetwork":
        """Load any registered kind from `folder`; with `backbone`, refuse one made for another model."""
        folder = Path(folder).expanduser()
        meta = cls.read_meta(folder)
        klass = get_hyper(meta["kind"])
        if cls is not Hypernetwork and not issubclass(klass, cls):
            raise ConfigError(f"{folder} holds a {meta['kind']} hypernetwork, not a {cls.kind}")
        net = klass(config_from_dict(klass.config_class, meta["config"]), meta["embed_dim"], meta["target"],
                    meta.get("encoder", BACKBONE_ENCODER))
        if not (folder / WEIGHTS_FILE).is_file():
            raise ConfigError(f"{folder} has no {WEIGHTS_FILE}; the hypernetwork's weights are missing")
        state = load_file(str(folder / WEIGHTS_FILE))
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ConfigError(f"{folder / WEIGHTS_FILE} does not match its {HYPER_FILE} "
                              f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})")
        if backbone is not None:
            net.check_backbone(backbone)
            net.to(backbone.device)
        return net.eval()


# --- registry -----------------------------------------------------------------------------------
HYPERNETWORKS: dict[str, type[Hypernetwork]] = {}


def register_hyper(cls: type[Hypernetwork]) -> type[Hypernetwork]:
    if not cls.kind:
        raise ValueError(f"{cls.__name__} has no kind")
    HYPERNETWORKS[cls.kind] = cls
    return cls


def _load_kinds() -> None:
    import importlib

    for module in ("artstudio.hyper.t2c", "artstudio.hyper.t2l"):
        try:
            importlib.import_module(module)
        except ImportError:  # a kind still being written must not break the others
            pass


def get_hyper(kind: str) -> type[Hypernetwork]:
    if kind not in HYPERNETWORKS:
        _load_kinds()
    if kind not in HYPERNETWORKS:
        raise ConfigError(f"unknown hypernetwork kind {kind!r}; choose one of {', '.join(sorted(HYPERNETWORKS)) or 't2c, t2l'}")
    return HYPERNETWORKS[kind]


def hyper_kinds() -> list[str]:
    _load_kinds()
    return sorted(HYPERNETWORKS)
