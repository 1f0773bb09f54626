"""Does a 30-trial study beat the default configuration? Test error, default against tuned, per method and task.

For each method and task it runs (or resumes) `artstudio tune` with its final runs: the best
configuration of the study and the method's default configuration are each trained on all training
rows for `--steps` steps and scored on the test split. It reports the relative reduction of the test
error, (error_default - error_tuned) / error_default, and whether the issue's target holds: a
reduction of at least 20 % wherever the default scores below 95 %.

    OMP_NUM_THREADS=1 python benchmarks/tune_gain.py --methods lora,art \
        --tasks sort-answer,reverse-json,word-problems-json,first-json --trials 30 --out runs/tune-gain

Studies are resumable (each lives in OUT/METHOD-TASK/study.db): a second run only adds what is missing.

`--finals-from TABLE.csv` runs no study: it trains the final runs again, the default configuration and
each row's recorded best (`best_params`), as the study's final runs train now (for ART: `train`'s own
starts), and writes the same table. It re-measures a recorded table after the final runs changed.
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


def finals_from(table: Path, methods: list[str], tasks: list[str], args) -> list[dict]:
    """The final runs of each recorded row of `table` (method and task among those asked), trained again:
    (default accuracy, tuned accuracy, test rows, best_params, best_val, trials) per row."""
    from artstudio.backbone import DEFAULT_MODEL, load_backbone
    from artstudio.comparison.guard import BackboneGuard
    from artstudio.tune.space import load_space
    from artstudio.tune.study import _coerce, _final_run, train_config

    with open(table, newline="") as f:
        recorded = [r for r in csv.DictReader(f) if r["method"] in methods and r["task"] in tasks]
    if not recorded:
        raise ConfigError(f"--finals-from {table}: no row for methods {methods} and tasks {tasks}")
    # The study's own final runs: one backbone for all, a finished run of the same config reused, a stopped
    # one continued from its checkpoint.
    guard = BackboneGuard(lambda: load_backbone(args.model or DEFAULT_MODEL))
    out = []
    for r in recorded:
        config = _coerce(None, {"method": r["method"], "data": r["task"], "model": args.model, "seed": args.seed,
                                "steps": args.steps})
        params = json.loads(r["best_params"])
        best_train, best_opts = load_space(r["method"], None).apply(params)
        folder = args.out / f"{r['method']}-{Path(r['task']).name}" / "final"
        scores = {}
        for label, (train_over, options) in (("default", ({}, {})), ("best", (best_train, best_opts))):
            tc = train_config(config, train_over, options, out=folder / label, data=config.data,
                              eval_data=config.eval_data, steps=config.steps, final=True)
            scores[label] = _final_run(tc, guard, None)
        out.append((r, scores["default"]["accuracy"], scores["best"]["accuracy"], scores["default"]["eval_n"],
                    params, float(r["best_val"]), int(r["trials"])))
    return out


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
    ap.add_argument("--finals-from", type=Path, default=None,
                    help="a recorded table: train only its final runs again (default and recorded best), no study")
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]

    rows = []

    def add(method, task, default, best, eval_n, params, best_val, trials):
        reduction = error_reduction(default, best)
        applies = default < DEFAULT_CEILING
        rows.append({"method": method, "task": task, "default": default, "tuned": best,
                     "error_reduction": reduction, "target_applies": applies,
                     "met": (reduction is not None and reduction >= TARGET_REDUCTION) if applies else None,
                     "best_params": json.dumps(params, sort_keys=True), "best_val": best_val, "trials": trials,
                     "eval_n": eval_n})
        print(f"{method} {task}: default {default:.1%} -> tuned {best:.1%}"
              + (f", error reduction {reduction:+.0%}" if reduction is not None else ", default makes no error")
              + ("" if applies else " (default >= 95 %: target does not apply)"), flush=True)

    if args.finals_from is not None:
        try:
            for r, default, best, eval_n, params, best_val, trials in finals_from(args.finals_from, methods, tasks, args):
                add(r["method"], r["task"], default, best, eval_n, params, best_val, trials)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    for method in methods if args.finals_from is None else []:
        for task in tasks:
            out = args.out / f"{method}-{Path(task).name}"  # a built-in task name or a task folder
            try:
                res = tune(method=method, data=task, model=args.model, trials=args.trials, sampler=args.sampler,
                           seed=args.seed, steps=args.steps, trial_steps=args.trial_steps, out=str(out),
                           storage=f"sqlite:///{(out / 'study.db').resolve()}")
            except ConfigError as err:
                print(f"error: {method} on {task}: {err}", file=sys.stderr)
                return 2
            add(method, task, res.final["default"]["accuracy"], res.final["best"]["accuracy"],
                res.final["default"]["eval_n"], res.best_params, res.best_value, res.n_complete)

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
