"""The `artstudio train …` command line equivalent to a TrainConfig (the Train tab's "command" panel).

Built from the same option tables the command line is generated from (`artstudio.cli`), so every
flag exists and parses back (`artstudio.cli.parse_config`) to the same TrainConfig. Options left at
their defaults are left out; `--model`, `--data` and `--out` are always written. Paths are written
relative to the current folder when they are inside it, else as `RUNS/NAME` (the app's folder names).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
from dataclasses import fields
from pathlib import Path
from typing import Any

ALWAYS = ("model", "data", "out")


def _specs():
    from artstudio.cli import _grpo_option_group, dataclass_options, method_option_specs
    from artstudio.training import TrainConfig

    parser = argparse.ArgumentParser(add_help=False)
    specs = dataclass_options(parser, TrainConfig, skip=("method_options", "grpo"))
    return specs, method_option_specs(parser), _grpo_option_group(parser)


def _words(flag: str, value: Any) -> list[str]:
    if isinstance(value, bool):
        return [flag] if value else [f"--no-{flag[2:]}"]
    if isinstance(value, (list, tuple)):
        return [flag, *(json.dumps(v) if isinstance(v, (dict, list)) else str(v) for v in value)]
    if isinstance(value, dict):
        return [flag, json.dumps(value, separators=(",", ":"))]
    return [flag, str(value)]


def shown_path(path: str, folders: dict[str, str]) -> str:
    """`path` relative to the current folder when inside it, else with an app folder by its name."""
    p = Path(path)
    if not p.is_absolute():
        return path
    try:
        return os.path.relpath(p, Path.cwd()) if p.resolve().is_relative_to(Path.cwd().resolve()) else _by_name(p, folders)
    except ValueError:
        return _by_name(p, folders)


def _by_name(p: Path, folders: dict[str, str]) -> str:
    for root, name in folders.items():
        if p.is_relative_to(root):
            return str(Path(name) / p.relative_to(root))
    return str(p)


def train_argv(config, folders: dict[str, str] | None = None) -> list[str]:
    """The argv (after `artstudio`) that `parse_config` turns back into `config`."""
    from artstudio.options import default_of
    from artstudio.training import TrainConfig

    folders = folders or {}
    specs, method_specs, grpo_specs = _specs()
    defaults = {f.name: default_of(f) for f in fields(TrainConfig)}
    argv = ["train"]
    for spec in specs:
        value = getattr(config, spec.name)
        if value is None or (spec.name not in ALWAYS and value == defaults.get(spec.name)):
            continue
        if spec.name in ("out", "data", "eval_data") and isinstance(value, str):
            value = shown_path(value, folders)
        if spec.name == "model" and isinstance(value, str) and Path(value).is_absolute():
            value = shown_path(value, folders)
        argv += _words(spec.flag, value)
    method = config.method
    for name, value in sorted((config.method_options or {}).items()):
        spec = next((s for s in method_specs if s.name == name and method in s.applies_to and s.owner == method), None) \
            or next((s for s in method_specs if s.name == name and method in s.applies_to), None)
        if spec is None:
            raise ValueError(f"method option {name!r} of {method} has no command-line flag")
        argv += _words(spec.flag, value)
    for name, value in sorted((config.grpo or {}).items()):
        spec = next(s for s in grpo_specs if s.name == name)
        argv += _words(spec.flag, value)
    return argv


def train_command(config, folders: dict[str, str] | None = None) -> str:
    """`artstudio train …`, ready to paste into a shell."""
    argv = train_argv(config, folders)
    return "artstudio " + " ".join(shlex.quote(a) for a in argv)
