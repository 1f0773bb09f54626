"""`make demo`: train an ART canvas on one held-out task of studio-tiny, show what it changed, serve it.

    python -m artstudio.demo                   # max-bracket, 300 steps, then the web app
    python -m artstudio.demo --task mul-plain --steps 200 --no-app

The frozen studio-tiny model never saw the held-out task. The demo measures it with no picture and
with a neutral grey canvas (both near 0 %), trains a canvas for a few CPU minutes (SFT, batch 16),
measures again, exports the uint8 PNG with its metadata to `runs/demo-<task>/artwork.png` (the
run folder, replaced on a re-run; the tracked gallery in `canvases/` is never touched), and opens
the web app.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from pathlib import Path

from artstudio.errors import ArtStudioError, ModelLoadError
from artstudio.progress import quiet_loading_off_terminal

# The held-out task the demo trains. max-bracket: two digits in, "[<larger>]" out; studio-tiny never
# saw that operation with that format, and a 300-step canvas takes it from 0 % to 100 % (canvases/README.md).
DEMO_TASK = "max-bracket"
# Steps and batch of the shipped recipe: about 0.3 s per step on 2 CPU cores, well under 5 minutes.
DEMO_STEPS = 300
DEMO_BATCH = 16
# Relative to the working directory: `make demo` runs in the repository root, next to the gallery.
RUNS_DIR = Path("runs")
CANVASES_DIR = Path("canvases")


def _header(task, model: str, steps: int) -> str:
    lines = [
        "ART Studio demo: teach a frozen model a new task by training one picture",
        f"model  {Path(model).name} (frozen)",
        f"task   {task.name}: {task.description}",
        f"plan   base model -> grey canvas -> ART canvas ({steps} steps, batch {DEMO_BATCH}) -> runs/demo-{task.name}/artwork.png",
    ]
    width = min(100, max(len(line) for line in lines))
    bar = "=" * width
    wrapped = [part for line in lines for part in textwrap.wrap(line, width, subsequent_indent=" " * 7, break_on_hyphens=False, break_long_words=False)]
    return "\n".join([bar, *wrapped, bar])


def _require_model(model: str) -> None:
    if not (Path(model) / "config.json").is_file():
        raise ModelLoadError(
            f"studio-tiny is missing ({model} has no config.json); rebuild it with "
            "`python scripts/pretrain_studio_tiny.py --out artstudio/models/studio-tiny` "
            "or pass --model with another Qwen vision-language model"
        )


def run_demo(task_name: str = DEMO_TASK, steps: int = DEMO_STEPS, *, model: str | None = None,
             runs_dir: Path = RUNS_DIR) -> dict:
    """Evaluate base and grey canvas, train ART, export the artwork; return the numbers."""
    from artstudio.backbone import DEFAULT_MODEL, load_backbone

    if model is None:  # the shipped model only: another --model is checked by load_backbone, with its message
        _require_model(DEFAULT_MODEL)
    model = model or DEFAULT_MODEL
    from artstudio.cli import table
    from artstudio.data import load_jsonl
    from artstudio.evaluation import evaluate
    from artstudio.methods import build_method
    from artstudio.tasks import get_task, make_task
    from artstudio.training import TrainConfig, train

    card = get_task(task_name)
    print(_header(card, model, steps), flush=True)
    backbone = load_backbone(model)
    # The run folder, not the tracked gallery: the demo leaves the repository as it found it, and the
    # app lists a finished run's artwork in its Gallery ("run · demo-<task>").
    run_dir = Path(runs_dir) / f"demo-{task_name}"
    task_dir = make_task(task_name, run_dir / "task", seed=0)
    test = load_jsonl(task_dir / "test.jsonl")

    print(f"\n[1/4] base model, no picture, on {len(test)} test prompts ...", flush=True)
    base = evaluate(build_method("base", backbone), test, card.metric).accuracy
    print("[2/4] a neutral grey canvas ...", flush=True)
    grey = evaluate(build_method("random-canvas", backbone, {"init": "gray"}), test, card.metric).accuracy
    print(f"[3/4] training the ART canvas ({steps} steps) ...", flush=True)
    t0 = time.perf_counter()
    result = train(TrainConfig(out=str(run_dir), data=str(task_dir), steps=steps, batch_size=DEMO_BATCH,
                               checkpoint_every=0, snapshot_every=max(1, steps // 6), overwrite=True), backbone=backbone)
    seconds = time.perf_counter() - t0
    art = result.metrics.get("accuracy")
    print("[4/4] exporting the artwork ...", flush=True)
    png = result.method.export(run_dir / "artwork.png",
                               task={"name": card.name, "description": card.description}, objective="sft",
                               steps=result.metrics["steps"],
                               metrics={"accuracy": art, "eval_n": len(test), "base_accuracy": base,
                                        "grey_canvas_accuracy": grey})
    pct = lambda v: f"{v:.1%}" if isinstance(v, float) else "-"  # noqa: E731
    print()
    print(table([("base model (no picture)", pct(base), "", ""),
                 ("grey canvas", pct(grey), "", ""),
                 ("ART canvas", pct(art), result.metrics["steps"], f"{seconds:.0f} s")],
                ("", f"accuracy on {task_name}", "steps", "train time")))
    print(f"\nartwork: {png}  (run folder: {run_dir})")
    return {"task": task_name, "base": base, "grey": grey, "art": art, "steps": result.metrics["steps"],
            "seconds": seconds, "artwork": png, "run": run_dir}


def _next_steps(png: Path, task: str) -> str:
    return "\n".join([
        "Next, try:",
        f"  artstudio info {png}",
        f"  artstudio infer --canvas {png} --prompt \"3 4\"",
        f"  artstudio infer --canvas {png} --prompt \"3 4\" --print-request   # the request a vLLM server takes",
        f"  artstudio eval --canvas {png} --data {task}",
        "  artstudio tasks list --kind heldout",
        f"  artstudio train --data {task} --steps 300 --out runs/{task}-cli  # the same, from the command line",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m artstudio.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default=DEMO_TASK, help=f"a held-out task (default: {DEMO_TASK}; `artstudio tasks list`)")
    ap.add_argument("--steps", type=int, default=DEMO_STEPS, help=f"training steps (default: {DEMO_STEPS})")
    ap.add_argument("--model", default=None, help="model folder or id (default: the shipped studio-tiny)")
    ap.add_argument("--no-app", action="store_true", help="do not start the web app at the end")
    args = ap.parse_args(argv)
    quiet_loading_off_terminal()
    try:
        if args.steps < 1:
            raise ArtStudioError(f"--steps is {args.steps}; expected at least 1")
        result = run_demo(args.task, args.steps, model=args.model)
    except ArtStudioError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.no_app:
        print("\n" + _next_steps(result["artwork"], args.task))
        return 0
    print("\nStarting the web app (Ctrl-C to stop) ...", flush=True)
    try:
        from artstudio.ui.app import launch
        from artstudio.ui.settings import AppSettings

        launch(AppSettings(runs_dir=str(RUNS_DIR), canvases_dir=str(CANVASES_DIR), model=args.model))
        return 0
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
