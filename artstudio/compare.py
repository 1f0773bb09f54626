"""`artstudio compare`: every method × task × seed through the one training loop, then tables and plots.

    artstudio compare --methods art,lora,vera,adalink,soft-prompt,base,random-canvas \\
        --tasks heldout --seeds 0,1,2 --steps 100 --out runs/compare
    artstudio compare --tasks data/my-task --methods art,lora --lr-grid auto      # a user's task folder

    import artstudio
    table = artstudio.compare(methods="art,lora", tasks="add-json", seeds="0,1", steps=50)
    table.to_pandas()          # or iterate: for row in table: ...

Fairness (issue 5): every method sees the same data order (`train.batch_indices` is a function of
the seed alone), the same seed, number of steps, batch size and evaluation (`evaluate.evaluate` on
the task's test split). A method's learning rate is its documented default (`train.default_lr`) or
is picked by `--lr-grid` on a validation split carved from the TRAINING rows (`data.split_validation`);
the test split is never read while choosing. After the choice, the cell trains on all training rows.

One backbone is loaded per comparison and lent to every cell. PEFT methods (LoRA, VeRA) inject
layers into the model they wrap, so after each cell the harness unloads such a wrapper and checks a
fingerprint of the backbone (module tree, hooks, train/eval flags, requires_grad, weight checksums);
if anything still differs, it reloads the backbone, so a cell can never change the next one's model.

The output folder holds `results.csv`, `results.json`, `results.md`, the plots
(`accuracy.png`, `accuracy_vs_params.png`, `loss_curves.png`, `cost.png`), the prepared task files
under `tasks/`, and one run folder per cell under `cells/<hash>/`. The hash covers everything that
decides a cell's result (method, options, task content, seed, steps, batch size, lr, objective,
model), so a re-run skips finished cells and an interrupted comparison resumes where it stopped.
"""

from __future__ import annotations

import csv
import ctypes
import gc
import hashlib
import io
import json
import logging
import math
import os
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .backbone import DEFAULT_MODEL, load_backbone
from .data import Example, load_jsonl, split_validation, write_jsonl
from .errors import ConfigError, DataError
from .atomic import atomic_path, atomic_write_text
from .methods import build_method, get_method, method_config, method_names
from .train import TrainConfig, default_lr, compute_loss, train

log = logging.getLogger("artstudio.compare")

DEFAULT_METHODS = "art,lora,vera,adalink,soft-prompt,base,random-canvas"
# Methods with nothing to optimise: their cells only evaluate (no steps, an empty loss curve).
UNTRAINED = ("base", "random-canvas")
# Methods with no randomness at all: one evaluation per task serves every seed's row.
SEED_FREE = ("base",)
# `--lr-grid auto`: each method's default learning rate times these factors.
GRID_FACTORS = (1 / 3, 1.0, 3.0)
CSV_COLUMNS = ("method", "task", "seed", "accuracy", "eval_n", "trainable_params", "train_seconds",
               "seconds_per_step", "peak_memory_mb", "memory_delta_mb", "latency_ms", "lr", "lr_source",
               "steps", "batch_size", "objective", "final_loss", "cell")
PLOTS = ("accuracy.png", "accuracy_vs_params.png", "loss_curves.png", "cost.png")


@dataclass
class CompareConfig:
    """Compare ART with other ways of adapting the same frozen model: methods × tasks × seeds."""

    methods: str = field(default=DEFAULT_METHODS, metadata={"help": "comma-separated methods (`artstudio train --help` lists them)"})
    tasks: str = field(default="heldout", metadata={"help": "'heldout', built-in task names, or task folders (train.jsonl + test.jsonl, optional card.json), comma-separated"})
    seeds: str = field(default="0,1,2", metadata={"help": "comma-separated seeds; each seed sets data order, initialisation and sampling"})
    steps: int = field(default=100, metadata={"help": "optimisation steps per cell, the same for every method"})
    batch_size: int = field(default=16, metadata={"help": "examples per step, the same for every method"})
    lr_grid: str | None = field(default=None, metadata={"help": "learning-rate search on a validation split of the training rows: 'auto' (each method's default x 1/3, 1, 3) or 'art=0.02,0.05;lora=1e-3,2e-3' (default: no search, each method's default lr)"})
    val_fraction: float = field(default=0.1, metadata={"help": "fraction of the training rows held out to pick the learning rate (with --lr-grid)"})
    objective: str = field(default="sft", metadata={"help": "sft or grpo, the same for every method"})
    grpo: dict = field(default_factory=dict, metadata={"help": "GRPO options (group_size, reward, ...), the same for every method"})
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Hugging Face id or local folder (default: the shipped studio-tiny)"})
    out: str = field(default="runs/compare", metadata={"help": "results folder; a re-run with the same folder skips finished cells"})
    method_options: dict = field(default_factory=dict, metadata={"help": "per-method options as JSON, e.g. '{\"art\": {\"canvas_size\": 96}, \"lora\": {\"r\": 4}}'"})
    eval_size: int | None = field(default=None, metadata={"help": "score only the first N test rows of each task (default: all)"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1 (default: cuda if available)"})
    dtype: str | None = field(default=None, metadata={"help": "bf16 | fp16 | fp32 (default: bf16 on GPU, fp32 on CPU)"})


# ============================================================================ parsing options

def parse_list(value: str | list | tuple | None) -> list[str]:
    """'a, b,c' or ['a', 'b'] -> ['a', 'b', 'c'] (duplicates dropped, order kept)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    return list(dict.fromkeys(s.strip() for s in items if s.strip()))


def parse_seeds(value: str | int | list | tuple) -> list[int]:
    items = [value] if isinstance(value, int) else parse_list(value)
    try:
        seeds = [int(s) for s in items]
    except ValueError:
        raise ConfigError(f"seeds must be integers separated by commas, like '0,1,2'; got {value!r}") from None
    if not seeds:
        raise ConfigError("no seeds given; pass --seeds like '0,1,2'")
    return seeds


def parse_lr_grid(spec: str | dict | None, methods: list[str], objective: str = "sft") -> dict[str, list[float]]:
    """Learning rates to try per method; a method that is absent uses its default lr.

    'auto' gives every trained method its default times GRID_FACTORS; 'art=0.02,0.05;lora=1e-3'
    names the values. A single value is simply used (no search).
    """
    if spec is None or spec == "" or spec == {}:
        return {}
    trained = [m for m in methods if m not in UNTRAINED]
    if isinstance(spec, str) and spec.strip().lower() in ("auto", "default", "builtin", "true"):
        return {m: [float(f"{default_lr(m, objective) * f:.3g}") for f in GRID_FACTORS] for m in trained}
    if isinstance(spec, dict):
        pairs = [(k, v if isinstance(v, (list, tuple)) else [v]) for k, v in spec.items()]
    else:
        pairs = []
        for part in (p.strip() for p in spec.split(";") if p.strip()):
            name, sep, values = part.partition("=")
            if not sep:
                raise ConfigError(f"lr grid entry {part!r} has no '='; expected 'method=lr1,lr2;method=...' or 'auto'")
            pairs.append((name.strip(), values.split(",")))
    grid: dict[str, list[float]] = {}
    for name, values in pairs:
        if name not in methods:
            raise ConfigError(f"lr grid names method {name!r}, which is not in --methods ({', '.join(methods)})")
        if name in UNTRAINED:
            raise ConfigError(f"method {name!r} trains nothing, so it has no learning rate to search")
        try:
            lrs = [float(v) for v in values if str(v).strip()]
        except ValueError:
            raise ConfigError(f"lr grid for {name!r} has a value that is not a number: {values!r}") from None
        if not lrs or any(not math.isfinite(v) or v <= 0 for v in lrs):
            raise ConfigError(f"lr grid for {name!r} needs positive numbers, got {values!r}")
        grid[name] = list(dict.fromkeys(lrs))
    return grid


# ============================================================================ tasks

@dataclass
class TaskSpec:
    """A task as the harness uses it: training rows, the scored rows and a digest of both."""

    name: str
    folder: Path  # holds train.jsonl and card.json (what TrainConfig.data points to)
    eval_file: Path
    card: dict
    digest: str


def _file_digest(h: "hashlib._Hash", path: Path) -> None:
    h.update(path.name.encode())
    h.update(path.read_bytes())


def _task_digest(train_file: Path, eval_file: Path, card: dict) -> str:
    """Content hash of what decides a result: the rows, their pictures and the card (its metric)."""
    h = hashlib.sha256(json.dumps(card, sort_keys=True, default=str).encode())
    images: set[str] = set()
    for path in (train_file, eval_file):
        _file_digest(h, path)
        images.update(e.image for e in load_jsonl(path) if e.image)
    for image in sorted(images):
        _file_digest(h, Path(image))
    return h.hexdigest()[:16]


def prepare_tasks(spec: str | list, out: Path, eval_size: int | None = None) -> list[TaskSpec]:
    """Built-in tasks are written to `out/tasks/<name>/`; user folders are read in place."""
    from .tasks import TASKS, load_card, make_task, resolve_tasks

    names = resolve_tasks(spec) if isinstance(spec, str) else parse_list(spec)
    if not names:
        raise ConfigError("no tasks given; pass --tasks heldout, built-in task names or task folders")
    tasks: list[TaskSpec] = []
    for name in names:
        path = Path(name).expanduser()
        if path.is_dir():
            folder = path.resolve()
            card = load_card(folder)
            display = str(card.get("name") or folder.name)
        elif name in TASKS:
            folder = out / "tasks" / name
            if not (folder / "card.json").exists():
                make_task(name, folder, seed=0)
            card, display = load_card(folder), name
        else:
            raise DataError(f"task {name!r} is neither a folder nor a built-in task; `artstudio tasks list` shows "
                            "the built-in tasks, and a task folder needs train.jsonl and test.jsonl")
        for split in ("train", "test"):
            if not (folder / f"{split}.jsonl").is_file():
                raise DataError(f"task folder {folder} has no {split}.jsonl; compare trains on train.jsonl and "
                                "scores every method on test.jsonl")
        eval_file = folder / "test.jsonl"
        if eval_size is not None:
            if eval_size < 1:
                raise ConfigError(f"eval_size must be at least 1, got {eval_size}")
            rows = load_jsonl(eval_file)[:eval_size]
            eval_file = write_jsonl(out / "tasks" / f"{display}.test-first-{eval_size}.jsonl", rows)
        if display in {t.name for t in tasks}:
            display = f"{display}-{len(tasks)}"
        tasks.append(TaskSpec(display, folder, eval_file, card, _task_digest(folder / "train.jsonl", eval_file, card)))
    return tasks


# ============================================================================ peak memory

def _rss_bytes() -> int:
    """Resident set size now (Linux /proc, else psutil), or 0 when neither is available."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        return 0


def _reset_rss_peak() -> bool:
    """Linux: reset the kernel's RSS high-water mark (VmHWM) to the current RSS; False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _rss_peak_bytes() > 0
    except OSError:
        return False


def _rss_peak_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _release_freed_memory() -> None:
    """Return freed heap pages to the OS (glibc), so the RSS baseline of the next block is honest."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of a block of code, in MiB: `peak_mb` (absolute) and `delta_mb` (over the start).

    CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`, i.e. tensors only
    (weights, activations, gradients, optimiser state), not the caching allocator's reserve.
    CPU: the resident set size (RSS) of the process. RSS counts everything the process holds
    (interpreter, libraries, the model), so `peak_mb` is the number a user sees in `top` and
    `delta_mb` is what the block added on top. On Linux the kernel's exact high-water mark is
    reset at the start (`/proc/self/clear_refs`) and read at `stop()`; elsewhere a thread samples
    RSS every `interval` seconds (a spike shorter than that can be missed). A sampling thread is
    the fallback only: on a machine with few cores it steals time from the OpenMP threads of the
    block it measures. Freed heap is returned to the OS before the block starts (glibc
    `malloc_trim`), otherwise memory kept from an earlier block would be reused without showing
    up and make later blocks look lighter. `stop()` may be called inside the block (the harness
    stops it after the last training step, so evaluation does not count).
    """

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.02):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.interval = interval
        self.peak_mb = self.delta_mb = self.start_mb = 0.0
        self._peak = self._start = 0
        self._stopped = True
        self._kernel_peak = False
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "PeakMemory":
        _release_freed_memory()
        self._stopped = False
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = self._peak = _rss_bytes()
            self._kernel_peak = _reset_rss_peak()
            if not self._kernel_peak:
                self._halt.clear()
                self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
                self._thread.start()
        self.start_mb = self._start / 2**20
        return self

    def _sample(self) -> None:
        while not self._halt.wait(self.interval):
            self._peak = max(self._peak, _rss_bytes())

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self._peak = torch.cuda.max_memory_allocated(self.device)
        elif self._kernel_peak:
            self._peak = max(self._peak, _rss_peak_bytes())
        else:
            self._halt.set()
            if self._thread is not None:
                self._thread.join()
            self._peak = max(self._peak, _rss_bytes())
        self.peak_mb = self._peak / 2**20
        self.delta_mb = max(0, self._peak - self._start) / 2**20

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ============================================================================ one backbone, kept clean

def _fingerprint(model: torch.nn.Module) -> tuple:
    """What a cell could leave behind: modules, hooks, train/eval flags, requires_grad, weights."""
    h = hashlib.sha256()
    for name, m in model.named_modules():
        hooks = len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        h.update(f"{name}:{type(m).__name__}:{hooks}:{int(m.training)};".encode())
    with torch.no_grad():
        sums = [torch.stack([p.detach().float().sum(), p.detach().float().abs().sum()]) for p in model.parameters()]
    flags = tuple(p.requires_grad for p in model.parameters())
    return h.hexdigest(), flags, torch.stack(sums).cpu() if sums else torch.zeros(0)


class BackboneGuard:
    """Lends one backbone to every cell and makes sure no cell changes it for the next one."""

    def __init__(self, loader: Callable[[], Any]):
        self.loader = loader
        self.reloads = 0
        self._load()

    def _load(self) -> None:
        self.backbone = self.loader()
        self._model = self.backbone.model
        self._print = _fingerprint(self._model)

    def clean(self) -> bool:
        if self.backbone.model is not self._model:
            return False
        digest, flags, sums = _fingerprint(self._model)
        return digest == self._print[0] and flags == self._print[1] and torch.equal(sums, self._print[2])

    def release(self, method: Any) -> None:
        """After a cell: unload a PEFT wrapper if the method has one, then reload if still changed."""
        wrapper = getattr(method, "model", None) if method is not None else None
        if wrapper is not None and wrapper is not self._model and hasattr(wrapper, "unload"):
            try:
                wrapper.unload()
            except Exception as err:  # noqa: BLE001 - the fingerprint below decides what happens next
                log.info("unloading the %s wrapper failed (%s); the fingerprint check decides", type(wrapper).__name__, err)
        del method, wrapper
        if not self.clean():
            log.warning("a cell left the backbone changed; reloading it so the next cell starts clean")
            self.reloads += 1
            self._load()


# ============================================================================ the results table

def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


def _std(values: list[float]) -> float:
    vals = [v for v in values if v is not None]
    return statistics.stdev(vals) if len(vals) > 1 else 0.0


class ResultsTable:
    """One record per method × task × seed; iterable of dicts, no pandas needed.

    `mean_std()` aggregates over seeds per method × task, `per_method()` over tasks too,
    `to_csv()` / `to_json()` / `to_markdown()` render, `to_pandas()` hands over a DataFrame.
    """

    def __init__(self, records: list[dict] | None = None, *, methods: list[str] | None = None,
                 tasks: list[str] | None = None, meta: dict | None = None):
        self.records = list(records or [])
        self.methods = methods or list(dict.fromkeys(r["method"] for r in self.records))
        self.tasks = tasks or list(dict.fromkeys(r["task"] for r in self.records))
        self.meta = dict(meta or {})

    def __iter__(self) -> Iterator[dict]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        return self.records[i]

    def __repr__(self) -> str:
        return f"ResultsTable({len(self)} rows: {len(self.methods)} methods × {len(self.tasks)} tasks)"

    @property
    def columns(self) -> list[str]:
        return list(CSV_COLUMNS) + ["loss_curve"]

    def select(self, **criteria: Any) -> "ResultsTable":
        """Rows whose fields equal the given values, e.g. `table.select(method="art")`."""
        rows = [r for r in self.records if all(r.get(k) == v for k, v in criteria.items())]
        return ResultsTable(rows, methods=[m for m in self.methods if any(r["method"] == m for r in rows)],
                            tasks=[t for t in self.tasks if any(r["task"] == t for r in rows)], meta=self.meta)

    # -- aggregation ----------------------------------------------------------------------------
    def mean_std(self) -> list[dict]:
        """Per method × task: accuracy mean ± std over seeds, and mean costs."""
        out = []
        for task in self.tasks:
            for method in self.methods:
                rows = [r for r in self.records if r["method"] == method and r["task"] == task]
                if rows:
                    out.append(self._aggregate(rows) | {"method": method, "task": task})
        return out

    def per_method(self) -> list[dict]:
        """Per method, over all tasks: accuracy mean ± std over seeds of the per-seed task average."""
        out = []
        for method in self.methods:
            rows = [r for r in self.records if r["method"] == method]
            if not rows:
                continue
            by_seed: dict[int, list[float]] = {}
            for r in rows:
                by_seed.setdefault(r["seed"], []).append(r["accuracy"])
            seed_means = [_mean(v) for v in by_seed.values()]
            out.append(self._aggregate(rows) | {"method": method, "task": "mean",
                                                "accuracy_mean": _mean(seed_means), "accuracy_std": _std(seed_means)})
        return out

    @staticmethod
    def _aggregate(rows: list[dict]) -> dict:
        accs = [r["accuracy"] for r in rows]
        return {
            "seeds": len({r["seed"] for r in rows}),
            "accuracy_mean": _mean(accs), "accuracy_std": _std(accs),
            "trainable_params": max(int(r["trainable_params"] or 0) for r in rows),
            **{k: _mean([r.get(k) for r in rows]) for k in ("train_seconds", "seconds_per_step", "peak_memory_mb",
                                                           "memory_delta_mb", "latency_ms", "final_loss")},
            "lr": sorted({r["lr"] for r in rows if r.get("lr") is not None}),
        }

    # -- rendering ------------------------------------------------------------------------------
    def to_csv(self, path: str | Path | None = None) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in self.records:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})
        text = buf.getvalue()
        if path is not None:
            atomic_write_text(Path(path), text)
        return text

    def to_json(self, path: str | Path | None = None) -> str:
        payload = self.meta | {"methods": self.methods, "tasks": self.tasks, "records": self.records,
                               "summary": self.mean_std(), "per_method": self.per_method()}
        text = json.dumps(payload, indent=2, default=str) + "\n"
        if path is not None:
            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def from_json(cls, path: str | Path) -> "ResultsTable":
        """Read back a `results.json` (e.g. to re-plot or compare in a notebook)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        meta = {k: v for k, v in data.items() if k not in ("methods", "tasks", "records", "summary", "per_method")}
        return cls(data["records"], methods=data["methods"], tasks=data["tasks"], meta=meta)

    def to_markdown(self) -> str:
        """Accuracy (%) mean ± std over seeds, tasks as rows, best per row in bold; then a cost table."""
        seeds = sorted({r["seed"] for r in self.records})
        cells = {(a["task"], a["method"]): a for a in self.mean_std() + self.per_method()}
        lines = [f"Accuracy (%) on each task's test split, mean ± std over seeds {', '.join(map(str, seeds))}.", "",
                 "| task | " + " | ".join(self.methods) + " |", "|---|" + "---:|" * len(self.methods)]
        for task in [*self.tasks, "mean"]:
            means = {m: cells[(task, m)]["accuracy_mean"] for m in self.methods if (task, m) in cells}
            known = [v for v in means.values() if v is not None]
            # Bold marks a winner: when every method ties there is none.
            best = max(known) if len(known) > 1 and not all(math.isclose(v, known[0]) for v in known) else None
            row = []
            for m in self.methods:
                a = cells.get((task, m))
                if a is None or a["accuracy_mean"] is None:
                    row.append("–")
                    continue
                text = f"{100 * a['accuracy_mean']:.1f}" + (f" ± {100 * a['accuracy_std']:.1f}" if a["seeds"] > 1 else "")
                row.append(f"**{text}**" if best is not None and math.isclose(a["accuracy_mean"], best) else text)
            label = "**mean**" if task == "mean" else task
            lines.append(f"| {label} | " + " | ".join(row) + " |")
        lines += ["", "Cost per method (means over its cells).", "",
                  "| method | trainable params | s / step | peak memory MB | Δ memory MB | latency ms / request | lr |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for a in self.per_method():
            lines.append(f"| {a['method']} | {a['trainable_params']:,} | {_fmt(a['seconds_per_step'], '.3f')} | "
                         f"{_fmt(a['peak_memory_mb'], '.0f')} | {_fmt(a['memory_delta_mb'], '.0f')} | "
                         f"{_fmt(a['latency_ms'], '.1f')} | {', '.join(f'{v:g}' for v in a['lr']) or '–'} |")
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        folder = self.meta.get("out")
        return self.to_markdown() + (f"\nResults, plots and run folders: {folder}\n" if folder else "")

    def to_pandas(self):
        """The records as a pandas DataFrame (needs pandas installed)."""
        try:
            import pandas as pd
        except ImportError:
            raise ConfigError("to_pandas() needs pandas: pip install pandas (or iterate the table's dicts)") from None
        return pd.DataFrame(self.records)

    def write(self, folder: str | Path, plots: bool = True) -> list[Path]:
        """results.csv, results.json, results.md and (with `plots`) the PNG plots in `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.to_csv(folder / "results.csv")
        self.to_json(folder / "results.json")
        atomic_write_text(folder / "results.md", self.to_markdown())
        written = [folder / "results.csv", folder / "results.json", folder / "results.md"]
        if plots and self.records:
            written += write_plots(self, folder)
        return written


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


# ============================================================================ plots

def write_plots(table: ResultsTable, folder: Path) -> list[Path]:
    """accuracy.png, accuracy_vs_params.png, loss_curves.png and cost.png (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for name, draw in zip(PLOTS, (_plot_accuracy, _plot_accuracy_vs_params, _plot_losses, _plot_cost)):
        fig = draw(plt, table)
        path = folder / name
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def _colors(plt, methods: list[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def _plot_accuracy(plt, table: ResultsTable):
    agg = {(a["task"], a["method"]): a for a in table.mean_std()}
    tasks, methods = table.tasks, table.methods
    colors = _colors(plt, methods)
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(tasks) * max(1, len(methods) / 4) + 2), 4))
    for j, m in enumerate(methods):
        xs, ys, es = [], [], []
        for i, t in enumerate(tasks):
            a = agg.get((t, m))
            if a and a["accuracy_mean"] is not None:
                xs.append(i + (j - (len(methods) - 1) / 2) * width)
                ys.append(100 * a["accuracy_mean"])
                es.append(100 * a["accuracy_std"])
        ax.bar(xs, ys, width, yerr=es, capsize=2, label=m, color=colors[m])
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=30, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Accuracy per task (bars: mean over seeds, whiskers: std)", pad=28)
    ax.legend(ncol=min(len(methods), 7), fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.08), frameon=False)
    return fig


def _plot_accuracy_vs_params(plt, table: ResultsTable):
    rows = table.per_method()
    colors = _colors(plt, table.methods)
    nonzero = [a["trainable_params"] for a in rows if a["trainable_params"] > 0]
    # Log scale has no 0: untrained methods sit one decade left of the smallest, under a "0" tick.
    zero_x = 10 ** (math.floor(math.log10(min(nonzero))) - 1) if nonzero else 1.0
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    placed: list[tuple[float, float]] = []
    top = 10.0
    for a in rows:
        if a["accuracy_mean"] is None:
            continue
        x, y = a["trainable_params"] or zero_x, 100 * a["accuracy_mean"]
        hollow = a["trainable_params"] == 0
        ax.errorbar([x], [y], yerr=[100 * a["accuracy_std"]], fmt="o", capsize=3,
                    color=colors[a["method"]], markerfacecolor="white" if hollow else colors[a["method"]], markersize=8)
        # Labels of points that (nearly) coincide are stacked instead of printed over each other.
        clash = sum(1 for px, py in placed if abs(math.log10(px / x)) < 0.3 and abs(py - y) < 4)
        placed.append((x, y))
        ax.annotate(a["method"], (x, y), textcoords="offset points", xytext=(7, 4 - 11 * clash), fontsize=8)
        top = max(top, y + 100 * a["accuracy_std"])
    ax.set_ylim(-3, min(105, top + 8))
    ax.set_xscale("log")
    if nonzero:
        ax.axvline(zero_x * 3, color="grey", lw=0.8, ls=":")
        lo, hi = math.floor(math.log10(min(nonzero))), math.ceil(math.log10(max(nonzero) * 1.5))
        ticks = [zero_x] + [10 ** k for k in range(lo, hi + 1)]
        ax.set_xticks(ticks)
        ax.set_xticklabels(["0"] + [f"$10^{{{k}}}$" for k in range(lo, hi + 1)])
        ax.set_xlim(zero_x / 2, 10 ** hi * 1.5)
    ax.minorticks_off()
    ax.set_xlabel("trainable parameters (log scale; hollow: nothing trained)")
    ax.set_ylabel("mean test accuracy over tasks (%)")
    ax.set_title("Accuracy against trainable parameters (whiskers: std over seeds)")
    ax.grid(alpha=0.3)
    return fig


def _plot_losses(plt, table: ResultsTable):
    tasks = table.tasks
    colors = _colors(plt, table.methods)
    ncols = min(4, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.8 * nrows), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        for m in table.methods:
            curves = [r["loss_curve"] for r in table.records
                      if r["method"] == m and r["task"] == task and r.get("loss_curve")]
            if not curves:
                continue
            length = max(len(c) for c in curves)
            mean = [_mean([c[i] for c in curves if i < len(c)]) for i in range(length)]
            ax.plot(range(1, length + 1), [float("nan") if v is None else v for v in mean], color=colors[m], label=m, lw=1.2)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("training loss", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="upper center", ncol=min(len(handles), 6), fontsize=8,
                   bbox_to_anchor=(0.5, 1.02))
    fig.suptitle("Training loss (mean over seeds)", y=1.06)
    fig.tight_layout()
    return fig


def _plot_cost(plt, table: ResultsTable):
    rows = table.per_method()
    colors = _colors(plt, table.methods)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    names = [a["method"] for a in rows]
    a1.bar(names, [a["seconds_per_step"] or 0 for a in rows], color=[colors[m] for m in names])
    a1.set_ylabel("seconds per training step")
    a1.set_title("Time per training step (untrained methods: none)", fontsize=10)
    # The absolute peak is mostly the frozen model, the same for all; what a method adds is the bar.
    bars = a2.bar(names, [a["memory_delta_mb"] or 0 for a in rows], color=[colors[m] for m in names])
    for bar, a in zip(bars, rows):
        a2.annotate(f"peak {_fmt(a['peak_memory_mb'], '.0f')}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    textcoords="offset points", xytext=(0, 2), ha="center", fontsize=7)
    a2.set_ylabel("memory added by the run (MiB)")
    a2.set_title("Memory over the start of the run (label: absolute peak)", fontsize=10)
    for ax in (a1, a2):
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


# ============================================================================ the harness

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

    def key(self, config: CompareConfig) -> str:
        spec = {"phase": self.phase, "method": self.method, "options": resolved_options(self.method, self.options), "task": self.task.digest,
                "val": self.val_digest, "seed": self.seed, "steps": self.steps, "batch_size": config.batch_size,
                "lr": self.lr, "objective": config.objective, "model": config.model}
        if config.objective == "grpo":
            spec["grpo"] = config.grpo  # added only for GRPO, so SFT cells keep their keys across versions
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Progress:
    """Runs done / total with a time-left estimate from measured step and evaluation costs."""

    def __init__(self, total: int, callback: Callable[[dict], None] | None, step_s: float, eval_s: float):
        from tqdm import tqdm

        self.total, self.done, self.callback = total, 0, callback
        self.step_s: dict[str, list[float]] = {}
        self.eval_s: list[float] = []
        self.prior = (step_s, eval_s)
        self.bar = tqdm(total=total, desc="compare", unit="run", dynamic_ncols=True, mininterval=1.0,
                        bar_format="{desc} {n_fmt}/{total_fmt} runs |{bar}| {elapsed} {postfix}")

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
        self.bar.update(1)
        self.bar.set_postfix_str(f"≈ {_duration(remaining)} left")
        self.emit({"phase": "skip" if skipped else cell.phase, "method": cell.method, "task": cell.task.name,
                   "seed": cell.seed, "record": record, "eta_seconds": remaining})

    def close(self) -> None:
        self.bar.close()


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    return f"{h} h {rem // 60:02d} min" if h else f"{rem // 60} min {rem % 60:02d} s"


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
    cls = get_method(method).config_class
    names = {f.name for f in fields(cls)} if cls is not dict else set()
    # The same slot size for every canvas-shaped method (random canvas, soft prompt): a fair control.
    art_size = (per.get("art") or {}).get("canvas_size")
    if "canvas_size" in names and art_size is not None:
        opts.setdefault("canvas_size", art_size)
    return opts


def resolved_options(method: str, options: dict) -> dict:
    """`options` with the method's defaults filled in: a cell's key changes when a default does."""
    config = method_config(method, options)
    return config if isinstance(config, dict) else asdict(config)


def _train_config(config: CompareConfig, cell: Cell, run_dir: Path) -> TrainConfig:
    return TrainConfig(out=str(run_dir), data=str(cell.data or cell.task.folder), eval_data=str(cell.eval_file or cell.task.eval_file),
                       model=config.model, method=cell.method, method_options=cell.options, objective=config.objective,
                       grpo=dict(config.grpo),  # empty for SFT: _check refuses GRPO options there
                       steps=cell.steps, batch_size=config.batch_size, lr=cell.lr, seed=0 if cell.seed is None else cell.seed,
                       eval_every=0, checkpoint_every=0, snapshot_every=0, device=config.device, dtype=config.dtype)


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
        with meter:
            result = train(_train_config(config, cell, run_dir), backbone=backbone, callbacks=[step_done],
                           should_stop=should_stop, progress=False)
    except BaseException:
        guard.release(None)  # a failed cell may still have patched the backbone: restore it for the caller
        raise
    method = result.method
    m = result.metrics
    losses = [h.get("loss") for h in result.history if "loss" in h]
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
    if val_loss is not None:
        record["val_loss"] = val_loss
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
    return Path(config.out) / ("grid" if cell.phase == "grid" else "cells") / cell.key(config)


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
    atomic_write_text(folder / "card.json", json.dumps(task.card, indent=2, default=str) + "\n")
    digest = hashlib.sha256((folder / "train.jsonl").read_bytes() + (folder / "val.jsonl").read_bytes()).hexdigest()[:16]
    return folder, folder / "val.jsonl", digest, [e.id for e in val]


def _probe(guard: BackboneGuard, task: TaskSpec, config: CompareConfig) -> tuple[float, float]:
    """Seconds per ART training step and per scored example, measured here before starting."""
    from .evaluate import evaluate

    backbone = guard.backbone
    rows = load_jsonl(task.folder / "train.jsonl")
    batch = [rows[i % len(rows)] for i in range(config.batch_size)]
    art = build_method("art", backbone, (config.method_options or {}).get("art") or {})
    times = []
    for _ in range(2):  # the first step pays one-time costs
        t = time.perf_counter()
        compute_loss(art, batch).backward()
        times.append(time.perf_counter() - t)
    guard.release(art)
    # Timed on training rows: nothing before the final evaluations reads the test split.
    base = build_method("base", backbone)
    res = evaluate(base, rows[:16], task.card.get("metric") or "exact")
    guard.release(base)
    return times[-1], res.seconds / max(res.n, 1)


def _coerce(config: CompareConfig | None, overrides: dict) -> CompareConfig:
    """CompareConfig from a config and/or keyword arguments (lists accepted where strings are)."""
    base = asdict(config) if config is not None else {}
    known = {f.name for f in fields(CompareConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown compare option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    values = base | overrides
    for key in ("methods", "tasks", "seeds"):
        if isinstance(values.get(key), (list, tuple, int)):
            values[key] = ",".join(str(v) for v in (values[key] if not isinstance(values[key], int) else [values[key]]))
    if isinstance(values.get("lr_grid"), dict):
        values["lr_grid"] = ";".join(f"{k}={','.join(map(str, v if isinstance(v, (list, tuple)) else [v]))}"
                                     for k, v in values["lr_grid"].items())
    return CompareConfig(**values)


class _Comparison:
    """The plan of one comparison (grid runs, test runs) and the loop that works through it."""

    def __init__(self, config: CompareConfig, progress: Callable[[dict], None] | None,
                 should_stop: Callable[[], bool] | None):
        self.config, self.callback, self.should_stop = config, progress, should_stop
        self.methods = parse_list(config.methods)
        self.seeds = parse_seeds(config.seeds)
        _check(config, self.methods)
        self.grid = parse_lr_grid(config.lr_grid, self.methods, config.objective)
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.tasks = prepare_tasks(config.tasks, self.out, config.eval_size)
        atomic_write_text(self.out / "compare_config.json", json.dumps(asdict(config), indent=2, default=str) + "\n")
        self.eval_n = {t.name: len(load_jsonl(t.eval_file)) for t in self.tasks}
        self.splits = {}
        if any(len(v) > 1 for v in self.grid.values()):
            self.splits = {t.name: _validation_split(config, t, self.seeds[0]) for t in self.tasks}
        self.chosen: dict[str, dict[str, dict]] = {}
        self.records: dict[str, dict] = {}
        self.stopped = False
        self.started = time.perf_counter()

    # -- the plan ---------------------------------------------------------------------------------
    def grid_cells(self, method: str, task: TaskSpec) -> list[Cell]:
        if len(self.grid.get(method, [])) < 2:
            return []
        folder, val_file, digest, _ = self.splits[task.name]
        seed = self.seeds[0]
        return [Cell(method, task, seed, lr, "grid", _method_options(self.config, method), self.config.steps,
                     phase="grid", data=folder, eval_file=val_file, val_digest=digest) for lr in self.grid[method]]

    def test_cells(self) -> dict[str, Cell]:
        """Seed-major order (a complete table per seed comes first); seed-free methods once per task."""
        plan: dict[str, Cell] = {}
        for seed in self.seeds:
            for task in self.tasks:
                for method in self.methods:
                    cell_seed = None if method in SEED_FREE else seed
                    plan.setdefault(_row_key(method, task.name, cell_seed), self._test_cell(method, task, cell_seed))
        return plan

    def _test_cell(self, method: str, task: TaskSpec, seed: int | None) -> Cell:
        options = _method_options(self.config, method)
        if method in UNTRAINED:
            return Cell(method, task, seed, 0.0, "none", options, 0)
        pick = self.chosen.get(method, {}).get(task.name)
        if pick is not None:
            lr, source = pick["lr"], "grid"
        elif len(self.grid.get(method, [])) == 1:
            lr, source = self.grid[method][0], "given"
        else:
            lr, source = default_lr(method, self.config.objective), "default"
        return Cell(method, task, seed, lr, source, options, self.config.steps)

    def n_eval(self, cell: Cell) -> int:
        return len(self.splits[cell.task.name][3]) if cell.phase == "grid" else self.eval_n[cell.task.name]

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> ResultsTable:
        config = self.config
        self.guard = BackboneGuard(lambda: load_backbone(config.model, dtype=config.dtype, device=config.device))
        grid_plan = [c for t in self.tasks for m in self.methods for c in self.grid_cells(m, t)]
        self._run_grids(finished_only=True)  # choices already on disk tell which test cells are done
        test_plan = self.test_cells()
        pending = [c for c in grid_plan + list(test_plan.values()) if _load_finished(_cell_dir(config, c)) is None]
        prior = _probe(self.guard, self.tasks[0], config) if pending else (0.0, 0.0)
        self.bar = _Progress(len(grid_plan) + len(test_plan), self.callback, *prior)
        self.pending = {c.key(config): c for c in pending}
        self.remaining = self._estimate()
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

    def _announce(self, n_test: int, n_grid: int, n_pending: int, prior: tuple[float, float]) -> None:
        msg = (f"compare: {len(self.methods)} methods × {len(self.tasks)} tasks × {len(self.seeds)} seeds = {n_test} runs"
               + (f" + {n_grid} lr-grid runs" if n_grid else "")
               + f", {n_pending} to do; estimated {_duration(self.remaining)} here"
               + (f" (probe: {prior[0]:.2f} s per training step at batch {self.config.batch_size}, "
                  f"{1000 * prior[1]:.0f} ms per scored example)" if n_pending else ""))
        print(msg, file=sys.stderr, flush=True)
        self.bar.emit({"phase": "estimate", "eta_seconds": self.remaining, "message": msg})

    def _run_grids(self, finished_only: bool = False) -> None:
        """Pick each method's lr per task: best validation accuracy, then lowest validation loss.

        With `finished_only`, nothing runs: only grids whose runs are all on disk are decided.
        """
        for task in self.tasks:
            for method in self.methods:
                cells = self.grid_cells(method, task)
                scores = {}
                for cell in cells:
                    record = _load_finished(_cell_dir(self.config, cell)) if finished_only else self._run(cell)
                    if record is None:
                        if finished_only:
                            break
                        return
                    scores[cell.lr] = {"val_accuracy": record["accuracy"], "val_loss": record.get("val_loss")}
                if cells and len(scores) == len(cells):
                    best = max(scores, key=lambda lr: (scores[lr]["val_accuracy"], -(scores[lr]["val_loss"] or 0.0)))
                    self.chosen.setdefault(method, {})[task.name] = {
                        "lr": best, "candidates": scores, "val_ids": self.splits[task.name][3]}

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
        self.bar.bar.set_description(f"{cell.method} · {cell.task.name} · {seed}" + (" · lr grid" if cell.phase == "grid" else ""))

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
        atomic_write_text(folder / "cell.json", json.dumps(record, indent=2, default=str) + "\n")
        self.bar.measured(cell, record)
        self.pending.pop(folder.name, None)  # the folder is named by the cell's key
        self.remaining = self._estimate()
        self.bar.finished(cell, record, self.remaining)
        return record

    def _estimate(self) -> float:
        """Seconds left: the cells still to run, priced at the step and scoring speeds measured so far."""
        return sum(self.bar.cost(c, self.n_eval(c)) for c in self.pending.values())

    def table(self) -> ResultsTable:
        """Rows in seed / task / method order; a seed-free cell fills the row of every seed."""
        rows = []
        for seed in self.seeds:
            for task in self.tasks:
                for method in self.methods:
                    rec = self.records.get(_row_key(method, task.name, None if method in SEED_FREE else seed))
                    if rec is not None:
                        rows.append({k: v for k, v in rec.items() if k not in ("phase", "options")} | {"seed": seed})
        meta = {"out": str(self.out), "config": asdict(self.config), "argv": sys.argv,
                "elapsed_seconds": round(time.perf_counter() - self.started, 1), "stopped": self.stopped,
                "backbone_reloads": self.guard.reloads, "lr_selection": self.chosen,
                "task_digests": {t.name: t.digest for t in self.tasks}}
        return ResultsTable(rows, methods=self.methods, tasks=[t.name for t in self.tasks], meta=meta)


def _row_key(method: str, task: str, seed: int | None) -> str:
    return f"{method}|{task}|{seed}"


def _check(config: CompareConfig, methods: list[str]) -> None:
    available = method_names()
    missing = [m for m in methods if m not in available]
    if missing:
        raise ConfigError(f"unknown or unavailable method(s) {', '.join(missing)}; available: {', '.join(available)}")
    if not methods:
        raise ConfigError("no methods given; pass --methods like 'art,lora,base'")
    if config.objective not in ("sft", "grpo"):
        raise ConfigError(f"unknown objective {config.objective!r}; choose sft or grpo")
    if config.steps < 1 or config.batch_size < 1:
        raise ConfigError("steps and batch size must be at least 1")
    if config.grpo and config.objective != "grpo":
        raise ConfigError("GRPO options were given but the objective is sft; add --objective grpo or drop them")
    if config.objective == "grpo":
        from .objectives.grpo import GRPOObjective

        GRPOObjective.from_options(config.grpo)  # unknown options and bad values fail before any cell runs


def compare(config: CompareConfig | None = None, progress: Callable[[dict], None] | None = None,
            should_stop: Callable[[], bool] | None = None, **overrides: Any) -> ResultsTable:
    """Run (or resume) a comparison and write its results; keyword overrides are CompareConfig fields.

    `progress(event)` receives dicts with `phase` ('estimate', 'step', 'grid', 'test', 'skip'),
    `done`, `total` and `eta_seconds`; `should_stop()` returning True ends the run after the current
    step (finished cells are kept; the next call resumes). Returns the table of finished rows.
    """
    return _Comparison(_coerce(config, overrides), progress, should_stop).run()


__all__ = ["CompareConfig", "ResultsTable", "compare", "PeakMemory", "BackboneGuard", "prepare_tasks",
           "parse_lr_grid", "write_plots"]
