"""The plots of a comparison (matplotlib, Agg): accuracy, accuracy against parameters, losses, cost."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from .results import ResultsTable, _fmt, _mean

PLOTS = ("accuracy.png", "accuracy_vs_params.png", "loss_curves.png", "cost.png")


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
    if len(methods) <= 10:
        cmap = plt.get_cmap("tab10")
        return {m: cmap(i) for i, m in enumerate(methods)}
    cmap = plt.get_cmap("tab20")  # beyond 10 methods tab10 would repeat a colour
    return {m: cmap(i % 20) for i, m in enumerate(methods)}


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
    ax.set_title("Accuracy per task (bars: mean over seeds, whiskers: std)")
    # The legend sits below the task labels, where it can cover neither the title nor a bar.
    ax.legend(ncol=min(len(methods), 7), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), frameon=False)
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
    """The training loss per step; under GRPO, whose loss is a surrogate near 0, the mean sampled reward."""
    grpo = any(r.get("objective") == "grpo" for r in table.records)
    key, what = ("reward_curve", "mean reward of the sampled completions") if grpo else ("loss_curve", "training loss")
    tasks = table.tasks
    colors = _colors(plt, table.methods)
    ncols = min(4, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.8 * nrows), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        for m in table.methods:
            curves = [r[key] for r in table.records if r["method"] == m and r["task"] == task and r.get(key)]
            if not curves:
                continue
            length = max(len(c) for c in curves)
            mean = [_mean([c[i] for c in curves if i < len(c)]) for i in range(length)]
            ax.plot(range(1, length + 1), [float("nan") if v is None else v for v in mean], color=colors[m], label=m, lw=1.2)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel(what if not grpo else "mean reward", fontsize=8)
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
    fig.suptitle(f"{what[0].upper()}{what[1:]} per step (mean over seeds)", y=1.06)
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

