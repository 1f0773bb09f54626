"""Is the proxy trustworthy? Spearman correlation between proxy-subset and full-data scores (issue #14).

    OMP_NUM_THREADS=1 python benchmarks/tune_proxy.py --method lora --task add-json --configs 12 \\
        --fractions 0.05,0.1,0.25 --steps 100 --out docs/results/tune_proxy_lora.json \\
        --plot docs/results/tune_proxy_lora.png

`artstudio tune` scores every trial by training it on a proxy subset of the training rows (`--proxy`)
for a short budget and picking the best by its validation accuracy. That is only sound if the proxy
ranks configurations the way full training would. This script measures it, with the tune package's
own pieces (artstudio/tune/study.py):

1. N configurations of the method's search space (`draw_configs`: the default configuration first,
   then draws of the `random` sampler with `--seed`).
2. The splits of a study (`prepare_splits`): a validation part carved from the training rows (the same
   for every fraction, the test split is never read), the rest ("fit" rows), and a proxy subset of
   the fit rows per fraction.
3. Every configuration is trained (`train_config` + `train_on`, one shared backbone handed back clean
   after each run) on all fit rows for `--steps` steps (its *full* score) and, per fraction, on that
   proxy subset for the trial budget (`trial_steps`: default steps x fraction, at least 50 (20 when these
   numbers were measured), as tune
   does) (its *proxy* score); all scores are accuracy on the same validation rows.
4. Per fraction: Spearman's rank correlation between proxy and full scores over the N configurations
   (average ranks for ties; undefined, `null`, when either side is constant), whether the proxy's
   best configuration is the full-data best (and its full-data rank), and the seconds the fraction's
   runs took.

Outputs: a table on stdout, `--out` JSON, `--plot` PNG (proxy vs full score, one colour per fraction).
Finished runs are cached in `--work` (a run with the same TrainConfig is not repeated), so a killed
measurement resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]


# --- rank correlation --------------------------------------------------------------------------------------

def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n; tied values share the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho (Pearson correlation of average ranks, as scipy.stats.spearmanr); None when undefined
    (fewer than 2 points, or either side constant)."""
    if len(x) != len(y):
        raise ValueError("spearman: x and y differ in length")
    if len(x) < 2:
        return None
    try:  # scipy when the environment has it; the same number otherwise
        from scipy.stats import spearmanr
    except ImportError:
        spearmanr = None
    if spearmanr is not None:
        if len(set(x)) < 2 or len(set(y)) < 2:
            return None
        rho = float(spearmanr(x, y).statistic)
        return None if math.isnan(rho) else rho
    rx, ry = average_ranks(x), average_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


# --- the measurement -------------------------------------------------------------------------------------

def _key(f: float) -> str:
    return f"{f:g}"


def _run(guard, tc, cache: Path) -> dict:
    """Train and score one TrainConfig; a cached result with the same config is reused."""
    from artstudio.tune.study import train_on

    want = json.dumps({k: v for k, v in asdict(tc).items() if k != "out"}, sort_keys=True, default=str)
    if cache.is_file():
        record = json.loads(cache.read_text(encoding="utf-8"))
        if record.get("config") == want:
            return record["result"] | {"cached": True}
    t0 = time.perf_counter()
    m = train_on(guard, tc)
    if m.get("accuracy") is None:
        raise RuntimeError(f"run {tc.out}: no validation score")
    result = {"accuracy": float(m["accuracy"]), "eval_n": m.get("eval_n"), "steps": tc.steps,
              "seconds": round(time.perf_counter() - t0, 2)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"config": want, "result": result}, indent=2) + "\n", encoding="utf-8")
    return result


def measure(method: str, task: str, *, configs: int = 12, fractions: Sequence[float] = (0.05, 0.1, 0.25),
            trial_steps: int | None = None, steps: int = 100, val_size: int | None = None,
            val_fraction: float = 0.1, seed: int = 0, model: str | None = None, work: str | Path | None = None,
            device: str | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Train `configs` configurations of `method` on `task` at full data and on every proxy fraction;
    the scores, the Spearman correlation per fraction and the seconds each fraction cost (a dict, JSON-ready)."""
    from artstudio.backbone import DEFAULT_MODEL, load_backbone
    from artstudio.comparison.guard import BackboneGuard
    from artstudio.errors import ConfigError
    from artstudio.methods import get_method
    from artstudio.tune import TuneConfig
    from artstudio.tune.space import method_space
    from artstudio.tune.study import check_config, draw_configs, prepare_splits, train_config
    from artstudio.tune.study import trial_steps as tune_trial_steps

    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    started = time.perf_counter()
    get_method(method)  # an unknown method: a ConfigError naming the known ones
    fractions = [float(f) for f in fractions]
    if not fractions or any(not 0 < f < 1 for f in fractions):
        raise ConfigError(f"fractions must be in (0, 1), got {fractions}")
    if configs < 2:
        raise ConfigError(f"a rank correlation needs at least 2 configurations, got {configs}")
    work = Path(work or ROOT / "runs" / "tune_proxy" / f"{method}-{Path(task).name}-seed{seed}")
    base = dict(method=method, data=task, model=model, val_fraction=val_fraction, val_size=val_size, steps=steps,
                trial_steps=trial_steps, seed=seed, device=device)
    full_cfg = check_config(TuneConfig(**base, proxy=1.0))
    space = method_space(method)  # before any model loads: a method without a space fails here
    # The splits of a study, one per fraction; the full-data run trains on every fit row (proxy 1.0).
    # An unknown task is a DataError from here, naming the built-in tasks' list.
    full = prepare_splits(full_cfg, work / "splits" / "full")
    per = {}
    for f in fractions:
        cfg = check_config(TuneConfig(**base, proxy=f))
        per[f] = (cfg, prepare_splits(cfg, work / "splits" / f"proxy-{_key(f)}"))
        if per[f][1].val_file.read_bytes() != full.val_file.read_bytes():
            raise RuntimeError("the validation split differs between fractions")  # prepare_splits is seeded
    guard = BackboneGuard(lambda: load_backbone(model or DEFAULT_MODEL, device=device))
    space = space.resolved(guard.backbone.geometry, guard.backbone)
    points = draw_configs(space, method, configs, seed=seed, backbone=guard.backbone)
    n_trial = {f: tune_trial_steps(cfg) for f, (cfg, _) in per.items()}
    say(f"tune_proxy: {method} on {task} · {configs} configurations · full: {steps} steps on {full.n_fit} rows · "
        + " · ".join(f"proxy {_key(f)}: {n_trial[f]} steps on {s.n_proxy} rows" for f, (_, s) in per.items())
        + f" · scored on {full.n_val} validation rows (test split never read)")

    rows = []
    seconds = {"full": 0.0} | {_key(f): 0.0 for f in fractions}
    for i, params in enumerate(points):
        train_over, options = space.apply(params)
        run = work / "runs" / f"config-{i:02d}"
        tc = train_config(full_cfg, train_over, options, out=run / f"full-{steps}steps", data=str(full.proxy_folder),
                          eval_data=str(full.val_file), steps=steps, final=False)
        r = _run(guard, tc, run / f"full-{steps}steps.json")
        seconds["full"] += r["seconds"]
        row = {"index": i, "default": i == 0 and _is_default(space, method, params, guard.backbone), "params": params,
               "full": r["accuracy"], "full_seconds": r["seconds"], "proxy": {}, "proxy_seconds": {}}
        for f, (cfg, splits) in per.items():
            name = f"proxy-{_key(f)}-{n_trial[f]}steps"  # runs of another trial budget keep their own folder
            tc = train_config(cfg, train_over, options, out=run / name, data=str(splits.proxy_folder),
                              eval_data=str(splits.val_file), steps=n_trial[f], final=False)
            r = _run(guard, tc, run / f"{name}.json")
            seconds[_key(f)] += r["seconds"]
            row["proxy"][_key(f)], row["proxy_seconds"][_key(f)] = r["accuracy"], r["seconds"]
        rows.append(row)
        say(f"tune_proxy: config {i + 1}/{configs} full {row['full']:.1%} · "
            + " · ".join(f"proxy {k} {v:.1%}" for k, v in row["proxy"].items())
            + f" · {time.perf_counter() - started:.0f} s so far")

    full_scores = [r["full"] for r in rows]
    best_full = max(full_scores)
    summary = {}
    for f in fractions:
        k = _key(f)
        proxy_scores = [r["proxy"][k] for r in rows]
        pick = max(range(len(rows)), key=lambda j: (proxy_scores[j], -j))  # the study's pick: best proxy score
        summary[k] = {"spearman": spearman(proxy_scores, full_scores), "trial_steps": n_trial[f],
                      "n_proxy": per[f][1].n_proxy, "seconds": round(seconds[k], 1),
                      "picked": pick, "picked_full": full_scores[pick],
                      "picked_full_rank": 1 + sum(s > full_scores[pick] for s in full_scores),
                      "regret": round(best_full - full_scores[pick], 6)}
    return {"method": method, "task": task, "model": model or DEFAULT_MODEL, "seed": seed, "n_configs": len(rows),
            "steps": steps, "n_train": full.n_train, "n_fit": full.n_fit, "n_val": full.n_val,
            "fractions": [_key(f) for f in fractions], "full_seconds": round(seconds["full"], 1),
            "summary": summary, "configs": rows, "wall_seconds": round(time.perf_counter() - started, 1)}


def _is_default(space, method, params, backbone) -> bool:
    from artstudio.tune.study import default_point

    return default_point(space, method, backbone) == params


# --- output --------------------------------------------------------------------------------------------------

def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def table(result: dict) -> str:
    """A Markdown table: one row per configuration, then Spearman, the picked configuration and time per fraction."""
    fr = result["fractions"]
    names = list(result["configs"][0]["params"]) if result["configs"] else []
    head = ["#"] + names + [f"full ({result['steps']} steps)"] + [
        f"proxy {k} ({result['summary'][k]['trial_steps']} steps)" for k in fr]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["configs"]:
        label = f"{r['index']}" + (" (default)" if r["default"] else "")
        cells = [label] + [_fmt(r["params"][n]) for n in names] + [f"{r['full']:.1%}"] + [f"{r['proxy'][k]:.1%}" for k in fr]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| | full | " + " | ".join(f"proxy {k}" for k in fr) + " |", "|---|---|" + "---|" * len(fr)]
    s = result["summary"]
    rho = lambda v: "undefined" if v is None else f"{v:+.2f}"  # noqa: E731
    lines.append("| Spearman ρ vs full | | " + " | ".join(rho(s[k]["spearman"]) for k in fr) + " |")
    lines.append("| proxy's pick: full score (rank) | " + f"best {max(r['full'] for r in result['configs']):.1%} | "
                 + " | ".join(f"#{s[k]['picked']}: {s[k]['picked_full']:.1%} ({s[k]['picked_full_rank']})" for k in fr) + " |")
    lines.append("| rows trained on | " + f"{result['n_fit']} | " + " | ".join(str(s[k]["n_proxy"]) for k in fr) + " |")
    lines.append("| seconds, all configurations | " + f"{result['full_seconds']:.0f} | "
                 + " | ".join(f"{s[k]['seconds']:.0f}" for k in fr) + " |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    full = [r["full"] for r in result["configs"]]
    markers, sizes = "os^Dv<>p", [110, 60, 25, 12, 8, 6, 5, 4]  # big to small: coinciding points stay visible
    for i, k in enumerate(result["fractions"]):
        s = result["summary"][k]
        rho = "undefined" if s["spearman"] is None else f"{s['spearman']:+.2f}"
        ax.scatter([r["proxy"][k] for r in result["configs"]], full, alpha=0.7, marker=markers[i % 8],
                   s=sizes[min(i, 7)], label=f"proxy {k} ({s['n_proxy']} rows, {s['trial_steps']} steps): ρ = {rho}")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("proxy score (validation accuracy, proxy training)")
    ax.set_ylabel(f"full score (validation accuracy, {result['steps']} steps on {result['n_fit']} rows)")
    ax.set_title(f"{result['method']} on {Path(result['task']).name}: {result['n_configs']} configurations", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="lora")
    ap.add_argument("--task", default="add-json", help="a built-in task name, a task folder or train.jsonl")
    ap.add_argument("--configs", type=int, default=12)
    ap.add_argument("--fractions", default="0.05,0.1,0.25")
    ap.add_argument("--trial-steps", type=int, default=None,
                    help="steps of a proxy run (default: what tune uses for a trial: steps x fraction, at least 50)")
    ap.add_argument("--steps", type=int, default=100, help="steps of a full-data run")
    ap.add_argument("--val-size", type=int, default=None, help="score on at most N validation rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None, help="default: the shipped studio-tiny")
    ap.add_argument("--device", default=None)
    ap.add_argument("--work", default=None, help="run folders and the cache (default: runs/tune_proxy/METHOD-TASK-seedN)")
    ap.add_argument("--out", default=None, help="JSON results (default: docs/results/tune_proxy_METHOD.json)")
    ap.add_argument("--plot", default=None, help="scatter PNG (default: docs/results/tune_proxy_METHOD.png)")
    args = ap.parse_args(argv)

    from artstudio.errors import ArtStudioError

    try:
        fractions = [float(x) for x in args.fractions.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--fractions: expected comma-separated numbers in (0, 1), got {args.fractions!r}")
    try:
        result = measure(args.method, args.task, configs=args.configs, fractions=fractions,
                         trial_steps=args.trial_steps, steps=args.steps, val_size=args.val_size, seed=args.seed,
                         model=args.model, work=args.work, device=args.device)
    except ArtStudioError as err:
        print(f"tune_proxy: error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out or ROOT / "docs" / "results" / f"tune_proxy_{args.method}.json")
    png = Path(args.plot or ROOT / "docs" / "results" / f"tune_proxy_{args.method}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    plot(result, png)
    print(table(result))
    print(f"\n{result['n_configs']} configurations, {result['wall_seconds']:.0f} s wall; wrote {out} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
