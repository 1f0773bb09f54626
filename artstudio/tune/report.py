"""What a study leaves in `--out`: trials.csv, best-so-far and importance plots, proxy-vs-full, report.md."""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text


def trial_rows(study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({"number": t.number, "state": t.state.name, "value": t.value,
                     "seconds": t.user_attrs.get("seconds"), "default": bool(t.user_attrs.get("default")),
                     **{f"param_{k}": v for k, v in t.params.items()}})
    return rows


def write_csv(rows: list[dict], path: Path) -> Path:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for r in rows:
        w.writerow(r)
    atomic_write_text(path, buf.getvalue())
    return path


def best_so_far(values: list[float | None]) -> list[float | None]:
    out, best = [], None
    for v in values:
        if v is not None and (best is None or v > best):
            best = v
        out.append(best)
    return out


def importances(study) -> dict[str, float]:
    """Optuna's default evaluator (PED-ANOVA); a spread-of-means fallback when it cannot run."""
    import optuna
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if len(done) < 2 or len({t.value for t in done}) < 2:
        return {}  # every trial scored the same: no parameter explains a spread (it listed equal shares for each)
    try:
        with warnings.catch_warnings():  # "importances will be equal" on a few equal trials: the plot shows it
            warnings.simplefilter("ignore", UserWarning)
            return dict(optuna.importance.get_param_importances(study))
    except Exception:  # noqa: BLE001 - few trials or constant values: fall back to a simple measure
        out = {}
        for name in done[0].params:
            groups: dict[Any, list[float]] = {}
            for t in done:
                v = t.params.get(name)
                key = v if not isinstance(v, float) else round(v, 2)
                groups.setdefault(key, []).append(t.value)
            means = [sum(g) / len(g) for g in groups.values()]
            if len(means) > 1:  # a parameter with one value in every trial explains nothing: not listed
                out[name] = max(means) - min(means)
        total = sum(out.values()) or 1.0
        return {k: v / total for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


def plot_best_so_far(curves: dict[str, list[float | None]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in curves.items():
        xs = list(range(1, len(values) + 1))  # after 1, 2, ... trials (trial numbers in trials.csv start at 0)
        ax.scatter(xs, [v if v is not None else float("nan") for v in values], s=12, alpha=0.4)
        ax.step(xs, [v if v is not None else float("nan") for v in best_so_far(values)], where="post", label=label)
    ax.set_xlabel("trials run")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # no trial 1.5
    ax.set_ylabel("validation accuracy (proxy training)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_importance(imp: dict[str, float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(imp)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1.2))
    ax.barh(names, [imp[n] for n in names])
    ax.set_xlabel("importance (Optuna PED-ANOVA, normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_proxy_vs_full(points: list[tuple[str, float, float]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for label, x, y in points:
        ax.scatter([x], [y])
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("proxy score (validation, proxy training)")
    ax.set_ylabel("full score (test, full training)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(study, space, config, out: Path, *, final: dict | None, storage_url: str, splits,
                  rerank: list | None = None, chosen=None) -> dict:
    rows = trial_rows(study)
    files = {"trials.csv": write_csv(rows, out / "trials.csv")}
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    values = [r["value"] for r in rows if r["state"] in ("COMPLETE", "FAIL")]
    if values:
        files["best_so_far.png"] = plot_best_so_far({config.sampler: values}, out / "best_so_far.png",
                                                    f"{config.method} · {study.user_attrs.get('task', '')}")
    imp = importances(study)
    if imp:
        files["importance.png"] = plot_importance(imp, out / "importance.png")
    if final and all(final[k].get("proxy_value") is not None and final[k].get("accuracy") is not None for k in final):
        pts = [(k, final[k]["proxy_value"], final[k]["accuracy"]) for k in final]
        files["proxy_vs_full.png"] = plot_proxy_vs_full(pts, out / "proxy_vs_full.png")
    best = chosen if chosen is not None else study.best_trial
    lines = [f"# Tuning {config.method} on {study.user_attrs.get('task', config.data)}", "",
             f"- study `{study.study_name}` in `{storage_url}` (`optuna-dashboard {storage_url}`)",
             f"- sampler `{config.sampler}`, {len(complete)} finished trials"
             + (f" ({len(rows) - len(complete)} more failed or stopped; a killed trial is retried)"
                if len(rows) > len(complete) else ""),
             f"- each trial: {splits.n_proxy} proxy rows of {splits.n_fit} (proxy {config.proxy:g}), "
             f"scored on {splits.n_val} validation rows carved from the {splits.n_train} training rows; "
             "the test split is read only by the final runs", "",
             "## Best configuration" + (" (re-ranked at the full budget)" if rerank else
                                         " (validation accuracy on proxy training)"), "",
             f"trial {best.number}" + (" (the default)" if best.user_attrs.get("default") else "")
             + f": **{best.value:.1%}** on validation after its proxy trial", "", "| parameter | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in best.params.items()]
    default = next((r for r in complete if r["default"]), None)
    if default is not None:
        lines += ["", f"Default configuration (trial {default['number']}): {default['value']:.1%} on validation."]
    if rerank:
        k = len([r for r in rerank if not r['default']])
        lines += ["", f"## Re-ranking: the best {'trial' if k == 1 else f'{k} trials'} and the default, "
                      f"{config.steps} steps on the {splits.n_fit} non-validation rows", "",
                  "The proxy trials are short; these runs train as the final ones do and are scored on the same "
                  "validation rows. The best of them is the study's pick (a tie goes to the default).", "",
                  "| trial | proxy score | validation after full steps | train seconds |", "|---|---|---|---|"]
        for r in rerank:
            mark = " **(picked)**" if r["trial"] == best.number else ""
            val = "" if r["val_accuracy"] is None else f"{r['val_accuracy']:.1%}"
            who = "default, outside --space" if r["trial"] is None else f"{r['trial']}{' (default)' if r['default'] else ''}"
            proxy = "" if r["proxy_value"] is None else f"{r['proxy_value']:.1%}"
            lines.append(f"| {who}{mark} | {proxy} | {val} | {r['train_seconds']} |")
    if final:
        lines += ["", f"## Final runs: all training rows, {config.steps} steps (budget: {config.budget}), test split", "",
                  "| configuration | test accuracy | proxy score | steps | train seconds |", "|---|---|---|---|---|"]
        for k in ("default", "best"):
            r = final[k]
            proxy = "" if r.get("proxy_value") is None else f"{r['proxy_value']:.1%}"
            scored = "not scored (no test split)" if r.get("accuracy") is None else f"{r['accuracy']:.1%}"
            lines.append(f"| {k} | {scored} | {proxy} | {r['steps']} | {r['train_seconds']} |")
        d, b = final["default"]["accuracy"], final["best"]["accuracy"]
        if d is not None and b is not None and d < 1:
            lines += ["", f"Relative test-error reduction: {((1 - d) - (1 - b)) / (1 - d):+.1%} "
                          f"(error {1 - d:.1%} → {1 - b:.1%})."]
        from .study import final_verdict

        if (said := final_verdict(final)) is not None:
            lines += ["", f"**{said[0].upper()}{said[1:]}.**"]
    if imp:
        lines += ["", "## Parameter importance", "", "| parameter | importance |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in imp.items()]
    elif len(complete) >= 2 and len({r["value"] for r in complete}) == 1:
        lines += ["", "## Parameter importance", "", "Not measured: every finished trial scored the same, so no "
                  "parameter explains a difference."]
    from .study import TUNED_RUN

    tuned = out / TUNED_RUN  # best.json's run folder: the study never writes it
    best_record = json.loads((out / "best.json").read_text(encoding="utf-8")) if (out / "best.json").is_file() else {}
    best_lr, best_batch = best_record.get("lr"), best_record.get("batch_size")
    lines += ["", "## Files", "",
              f"- `best.json`: `artstudio train --config {out / 'best.json'}` trains the best "
              f"configuration again, as it is, into `{tuned}` (the study's own run of it is "
              f"`{'final/best/' if (out / 'final' / 'best').is_dir() else 'final/default/'}`)",
              f"- `best_method_options.json`: `{{method: options}}` for `artstudio compare --method-options "
              f"{out / 'best_method_options.json'}`. The rate, batch size and schedule are training options, not "
              + (f"method options: give compare the tuned rate with `--lr-grid '{config.method}={_fmt(best_lr)}'`"
                 if best_lr is not None else "method options: the tuned run uses the method's default rate")
              + (f" and `--batch-size {best_batch}`" if best_batch is not None else ""),
              "- `trials.csv`, " + ", ".join(f"`{k}`" for k in files if k.endswith(".png")), ""]
    files["report.md"] = out / "report.md"
    atomic_write_text(out / "report.md", "\n".join(lines))
    atomic_write_text(out / "space.json", json.dumps(space.to_dict(), indent=2) + "\n")
    # Every file the study wrote in `out` that a caller may open (the report lists them too).
    for name in ("best.json", "best_method_options.json", "final.json", "rerank.json", "space.json", "study.db"):
        if (out / name).is_file():
            files[name] = out / name
    return {k: str(v) for k, v in files.items()}


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
