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
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Iterator, Sequence

import torch
from torch import nn

from ..atomic import atomic_save_file, atomic_write_text, read_json_object
from ..errors import ArtStudioError, ConfigError
from ..methods import Method
from .base import HyperConfig, Hypernetwork, ResidualBlock, backbone_target, register_hyper
from .encoder import BACKBONE_ENCODER

KIND = "t2l"
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


# --- configuration ---------------------------------------------------------------------------------

@dataclass
class T2LConfig(HyperConfig):
    """Text-to-LoRA options (the base's preset / hidden / blocks / dropout, plus the adapter's shape)."""

    preset: str = field(default="M", metadata={"help": "S | M | L: mixer width and depth (sizes printed by `preset_sizes`)"})
    rank: int = field(default=8, metadata={"help": "LoRA rank of the generated adapters (paper: 8)"})
    alpha: float = field(default=16.0, metadata={"help": "LoRA alpha (scale alpha/rank), as the lora baseline's default"})
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"],
                                      metadata={"help": "projections of the language model to adapt (paper: q and v)"})
    task_dropout: float = field(default=0.1, metadata={"help": "dropout on the projected task embedding while training"})

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ConfigError(f"T2L rank must be >= 1, got {self.rank}")
        if isinstance(self.target_modules, str):
            self.target_modules = [self.target_modules]


# --- the hypernetwork ----------------------------------------------------------------------------------

@register_hyper
class T2LHypernetwork(Hypernetwork):
    """Task embeddings (N, dim) -> N generated adapters, each {PEFT parameter name: A or B tensor}."""

    kind = KIND
    config_class = T2LConfig
    PRESETS: ClassVar[dict[str, dict[str, int]]] = PRESETS

    def __init__(self, config: T2LConfig, embed_dim: int, target: dict, encoder_name: str = BACKBONE_ENCODER) -> None:
        super().__init__(config, embed_dim, target, encoder_name)
        if not target.get("lora_targets"):
            raise ConfigError("this T2L hypernetwork records no LoRA targets; build it with T2LHypernetwork.build(backbone, encoder)")
        self.targets = [Target(p, int(_LAYER_RE.search(f".{p}.").group(1)), p.rsplit(".", 1)[-1], i, o)
                        for p, i, o in target["lora_targets"]]
        h, r = self.width, config.rank
        layers = sorted({t.layer for t in self.targets})
        self.module_types = sorted({t.module for t in self.targets})
        self._layer_index = {l: i for i, l in enumerate(layers)}
        self.task_proj = nn.Linear(self.embed_dim, h)
        self.task_dropout = nn.Dropout(config.task_dropout)
        self.layer_emb = nn.Embedding(len(layers), h)
        self.module_emb = nn.Embedding(len(self.module_types), h)
        nn.init.normal_(self.layer_emb.weight, std=1.0)
        nn.init.normal_(self.module_emb.weight, std=1.0)
        self.mix = nn.Linear(3 * h, h)
        self.blocks = nn.Sequential(*[ResidualBlock(h, config.dropout) for _ in range(self.depth)])
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
    def target_of(cls, backbone, config) -> dict:
        """The base's model identity plus every q/v projection's path and shape, read from the modules."""
        return backbone_target(backbone) | {"lora_targets": _signature(find_targets(backbone, config.target_modules)),
                                            "rank": config.rank, "alpha": config.alpha}

    @classmethod
    def preset_sizes(cls, backbone, embed_dim: int) -> dict[str, int]:
        """Parameter count of each preset for this backbone (printed by the docs and the tests)."""
        return {p: cls(T2LConfig(preset=p), embed_dim, cls.target_of(backbone, T2LConfig(preset=p))).num_parameters()
                for p in cls.PRESETS}

    # --- the check that this hypernetwork fits a model ----------------------------------------------
    def check_backbone(self, backbone) -> None:
        super().check_backbone(backbone)
        have = _signature(find_targets(backbone, self.config.target_modules))
        want = [list(t) for t in self.target["lora_targets"]]
        if have != want:
            raise ConfigError(
                f"this t2l hypernetwork was made for another model: {self.target.get('model_id')} has {len(want)} "
                f"q/v projections ({want[0][1]}->{want[0][2]} first), {backbone.model_id} has {len(have)}. "
                "Train a hypernetwork for this model with `artstudio hyper train --kind t2l`.")

    # --- generation -------------------------------------------------------------------------------
    def features(self, task_embeddings: torch.Tensor) -> torch.Tensor:
        """(N, dim) -> (N, K, hidden): one mixed vector per task and adapted projection."""
        e = self.task_dropout(self.task_proj(self.normalise(torch.as_tensor(task_embeddings))))
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
               **extra) -> Path:
        """A standard PEFT adapter folder, written atomically (temporary folder + rename)."""
        from ..baselines.lora import EXPORT_META_FILE, check_export_target, replace_folder

        path = check_export_target(path)
        peft = self.peft_model(backbone)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        peft.peft_config[ADAPTER_NAME].save_pretrained(str(tmp))
        # PEFT's file format: the adapter name is not part of the key.
        tensors = {k.replace(f".{ADAPTER_NAME}.", "."): v.detach().float() for k, v in generated.items()}
        atomic_save_file(tensors, tmp / "adapter_model.safetensors", metadata={"format": "pt"})
        meta = {"method": "t2l", "model_id": str(backbone.model_id), "family": backbone.family,
                "description": description, "hypernetwork": self.describe() | {"config": asdict(self.config)},
                "metadata": extra}
        atomic_write_text(tmp / EXPORT_META_FILE, json.dumps(meta, indent=2, default=str) + "\n")
        replace_folder(tmp, path)
        return path

    # --- training targets and losses ------------------------------------------------------------------
    def reconstruction_loss(self, generated: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean L1 distance of the generated A and B to a trained LoRA's (the paper's objective)."""
        missing = sorted(set(generated) - set(target))
        if missing:
            raise ConfigError(f"the target LoRA lacks {missing[0]} (and {len(missing) - 1} more); was it trained "
                              f"on the same model with r={self.config.rank} on {'/'.join(self.config.target_modules)}?")
        losses = [(g - target[k].to(g.device, g.dtype)).abs().mean() for k, g in generated.items()]
        return torch.stack(losses).mean()

    def train_target(self, backbone, task, cache_dir: str | Path, *, steps: int, seed: int = 0) -> dict[str, torch.Tensor]:
        """A per-task LoRA trained by artstudio's own `train(method="lora")`, cached in `cache_dir/<task>`."""
        from safetensors.torch import load_file

        from ..methods import WEIGHTS_FILE as METHOD_WEIGHTS
        from ..training import train

        folder = Path(cache_dir) / f"lora-{task.name}-r{self.config.rank}-s{steps}-seed{seed}"
        weights = folder / "final" / METHOD_WEIGHTS
        if not weights.is_file():
            train(data=str(task.folder), out=str(folder), method="lora", steps=steps, seed=seed, backbone=backbone,
                  method_options={"r": self.config.rank, "alpha": self.config.alpha,
                                  "target_modules": list(self.config.target_modules)},
                  checkpoint_every=0, progress=False)
        state = load_file(str(weights))
        names = {n for t in self.targets for n in (t.a_name, t.b_name)}
        if set(state) != names:
            raise ConfigError(f"cached LoRA {weights} does not fit this hypernetwork's targets; delete {folder} to retrain it")
        return state


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


# --- measuring a trained T2L (python -m artstudio.hyper.t2l --help) --------------------------------------

def measure(hyper_folder: str | Path, *, eval_size: int = 200, task_cache: str | Path = "runs/hyper-tasks",
            out: str | Path | None = None, backbone=None, progress: bool = True,
            conditions: Sequence[str] = ("card", "shuffled", "para1", "para2", "para3", "para4")) -> dict:
    """Zero-shot accuracy on the held-out tasks from their cards' descriptions (`card`), the same with
    the descriptions shuffled across tasks (`shuffled`: task i gets task i+1's), with two paraphrases
    written in other words (`para1`..`para4`, from paraphrases.json), and the time to generate one adapter.
    `out`: a JSON file; one that holds this hypernetwork's measurement keeps its other conditions (a run of
    `conditions=("para3",)` adds to it)."""
    import time

    from ..backbone import load_backbone
    from .encoder import TaskEncoder
    from .generate import resolve_hyper_folder, source_name
    from .training import description_conditions, evaluate_descriptions

    hyper_folder = resolve_hyper_folder(hyper_folder)  # "t2l" is the shipped one, as `hyper generate t2l` reads it
    meta = Hypernetwork.read_meta(hyper_folder)
    backbone = backbone or load_backbone(meta["target"]["model_id"], device="cpu")
    hyper = T2LHypernetwork.from_pretrained(hyper_folder, backbone)
    encoder = TaskEncoder.load(hyper.encoder_name, backbone)
    variants = description_conditions()
    unknown = sorted(set(conditions) - set(variants))
    if unknown:
        raise ConfigError(f"unknown condition(s) {', '.join(unknown)}; choose from {', '.join(variants)}")
    result: dict = {"hypernetwork": source_name(hyper_folder), "parameters": hyper.num_parameters(), "eval_size": eval_size}
    for label in conditions:
        descriptions = variants[label]
        result[label] = evaluate_descriptions(hyper, backbone, encoder, descriptions, eval_size=eval_size,
                                              task_cache=task_cache, progress=progress)
    times = []
    for description in variants["card"].values():
        t0 = time.perf_counter()
        hyper.generate(encoder, [description])
        times.append(time.perf_counter() - t0)
    result["generate_seconds"] = {"mean": sum(times) / len(times), "max": max(times)}
    if out:
        earlier = read_json_object(out)
        same = earlier.get("hypernetwork") == result["hypernetwork"] and earlier.get("eval_size") == eval_size
        atomic_write_text(Path(out), json.dumps((earlier if same else {}) | result, indent=2) + "\n")
    return result



def _main(argv: list[str] | None = None) -> None:
    import argparse
    import logging

    p = argparse.ArgumentParser(prog="python -m artstudio.hyper.t2l", description="Measure a trained Text-to-LoRA "
                                "hypernetwork zero-shot on the held-out tasks, or print the preset sizes for a model.")
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="held-out accuracy from card and shuffled descriptions, generation time")
    m.add_argument("hyper", help="hypernetwork folder (a run's final/)")
    m.add_argument("--eval-size", type=int, default=200, help="test rows per held-out task")
    m.add_argument("--task-cache", default="runs/hyper-tasks")
    m.add_argument("--out", help="write the result as JSON here")
    m.add_argument("--conditions", default="card,shuffled,para1,para2,para3,para4",
                   help="card, shuffled, para1..para4 (artstudio/hyper/paraphrases.json)")
    s = sub.add_parser("sizes", help="parameter count of each preset for a model")
    s.add_argument("--model", default=None, help="model folder or id (default: the shipped studio-tiny)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        _run(args)
    except ArtStudioError as err:  # a folder that is not a hypernetwork: one line, as the artstudio command says it
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def _run(args) -> None:
    if args.cmd == "measure":
        conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
        r = measure(args.hyper, eval_size=args.eval_size, task_cache=args.task_cache, out=args.out, conditions=conditions)
        for label in conditions:
            print(f"{label:9s} mean {100 * r[label]['mean']:.1f} %  " + "  ".join(
                f"{k} {100 * v:.0f}" for k, v in r[label]["per_task"].items()))
        print(f"generation: {1000 * r['generate_seconds']['mean']:.1f} ms mean, {1000 * r['generate_seconds']['max']:.1f} ms max")
    else:
        from ..backbone import DEFAULT_MODEL, load_backbone
        from .encoder import TaskEncoder

        backbone = load_backbone(args.model or DEFAULT_MODEL, device="cpu")
        dim = TaskEncoder.from_backbone(backbone).dim
        for preset, n in T2LHypernetwork.preset_sizes(backbone, dim).items():
            print(f"{preset}: {n:,} parameters ({n / 1e6:.2f} M) for {backbone.model_id} ({backbone.num_parameters / 1e6:.2f} M)")


if __name__ == "__main__":
    _main()
