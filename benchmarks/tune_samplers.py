"""Does the language-guided sampler find good configurations in fewer trials than TPE?

Runs `artstudio tune` for each sampler and study seed on one method and task (trials only, no final
runs), then reports, per seed, TPE's best value after all its trials and the trial at which each
sampler first reached it, averaged over the seeds, and plots the mean best-so-far curve per sampler.

    python benchmarks/tune_samplers.py --method lora --task sort-answer --trials 30 --seeds 0,1,2 --out runs/tune-samplers
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

from artstudio.tune import tune
from artstudio.tune.report import best_so_far, plot_best_so_far


def values_of(out: Path) -> list[float | None]:
    """Validation accuracy of each trial in trial order (None for a failed one)."""
    with open(out / "trials.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["number"]))
    return [float(r["value"]) if r["value"] not in ("", "None") else None for r in rows]


def first_reaching(values: list[float | None], target: float) -> int | None:
    """1-based trial number at which the best so far first reaches `target`."""
    for i, best in enumerate(best_so_far(values), start=1):
        if best is not None and best >= target - 1e-12:
            return i
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="lora")
    ap.add_argument("--task", default="sort-answer")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--samplers", default="lgbo,tpe", help="the first is compared against the last")
    ap.add_argument("--out", type=Path, default=Path("runs/tune-samplers"))
    args = ap.parse_args(argv)

    samplers = [s.strip() for s in args.samplers.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    curves: dict[str, dict[int, list[float | None]]] = {s: {} for s in samplers}
    for seed in seeds:
        for sampler in samplers:
            out = args.out / f"{sampler}-seed{seed}"
            tune(method=args.method, data=args.task, trials=args.trials, sampler=sampler, seed=seed, final=False, rerank=0,
                 out=str(out), storage=f"sqlite:///{(out / 'study.db').resolve()}")
            curves[sampler][seed] = values_of(out)

    ref = samplers[-1]  # the reference sampler whose 30-trial best the others must reach
    report = {"method": args.method, "task": args.task, "trials": args.trials, "seeds": seeds, "per_seed": {}}
    for seed in seeds:
        target = max(v for v in curves[ref][seed] if v is not None)
        report["per_seed"][seed] = {
            "target": target,
            **{f"{s}_trials_to_target": first_reaching(curves[s][seed], target) for s in samplers},
            **{f"{s}_best": max(v for v in curves[s][seed] if v is not None) for s in samplers},
        }
    for s in samplers:
        reached = [r[f"{s}_trials_to_target"] for r in report["per_seed"].values()]
        report[f"{s}_mean_trials_to_target"] = (statistics.mean(r if r is not None else args.trials + 1 for r in reached))
        report[f"{s}_reached"] = sum(r is not None for r in reached)
    mean_curves = {}
    for s in samplers:
        per = [best_so_far(curves[s][seed]) for seed in seeds]
        mean_curves[s] = [statistics.mean(c[i] for c in per if c[i] is not None) for i in range(args.trials)]
    plot_best_so_far(mean_curves, args.out / "best_so_far.png",
                     f"{args.method} on {args.task}: mean best-so-far over seeds {args.seeds}")
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    for seed, r in report["per_seed"].items():
        print(f"seed {seed}: {ref}'s best {r['target']:.3f}; reached by " +
              ", ".join(f"{s} at trial {r[f'{s}_trials_to_target']}" for s in samplers))
    print("mean trials to reach it (a miss counts as trials + 1): " +
          ", ".join(f"{s} {report[f'{s}_mean_trials_to_target']:.1f} ({report[f'{s}_reached']}/{len(seeds)} reached)"
                    for s in samplers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
