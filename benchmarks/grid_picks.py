"""How much the lr grid's pick depends on the seed: for each method and task of a finished comparison run
with `--grid-seeds N`, the rate each grid seed alone would pick against the rate the mean picks.

    python benchmarks/grid_picks.py runs/compare-gs3

Reads RUN/grid/*/cell.json, ranks the rates with the harness's own rule (`rank_rates`), and
prints one line per method × task, then per method how often seed 0 alone would have picked another
rate and how often the grid seeds disagree among themselves.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from artstudio.comparison.harness import rank_rates


def picks(folder: Path) -> tuple[list[str], dict]:
    runs: dict = collections.defaultdict(dict)  # (method, task) -> lr -> seed -> grid run record
    for path in sorted(folder.glob("grid/*/cell.json")):
        r = json.loads(path.read_text())
        runs[r["method"], r["task"]].setdefault(r["lr"], {})[r["seed"]] = r
    lines, summary = [], collections.Counter()
    for (method, task), by_lr in sorted(runs.items()):
        seeds = sorted(set.intersection(*(set(v) for v in by_lr.values())))
        if len(by_lr) < 2 or not seeds:
            continue  # a grid still running
        chosen, _ = rank_rates({lr: {s: v[s] for s in seeds} for lr, v in by_lr.items()})
        alone = [rank_rates({lr: {s: v[s]} for lr, v in by_lr.items()})[0] for s in seeds]
        summary[method, "tasks"] += 1
        summary[method, "seed 0 alone picks another rate"] += alone[0] != chosen
        summary[method, "the seeds disagree"] += len(set(alone)) > 1
        scores = "  ".join(f"{lr:.3g}: " + " / ".join(f"{100 * v[s]['accuracy']:.0f}" for s in seeds)
                           for lr, v in sorted(by_lr.items()))
        lines.append(f"{method:12s} {task:20s} mean picks {chosen:<7.3g} each seed alone: "
                     f"{', '.join(f'{a:.3g}' for a in alone):24s} | validation % per seed: {scores}")
    return lines, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a comparison's --out folder")
    args = parser.parse_args()
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder")
    lines, summary = picks(args.folder)
    if not lines:
        parser.error(f"{args.folder} holds no finished lr grid (grid/*/cell.json); run compare with --lr-grid")
    print("\n".join(lines))
    for method in sorted({m for m, _ in summary}):
        n = summary[method, "tasks"]
        print(f"{method}: seed 0 alone picks another rate on {summary[method, 'seed 0 alone picks another rate']} of "
              f"{n} tasks; the seeds disagree on {summary[method, 'the seeds disagree']} of {n}")


if __name__ == "__main__":
    main()
