"""Training checkpoints and the learning-rate schedule, shared by every training loop (methods and
hypernetworks).

A checkpoint is ONE atomic safetensors file: the model's tensors (`model.*`), the optimiser's tensors
(`opt.<param>.<name>`), and, in its metadata, the step and the optimiser's scalars. A process killed
between two files could otherwise leave step k's weights beside step k-1's step count, and the resume
would replay a step. `checkpoint.json` repeats the metadata for people and tools.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

import torch
from safetensors.torch import load_file

from .atomic import atomic_save_file, atomic_write_text
from .errors import ConfigError

log = logging.getLogger("artstudio")

CHECKPOINT_FILE = "state.safetensors"
CHECKPOINT_KEY = "artstudio_checkpoint"


def save_checkpoint(folder: Path, state: dict[str, torch.Tensor], opt: torch.optim.Optimizer, step: int,
                    **extra: Any) -> None:
    """Write `state` (the trained tensors), the optimiser and `step` (+ `extra` metadata) atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in state.items()}
    opt_state = opt.state_dict()
    scalars: dict[str, Any] = {"param_groups": opt_state["param_groups"], "state": {}}
    for pid, st in opt_state["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"opt.{pid}.{name}"] = value
            else:
                scalars["state"].setdefault(str(pid), {})[name] = float(value) if torch.is_tensor(value) else value
    meta = {"step": step, "optimizer": scalars, **extra}
    atomic_save_file(tensors, folder / CHECKPOINT_FILE, metadata={CHECKPOINT_KEY: json.dumps(meta)})
    atomic_write_text(folder / "checkpoint.json", json.dumps(meta) + "\n")


def has_checkpoint(folder: Path) -> bool:
    return (folder / CHECKPOINT_FILE).is_file()


def checkpoint_step(folder: Path) -> int:
    """The step of the checkpoint in `folder` (0: none), from its metadata, without loading tensors."""
    meta = Path(folder) / "checkpoint.json"
    return int(json.loads(meta.read_text(encoding="utf-8")).get("step", 0)) if meta.is_file() else 0


def option_differences(now: dict, saved: dict, may_change: Collection[str],
                       special: Mapping[str, Callable[[Any, Any], list[str] | None]] = {}) -> list[str]:
    """'--NAME NOW (the run has WAS)' for each option of `now` whose value differs from the run's `saved`
    config (both as JSON). Options in `may_change`, or that the run did not record, are skipped;
    `special[name](now, was)` judges an option itself (a list of differences; None: compare as usual)."""
    differ = []
    for name, value in now.items():
        if name in may_change or name not in saved:
            continue
        judged = special[name](value, saved[name]) if name in special else None
        if judged is not None:
            differ += judged
        elif value != saved[name]:
            differ.append(f"--{name.replace('_', '-')} {shown(value)} (the run has {shown(saved[name])})")
    return differ


def key_differences(label: Callable[[str], str], now: Any, was: Any, defaults: Mapping[str, Any] = {}) -> list[str] | None:
    """'LABEL(key) NOW (the run has WAS)' for each key of two option dicts whose values differ (None when
    either is not a dict: compare them as a whole). A key one side leaves out has its value in `defaults`, so an
    option typed as its default is the run's own ("rank 8 (the run has its default)" was refused)."""
    if not (isinstance(now, dict) and isinstance(was, dict)):
        return None
    defaults = json.loads(json.dumps(defaults, default=str))  # as the run's config.json holds them (lists, not tuples)

    def value(options: dict, key: str) -> Any:
        return options[key] if key in options else defaults.get(key)

    def said(options: dict, key: str) -> str:
        return f"its default, {shown(defaults[key])}" if key not in options and key in defaults else shown(options.get(key))

    return [f"{label(key)} {said(now, key)} (the run has {said(was, key)})"
            for key in sorted(set(now) | set(was)) if value(now, key) != value(was, key)]


def shown(value: Any) -> str:
    """An option's value as a resume message shows it."""
    if value is None:
        return "its default"
    if isinstance(value, float):  # a rate scaled by the objective read 0.005000000000000001
        return repr(float(f"{value:.12g}"))
    return json.dumps(value) if isinstance(value, (dict, list)) else repr(value)


# What each training command records in config.json that the other does not, and the command.
_RUN_KINDS = {"train": ("method", "artstudio train"), "hyper": ("kind", "artstudio hyper train")}


def check_run_kind(saved: dict, out: str | Path, kind: str) -> None:
    """Refuse to resume the other command's run: `hyper train --resume` on a `train` run said "hyper training
    option eval_size is None", `train --resume` on a hypernetwork run "no training data"."""
    (key, command), (other_key, other) = _RUN_KINDS[kind], next(v for k, v in _RUN_KINDS.items() if k != kind)
    if other_key in saved and key not in saved:
        raise ConfigError(f"{out} holds a run of `{other}`, not of `{command}`; continue it with `{other} --resume "
                          f"--out {out}`, or choose another --out")


def read_run_config(file: Path) -> dict:
    """A run's config.json, for --resume: a file that is not a JSON object says so, naming what to do."""
    why = ""
    try:
        saved = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        saved, why = None, f" ({e})"
    if not isinstance(saved, dict):
        why = why or f" (a JSON {type(saved).__name__}, not an object)"
        raise ConfigError(f"{file} is not a readable run config{why}; --resume cannot tell which "
                          "run this is. Start a new run with another --out, or --overwrite to replace it")
    return saved


def check_resume_steps(out: Path, steps: int, started_with: Any, what: str = "the run",
                       use_as_is: str = "Export or evaluate it as it is", kept: str = "", say: bool = True) -> None:
    """The part of `--resume` that every training loop shares, once its options are known to match: refuse
    --steps that end before the checkpoint in `out/checkpoint` and a run whose result.json says it
    finished its steps; warn when --steps differs from the `started_with` steps (the schedule stretches;
    `kept` adds what the run keeps all the same; `say` False: another process of the run warns)."""
    at = checkpoint_step(out / "checkpoint")
    if at > steps:
        raise ConfigError(f"{what} in {out} is already at step {at}; --steps {steps} would end before it "
                          f"(resume with --steps {at} or more)")
    result = out / "result.json"
    if result.is_file():
        try:
            done = json.loads(result.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            done = {}  # a result being rewritten, or damaged: the checkpoint decides
        finished = done.get("steps") if isinstance(done, dict) else None
        if isinstance(finished, int) and not done.get("stopped") and finished >= steps:
            raise ConfigError(f"{what} in {out} already finished its {steps} steps; nothing to resume. "
                              f"{use_as_is}, or resume with more --steps to train longer")
    if started_with != steps and say:
        log.warning("--steps %d differs from the run's %s: the learning-rate schedule now spans %d steps%s",
                    steps, started_with, steps, kept)


def load_checkpoint(folder: Path, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], int]:
    """Restore the optimiser; return the trained tensors (for the caller to load) and the step."""
    from safetensors import safe_open

    with safe_open(str(folder / CHECKPOINT_FILE), framework="pt") as f:
        meta = json.loads((f.metadata() or {})[CHECKPOINT_KEY])
    tensors = load_file(str(folder / CHECKPOINT_FILE))
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for pid, st in meta["optimizer"]["state"].items():
        for name, value in st.items():
            state.setdefault(int(pid), {})[name] = torch.tensor(value) if name == "step" else value
    opt.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    return model, int(meta["step"])


def read_history(out: Path, upto: int | None = None) -> list[dict]:
    """The records of a run's `metrics.jsonl` (those up to step `upto`); [] when it has none."""
    file = Path(out) / "metrics.jsonl"
    if not file.exists():
        return []
    history = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return history if upto is None else [h for h in history if h.get("step", 0) <= upto]


def resume(out: Path, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor] | None, int, list[dict]]:
    """The trained tensors, step and metric history to continue the run in `out` from its checkpoint
    (the optimiser restored); (None, 0, []) when it has no checkpoint."""
    folder = Path(out) / "checkpoint"
    if not has_checkpoint(folder):
        return None, 0, []
    state, step = load_checkpoint(folder, opt)
    return state, step, read_history(out, upto=step)


def lr_lambda(steps: int, warmup: float, schedule: str = "cosine") -> Callable[[int], float]:
    """Linear warm-up over `warmup` of the steps, then constant or cosine down to 10 % of the peak."""
    warm = max(1, int(warmup * steps))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if schedule == "constant":
            return 1.0
        t = (step - warm) / max(1, steps - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f
