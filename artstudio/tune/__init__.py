"""`artstudio tune`: hyper-parameter search for every method, with the language-guided sampler `lgbo`.

    artstudio tune --method lora --data add-json --trials 30 --sampler lgbo --proxy 0.1 \
        --storage sqlite:///runs/tune/study.db --out runs/tune

An Optuna study (SQLite: resumable after a kill, readable by `optuna-dashboard`, shareable by several
processes). Trials train on a proxy subset of the training rows and are scored on a validation split
carved from the training rows; the test split is only read at the end, when the best configuration
and the default one are retrained on all training rows under the same budget. See docs/tune.md.

Python: `artstudio.tune(method="lora", data="add-json", trials=30)` runs a study (`help(artstudio.tune.tune)`
has the arguments); `artstudio.tune.TuneConfig` holds its options.

This module stays import-light: `artstudio.methods` imports `artstudio.tune.space` for the
`search_space` declarations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..options import DEVICE_HELP, DTYPE_HELP

SAMPLERS = ("lgbo", "gp", "tpe", "random")


@dataclass
class TuneConfig:
    """Search a method's hyper-parameters on a task; retrain the best and the default, score both on test."""

    method: str = field(default="art", metadata={"help": "the method to tune (its search space comes with it)"})
    data: str = field(default="", metadata={"help": "train.jsonl, a task folder, or a built-in task name (`artstudio tasks list`)"})
    eval_data: str | None = field(default=None, metadata={"help": "test rows for the final scoring (default: the task folder's test split)"})
    model: str | None = field(default=None, metadata={"help": "Hugging Face id or local folder (default: the shipped studio-tiny)"})
    trials: int = field(default=30, metadata={"help": "completed trials the study should hold (a resumed study runs only the missing ones)"})
    sampler: Literal["lgbo", "gp", "tpe", "random"] = field(default="lgbo", metadata={"help": "lgbo (language-guided deep-kernel GP), gp (plain GP on numeric features), tpe or random (Optuna's)"})
    space: str | None = field(default=None, metadata={"help": "YAML/JSON file that narrows or extends the method's search space"})
    proxy: float = field(default=0.1, metadata={"help": "fraction of the (non-validation) training rows each trial trains on"})
    val_fraction: float = field(default=0.1, metadata={"help": "fraction of the training rows carved out to score trials (never the test split)"})
    val_size: int | None = field(default=None, metadata={"help": "score trials on at most N validation rows (default: all)"})
    steps: int = field(default=300, metadata={"help": "steps of the final runs (best and default)"})
    trial_steps: int | None = field(default=None, metadata={"help": "steps of each trial (default: steps x proxy, at least 50: the same epochs on the proxy rows; shorter trials rank configurations poorly, docs/tune.md)"})
    budget: Literal["steps", "examples"] = field(default="steps", metadata={"help": "what stays equal between configurations: steps, or examples seen (steps scale with 16 / batch size)"})
    objective: Literal["sft", "grpo"] = field(default="sft", metadata={"help": "training objective of every run"})
    storage: str | None = field(default=None, metadata={"help": "Optuna storage URL, e.g. sqlite:///runs/tune/study.db (default: OUT/study.db)"})
    study_name: str | None = field(default=None, metadata={"help": "study name inside the storage (default: method-task-sampler-seed)"})
    out: str = field(default="runs/tune", metadata={"help": "folder for best.json, trials.csv, plots, report.md and the runs"})
    seed: int = field(default=0, metadata={"help": "seed of the sampler, the validation split, the proxy subset and every run"})
    startup: int = field(default=5, metadata={"help": "random trials before the lgbo/gp model takes over"})
    candidates: int = field(default=128, metadata={"help": "random candidate configurations scored by expected improvement per lgbo/gp suggestion"})
    encoder: str | None = field(default=None, metadata={"help": "local model folder whose language model embeds the configuration texts (default: the backbone's own)"})
    rerank: int = field(default=3, metadata={"help": "after the trials, the best K configurations and the default train again for the full --steps on the non-validation rows and are scored on validation; the best of them is the study's pick (0: the best proxy trial). Short proxy trials favoured high ART learning rates that lost to the default over full runs (docs/tune.md)"})
    final: bool = field(default=True, metadata={"help": "after the trials, retrain the best and the default configuration on all training rows and score both on test"})
    timeout: float | None = field(default=None, metadata={"help": "stop starting new trials after this many seconds"})
    heartbeat: int = field(default=30, metadata={"help": "seconds between a running trial's heartbeats; a trial silent for 3 heartbeats (a killed process) is failed and retried"})
    device: str | None = field(default=None, metadata={"help": DEVICE_HELP})
    dtype: str | None = field(default=None, metadata={"help": DTYPE_HELP})


def tune(config: TuneConfig | dict | None = None, *, progress=None, should_stop=None, **overrides):
    """Run (or resume) a study; returns a `TuneResult` (best params, best value, final scores, paths).

    Args:
        config: a `TuneConfig`, or a dict of its fields; every field is an `artstudio tune` option, listed with its
            help by `artstudio tune --help` (method, data, trials, sampler, proxy, storage, out, ...).
        progress: called after every trial with a dict (`phase`, `done`, `total`, `best`, `eta_seconds`, and
            `error` for a failed trial).
        should_stop: asked after every trial: True ends the study there (best.json and the report are still
            written from the finished trials; the final runs are skipped).
        **overrides: TuneConfig fields (`trials=30`, `sampler="tpe"`).

    `artstudio.tune(...)` calls this function. Bad options raise `ConfigError` before any model loads."""
    from .study import run_study

    return run_study(config, progress=progress, should_stop=should_stop, **overrides)


__all__ = ["SAMPLERS", "TuneConfig", "tune"]


class _CallableModule(type(__import__("sys"))):
    """`artstudio.tune(...)` is `artstudio.tune.tune(...)`: the study is a function of the package, as `train` and
    `compare` are, though `artstudio.tune` is this module."""

    def __call__(self, config: TuneConfig | None = None, **kwargs):
        return tune(config, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule

