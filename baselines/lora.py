"""LoRA baseline (Hu et al., 2021, "LoRA: Low-Rank Adaptation of Large Language Models"), through PEFT.

Every targeted projection becomes `h = W0 x + (alpha / r) B A x` (rsLoRA: `alpha / sqrt(r)`), with A
random and B zero, so step 0 is exactly the frozen model. Only the language model is adapted (the
vision tower is left alone, as in the ART paper's comparison), on the q and v projections by default
(the original paper's choice, also Text-to-LoRA's).

This module also holds what the two PEFT baselines (LoRA, VeRA) share:

- **The backbone is never modified.** PEFT injects its layers into the model it wraps, in place. The
  wrapper is therefore built around a *shared-weight copy* of the model: a new module tree whose
  parameters and buffers are the backbone's own tensors (no memory is duplicated), so injecting
  adapters into the copy leaves `backbone.model` exactly as loaded, and any number of methods (LoRA,
  VeRA, ART, the base model) can use one `Backbone` in one process, in any order.
- **Targets are named per projection and restricted to the language model** (`language_model.` in the
  module path), for every Qwen family; Qwen3.5's linear-attention layers have no `q_proj`/`v_proj`
  and simply carry no adapter.
- **Export is a standard PEFT adapter folder** (`adapter_config.json` + `adapter_model.safetensors`)
  that `PeftModel.from_pretrained(base_model, folder)` and serving engines load, plus
  `artstudio.json` with the run's metadata.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from artstudio.errors import ConfigError
from artstudio.methods import EXPORT_META_FILE, Method, atomic_write_text, register
from artstudio.options import option_label
from artstudio.tune.space import Choice, Float, Int

LANGUAGE_MODEL_MARKER = "language_model"


# --- helpers shared by the PEFT baselines -----------------------------------------------------------

def shared_weight_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A new module tree over the same parameter and buffer tensors (no weight is copied).

    `deepcopy` returns whatever its memo maps an object to, so pre-seeding the memo with every
    tensor makes the copy reuse them; modules, configs and small attributes are copied as usual.
    """
    memo = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    return copy.deepcopy(model, memo)


def target_regex(projections: list[str] | tuple[str, ...]) -> str:
    """PEFT `target_modules` regex: the named projections of the language model, nothing else.

    PEFT full-matches the regex against each module's path, e.g.
    `model.language_model.layers.3.self_attn.q_proj` (every Qwen VL family in transformers 5).
    """
    names = "|".join(re.escape(p) for p in projections)
    return rf"(?:.*\.)?{LANGUAGE_MODEL_MARKER}\.(?:.*\.)?(?:{names})"


def targeted_linears(model: torch.nn.Module, projections: list[str] | tuple[str, ...]) -> list[tuple[str, torch.nn.Linear]]:
    """(path, module) of every `nn.Linear` the regex selects; an empty selection is a user error."""
    if not projections:
        raise ConfigError("target_modules is empty; name at least one projection, e.g. q_proj v_proj")
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    # Each name must match: a misspelt one beside good ones ("q_proj,v_prj") was dropped without a word.
    unmatched = [p for p in projections if not any(re.fullmatch(target_regex([p]), n) for n, _ in linears)]
    if unmatched:
        available = sorted({n.rsplit(".", 1)[-1] for n, _ in linears if f"{LANGUAGE_MODEL_MARKER}." in n})
        raise ConfigError(f"target_modules {unmatched} match no linear layer of the language model; "
                          f"this model has: {', '.join(available)}")
    pattern = re.compile(target_regex(projections))
    return [(n, m) for n, m in linears if pattern.fullmatch(n)]


@contextmanager
def quiet_peft() -> Iterator[None]:
    """No grad, and without the FutureWarning PEFT triggers by asking transformers for a deprecated attribute
    (`is_gradient_checkpointing`): noise for users. Where a PEFT model is built or loaded."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """A scope in which the global RNG is seeded and restored afterwards (PEFT initialises from it)."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0 if seed is None else seed)
        yield


class AdapterMethod(Method):
    """A PEFT adapter folder (a lora, vera or t2l export) on a shared-weight copy of the backbone, frozen:
    what `eval --adapter` and `infer --adapter` answer with."""

    name = "adapter"  # not registered: nothing to train, built only from a folder (`load_adapter`)
    placement = None  # text-only prompts, as the adapter was trained
    own_backbone = True
    trains = False

    def __init__(self, backbone, folder: str | Path):
        from peft import PeftModel
        from safetensors import SafetensorError

        super().__init__(backbone)
        self.folder = Path(folder)
        with quiet_peft(), warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            try:
                model = PeftModel.from_pretrained(shared_weight_copy(backbone.model), str(self.folder)).eval()
            except (ValueError, RuntimeError, KeyError, OSError, SafetensorError) as err:
                # shapes or modules of another model; a truncated or damaged weights file
                raise ConfigError(f"--adapter {folder}: PEFT cannot load it onto {backbone.model_id} "
                                  f"({str(err).strip().splitlines()[0][:300]})") from None
        missing = [w for w in said if "missing adapter keys" in str(w.message)]
        if missing:  # the config names modules its weights do not hold: it answered as the base model, silently
            raise ConfigError(f"--adapter {folder}: its adapter_config.json does not match its weights (PEFT: "
                              f"{str(missing[0].message).strip().splitlines()[0][:200]}); give the folder "
                              "`artstudio export` wrote, unedited")
        object.__setattr__(self, "_peft", model)  # out of the registry, as PeftMethod's wrapper

    @property
    def model(self) -> torch.nn.Module:
        return self._peft


def load_adapter(folder: str | Path, backbone=None, *, model: str | None = None, allow_mismatch: bool = False,
                 device: str | None = None, dtype: str | None = None) -> AdapterMethod:
    """The adapter in `folder` on `backbone`, or on the model it records (its artstudio.json, else PEFT's
    base_model_name_or_path); `model` names another, which must match unless `allow_mismatch`."""
    from artstudio.backbone import load_backbone

    folder = Path(folder).expanduser()
    if not (folder / "adapter_config.json").is_file():
        if (folder / "method.json").is_file() and (folder.parent / "config.json").is_file() \
                and folder.name == "final":  # a run's own trained weights, not an export
            raise ConfigError(f"--adapter {folder}: the trained weights inside the run {folder.parent}, not an "
                              f"adapter folder; `artstudio export {folder.parent} -o {folder.parent}-adapter/` writes "
                              f"one (LoRA, VeRA), then --adapter {folder.parent}-adapter")
        if (folder / "method.json").is_file():  # a soft prompt's or AdaLink's export: not a PEFT adapter
            raise ConfigError(f"--adapter {folder}: an export of a method that is not a PEFT adapter (a soft prompt or "
                              "AdaLink); --adapter takes LoRA, VeRA and T2L folders. Load it in Python with "
                              "`Method.load(folder, backbone)`")
        what = "does not exist" if not folder.exists() else "is a file, not a PEFT adapter folder" if folder.is_file() \
            else "is not a PEFT adapter folder (no adapter_config.json)"
        raise ConfigError(f"--adapter {folder} {what}; give the folder `artstudio export` or "
                          "`artstudio hyper generate t2l` wrote")
    recorded = None
    for name, key in ((EXPORT_META_FILE, "model_id"), ("adapter_config.json", "base_model_name_or_path")):
        try:
            recorded = recorded or json.loads((folder / name).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError, AttributeError):
            pass
    if backbone is None:
        if not (model or recorded):
            raise ConfigError(f"--adapter {folder} does not say which model it is for; name it with --model")
        backbone = load_backbone(model or recorded, device=device, dtype=dtype)
    if recorded and str(recorded) != str(backbone.model_id) and not allow_mismatch:
        raise ConfigError(f"--adapter {folder} was made for {recorded}, not {backbone.model_id}; leave out --model, "
                          "or pass --allow-model-mismatch to try it anyway")
    return AdapterMethod(backbone, folder)


def write_export_meta(method: Method, folder: Path, metadata: dict[str, Any]) -> None:
    """`artstudio.json` next to an exported artefact: which model, which method, which options."""
    meta = {"method": method.name, "config": asdict(method.config), "model_id": str(method.backbone.model_id),
            "family": method.backbone.family, "trainable_params": method.num_trainable(),
            "placement": method.placement, "slot_tokens": method.slot_tokens, "metadata": metadata}
    atomic_write_text(folder / EXPORT_META_FILE, json.dumps(meta, indent=2, default=str) + "\n")


def check_export_target(path: str | Path, run_dir: str | Path | None = None) -> Path:
    """`path` resolved, refused where an export would replace what is not an earlier export.

    `--overwrite` replaces an adapter folder written before (it holds `artstudio.json`), never the run
    folder, a folder above it, or a folder of other files: those would be deleted with it.
    """
    target = Path(path).expanduser().resolve()
    if run_dir is not None:
        run = Path(run_dir).expanduser().resolve()
        if target == run or target in run.parents:
            raise ConfigError(f"-o {path} is the run folder {run_dir} or a folder that holds it; an export there would "
                              f"replace the run: choose a new folder, e.g. -o {Path(run_dir) / 'adapter'}")
    if target.suffix.lower() in (".png", ".jpg", ".jpeg", ".json", ".safetensors", ".bin", ".pt") and not target.is_dir():
        raise ConfigError(f"{path} names a {target.suffix} file; an adapter export is a folder: choose a folder name, "
                          f"e.g. {Path(path).with_suffix('')}")
    if target.is_file():  # --overwrite replaced the file (README.md) with the adapter's folder
        raise ConfigError(f"-o {path} is a file; an adapter export is a folder: choose a new folder name")
    if target.is_dir() and any(target.iterdir()) and not (target / EXPORT_META_FILE).is_file():
        held = sorted(p.name for p in target.iterdir())
        raise ConfigError(f"{path} holds files that are not an exported adapter ({', '.join(held[:3])}"
                          f"{', …' if len(held) > 3 else ''}); an export replaces only an earlier export: choose "
                          "another folder")
    return target


def replace_folder(tmp: Path, path: Path) -> None:
    """Move a fully written `tmp` folder to `path`, so a killed export never leaves half a folder."""
    if path.exists():
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(path)


class PeftMethod(Method):
    """A method whose `model` is a PEFT wrapper around a shared-weight copy of the backbone.

    The wrapper is kept out of the `nn.Module` registry (`object.__setattr__`), so `method.parameters()`
    does not list the backbone's frozen weights and `method.to(...)` cannot move or cast them.
    """

    placement = None  # text-only prompts: the adapter, not a picture, carries the task
    own_backbone = True  # the app trains PEFT methods on a backbone of their own
    starts_frozen = True  # the update's second factor starts at zero
    dropout_module_name: str = ""

    def __init__(self, backbone, config=None):
        super().__init__(backbone, config)
        with quiet_peft(), seeded(getattr(self.config, "seed", None)):
            peft_model = self._wrap(shared_weight_copy(backbone.model))
        peft_model.peft_config["default"].base_model_name_or_path = str(backbone.model_id)
        object.__setattr__(self, "_peft", peft_model)
        # Dropout runs only in passes that build a graph (training); decoding stays deterministic.
        self._dropouts = [m for n, m in peft_model.named_modules()
                          if n.rsplit(".", 1)[-1] == "default" and f".{self.dropout_module_name}." in f".{n}"
                          and isinstance(m, torch.nn.Dropout)]

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        raise NotImplementedError

    @property
    def model(self) -> torch.nn.Module:
        return self._peft

    def forward(self, **inputs):
        active = self.training and torch.is_grad_enabled()
        for d in self._dropouts:
            d.train(active)
        return self.backbone.forward(**inputs, model=self._peft)

    @classmethod
    def check_option(cls, backbone, name: str, value) -> None:
        if name == "target_modules":
            targeted_linears(backbone.model, [value] if isinstance(value, str) else list(value))

    def targets(self) -> list[tuple[str, torch.nn.Linear]]:
        """The frozen linear layers of the backbone this adapter wraps."""
        return targeted_linears(self.backbone.model, list(self.config.target_modules))

    # Parameters live in the wrapper, not in this module's registry.
    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self._peft.parameters() if p.requires_grad]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in self._peft.named_parameters() if p.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        own = dict(self._peft.named_parameters()) | dict(self._peft.named_buffers())
        missing = set(self.trainable_state()) - set(state)
        unknown = set(state) - set(own)
        if missing or unknown:
            raise ConfigError(f"saved {self.name} state does not fit this model: missing {sorted(missing)[:3]}, "
                              f"unexpected {sorted(unknown)[:3]}; was it trained on another model or with other options?")
        with torch.no_grad():
            for k, v in state.items():
                if own[k].shape != v.shape:
                    raise ConfigError(f"saved {self.name} tensor {k} has shape {tuple(v.shape)}, "
                                      f"this model needs {tuple(own[k].shape)}")
                own[k].copy_(v.to(own[k].device, own[k].dtype))

    def export(self, path: str | Path, **metadata) -> Path:
        """A PEFT adapter folder: `PeftModel.from_pretrained(base_model, path)` loads it back."""
        path = check_export_target(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        # False: the vocabulary is never resized here, and PEFT's "auto" looks the base model's
        # config.json up on the Hub to find out (a warning offline; the shipped model is not there).
        self._peft.save_pretrained(str(tmp), save_embedding_layers=False)
        write_export_meta(self, tmp, metadata)
        replace_folder(tmp, path)
        return path

    def describe(self) -> dict:
        return super().describe() | {"target_layers": len(self.targets())}


# --- LoRA -------------------------------------------------------------------------------------------

@dataclass
class LoraOptions:
    """LoRA (Hu et al. 2021): h = W0 x + (alpha/r) B A x on the language model's projections.

    Paper and PEFT defaults: rank 8, alpha 16 (scale 2), q and v projections, no dropout; B starts
    at zero so step 0 is the frozen model. rsLoRA (Kalajdzievski 2023) scales by alpha/sqrt(r),
    which keeps high ranks stable.
    """

    r: int = field(default=8, metadata={"help": "rank of A and B"})
    alpha: float = field(default=16.0, metadata={"help": "scaling numerator: the update is multiplied by alpha/r"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter's input while training"})
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"],
                                      metadata={"help": "projections of the language model to adapt (the vision tower is never adapted)"})
    use_rslora: bool = field(default=False, metadata={"help": "rank-stabilised scaling alpha/sqrt(r)"})
    seed: int | None = field(default=None, metadata={"help": "seed of A's random initialisation (default: the run's --seed)"})

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ConfigError(f"{option_label('LoRA', 'r', '--lora-')} is {self.r}; the rank must be 1 or more")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{option_label('LoRA', 'dropout', '--lora-')} is {self.dropout}; expected a probability in [0, 1)")
        if not self.alpha > 0:  # a negative alpha flips the update's sign and zero trains nothing; PEFT takes both
            raise ConfigError(f"{option_label('LoRA', 'alpha', '--lora-')} is {self.alpha}; expected a positive scale (the update is multiplied by "
                              "alpha/r)")
        if isinstance(self.target_modules, str):
            self.target_modules = [self.target_modules]


@register
class LoraMethod(PeftMethod):
    """LoRA adapters on the frozen language model; prompts carry no canvas."""

    name = "lora"
    config_class = LoraOptions
    default_lr = 2e-3  # tuned on studio-tiny's held-out tasks
    dropout_module_name = "lora_dropout"
    # What `artstudio tune` searches (artstudio/tune/space.py); the sentences are read by the lgbo sampler.
    search_space = {
        "r": Int(2, 32, log=True, help="rank of the low-rank update; a higher rank adds capacity and "
                 "trainable parameters, and with a fixed alpha ratio the update's scale stays the same"),
        "alpha_ratio": Float(0.5, 4.0, log=True, option="alpha", times="r",
                             help="alpha divided by the rank; it multiplies the update, so it acts like a second "
                                  "learning rate: a high ratio with a high learning rate can diverge"),
        "lr": Float(1e-4, 1e-2, log=True, help="peak AdamW learning rate of A and B; interacts with the alpha "
                    "ratio (their product sets the effective step) and with the batch size"),
        "dropout": Float(0.0, 0.3, help="dropout on the adapter input; regularises small datasets, slows fitting"),
        "target_modules": Choice(("q_proj,v_proj", "q_proj,k_proj,v_proj,o_proj",
                                  "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"),
                                 help="which projections get adapters; more modules add capacity and parameters, "
                                      "the MLP projections help tasks that need new computation"),
        "batch_size": Choice((8, 16, 32), help="examples per step; larger batches give less noisy gradients, "
                             "cost more per step and tolerate a larger learning rate"),
    }

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        from peft import LoraConfig, get_peft_model

        cfg: LoraOptions = self.config
        targeted_linears(model, cfg.target_modules)  # a clear error before PEFT's
        peft_cfg = LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, use_rslora=cfg.use_rslora,
                              target_modules=target_regex(cfg.target_modules), bias="none")
        return get_peft_model(model, peft_cfg)
