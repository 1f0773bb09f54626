"""Text-to-LoRA (Charakorn et al., 2025, "Text-to-LoRA: Instant Transformer Adaption"), scaled to the backbone.

A task description goes through a frozen text encoder to a task embedding. For every adapted
projection of the language model, the embedding is joined with a learned *layer* embedding and a
learned *module-type* embedding (q, v); an MLP mixer with residual blocks turns that into one vector,
and a head per module type emits that projection's LoRA `A` (r x in) and `B` (out x r), rank 8. One
forward pass gives the adapter of every q/v projection at once:

    description -> encoder -> e ──┐
    layer l ----> layer_emb[l] ───┼─> mix -> [residual MLP] x blocks -> head[type] -> A_l, B_l
    type t -----> type_emb[t] ────┘

Shapes are read from the backbone's own modules (Qwen3.5's linear-attention layers have no q/v and
get no adapter; its gated q_proj is twice as wide as v_proj), never from a table.

**Sizes.** The paper's L/M/S (55 M / 34 M / 5 M) adapt Mistral-7B. Here the presets are scaled to the
backbone: the head of each module type emits `r * (in + out)` numbers, so a preset is a hidden width
(and a number of mixer blocks) and its size follows from the model's q/v shapes;
`T2L.preset_sizes(backbone)` prints them (studio-tiny: see docs/t2l.md).

**Using a generated adapter.** `method_for(backbone, generated)` returns a `Method` that runs the very
PEFT wrapper the `lora` baseline builds (shared-weight copy of the backbone, same LoraConfig) with the
generated `lora_A`/`lora_B` put in place of its parameters by `torch.func.functional_call`, so
gradients of any loss flow back into the hypernetwork and nothing else trains. `export(...)` writes the
standard PEFT folder (`adapter_config.json` + `adapter_model.safetensors`) that stock
`PeftModel.from_pretrained(base_model, folder)` loads with the same outputs.

For SFT over many tasks at once, `batched_lora(backbone, generated, rows)` applies a different
generated adapter to each row of one batch (forward hooks adding `scale * B_i A_i x_i`), which is the
same arithmetic as PEFT's LoRA layer with dropout 0, in one forward pass instead of one per task.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..methods import Method

KIND = "t2l"
CONFIG_FILE = "hyper_config.json"
WEIGHTS_FILE = "hyper.safetensors"
ADAPTER_NAME = "default"
# hidden width and residual blocks; the paper's L/M/S ratios (55:34:5) are kept roughly by the width.
PRESETS: dict[str, dict[str, int]] = {"S": {"hidden": 32, "blocks": 1}, "M": {"hidden": 128, "blocks": 2},
                                      "L": {"hidden": 256, "blocks": 3}}
_LAYER_RE = re.compile(r"\.layers\.(\d+)\.")


# --- what the hypernetwork adapts ----------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """One adapted projection: its PEFT parameter names, its layer, its type and its shape."""

    path: str       # module path in the backbone, e.g. model.language_model.layers.3.self_attn.q_proj
    layer: int
    module: str     # q_proj | v_proj
    in_features: int
    out_features: int

    @property
    def a_name(self) -> str:
        return f"base_model.model.{self.path}.lora_A.{ADAPTER_NAME}.weight"

    @property
    def b_name(self) -> str:
        return f"base_model.model.{self.path}.lora_B.{ADAPTER_NAME}.weight"


def find_targets(backbone, target_modules: Sequence[str] = ("q_proj", "v_proj")) -> list[Target]:
    """Every q/v projection of the language model, shapes read from the modules themselves."""
    from ..baselines.lora import targeted_linears

    out = []
    for path, lin in targeted_linears(backbone.model, list(target_modules)):
        m = _LAYER_RE.search(f".{path}.")
        if m is None:
            raise ConfigError(f"cannot tell the layer of {path}; Text-to-LoRA needs `.layers.<n>.` in module paths")
        out.append(Target(path, int(m.group(1)), path.rsplit(".", 1)[-1], lin.in_features, lin.out_features))
    return out


def _signature(targets: list[Target]) -> list[list]:
    return [[t.path, t.in_features, t.out_features] for t in targets]


def check_descriptions(descriptions: Sequence[str] | str) -> list[str]:
    """Task descriptions as a list; an empty one is a user error, said plainly."""
    if isinstance(descriptions, str):
        descriptions = [descriptions]
    descriptions = list(descriptions)
    if not descriptions:
        raise ConfigError("no task description given; pass --description \"what the task asks, in a sentence\"")
    for i, d in enumerate(descriptions):
        if not isinstance(d, str) or not d.strip():
            raise ConfigError(f"task description {i + 1} is empty; describe the task in words, e.g. "
                              "\"The prompt is two digits; reply with their sum as a bare number.\"")
    return descriptions


# --- configuration ---------------------------------------------------------------------------------

@dataclass
class T2LConfig:
    """What a Text-to-LoRA hypernetwork is and which model it was made for (saved as JSON)."""

    preset: str = field(default="M", metadata={"help": "S | M | L (hidden width and mixer blocks; see PRESETS)"})
    hidden: int | None = field(default=None, metadata={"help": "override the preset's hidden width"})
    blocks: int | None = field(default=None, metadata={"help": "override the preset's number of residual MLP blocks"})
    rank: int = field(default=8, metadata={"help": "LoRA rank of the generated adapters (paper: 8)"})
    alpha: float = field(default=16.0, metadata={"help": "LoRA alpha (scale alpha/rank), as the lora baseline"})
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    task_dim: int = 0
    dropout: float = field(default=0.1, metadata={"help": "dropout on the task embedding while training (paper)"})
    # filled in from the backbone and the encoder when the hypernetwork is built
    model_id: str = ""
    family: str = ""
    targets: list = field(default_factory=list)  # [[path, in, out], ...]
    encoder: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown T2L preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.rank < 1:
            raise ConfigError(f"T2L rank must be >= 1, got {self.rank}")
        self.hidden = self.hidden or PRESETS[self.preset]["hidden"]
        self.blocks = self.blocks if self.blocks is not None else PRESETS[self.preset]["blocks"]


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.SiLU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


# --- the hypernetwork ----------------------------------------------------------------------------------

class T2LHypernetwork(nn.Module):
    """Task embeddings (N, task_dim) -> N generated adapters, each {PEFT parameter name: tensor}."""

    kind = KIND

    def __init__(self, config: T2LConfig) -> None:
        super().__init__()
        if not config.targets:
            raise ConfigError("T2LConfig.targets is empty: build the hypernetwork with T2LHypernetwork.for_backbone")
        if config.task_dim < 1:
            raise ConfigError("T2LConfig.task_dim must be the task encoder's dimension (>= 1)")
        self.config = config
        self.targets = [Target(p, int(_LAYER_RE.search(f".{p}.").group(1)), p.rsplit(".", 1)[-1], i, o)
                        for p, i, o in config.targets]
        h, r = config.hidden, config.rank
        layers = sorted({t.layer for t in self.targets})
        self.module_types = sorted({t.module for t in self.targets})
        self._layer_index = {l: i for i, l in enumerate(layers)}
        self.task_norm = nn.LayerNorm(config.task_dim)
        self.task_proj = nn.Linear(config.task_dim, h)
        self.task_dropout = nn.Dropout(config.dropout)
        self.layer_emb = nn.Embedding(len(layers), h)
        self.module_emb = nn.Embedding(len(self.module_types), h)
        nn.init.normal_(self.layer_emb.weight, std=1.0)
        nn.init.normal_(self.module_emb.weight, std=1.0)
        self.mix = nn.Linear(3 * h, h)
        self.blocks = nn.Sequential(*[ResidualBlock(h) for _ in range(config.blocks)])
        self.out_norm = nn.LayerNorm(h)
        # One head per module type; every projection of that type must share its shape (true for the
        # q/v of one language model; a model that breaks this gets a clear error).
        self.heads = nn.ModuleDict()
        self._shape: dict[str, tuple[int, int]] = {}
        for m in self.module_types:
            shapes = {(t.in_features, t.out_features) for t in self.targets if t.module == m}
            if len(shapes) != 1:
                raise ConfigError(f"{m} has several shapes {sorted(shapes)} across layers; one T2L head per type needs one")
            fin, fout = shapes.pop()
            self._shape[m] = (fin, fout)
            head = nn.Linear(h, r * fin + fout * r)
            # A starts like PEFT's LoRA A (uniform, bound 1/sqrt(in)) plus a small task-dependent part;
            # B starts at zero, so an untrained hypernetwork generates the frozen model (as LoRA's step 0).
            with torch.no_grad():
                head.weight.normal_(0.0, 1.0 / math.sqrt(h * fin))
                head.weight[r * fin:].zero_()
                head.bias[: r * fin].uniform_(-1 / math.sqrt(fin), 1 / math.sqrt(fin))
                head.bias[r * fin:].zero_()
            self.heads[m] = head
        self.register_buffer("_layer_ids", torch.tensor([self._layer_index[t.layer] for t in self.targets]), persistent=False)
        self.register_buffer("_type_ids", torch.tensor([self.module_types.index(t.module) for t in self.targets]), persistent=False)

    # --- construction -----------------------------------------------------------------------------
    @classmethod
    def for_backbone(cls, backbone, task_dim: int, config: T2LConfig | None = None, encoder: Any = None,
                     **options) -> "T2LHypernetwork":
        config = config or T2LConfig(**options)
        targets = find_targets(backbone, config.target_modules)
        config.targets = _signature(targets)
        config.task_dim = int(task_dim)
        config.model_id = str(backbone.model_id)
        config.family = backbone.family
        if encoder is not None:
            config.encoder = {"name": str(getattr(encoder, "name", "")), "dim": int(getattr(encoder, "dim", task_dim))}
        return cls(config)

    @staticmethod
    def preset_sizes(backbone, task_dim: int) -> dict[str, int]:
        """Parameter count of each preset for this backbone (printed by the docs and the tests)."""
        return {p: sum(x.numel() for x in T2LHypernetwork.for_backbone(backbone, task_dim, preset=p).parameters())
                for p in PRESETS}

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # --- the check that this hypernetwork fits a model ----------------------------------------------
    def check_backbone(self, backbone) -> None:
        have = _signature(find_targets(backbone, self.config.target_modules))
        if have != [list(t) for t in self.config.targets]:
            raise ConfigError(
                f"this Text-to-LoRA hypernetwork was made for {self.config.model_id or 'another model'} "
                f"({self.config.family}, {len(self.config.targets)} q/v projections, first "
                f"{self.config.targets[0][1]}->{self.config.targets[0][2]}); {backbone.model_id} "
                f"({backbone.family}) has {len(have)} with first {have[0][1]}->{have[0][2] if have else '?'}. "
                "Load the backbone it was trained for, or train a hypernetwork for this model "
                "(artstudio hyper train --kind t2l --model ...).")

    # --- generation -------------------------------------------------------------------------------
    def features(self, task_embeddings: torch.Tensor) -> torch.Tensor:
        """(N, task_dim) -> (N, K, hidden): one mixed vector per task and adapted projection."""
        if task_embeddings.dim() != 2 or task_embeddings.shape[1] != self.config.task_dim:
            raise ConfigError(f"task embeddings must have shape (N, {self.config.task_dim}); got "
                              f"{tuple(task_embeddings.shape)} (was the hypernetwork trained with another encoder?)")
        dev = self.task_proj.weight.device
        e = self.task_dropout(self.task_proj(self.task_norm(task_embeddings.to(dev, torch.float32))))
        n, k = e.shape[0], len(self.targets)
        x = torch.cat([e[:, None].expand(n, k, -1),
                       self.layer_emb(self._layer_ids)[None].expand(n, k, -1),
                       self.module_emb(self._type_ids)[None].expand(n, k, -1)], dim=-1)
        return self.out_norm(self.blocks(self.mix(x)))

    def forward(self, task_embeddings: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """One generated adapter per task: {PEFT parameter name: A (r, in) or B (out, r)}."""
        z = self.features(task_embeddings)
        r = self.config.rank
        out: list[dict[str, torch.Tensor]] = [{} for _ in range(z.shape[0])]
        for m, head in self.heads.items():
            idx = [i for i, t in enumerate(self.targets) if t.module == m]
            fin, fout = self._shape[m]
            flat = head(z[:, idx])  # (N, K_m, r*in + out*r)
            a = flat[..., : r * fin].reshape(z.shape[0], len(idx), r, fin)
            b = flat[..., r * fin:].reshape(z.shape[0], len(idx), fout, r)
            for j, i in enumerate(idx):
                t = self.targets[i]
                for n in range(z.shape[0]):
                    out[n][t.a_name] = a[n, j]
                    out[n][t.b_name] = b[n, j]
        return out

    def generate(self, encoder, descriptions: Sequence[str]) -> list[dict[str, torch.Tensor]]:
        """Adapters for task descriptions, through the frozen `encoder` (`.encode(list[str]) -> (N, dim)`)."""
        descriptions = check_descriptions(descriptions)
        emb = torch.as_tensor(encoder.encode(list(descriptions)), dtype=torch.float32)
        return self(emb)

    @property
    def scale(self) -> float:
        return self.config.alpha / self.config.rank

    # --- using a generated adapter ------------------------------------------------------------------
    def peft_model(self, backbone) -> nn.Module:
        """The PEFT LoRA wrapper the `lora` baseline builds for this backbone (built once, cached)."""
        self.check_backbone(backbone)
        cache = backbone.__dict__.setdefault("_t2l_peft", {})
        key = (self.config.rank, float(self.config.alpha), tuple(self.config.target_modules))
        if key not in cache:
            from ..baselines.lora import LoraMethod, LoraOptions

            lora = LoraMethod(backbone, LoraOptions(r=self.config.rank, alpha=self.config.alpha,
                                                    target_modules=list(self.config.target_modules), seed=0))
            cache[key] = lora.model
        return cache[key]

    def method_for(self, backbone, generated: dict[str, torch.Tensor], description: str = "") -> "GeneratedLoraMethod":
        """A Method running the PEFT LoRA model with `generated` as its weights, gradients kept."""
        return GeneratedLoraMethod(backbone, self.peft_model(backbone), generated, hyper=self, description=description)

    def export(self, backbone, generated: dict[str, torch.Tensor], path: str | Path, description: str = "",
               **metadata) -> Path:
        """A standard PEFT adapter folder, written atomically (temporary folder + rename)."""
        from ..baselines.lora import replace_folder
        from ..atomic import atomic_save_file, atomic_write_text

        peft = self.peft_model(backbone)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        peft.peft_config[ADAPTER_NAME].save_pretrained(str(tmp))
        # PEFT's file format: the adapter name is not part of the key.
        tensors = {k.replace(f".{ADAPTER_NAME}.", "."): v.detach().float() for k, v in generated.items()}
        atomic_save_file(tensors, tmp / "adapter_model.safetensors", metadata={"format": "pt"})
        meta = {"method": "t2l", "model_id": str(backbone.model_id), "family": backbone.family,
                "description": description, "hypernetwork": metadata.pop("hypernetwork", ""),
                "hyper_config": {k: v for k, v in asdict(self.config).items() if k != "targets"},
                "metadata": metadata}
        atomic_write_text(tmp / "artstudio.json", json.dumps(meta, indent=2, default=str) + "\n")
        replace_folder(tmp, path)
        return path

    # --- training losses ------------------------------------------------------------------------------
    @staticmethod
    def reconstruction_loss(generated: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean L1 distance of the generated A and B to a trained LoRA's (the paper's objective)."""
        missing = sorted(set(generated) - set(target))
        if missing:
            raise ConfigError(f"the target LoRA lacks {missing[0]} (and {len(missing) - 1} more); was it trained "
                              "on the same model with r=8 on q_proj/v_proj?")
        losses = [(g - target[k].to(g.device, g.dtype)).abs().mean() for k, g in generated.items()]
        return torch.stack(losses).mean()

    # --- persistence ------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path, **extra) -> Path:
        from ..atomic import atomic_save_file, atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_save_file(dict(self.state_dict()), folder / WEIGHTS_FILE)
        cfg = {"kind": KIND, "config": asdict(self.config), "parameters": self.num_parameters(), **extra}
        atomic_write_text(folder / CONFIG_FILE, json.dumps(cfg, indent=2, default=str) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "T2LHypernetwork":
        from safetensors.torch import load_file

        folder = Path(folder)
        cfg_file = folder / CONFIG_FILE
        if not cfg_file.exists():
            raise ConfigError(f"{folder} is not a Text-to-LoRA hypernetwork folder (no {CONFIG_FILE}); "
                              "train one with `artstudio hyper train --kind t2l`")
        meta = json.loads(cfg_file.read_text(encoding="utf-8"))
        if meta.get("kind") != KIND:
            raise ConfigError(f"{folder} holds a {meta.get('kind')!r} hypernetwork, not a Text-to-LoRA one")
        net = cls(T2LConfig(**meta["config"]))
        net.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        return net.eval()


# --- the Method a generated adapter becomes ------------------------------------------------------------

class _Functional(nn.Module):
    """Calls a module with some of its parameters replaced (kept out of any registry)."""

    def __init__(self, module: nn.Module, params: dict[str, torch.Tensor]) -> None:
        super().__init__()
        object.__setattr__(self, "module", module)
        object.__setattr__(self, "params", params)

    def forward(self, *args, **kwargs):
        return torch.func.functional_call(self.module, self.params, args, kwargs, strict=False)


class GeneratedLoraMethod(Method):
    """A generated adapter as a Method: the PEFT model with the generated A/B, gradients to the hypernetwork."""

    name = "t2l-generated"
    placement = None  # text-only prompts, as the lora baseline

    def __init__(self, backbone, peft_model: nn.Module, generated: dict[str, torch.Tensor], *,
                 hyper: T2LHypernetwork | None = None, description: str = "") -> None:
        super().__init__(backbone, {})
        own = dict(peft_model.named_parameters())
        unknown = [k for k in generated if k not in own]
        if unknown:
            raise ConfigError(f"generated tensor {unknown[0]} is not a LoRA parameter of this model's PEFT wrapper")
        params = {k: v.to(own[k].device, own[k].dtype) for k, v in generated.items()}
        object.__setattr__(self, "_runner", _Functional(peft_model, params))
        object.__setattr__(self, "_hyper", hyper)
        self.generated = params
        self.description = description

    @property
    def model(self) -> nn.Module:
        return self._runner

    def forward(self, **inputs):
        return self.backbone.forward(**inputs, model=self._runner)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return []  # the hypernetwork trains, not the adapter

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.generated.items()}

    def export(self, path: str | Path, **metadata) -> Path:
        if self._hyper is None:
            raise ConfigError("this generated adapter has no hypernetwork to export it with")
        return self._hyper.export(self.backbone, self.generated, path, description=self.description, **metadata)


# --- one batch, a different generated adapter per row ------------------------------------------------

@contextmanager
def batched_lora(backbone, hyper: T2LHypernetwork, generated: Sequence[dict[str, torch.Tensor]],
                 rows: Sequence[int]) -> Iterator[None]:
    """Within the scope, the backbone's forward adds `scale * B_i A_i x` with row i's adapter.

    `rows[i]` is the index in `generated` of row i's task. Same arithmetic as PEFT's LoRA layer (no
    dropout), one forward pass for a batch that mixes tasks; the hooks are removed on exit.
    """
    hyper.check_backbone(backbone)
    modules = dict(backbone.model.named_modules())
    sel = torch.as_tensor(list(rows), dtype=torch.long)
    scale = hyper.scale
    handles = []
    try:
        for t in hyper.targets:
            a = torch.stack([g[t.a_name] for g in generated])[sel]  # (B, r, in)
            b = torch.stack([g[t.b_name] for g in generated])[sel]  # (B, out, r)

            def hook(mod, args, output, a=a, b=b):
                x = args[0]
                if x.shape[0] != a.shape[0]:
                    raise ConfigError(f"batched_lora: batch of {x.shape[0]} rows but {a.shape[0]} row assignments")
                delta = torch.matmul(torch.matmul(x.to(a.dtype), a.transpose(1, 2)), b.transpose(1, 2))
                return output + (scale * delta).to(output.dtype)

            handles.append(modules[t.path].register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()
