"""How much the lr grid's pick depends on the seed: for each method and task of a finished comparison run
with `--grid-seeds N`, the rate each grid seed alone would pick against the rate the mean picks.

    python benchmarks/grid_picks.py runs/compare-gs3

Reads RUN/grid/*/cell.json (validation accuracy, then validation loss, as the harness ranks them) and
prints one line per method × task, then per method how often seed 0 alone would have picked another
rate and how often the grid seeds disagree among themselves.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path


def picks(folder: Path) -> tuple[list[str], dict]:
    runs: dict = collections.defaultdict(dict)  # (method, task) -> lr -> seed -> (accuracy, -val loss)
    for path in sorted(folder.glob("grid/*/cell.json")):
        r = json.loads(path.read_text())
        runs[r["method"], r["task"]].setdefault(r["lr"], {})[r["seed"]] = (r["accuracy"], -(r.get("val_loss") or 0.0))
    lines, summary = [], collections.Counter()
    for (method, task), by_lr in sorted(runs.items()):
        seeds = sorted(set.intersection(*(set(v) for v in by_lr.values())))
        if len(by_lr) < 2 or not seeds:
            continue  # a grid still running
        mean = {lr: tuple(sum(v[s][i] for s in seeds) / len(seeds) for i in (0, 1)) for lr, v in by_lr.items()}
        chosen = max(mean, key=mean.get)
        alone = [max(by_lr, key=lambda lr: by_lr[lr][s]) for s in seeds]
        summary[method, "tasks"] += 1
        summary[method, "seed 0 alone picks another rate"] += alone[0] != chosen
        summary[method, "the seeds disagree"] += len(set(alone)) > 1
        scores = "  ".join(f"{lr:.3g}: " + " / ".join(f"{100 * v[s][0]:.0f}" for s in seeds) for lr, v in sorted(by_lr.items()))
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
