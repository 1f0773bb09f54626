"""What a comparison runs: `CompareConfig`, and the parsing of its comma-separated lists and lr grid."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Literal

from ..backbone import DEFAULT_MODEL, check_device, check_dtype
from ..errors import ConfigError
from ..methods import get_method, method_config, method_names
from ..objectives import get_objective
from ..options import DEVICE_HELP, DTYPE_HELP, check_seed, from_dict
from ..training import check_range
from ..words import count

log = logging.getLogger("artstudio.compare")

DEFAULT_METHODS = "art,lora,vera,adalink,soft-prompt,base,random-canvas"
# `--lr-grid auto`: each method's default learning rate times these factors.
GRID_FACTORS = (1 / 3, 1.0, 3.0)


@dataclass
class CompareConfig:
    """Compare ART with other ways of adapting the same frozen model: methods × tasks × seeds."""

    methods: str = field(default=DEFAULT_METHODS, metadata={"help": "comma-separated methods (`artstudio train --help` lists them)"})
    tasks: str = field(default="heldout", metadata={"help": "'heldout', built-in task names, or task folders (train.jsonl + test.jsonl, optional card.json), comma-separated"})
    seeds: str = field(default="0,1,2", metadata={"help": "comma-separated seeds; each seed sets data order, initialisation and sampling"})
    steps: int = field(default=100, metadata={"help": "optimisation steps per cell, the same for every method"})
    batch_size: int = field(default=16, metadata={"help": "examples per step, the same for every method"})
    lr_grid: str | None = field(default=None, metadata={"help": "learning-rate search on a validation split of the training rows: 'auto' (each method's default x 1/3, 1, 3) or 'art=0.02,0.05;lora=1e-3,2e-3' (default: no search, each method's default lr)"})
    ema: float | None = field(default=None, metadata={"help": "decay of the moving average of the trained parameters for every method, e.g. 0.95 (default: off, the last step's parameters)"})
    grid_seeds: int = field(default=1, metadata={"help": "with --lr-grid: run the grid on the first N of --seeds, each with its own validation split, and pick the rate whose validation accuracy averaged over them is best (default 1; each seed more costs one grid more and makes the pick less noisy)"})
    val_fraction: float = field(default=0.1, metadata={"help": "fraction of the training rows held out to pick the learning rate (with --lr-grid)"})
    objective: Literal["sft", "grpo"] = field(default="sft", metadata={"help": "sft or grpo, the same for every method"})
    grpo: dict = field(default_factory=dict, metadata={"help": "GRPO options (group_size, reward, ...), the same for every method"})
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Hugging Face id or local folder (default: the shipped studio-tiny)"})
    out: str = field(default="runs/compare", metadata={"help": "results folder; a re-run with the same folder skips finished cells"})
    method_options: dict = field(default_factory=dict, metadata={"help": "per-method options as JSON, e.g. '{\"art\": {\"canvas_size\": 96}, \"lora\": {\"r\": 4}}'"})
    eval_size: int | None = field(default=None, metadata={"help": "score only the first N test rows of each task (default: all)"})
    device: str | None = field(default=None, metadata={"help": DEVICE_HELP})
    dtype: str | None = field(default=None, metadata={"help": DTYPE_HELP})
    overwrite: bool = field(default=False, metadata={"help": "replace the table of a comparison with another recipe (steps, batch, rates, evaluation, options) in --out (its finished cells stay under cells/ and are reused where they match; default: refuse)"})
    workers: int = field(default=1, metadata={"help": "cells run in this many processes at once, sharing the results folder (CPU threads split between them; on GPUs, worker k uses GPU k mod the GPUs)"})


def parse_list(value: str | list | tuple | None) -> list[str]:
    """'a, b,c' or ['a', 'b'] -> ['a', 'b', 'c'] (duplicates dropped, order kept)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return list(dict.fromkeys(s.strip() for s in items if s.strip()))


def parse_seeds(value: str | int | list | tuple) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; a seed given twice is refused (it would run once, so a typo for another seed)."""
    if isinstance(value, int):
        items = [value]
    elif isinstance(value, str):
        items = [s.strip() for s in value.split(",")]
        if any(items) and not all(items):  # '0,,1' or '0,': a seed left out by a typo, or a stray comma
            raise ConfigError(f"--seeds {value!r} has an empty item; give integers separated by single commas, "
                              "like '0,1,2'")
        items = [s for s in items if s]
    else:
        items = [str(v).strip() for v in value]
    try:
        seeds = [int(s) for s in items]
    except ValueError:
        raise ConfigError(f"seeds must be integers separated by commas, like '0,1,2'; got {value!r}") from None
    if not seeds:
        raise ConfigError("no seeds given; pass --seeds like '0,1,2'")
    for seed in seeds:
        check_seed(seed, "--seeds: seed")
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ConfigError(f"seed {twice[0]} is given twice in {value!r}: a seed gives the same run each time, "
                          f"so give distinct seeds, like '0,1,2'")
    return seeds


def parse_lr_grid(spec: str | dict | None, methods: list[str], objective: str = "sft") -> dict[str, list[float]]:
    """Learning rates to try per method; a method that is absent uses its default lr.

    'auto' gives every trained method its default times GRID_FACTORS; 'art=0.02,0.05;lora=1e-3'
    names the values. A single value is simply used (no search).
    """
    if spec is None or spec == "" or spec == {}:
        return {}
    trained = [m for m in methods if get_method(m).trains]
    if isinstance(spec, str) and spec.strip().lower() in ("auto", "default", "builtin", "true"):
        return {m: [float(f"{get_method(m).lr_for(objective) * f:.3g}") for f in GRID_FACTORS] for m in trained}
    if isinstance(spec, dict):
        pairs = [(k, v if isinstance(v, (list, tuple)) else [v]) for k, v in spec.items()]
    else:
        pairs = []
        for part in (p.strip() for p in spec.split(";") if p.strip()):
            name, sep, values = part.partition("=")
            if not sep:
                raise ConfigError(f"lr grid entry {part!r} has no '='; expected 'method=lr1,lr2;method=...' or 'auto'")
            if any(name.strip() == seen for seen, _ in pairs):
                raise ConfigError(f"--lr-grid names method {name.strip()!r} twice; give each method once, with all "
                                  f"its values comma-separated, e.g. '{name.strip()}=0.02,0.05'")
            pairs.append((name.strip(), values.split(",")))
    grid: dict[str, list[float]] = {}
    for name, values in pairs:
        if name not in methods:
            raise ConfigError(f"lr grid names method {name!r}, which is not in --methods ({', '.join(methods)})")
        if not get_method(name).trains:
            raise ConfigError(f"method {name!r} trains nothing, so it has no learning rate to search")
        try:
            lrs = [float(v) for v in values if str(v).strip()]
        except ValueError:
            raise ConfigError(f"lr grid for {name!r} has a value that is not a number: {values!r}") from None
        if not lrs or any(not math.isfinite(v) or v <= 0 for v in lrs):
            raise ConfigError(f"lr grid for {name!r} needs positive numbers, got {values!r}")
        twice = sorted({v for v in lrs if lrs.count(v) > 1})
        if twice:  # 'art=0.02,0.02' ran one value and no search, without a word
            raise ConfigError(f"lr grid for {name!r} gives {twice[0]:g} twice; give distinct values, e.g. "
                              f"'{name}=0.02,0.05'")
        grid[name] = lrs
    return grid



def _coerce(config: CompareConfig | None, overrides: dict) -> CompareConfig:
    """CompareConfig from a config and/or keyword arguments (lists accepted where strings are)."""
    if config is not None and not isinstance(config, (CompareConfig, dict)):
        raise ConfigError(f"compare() takes a CompareConfig or a dict of its fields, not a {type(config).__name__}: "
                          "artstudio.compare(methods=\"art,lora\", tasks=\"add-json\", seeds=0)")
    if isinstance(config, dict):  # read as keywords are
        config, overrides = None, dict(config) | overrides
    base = asdict(config) if config is not None else {}
    from_dict(CompareConfig, overrides, what="compare")  # unknown keys and bad choices fail here, by name
    values = base | overrides
    for key in ("methods", "tasks", "seeds"):
        if isinstance(values.get(key), (list, tuple, int)):
            values[key] = ",".join(str(v) for v in (values[key] if not isinstance(values[key], int) else [values[key]]))
    if isinstance(values.get("lr_grid"), dict):
        values["lr_grid"] = ";".join(f"{k}={','.join(map(str, v if isinstance(v, (list, tuple)) else [v]))}"
                                     for k, v in values["lr_grid"].items())
    return CompareConfig(**values)


def check_config(config: CompareConfig, methods: list[str]) -> None:
    """Refuse a comparison's options by name before anything runs (the harness, and the app before it queues one)."""
    available = method_names()
    missing = [m for m in methods if m not in available]
    if missing:
        raise ConfigError(f"unknown or unavailable method(s) {', '.join(missing)}; available: {', '.join(available)}")
    if not methods:
        raise ConfigError("no methods given; pass --methods like 'art,lora,base'")
    get_objective(config.objective)  # an unknown name fails here, listing the known ones
    for option, value in (("--steps", config.steps), ("--batch-size", config.batch_size)):
        if value < 1:
            raise ConfigError(f"{option} is {value}; expected at least 1")
    check_range("ema", config.ema)
    if config.workers < 1:
        raise ConfigError(f"--workers is {config.workers}; expected 1 (one process) or more")
    check_device(config.device)
    check_dtype(config.dtype)
    per = config.method_options or {}
    if not isinstance(per, dict) or not all(isinstance(v, dict) for v in per.values()):
        raise ConfigError("--method-options maps each method to an object of its options, e.g. "
                          "'{\"art\": {\"canvas_size\": 96}}'")
    unknown = sorted(set(per) - set(available))
    if unknown:
        raise ConfigError(f"--method-options names unknown method(s) {', '.join(unknown)}; expected a JSON object keyed "
                          f"by method name ({', '.join(available)})")
    if config.eval_size is not None and config.eval_size < 1:
        raise ConfigError(f"--eval-size is {config.eval_size}; expected at least 1 (or leave it out: every test row)")
    grid = parse_lr_grid(config.lr_grid, methods, config.objective)  # a bad grid is refused before a cell runs
    searches = any(len(v) > 1 for v in grid.values())
    if searches and not 0 < config.val_fraction < 1:
        raise ConfigError(f"--val-fraction is {config.val_fraction}; the lr grid picks each rate on that share of "
                          "the training rows, so it must be above 0 and below 1 (default 0.1)")
    if not isinstance(config.grid_seeds, int) or isinstance(config.grid_seeds, bool) or config.grid_seeds < 1:
        raise ConfigError(f"--grid-seeds is {config.grid_seeds!r}; expected a whole number of seeds, at least 1")
    n_seeds = len(parse_seeds(config.seeds))
    if config.grid_seeds > n_seeds:
        raise ConfigError(f"--grid-seeds is {config.grid_seeds} but --seeds names {count(n_seeds, 'seed')}; the grid runs "
                          f"on the first N of --seeds, so give at most {n_seeds} (or more seeds)")
    if config.grid_seeds > 1 and not searches:
        raise ConfigError(f"--grid-seeds {config.grid_seeds} averages the lr grid's validation scores over seeds, but no "
                          "grid runs: add --lr-grid (e.g. 'auto')")
    # Options for a method that does not run are still checked (a typo in a shared options file shows), and
    # named; ART's canvas size also sizes the other canvas-shaped methods (a fair control), so it is used alone.
    canvas_shaped = any(get_method(m).takes_canvas_size() for m in methods if m in available)
    for name, options in per.items():
        if name in available and isinstance(options, dict):
            method_config(name, options)
    unused = [m for m in per if m in available and m not in methods and not (m == "art" and canvas_shaped)]
    if unused:
        log.warning("--method-options for %s: not used, --methods runs %s", ", ".join(unused), ", ".join(methods))
    if config.grpo and config.objective != "grpo":
        raise ConfigError("GRPO options were given but the objective is sft; add --objective grpo or drop them")
    if config.objective == "grpo":
        get_objective("grpo").build(config.grpo)  # unknown options and bad values fail before any cell runs
