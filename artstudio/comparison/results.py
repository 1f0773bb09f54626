"""The results of a comparison: one record per method × task × seed, aggregated and rendered."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path
from typing import Any, Iterator

from ..atomic import atomic_write_text
from ..errors import ConfigError
from ..words import count

CSV_COLUMNS = ("method", "task", "seed", "accuracy", "eval_n", "trainable_params", "train_seconds",
               "seconds_per_step", "peak_memory_mb", "memory_delta_mb", "latency_ms", "lr", "lr_source",
               "steps", "batch_size", "objective", "final_loss", "cell")


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
        return f"ResultsTable({count(len(self), 'row')}: {count(len(self.methods), 'method')} × {count(len(self.tasks), 'task')})"

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
        over = (f"mean ± std over seeds {', '.join(map(str, seeds))}" if len(seeds) > 1
                else f"seed {seeds[0]} only (one seed: no std)" if seeds else "no seeds")
        planned = self.meta.get("planned_rows")
        partial = ([f"**Partial: {len(self.records)} of {planned} runs finished** (stopped, or still running: the same "
                    "command goes on). Each method's mean is over the cells it finished, so the means may cover "
                    "different tasks and seeds.", ""] if isinstance(planned, int) and len(self.records) < planned else [])
        lines = partial + [f"Accuracy (%) on each task's test split{self._recipe()}, {over}.", "",
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
        lines += self._robustness_lines(cells)
        lines += self._diagnosis_lines()
        lines += ["", "Cost per method (means over its cells; a run's training time includes its starts).", "",
                  "| method | trainable params | train s / run | s / step | peak memory MB | Δ memory MB | latency ms / request | lr |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for a in self.per_method():
            lines.append(f"| {a['method']} | {a['trainable_params']:,} | {_fmt(a['train_seconds'] if a['seconds_per_step'] else None, '.1f')} | "
                         f"{_fmt(a['seconds_per_step'], '.3f')} | "
                         f"{_fmt(a['peak_memory_mb'], '.0f')} | {_fmt(a['memory_delta_mb'], '.0f')} | "
                         f"{_fmt(a['latency_ms'], '.1f')} | {', '.join(f'{v:g}' for v in a['lr']) or '–'} |")
        return "\n".join(lines) + "\n"

    def _recipe(self) -> str:
        """' (N test rows per task; S steps at batch B)': what a reader of the table needs to know it by (how many
        rows scored it was only in results.csv, where --eval-size had cut a 200-row split to 40)."""
        rows = sorted({r["eval_n"] for r in self.records if isinstance(r.get("eval_n"), int)})
        said = []
        if rows:
            said.append(f"{rows[0]} test rows per task" if len(rows) == 1 else
                        f"{rows[0]}–{rows[-1]} test rows per task, eval_n in results.csv")
        trained = {(r.get("steps"), r.get("batch_size")) for r in self.records if r.get("steps")}
        if len(trained) == 1:
            steps, batch = next(iter(trained))
            said.append(f"{steps} steps at batch {batch}")
        return f" ({'; '.join(said)})" if said else ""

    def _robustness_lines(self, cells: dict) -> list[str]:
        """Each method's worst cell (task × seed), its cells below 80 %, and the first method against it
        task by task (per-task means over seeds; less than one point apart is a tie)."""
        if not self.records or len({r["seed"] for r in self.records}) < 2 and len(self.methods) < 2:
            return []
        first = self.methods[0]
        lines = ["", f"Worst cells, and {first} against each method task by task (mean over seeds; less than 1 "
                     "point apart is a tie).", "",
                 f"| method | worst cell (task, seed) | cells below 80 % | {first} won / tied / lost |",
                 "|---|---|---:|---|"]
        for method in self.methods:
            rows = [r for r in self.records if r["method"] == method and r.get("accuracy") is not None]
            if not rows:
                continue
            # A seed-free method (base, t2c) ran one cell that fills the row of every seed: counted once.
            runs: dict = {}
            for r in rows:
                runs.setdefault((r["task"], r.get("cell") or r["seed"]), []).append(r)
            worst_runs = min(runs.values(), key=lambda g: g[0]["accuracy"])
            worst = worst_runs[0]
            low = sum(g[0]["accuracy"] < 0.8 for g in runs.values())
            where = "all seeds" if len(worst_runs) > 1 else f"seed {worst['seed']}"
            record = "–"
            if method != first:
                diffs = [round(cells[(t, first)]["accuracy_mean"] - cells[(t, method)]["accuracy_mean"], 9)
                         for t in self.tasks if (t, first) in cells and (t, method) in cells]
                record = (f"{sum(d >= 0.01 for d in diffs)} / {sum(abs(d) < 0.01 for d in diffs)} / "
                          f"{sum(d <= -0.01 for d in diffs)}")
            lines.append(f"| {method} | {100 * worst['accuracy']:.1f} % ({worst['task']}, {where}) | "
                         f"{low} of {len(runs)} | {record} |")
        return lines

    def _diagnosis_lines(self) -> list[str]:
        """The cells `train`'s run diagnosis flagged (stuck, cannot fit, unfinished; artstudio.diagnosis)."""
        flagged = [r for r in self.records if r.get("diagnosis")]
        if not flagged:
            return []
        lines = ["", "Cells the run diagnosis flagged (docs/robust.md): a stuck run, one that cannot fit its own "
                     "training rows, or one still learning.", "",
                 "| method | task | seed | verdict | own training rows right | test |", "|---|---|---:|---|---:|---:|"]
        for r in sorted(flagged, key=lambda r: (r["method"], r["task"], r["seed"])):
            fit = r.get("train_accuracy")
            lines.append(f"| {r['method']} | {r['task']} | {r['seed']} | {r['diagnosis']} | "
                         f"{'–' if fit is None else f'{100 * fit:.0f} %'} | {_fmt(100 * r['accuracy'] if r.get('accuracy') is not None else None, '.1f')} % |")
        return lines

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
            from .plots import write_plots

            written += write_plots(self, folder)
        return written


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)

