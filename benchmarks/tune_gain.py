"""Does a 30-trial study beat the default configuration? Test error, default against tuned, per method and task.

For each method and task it runs (or resumes) `artstudio tune` with its final runs: the best
configuration of the study and the method's default configuration are each trained on all training
rows for `--steps` steps and scored on the test split. It reports the relative reduction of the test
error, (error_default - error_tuned) / error_default, and whether the issue's target holds: a
reduction of at least 20 % wherever the default scores below 95 %.

    OMP_NUM_THREADS=1 python benchmarks/tune_gain.py --methods lora,art \
        --tasks sort-answer,reverse-json,word-problems-json,first-json --trials 30 --out runs/tune-gain

Studies are resumable (each lives in OUT/METHOD-TASK/study.db): a second run only adds what is missing.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from artstudio.errors import ConfigError
from artstudio.tune import tune

TARGET_REDUCTION = 0.20  # the target, wherever the default is below DEFAULT_CEILING
DEFAULT_CEILING = 0.95


def error_reduction(default: float, tuned: float) -> float | None:
    """Relative reduction of the error rate; None when the default makes no error."""
    err = 1.0 - default
    return None if err <= 0 else (err - (1.0 - tuned)) / err


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default="lora,art")
    ap.add_argument("--tasks", default="sort-answer,reverse-json,word-problems-json,first-json")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--steps", type=int, default=300, help="steps of the final runs (best and default)")
    ap.add_argument("--trial-steps", type=int, default=None, help="steps of each trial (default: tune's)")
    ap.add_argument("--sampler", default="lgbo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None, help="model folder (default: studio-tiny)")
    ap.add_argument("--out", type=Path, default=Path("runs/tune-gain"))
    ap.add_argument("--csv", type=Path, default=None, help="write the table here too (default: OUT/tune_gain.csv)")
    args = ap.parse_args(argv)

    rows = []
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
            out = args.out / f"{method}-{Path(task).name}"  # a built-in task name or a task folder
            try:
                res = tune(method=method, data=task, model=args.model, trials=args.trials, sampler=args.sampler,
                           seed=args.seed, steps=args.steps, trial_steps=args.trial_steps, out=str(out),
                           storage=f"sqlite:///{(out / 'study.db').resolve()}")
            except ConfigError as err:
                print(f"error: {method} on {task}: {err}", file=sys.stderr)
                return 2
            default, best = res.final["default"]["accuracy"], res.final["best"]["accuracy"]
            reduction = error_reduction(default, best)
            applies = default < DEFAULT_CEILING
            rows.append({"method": method, "task": task, "default": default, "tuned": best,
                         "error_reduction": reduction, "target_applies": applies,
                         "met": (reduction is not None and reduction >= TARGET_REDUCTION) if applies else None,
                         "best_params": json.dumps(res.best_params, sort_keys=True),
                         "best_val": res.best_value, "trials": res.n_complete,
                         "eval_n": res.final["default"]["eval_n"]})
            print(f"{method} {task}: default {default:.1%} -> tuned {best:.1%}"
                  + (f", error reduction {reduction:+.0%}" if reduction is not None else ", default makes no error")
                  + ("" if applies else " (default >= 95 %: target does not apply)"), flush=True)

    path = args.csv or args.out / "tune_gain.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"\n| method | task | default | tuned | error reduction | target (>= {TARGET_REDUCTION:.0%} where default < 95 %) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        red = "n/a (no error)" if r["error_reduction"] is None else f"{r['error_reduction']:+.0%}"
        verdict = {True: "met", False: "missed", None: "does not apply"}[r["met"]]
        print(f"| {r['method']} | {r['task']} | {r['default']:.1%} | {r['tuned']:.1%} | {red} | {verdict} |")
    applicable = [r for r in rows if r["target_applies"]]
    print(f"\ntarget met on {sum(bool(r['met']) for r in applicable)} of the {len(applicable)} cells where it applies; "
          f"table in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
