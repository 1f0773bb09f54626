"""The harness: plan the cells (lr-grid runs on a validation split, then test runs), run each through the
one training loop on a shared backbone, and write the table as cells finish (a re-run resumes)."""

from __future__ import annotations

import gc
import hashlib
import io
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..atomic import atomic_write_text, check_only_own, check_output_kind, json_default, output_folder
from ..backbone import load_backbone, model_name, named_model
from ..data import REPEATED_PROMPTS, Example, load_jsonl, split_validation, write_jsonl
from ..errors import ArtStudioError, ConfigError
from ..logfilters import rewording
from ..methods import build_method, get_method, method_config, method_names
from ..objectives.rewards import portable as portable_reward, reward_files
from ..objectives.sft import compute_loss
from ..options import field_defaults
from ..progress import progress_bar
from ..training import TrainConfig, train
from ..words import count
from .config import CompareConfig, check_config, _coerce, parse_list, parse_lr_grid, parse_seeds
from .guard import BackboneGuard
from .memory import PeakMemory
from .plots import PLOTS
from .results import ResultsTable, _mean
from .tasks import TaskSpec, check_descriptions, check_tasks, prepare_tasks

log = logging.getLogger("artstudio.compare")


@dataclass
class Cell:
    """One training run: a method on a task with a seed; `phase` 'grid' scores the validation split."""

    method: str
    task: TaskSpec
    seed: int | None  # None: a seed-free method, one run for every seed
    lr: float
    lr_source: str  # default | given | grid
    options: dict
    steps: int
    phase: str = "test"
    data: Path | None = None  # grid: the folder with the training rows minus validation
    eval_file: Path | None = None
    val_digest: str = ""

    def key(self, config: CompareConfig, located: bool = False) -> str:
        """The cell's folder name: a hash of what decides its result. The shipped model counts by its name, not
        its folder. `located`: the key as it was before 2026-12-07, with the folder, so the same comparison from
        another checkout or virtual environment, or with the model named 'studio-tiny' rather than left out,
        trained every cell again."""
        spec = {"phase": self.phase, "method": self.method, "options": resolved_options(self.method, self.options), "task": self.task.digest,
                "val": self.val_digest, "seed": self.seed, "steps": self.steps, "batch_size": config.batch_size,
                "lr": self.lr, "objective": config.objective, "model": config.model if located else model_name(config.model)}
        if config.objective == "grpo":  # added only for GRPO, so SFT cells keep their keys across versions
            spec["grpo"] = portable_grpo(config.grpo)
            # A reward file edited since is another reward: its cells ran with the old code (they were reused).
            files = reward_files(config.grpo.get("reward"))
            if files:
                spec["reward_code"] = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
        if config.ema:  # added only when the average is on, so other cells keep their keys across versions
            spec["ema"] = config.ema
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=json_default).encode()).hexdigest()[:16]


class _Progress:
    """Runs done / total with a time-left estimate from measured step and evaluation costs."""

    def __init__(self, total: int, callback: Callable[[dict], None] | None, step_s: float, eval_s: float,
                 silent: bool = False):
        self.total, self.done, self.callback = total, 0, callback
        self.prefix = ""  # a worker's name, before each cell's
        self.step_s: dict[str, list[float]] = {}
        self.eval_s: list[float] = []
        self.prior = (step_s, eval_s)
        # silent: the pass that collects what workers ran (their bar has already counted every run)
        self.bar = progress_bar(total=total, desc="compare", unit="run", dynamic_ncols=True, mininterval=1.0,
                                file=io.StringIO() if silent else None,
                                bar_format="{desc} {n_fmt}/{total_fmt} runs |{bar}| {elapsed} elapsed{postfix}")

    def cost(self, cell: Cell, eval_n: int) -> float:
        steps = self.step_s.get(cell.method) or [s for v in self.step_s.values() for s in v]
        step = _mean(steps) if steps else self.prior[0]
        per_eval = _mean(self.eval_s) if self.eval_s else self.prior[1]
        return cell.steps * step + eval_n * per_eval

    def emit(self, event: dict) -> None:
        if self.callback is not None:
            self.callback(event | {"done": self.done, "total": self.total})

    def measured(self, cell: Cell, record: dict) -> None:
        """A cell that ran here: its step and scoring speeds price the cells still to run."""
        if record.get("seconds_per_step"):
            self.step_s.setdefault(cell.method, []).append(record["seconds_per_step"])
        if record.get("latency_ms") is not None:
            self.eval_s.append(record["latency_ms"] / 1000)

    def finished(self, cell: Cell, record: dict | None, remaining: float, skipped: bool = False) -> None:
        self.done += 1
        self.bar.set_postfix_str(f"≈ {_duration(remaining)} left", refresh=False)
        self.bar.update(1)
        self.emit({"phase": "skip" if skipped else cell.phase, "method": cell.method, "task": cell.task.name,
                   "seed": cell.seed, "record": record, "eta_seconds": remaining})

    def close(self) -> None:
        self.bar.close()


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "under a minute"  # not "0 min 00 s" for a tiny plan
    h, rem = divmod(seconds, 3600)
    return f"{h} h {rem // 60:02d} min" if h else f"{rem // 60} min {rem % 60:02d} s"


def check_same_comparison(record: Path, config: CompareConfig) -> None:
    """Refuse a folder whose earlier comparison ran with other options unless --overwrite: its table and plots
    would be rewritten (a second `compare` with the default --out replaced the first one's results silently,
    where `tune` refuses another study). With --overwrite, say what changed; finished cells that match are
    reused and the others stay under cells/."""
    try:
        before = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(before, dict):
        return
    now = named_model(json.loads(json.dumps(asdict(config), default=json_default)))
    # An option newer than the folder's record ran at its default there (--grid-seeds 3 on a folder from
    # before it existed rewrote the table's picks without a word).
    before = field_defaults(CompareConfig) | named_model(before)
    for record_ in (now, before):  # the same reward file named from another folder, or by its absolute path
        if isinstance(record_.get("grpo"), dict):
            record_["grpo"] = portable_grpo(record_["grpo"])
    keys = [k for k in now if k not in ("out", "workers", "overwrite", "device") and k in before and before[k] != now[k]]
    def said(value, none: str) -> str:  # an option left out is said so, not printed as Python's None
        return none if value is None else repr(value)

    changed = [f"--{k.replace('_', '-')} {said(now[k], 'left out')} (it has {said(before[k], 'none')})" for k in keys]
    # Other seeds, methods or tasks grow (or narrow) the same comparison: its cells mean what they meant. Another
    # recipe (steps, batch, rates, evaluation, model, options) makes every cell another experiment.
    recipe = [c for k, c in zip(keys, changed) if k not in ("seeds", "methods", "tasks")]
    if recipe and not config.overwrite:
        raise ConfigError(f"{record.parent} holds a comparison with another recipe: {'; '.join(recipe)}. Pass the same "
                          "options to resume it (other --seeds, --methods or --tasks may be added), --overwrite to "
                          "replace its table (finished cells that match are reused), or choose another --out "
                          "(overwrite=True, out=... in Python)")
    # Adding seeds, methods or tasks grows the table; leaving some out would rewrite it without them.
    left_out = [f"--{k} {', '.join(gone)}" for k in ("methods", "tasks", "seeds") if k in keys
                and (gone := [v for v in _listed(k, before[k]) if v not in _listed(k, now[k])])]
    if left_out and not config.overwrite:
        raise ConfigError(f"{record.parent} holds results for what this run leaves out ({'; '.join(left_out)}): its table "
                          "and plots would be rewritten without them. Add them back (finished cells are reused, nothing "
                          "runs again), pass --overwrite to rewrite the table for these options (the cells stay under "
                          "cells/), or choose another --out (overwrite=True, out=... in Python)")
    if changed:
        log.warning("%s held a comparison with other options (%s); its table and plots are rewritten for these "
                    "options (finished cells that match are reused; the others stay under cells/)",
                    record.parent, "; ".join(changed))


def portable_grpo(grpo: dict) -> dict:
    """GRPO options with a reward file named by its absolute path (`rewards.portable`)."""
    return {**grpo, "reward": portable_reward(grpo["reward"])} if grpo.get("reward") else dict(grpo)


def _listed(key: str, value: Any) -> list[str]:
    """A recorded --methods, --tasks or --seeds value as the names or seeds it stands for ("heldout": its tasks;
    a task folder: where it is, however it was written: './mine', 'mine', its absolute path)."""
    from ..tasks import resolve_tasks

    if key == "tasks":
        names = resolve_tasks(value) if isinstance(value, str) else parse_list(value)
        return [str(Path(n).expanduser().resolve()) if Path(n).expanduser().is_dir() else n for n in names]
    if key == "seeds":
        try:
            return [str(s) for s in parse_seeds(value)]
        except ConfigError:
            return []
    return parse_list(value)


def _reads_descriptions(method: str) -> bool:
    """Whether `method` generates from the task's description (t2l, t2c, t2c+art: a `description` option)."""
    options = get_method(method).config_class
    return is_dataclass(options) and "description" in {f.name for f in fields(options)}


def _method_options(config: CompareConfig, method: str) -> dict:
    """The user's options for `method`; a canvas-shaped method takes ART's canvas size unless told otherwise.

    (A method's own `seed` option follows the run's seed inside `train`, so seeds vary initialisations.)
    """
    per = config.method_options or {}
    unknown = set(per) - set(method_names())
    if unknown:
        raise ConfigError(f"method_options names unknown method(s) {', '.join(sorted(unknown))}; expected a JSON "
                          f"object keyed by method name ({', '.join(method_names())})")
    if not all(isinstance(v, dict) for v in per.values()):
        raise ConfigError("method_options maps each method to an object of its options, e.g. "
                          "'{\"art\": {\"canvas_size\": 96}}'")
    opts = dict(per.get(method) or {})
    # The same slot size for every canvas-sized method (random canvas, soft prompt): a fair control.
    art_size = (per.get("art") or {}).get("canvas_size")
    if get_method(method).takes_canvas_size() and art_size is not None:
        opts.setdefault("canvas_size", art_size)
    return opts


def resolved_options(method: str, options: dict) -> dict:
    """`options` with the method's defaults filled in: a cell's key changes when a default does."""
    config = method_config(method, options)
    return config if isinstance(config, dict) else asdict(config)


def _train_config(config: CompareConfig, cell: Cell, run_dir: Path) -> TrainConfig:
    return TrainConfig(out=str(run_dir), data=str(cell.data or cell.task.folder), eval_data=str(cell.eval_file or cell.task.eval_file),
                       model=config.model, method=cell.method, method_options=cell.options, objective=config.objective,
                       grpo=dict(config.grpo),  # empty for SFT: check_config refuses GRPO options there
                       steps=cell.steps, batch_size=config.batch_size, lr=cell.lr, ema=config.ema, seed=0 if cell.seed is None else cell.seed,
                       eval_every=0, checkpoint_every=0, snapshot_every=0, device=config.device, dtype=config.dtype,
                       diagnose=cell.phase != "grid",  # a grid run only ranks learning rates
                       overwrite=True)  # a cell without cell.json never finished: its run folder is redone


def _run_cell(config: CompareConfig, cell: Cell, folder: Path, guard: BackboneGuard,
              on_step: Callable[[dict], None], should_stop: Callable[[], bool] | None) -> dict | None:
    """Train and score one cell; return its record, or None when stopped before the end."""
    run_dir = folder / "run"
    backbone = guard.backbone
    meter = PeakMemory(backbone.device)

    def step_done(record: dict) -> None:
        if "loss" in record and record.get("step") == cell.steps:
            meter.stop()  # the peak of training; evaluation afterwards is the same code for every method
        on_step(record)

    try:
        # prepare_tasks said once per task what every test cell's run would say again
        with meter, rewording(["artstudio.data"], drop=[REPEATED_PROMPTS]):
            result = train(_train_config(config, cell, run_dir), backbone=backbone, callbacks=[step_done],
                           should_stop=should_stop, progress=False)
    except BaseException:
        guard.release(None)  # a failed cell may still have patched the backbone: restore it for the caller
        raise
    method = result.method
    m = result.metrics
    losses = [h.get("loss") for h in result.history if "loss" in h]
    # A GRPO loss is a surrogate near 0 that says nothing of progress (-8e-6 in every cell); its plot draws this.
    rewards = [h.get("reward_mean") for h in result.history if "reward_mean" in h]
    del result
    val_loss = None
    if cell.phase == "grid" and not m.get("stopped"):
        val_loss = _validation_loss(method, load_jsonl(cell.eval_file), config.batch_size)
    guard.release(method)
    if m.get("stopped"):
        return None
    tail = [v for v in losses[-max(1, len(losses) // 10):] if v is not None]
    record = {
        "method": cell.method, "task": cell.task.name, "seed": cell.seed, "phase": cell.phase,
        "accuracy": m.get("accuracy"), "eval_n": m.get("eval_n"), "trainable_params": m["trainable_params"],
        "train_seconds": round(m["train_seconds"], 3) if cell.steps else 0.0,
        "seconds_per_step": _round(m.get("seconds_per_step"), 4),
        "peak_memory_mb": round(meter.peak_mb, 1), "memory_delta_mb": round(meter.delta_mb, 1),
        "latency_ms": _round(m.get("latency_ms"), 3), "lr": cell.lr if cell.steps else None,
        "lr_source": cell.lr_source, "steps": cell.steps, "batch_size": config.batch_size, "objective": config.objective, "options": cell.options,
        "final_loss": _round(_mean(tail), 5) if tail else None, "loss_curve": losses, "run_dir": str(run_dir),
    }
    if config.objective == "grpo":
        record["reward_curve"] = rewards
    if val_loss is not None:
        record["val_loss"] = val_loss
    if m.get("diagnosis_kind"):  # stuck | cannot-fit | unfinished (artstudio.diagnosis)
        record |= {"diagnosis": m["diagnosis_kind"], "train_accuracy": m.get("train_accuracy")}
    return record


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _validation_loss(method: Any, rows: list[Example], batch_size: int) -> float:
    """SFT loss of a trained method on the validation rows: breaks ties between equal accuracies."""
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            batch = rows[i:i + batch_size]
            total += float(compute_loss(method, batch)) * len(batch)
    return total / max(len(rows), 1)


def _cell_dir(config: CompareConfig, cell: Cell) -> Path:
    base = Path(config.out) / ("grid" if cell.phase == "grid" else "cells")
    folder = base / cell.key(config)
    if not (folder / "cell.json").exists():
        older = base / cell.key(config, located=True)  # a cell finished under the key's earlier form is kept
        if (older / "cell.json").exists():
            return older
    return folder


def _load_finished(folder: Path) -> dict | None:
    path = folder / "cell.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # a torn file cannot happen (atomic write), but a hand-edited one can: re-run it


def _validation_split(config: CompareConfig, task: TaskSpec, seed: int) -> tuple[Path, Path, str, list[str]]:
    """The training rows split into train/val (written under out/grid/), never touching test.jsonl."""
    rows = load_jsonl(task.folder / "train.jsonl")
    fit, val = split_validation(rows, config.val_fraction, seed)
    folder = Path(config.out) / "grid" / f"{task.name}-{task.digest[:8]}-split{seed}"
    write_jsonl(folder / "train.jsonl", fit)
    write_jsonl(folder / "val.jsonl", val)
    atomic_write_text(folder / "card.json", json.dumps(task.card, indent=2, default=json_default) + "\n")
    digest = hashlib.sha256((folder / "train.jsonl").read_bytes() + (folder / "val.jsonl").read_bytes()).hexdigest()[:16]
    return folder, folder / "val.jsonl", digest, [e.id for e in val]


def _probe(guard: BackboneGuard, task: TaskSpec, config: CompareConfig) -> tuple[float, float]:
    """Seconds per ART training step (of the comparison's objective) and per scored example, measured here
    before starting. A GRPO step samples its groups: timing an SFT step instead put a GRPO comparison at 0.22 s
    a step where it took 0.97."""
    from ..evaluation import evaluate
    from ..objectives import get_objective

    backbone = guard.backbone
    rows = load_jsonl(task.folder / "train.jsonl")
    batch = [rows[i % len(rows)] for i in range(config.batch_size)]
    art = build_method("art", backbone, (config.method_options or {}).get("art") or {})
    objective = get_objective(config.objective).build(config.grpo if config.objective == "grpo" else None,
                                                      metric=task.card.get("metric") or "exact",
                                                      answers=[e.answer for e in rows])
    objective.bind(art)
    times = []
    for step in range(2):  # the first step pays one-time costs
        t = time.perf_counter()
        loss, _ = objective(art, batch, step=step)
        loss.backward()
        times.append(time.perf_counter() - t)
    guard.release(art)
    # Timed on training rows: nothing before the final evaluations reads the test split.
    base = build_method("base", backbone)
    res = evaluate(base, rows[:16], task.card.get("metric") or "exact")
    guard.release(base)
    return times[-1], res.seconds / max(res.n, 1)


class _Comparison:
    """The plan of one comparison (grid runs, test runs) and the loop that works through it."""

    def __init__(self, config: CompareConfig, progress: Callable[[dict], None] | None,
                 should_stop: Callable[[], bool] | None, collecting: bool = False):
        self.config, self.callback, self.should_stop = config, progress, should_stop
        self.collecting = collecting  # after worker processes: this pass collects their runs
        self.methods = parse_list(config.methods)
        self.seeds = parse_seeds(config.seeds)
        check_config(config, self.methods)
        for method in self.methods:  # unknown or ill-typed options, before any folder
            method_config(method, _method_options(config, method))
        self.grid = parse_lr_grid(config.lr_grid, self.methods, config.objective)
        names = check_tasks(config.tasks, config.eval_size)  # a mistyped task leaves no empty --out folder behind
        check_descriptions(names, {m: _method_options(config, m) for m in self.methods if _reads_descriptions(m)})
        check_output_kind(config.out, "compare_config.json")
        check_only_own(config.out, marker="compare_config.json", what="a comparison", writes="results.csv, "
                       "results.md, plots, cells/ and more", own=("cells", "grid", "tasks", "workers", "results.csv",
                                                                  "results.json", "results.md", *PLOTS))
        check_same_comparison(Path(config.out) / "compare_config.json", config)
        self.out = output_folder(config.out)
        self.tasks = prepare_tasks(names, self.out, config.eval_size)
        atomic_write_text(self.out / "compare_config.json",
                          json.dumps(named_model(asdict(config)), indent=2, default=json_default) + "\n")
        self.eval_n = {t.name: len(load_jsonl(t.eval_file)) for t in self.tasks}
        # Each grid seed carves its own validation split (seed s: split s), so averaging over seeds also
        # averages over which rows validate.
        self.grid_seeds = self.seeds[:config.grid_seeds]
        self.splits = {}
        if any(len(v) > 1 for v in self.grid.values()):
            self.splits = {(t.name, seed): _validation_split(config, t, seed) for t in self.tasks for seed in self.grid_seeds}
        self.chosen: dict[str, dict[str, dict]] = {}
        self.on_disk: set[Path] = set()  # cell folders seen finished (`finished_count`): a finished cell stays so
        self.records: dict[str, dict] = {}
        self.stopped = False
        self.share = 1  # processes sharing the cells left (a worker of `--workers N`: N)
        self.started = time.perf_counter()

    # -- the plan ---------------------------------------------------------------------------------
    def grid_cells(self, method: str, task: TaskSpec) -> list[Cell]:
        if len(self.grid.get(method, [])) < 2:
            return []
        options, cells = _method_options(self.config, method), []
        for seed in self.grid_seeds:
            folder, val_file, digest, _ = self.splits[(task.name, seed)]
            cells += [Cell(method, task, seed, lr, "grid", options, self.config.steps, phase="grid", data=folder,
                           eval_file=val_file, val_digest=digest) for lr in self.grid[method]]
        return cells

    def grid_plan(self) -> list[Cell]:
        """Every lr-grid run, task by task."""
        return [c for t in self.tasks for m in self.methods for c in self.grid_cells(m, t)]

    def unfinished(self, cells: list[Cell]) -> list[Cell]:
        """The cells with no record on disk yet."""
        return [c for c in cells if _load_finished(_cell_dir(self.config, c)) is None]

    def finished_count(self) -> int:
        """The runs of this plan on disk: grid runs, and test runs whose rate is known (a test cell waiting on its
        grid is not yet known). A resumed folder's cells of an earlier recipe are not counted: counting every
        cell.json on disk printed "243/156 runs" after --grid-seeds went from 1 to 3."""
        self._run_grids(finished_only=True)
        cells = self.grid_plan() + [c for c in self.test_cells().values()
                                    if c.lr_source != "default" or len(self.grid.get(c.method, [])) <= 1]
        # Polled every second while workers train: each record is read until it is there, then not again.
        folders = {_cell_dir(self.config, c) for c in cells}
        self.on_disk |= {f for f in folders - self.on_disk if _load_finished(f) is not None}
        return len(folders & self.on_disk)

    def test_cells(self) -> dict[str, Cell]:
        """Seed-major order (a complete table per seed comes first); seed-free methods once per task."""
        plan: dict[str, Cell] = {}
        for seed in self.seeds:
            for task in self.tasks:
                for method in self.methods:
                    cell_seed = None if get_method(method).seed_free else seed
                    plan.setdefault(_row_key(method, task.name, cell_seed), self._test_cell(method, task, cell_seed))
        return plan

    def _test_cell(self, method: str, task: TaskSpec, seed: int | None) -> Cell:
        options = _method_options(self.config, method)
        if not get_method(method).trains:
            return Cell(method, task, seed, 0.0, "none", options, 0)
        pick = self.chosen.get(method, {}).get(task.name)
        if pick is not None:
            lr, source = pick["lr"], "grid"
        elif len(self.grid.get(method, [])) == 1:
            lr, source = self.grid[method][0], "given"
        else:
            lr, source = get_method(method).lr_for(self.config.objective), "default"
        return Cell(method, task, seed, lr, source, options, self.config.steps)

    def n_eval(self, cell: Cell) -> int:
        return len(self.splits[(cell.task.name, cell.seed)][3]) if cell.phase == "grid" else self.eval_n[cell.task.name]

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> ResultsTable:
        config = self.config
        self.guard = BackboneGuard(lambda: load_backbone(config.model, dtype=config.dtype, device=config.device))
        grid_plan = self.grid_plan()
        self._run_grids(finished_only=True)  # choices already on disk tell which test cells are done
        test_plan = self.test_cells()
        pending = self.unfinished(grid_plan + list(test_plan.values()))
        prior = _probe(self.guard, self.tasks[0], config) if pending else (0.0, 0.0)
        collecting = self.collecting and not pending  # workers ran every cell and counted them: say nothing
        self.bar = _Progress(len(grid_plan) + len(test_plan), self.callback, *prior, silent=collecting)
        self.pending = {_plan_key(c): c for c in pending}
        self.remaining = self._estimate()
        if not collecting:
            self._announce(len(test_plan), len(grid_plan), len(pending), prior)
        # Long-lived objects (model, libraries) leave the collector's view: each cell's gc.collect() then
        # only scans what cells create (0.5 s -> milliseconds per cell); undone at the end.
        gc.freeze()
        try:
            self._run_grids()
            for key, cell in self.test_cells().items():
                if cell.method in self.grid and len(self.grid[cell.method]) > 1 and cell.lr_source != "grid":
                    continue  # its grid was interrupted: no lr chosen yet
                record = self._run(cell)
                if record is None:
                    break
                self.records[key] = record
                self.table().write(self.out, plots=False)
        finally:
            self.bar.close()
            gc.unfreeze()
        table = self.table()
        table.write(self.out, plots=True)
        return table

    def run_share(self, worker: int, workers: int, claims: Path) -> None:
        """Run cells that no other worker has claimed yet; the parent writes the table.

        Each worker walks the whole plan in the same order and takes the next cell nobody has taken
        (a file created atomically in `claims`, a folder of this launch only), so a worker that drew
        cheap cells takes more of them and none waits idle while another still has a queue. Grid runs
        come first; a test cell needs every grid's choice, so a worker with no grid run left waits for
        the others' to appear on disk before it starts on the test runs.
        """
        config = self.config
        self.guard = BackboneGuard(lambda: load_backbone(config.model, dtype=config.dtype, device=config.device))
        grid_plan = self.grid_plan()
        # The bar counts the plan's cells settled (run here, found finished, or taken by another worker);
        # the time left prices the cells nobody has finished or taken, shared among the workers.
        # (Test cells' lrs are not chosen yet; the cost of a run does not depend on it.)
        plan = grid_plan + list(self.test_cells().values())
        self.bar = _Progress(len(plan), self.callback, 0.0, 0.0)
        self.bar.prefix = f"worker {worker + 1}/{workers} · "  # each line of its log says whose it is
        self.bar.bar.set_description(f"worker {worker + 1}/{workers}")
        self.pending = {_plan_key(c): c for c in self.unfinished(plan)}
        self.remaining, self.share = 0.0, workers  # priced once the first run here has measured the speeds
        gc.freeze()
        try:
            for cell in grid_plan:
                if not self._take(cell, claims):
                    continue
                if self._run(cell) is None:
                    return
            grids = {(m, t.name) for t in self.tasks for m in self.methods if self.grid_cells(m, t)}
            while True:
                self.chosen = {}
                self._run_grids(finished_only=True)
                if len({(m, t) for m, per in self.chosen.items() for t in per}) == len(grids):
                    break
                time.sleep(1.0)
            for cell in self.test_cells().values():
                if self._take(cell, claims) and self._run(cell) is None:
                    return
        finally:
            self.bar.close()
            gc.unfreeze()

    def _take(self, cell: Cell, claims: Path) -> bool:
        """Claim `cell` for this worker; False (and the cell counted as settled) when another has it."""
        try:
            os.close(os.open(claims / cell.key(self.config), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            if self.pending.pop(_plan_key(cell), None) is not None:
                self.remaining = self._estimate()
            self.bar.bar.update(1)
            return False

    def _announce(self, n_test: int, n_grid: int, n_pending: int, prior: tuple[float, float]) -> None:
        trains = [m for m in self.methods if get_method(m).trains]
        once = n_test != len(self.methods) * len(self.tasks) * len(self.seeds)  # "3 × 2 × 3 = 14 runs" did not add up
        probe = "" if not n_pending else (
            (f"{prior[0]:.2f} s per training step at batch {self.config.batch_size}, " if trains else "")
            + f"{1000 * prior[1]:.0f} ms per scored example")  # no step to time when no method trains
        msg = (f"compare: {count(len(self.methods), 'method')} × {count(len(self.tasks), 'task')} × "
               f"{count(len(self.seeds), 'seed')} = {count(n_test, 'run')}"
               + (" (a method that trains nothing runs once per task)" if once else "")
               + (f" + {count(n_grid, 'lr-grid run')}" if n_grid else "")
               + f", {n_pending} to do; estimated {_duration(self.remaining)} here"
               + (f" (probe: {probe})" if n_pending else ""))
        print(msg, file=sys.stderr, flush=True)
        self.bar.emit({"phase": "estimate", "eta_seconds": self.remaining, "message": msg})

    def _run_grids(self, finished_only: bool = False) -> None:
        """Pick each method's lr per task: best validation accuracy, then lowest validation loss, each the
        mean over the grid seeds (`--grid-seeds`).

        With `finished_only`, nothing runs: only grids whose runs are all on disk are decided.
        """
        for task in self.tasks:
            for method in self.methods:
                if finished_only and task.name in self.chosen.get(method, {}):
                    continue  # decided from records on disk, which do not change
                cells = self.grid_cells(method, task)
                runs: dict[float, dict[int, dict]] = {}
                for cell in cells:
                    record = _load_finished(_cell_dir(self.config, cell)) if finished_only else self._run(cell)
                    if record is None:
                        if finished_only:
                            break
                        return
                    runs.setdefault(cell.lr, {})[cell.seed] = record
                if cells and sum(map(len, runs.values())) == len(cells):
                    self.chosen.setdefault(method, {})[task.name] = self._pick(task, runs)

    def _pick(self, task: TaskSpec, runs: dict[float, dict[int, dict]]) -> dict:
        """The grid's choice for `task` (`rank_rates`), with the validation rows it was made on."""
        best, scores = rank_rates(runs)
        pick = {"lr": best, "candidates": scores, "val_ids": self.splits[(task.name, self.grid_seeds[0])][3]}
        if len(self.grid_seeds) > 1:
            pick["grid_seeds"] = list(self.grid_seeds)
            pick["val_ids_by_seed"] = {seed: self.splits[(task.name, seed)][3] for seed in self.grid_seeds}
        return pick

    def _run(self, cell: Cell) -> dict | None:
        """A finished cell's record from disk, else train and score it; None once stopped."""
        folder = _cell_dir(self.config, cell)
        done = _load_finished(folder)
        if done is not None:
            self.bar.finished(cell, done, self.remaining, skipped=True)
            return done
        if self.stopped or (self.should_stop is not None and self.should_stop()):
            self.stopped = True
            return None
        seed = "all seeds" if cell.seed is None else f"seed {cell.seed}"
        self.bar.bar.set_description(self.bar.prefix + f"{cell.method} · {cell.task.name} · {seed}"
                                     + (" · lr grid" if cell.phase == "grid" else ""))

        def on_step(rec: dict) -> None:
            if "loss" in rec:
                self.bar.emit({"phase": "step", "method": cell.method, "task": cell.task.name, "seed": cell.seed,
                               "step": rec["step"], "steps": cell.steps, "loss": rec["loss"], "eta_seconds": self.remaining})
        folder.mkdir(parents=True, exist_ok=True)
        record = _run_cell(self.config, cell, folder, self.guard, on_step, self.should_stop)
        if record is None:
            self.stopped = True
            return None
        record["cell"] = folder.name
        atomic_write_text(folder / "cell.json", json.dumps(record, indent=2, default=json_default) + "\n")
        self.bar.measured(cell, record)
        self.pending.pop(_plan_key(cell), None)
        self.remaining = self._estimate()
        self.bar.finished(cell, record, self.remaining)
        return record

    def _estimate(self) -> float:
        """Seconds left: the cells still to run, priced at the step and scoring speeds measured so far
        (split among the workers that share them)."""
        return sum(self.bar.cost(c, self.n_eval(c)) for c in self.pending.values()) / self.share

    def table(self) -> ResultsTable:
        """Rows in seed / task / method order; a seed-free cell fills the row of every seed."""
        rows = []
        for seed in self.seeds:
            for task in self.tasks:
                for method in self.methods:
                    rec = self.records.get(_row_key(method, task.name, None if get_method(method).seed_free else seed))
                    if rec is not None:
                        rows.append({k: v for k, v in rec.items() if k not in ("phase", "options")} | {"seed": seed})
        meta = {"out": str(self.out), "config": asdict(self.config), "argv": sys.argv,
                "elapsed_seconds": round(time.perf_counter() - self.started, 1), "stopped": self.stopped,
                # a table written while cells run, or left by Ctrl-C, is partial: it says so (it looked finished)
                "planned_rows": len(self.seeds) * len(self.tasks) * len(self.methods),
                "backbone_reloads": self.guard.reloads, "lr_selection": self.chosen,
                "task_digests": {t.name: t.digest for t in self.tasks}}
        return ResultsTable(rows, methods=self.methods, tasks=[t.name for t in self.tasks], meta=meta)


def rank_rates(runs: dict[float, dict[int, dict]]) -> tuple[float, dict[float, dict]]:
    """The lr grid's rule: the rate with the best validation accuracy, then the lowest validation loss, each
    the mean over the seeds that ran it. `runs` maps rate -> seed -> grid run record; returns the rate and
    every rate's scores (with each seed's accuracy where there are several)."""
    scores = {}
    for lr, by_seed in runs.items():
        losses = [r.get("val_loss") for r in by_seed.values()]
        scores[lr] = {"val_accuracy": _mean([r["accuracy"] for r in by_seed.values()]),
                      "val_loss": None if None in losses else _mean(losses)}
        if len(by_seed) > 1:
            scores[lr]["by_seed"] = {seed: r["accuracy"] for seed, r in by_seed.items()}
    best = max(scores, key=lambda lr: (scores[lr]["val_accuracy"], -(scores[lr]["val_loss"] or 0.0)))
    return best, scores


def _plan_key(cell: Cell) -> tuple:
    """A cell's place in the plan, the same before and after its grid has chosen the learning rate."""
    return cell.phase, cell.method, cell.task.name, cell.seed, cell.lr if cell.phase == "grid" else None


def _row_key(method: str, task: str, seed: int | None) -> str:
    return f"{method}|{task}|{seed}"


def compare(config: CompareConfig | dict | None = None, progress: Callable[[dict], None] | None = None,
            should_stop: Callable[[], bool] | None = None, **overrides: Any) -> ResultsTable:
    """Run (or resume) a comparison and write its results into `config.out`; returns a `ResultsTable`.

    Args:
        config: a `CompareConfig`, or a dict of its fields; every field is an `artstudio compare` option, listed
            with its help by `artstudio compare --help` (methods, tasks, seeds, steps, batch_size, lr_grid,
            grid_seeds, eval_size, method_options, out, workers, ...). Lists are taken where the command line
            takes comma-separated strings (`methods=["art", "lora"]`).
        progress: receives dicts with `phase` ('estimate', 'step', 'grid', 'test', 'skip', 'workers'),
            `done`, `total` and `eta_seconds`.
        should_stop: returning True ends the run after the current step (finished cells are kept; the next
            call resumes).
        **overrides: CompareConfig fields (`seeds="0,1,2"`, `lr_grid="auto"`).

    The table holds one record per finished run (`table.records`, `table.to_pandas()`, iterable); the folder
    gets results.csv, results.json, results.md and the plots. Bad options raise `ConfigError` before anything
    is written.
    """
    config = _coerce(config, overrides)
    started = time.perf_counter()
    out = Path(config.out).expanduser()
    made = not out.exists()
    try:
        ran = config.workers > 1 and _run_workers(config, progress, should_stop)
        comparison = _Comparison(config, progress, should_stop, collecting=ran)
        comparison.started = started  # the table's elapsed time includes the workers'
        return comparison.run()
    except ArtStudioError:
        # A refused comparison (a canvas size the model cannot take, a bad dtype) that made its folder and
        # finished no run leaves nothing behind, as a refused `train` does.
        if made and out.is_dir() and not any(out.glob("*/*/cell.json")):
            shutil.rmtree(out, ignore_errors=True)
        raise
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: say how to go on (it printed only "interrupted")
        log.warning("compare stopped: the finished cells in %s are kept; run the same command again to go on", out)
        raise


def _run_workers(config: CompareConfig, progress: Callable[[dict], None] | None,
                 should_stop: Callable[[], bool] | None) -> bool:
    """Run the cells in `config.workers` processes sharing the results folder (False: none was left to
    run, no worker started); the caller then finds them finished and writes the table. Each worker gets an equal share of the CPU threads (and, on
    GPUs, GPU k mod the GPU count). A worker that fails stops the others; its log names the cause."""
    import subprocess

    plan = _Comparison(config, None, None)  # prepares the tasks and splits once, before the workers read them
    grid_plan = plan.grid_plan()
    total = len(grid_plan) + len(plan.test_cells())
    plan._run_grids(finished_only=True)  # the choices on disk name the test cells already run
    if not plan.unfinished(grid_plan + list(plan.test_cells().values())):
        return False  # a finished comparison: nothing to start workers for
    out = Path(config.out) / "workers"
    out.mkdir(parents=True, exist_ok=True)
    spec = out / "config.json"
    atomic_write_text(spec, json.dumps(asdict(config), default=json_default) + "\n")
    claims = out / f"claims-{os.getpid()}-{time.time_ns()}"  # this launch's: an old launch's claims never block
    claims.mkdir()
    threads = max(1, (os.cpu_count() or 1) // config.workers)
    gpus = torch.cuda.device_count() if (config.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda") else 0
    procs = []
    for k in range(config.workers):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(k % gpus)
        log_file = open(out / f"worker-{k}.log", "w")
        procs.append((subprocess.Popen([sys.executable, "-m", "artstudio.comparison.worker", str(spec), str(k),
                                        str(config.workers), str(claims)], env=env, stdout=log_file,
                                       stderr=subprocess.STDOUT),
                      log_file))
    print(f"compare: {config.workers} workers, {threads} CPU thread(s) each; logs in {out}", file=sys.stderr, flush=True)
    # The runs on disk, all workers together (each worker's log has its own share and time left).
    bar = progress_bar(total=total, desc=f"compare · {config.workers} workers", unit="run", dynamic_ncols=True, mininterval=5.0,
               bar_format="{desc} {n_fmt}/{total_fmt} runs |{bar}| {elapsed} elapsed") if progress is None else None
    failed = None
    try:
        while any(p.poll() is None for p, _ in procs):
            if should_stop is not None and should_stop():
                break
            bad = [k for k, (p, _) in enumerate(procs) if p.poll() not in (None, 0)]
            if bad:
                failed = bad[0]
                break
            done = plan.finished_count()
            if progress is not None:
                progress({"phase": "workers", "done": done, "total": total, "eta_seconds": None})
            else:
                bar.update(done - bar.n)
            time.sleep(1.0)
        else:
            failed = next((k for k, (p, _) in enumerate(procs) if p.returncode != 0), None)
    finally:
        if bar is not None:
            bar.close()
        shutil.rmtree(claims, ignore_errors=True)
        for p, log_file in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
            log_file.close()
    if failed is not None:
        tail = (out / f"worker-{failed}.log").read_text(errors="replace").strip().splitlines()[-5:]
        raise ConfigError(f"compare worker {failed} failed; the last lines of {out / f'worker-{failed}.log'}:\n"
                          + "\n".join(tail))
    return True
