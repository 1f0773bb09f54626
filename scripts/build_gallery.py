"""Train the gallery: one ART canvas per held-out task on studio-tiny, exported to `canvases/`.

    python scripts/build_gallery.py                       # all held-out tasks, 300 steps each
    python scripts/build_gallery.py --jobs 2              # two worker processes, one CPU thread each
    python scripts/build_gallery.py --tasks add-json,mul-plain --steps 200

For every task: accuracy of the base model with no picture and with a neutral grey canvas, ART
training (SFT, the shipped defaults), the in-training final accuracy, then the exported uint8 PNG
read back through `load_artwork` and evaluated again (what `artstudio eval --canvas` does). Writes
`canvases/<task>.png`, `canvases/README.md` (the table) and `canvases/results.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from artstudio.methods import load_artwork
from artstudio.atomic import atomic_write_text
from artstudio.backbone import DEFAULT_MODEL, load_backbone
from artstudio.data import load_jsonl
from artstudio.errors import ArtStudioError
from artstudio.evaluation import evaluate
from artstudio.methods import build_method
from artstudio.tasks import get_task, list_tasks, make_task
from artstudio.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--tasks", default="heldout", help="comma-separated names, or 'heldout'")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--ema", type=float, default=None, help="moving-average decay of the canvas (default: off)")
    ap.add_argument("--seed", type=int, default=0, help="training seed (data order, canvas init); the task splits stay seed 0")
    ap.add_argument("--canvas-size", type=int, default=None,
                    help="canvas side in pixels (default: the model's recommended size, studio-tiny: 96)")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "gallery"))
    ap.add_argument("--out", default=str(ROOT / "canvases"))
    ap.add_argument("--jobs", type=int, default=1,
                    help="worker processes, each training its share of the tasks with cores/jobs threads "
                         "(a model this small trains faster as 2 one-thread processes than 1 two-thread one)")
    # Set by run_workers: a worker trains its share and leaves the merge to the parent, so the
    # workers never race on results.json.
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    names = [c.name for c in list_tasks("heldout")] if args.tasks == "heldout" else args.tasks.split(",")
    for name in names:
        get_task(name)  # unknown names fail here, before any worker starts
    if args.jobs > 1 and len(names) > 1:
        run_workers(args, names)
    else:
        bb = load_backbone(args.model)
        for name in names:
            r = train_one(bb, name, args)
            print(f"{name}: base {r['base']:.1%}  grey {r['grey']:.1%}  ART {r['art']:.1%}  "
                  f"exported PNG {r['exported']:.1%}  ({r['train_seconds']:.0f} s)", flush=True)
    if not args.worker:
        collect(Path(args.out), Path(args.runs), names)


def run_workers(args, names: list[str]) -> None:
    """Split the tasks round-robin over `args.jobs` child processes of this script and wait for them."""
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    # Every option the parent was given reaches each worker, except the ones that split the work.
    forwarded = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                 if v is not None and k not in ("tasks", "jobs", "worker")]
    procs = []
    for j in range(args.jobs):
        share = names[j::args.jobs]
        if not share:
            continue
        cmd = [sys.executable, __file__, *forwarded, "--tasks", ",".join(share), "--worker"]
        procs.append(subprocess.Popen(cmd, env=env))
    failed = [p.args for p in procs if p.wait() != 0]
    if failed:
        raise SystemExit(f"{len(failed)} gallery worker(s) failed; rerun them: {failed}")


def train_one(bb, name: str, args) -> dict:
    """Base, grey and ART accuracy on one task; export the artwork; the exported PNG evaluated again."""
    card = get_task(name)
    task_dir = make_task(name, Path(args.runs) / name / "task", seed=0)
    test = load_jsonl(task_dir / "test.jsonl")
    base = evaluate(build_method("base", bb), test, card.metric).accuracy
    grey = evaluate(build_method("random-canvas", bb, {"init": "gray"}), test, card.metric).accuracy
    t0 = time.time()
    res = train(TrainConfig(out=str(Path(args.runs) / name), data=str(task_dir), steps=args.steps,
                            batch_size=args.batch_size, lr=args.lr, ema=args.ema, seed=args.seed, checkpoint_every=0, snapshot_every=50, overwrite=True,
                            method_options={"canvas_size": args.canvas_size} if args.canvas_size else {}),
                backbone=bb)
    seconds = time.time() - t0
    png = Path(args.out) / f"{name}.png"
    res.method.export(png, task={"name": name, "description": card.description}, objective="sft",
                      steps=args.steps, metrics={"accuracy": res.metrics["accuracy"], "base_accuracy": base,
                                                 "grey_canvas_accuracy": grey})
    served = evaluate(load_artwork(png, bb), test, card.metric).accuracy
    resolved = json.loads((res.out / "config.json").read_text())["resolved"]
    chosen = (resolved.get("starts") or {}).get("chosen") or ("picture" if resolved.get("init") else "gray")
    result = {"base": base, "grey": grey, "art": res.metrics["accuracy"], "exported": served,
              "start": chosen, "ema": resolved.get("ema", 0.0),
              "steps": args.steps, "seed": args.seed, "canvas_size": list(res.method.canvas.size), "batch_size": args.batch_size,
              "train_seconds": round(seconds, 1), "n": len(test),
              "seconds_per_step": res.metrics["seconds_per_step"],
              "lr": resolved["lr"]}
    # One file per task, so parallel workers never write the same file; `collect` merges them.
    atomic_write_text(Path(args.runs) / name / "gallery.json", json.dumps(result, indent=2) + "\n")
    return result


def collect(out: Path, runs: Path, names: list[str]) -> None:
    """Merge the tasks just trained into `out/results.json` (keeping the others) and rewrite the table."""
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for name in names:
        results[name] = json.loads((runs / name / "gallery.json").read_text())
    atomic_write_text(results_file, json.dumps(results, indent=2) + "\n")
    write_readme(out, results)


def write_readme(out: Path, results: dict) -> None:
    order = [c.name for c in list_tasks("heldout") if c.name in results]
    lines = [
        "# The gallery: one ART canvas per held-out studio-tiny task",
        "",
        "Each PNG is an artwork: a canvas trained with `scripts/build_gallery.py` (SFT; size, steps, batch and peak",
        "learning rate in the table) that steers the frozen studio-tiny model to a task it never saw. Accuracy is",
        "exact match (JSON tasks: parsed JSON equality) on the task's 200-example test split, greedy decoding.",
        "*base*: no picture; *grey*: a neutral grey canvas; *ART*: in-training evaluation; *PNG*: the exported",
        "uint8 file read back through `load_artwork`, as `artstudio eval --canvas` does. *start*: the start the run",
        "kept (`train` tries grey and the shipped Text-to-Canvas painting, `t2c`, on studio-tiny); *average*: the decay",
        "of the moving average of the canvas it exported (`--ema`; 0: the last step's). Metadata inside each PNG:",
        "`artstudio info canvases/<task>.png`.",
        "",
        "| task | artwork | base | grey | ART | PNG | canvas | steps | batch | lr | start | average | train time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in order:
        r = results[name]
        lines.append(f"| `{name}` | ![{name}]({name}.png) | {r['base']:.1%} | {r['grey']:.1%} | **{r['art']:.1%}** | "
                     f"{r['exported']:.1%} | {r['canvas_size'][0]}×{r['canvas_size'][1]} | {r['steps']} | {r['batch_size']} | "
                     f"{r['lr']:g} | {r.get('start', '–')} | {format(r['ema'], 'g') if 'ema' in r else '–'} | {r['train_seconds']:.0f} s |")
    if order:
        mean = lambda k: sum(results[n][k] for n in order) / len(order)  # noqa: E731
        lines.append(f"| **mean** | | {mean('base'):.1%} | {mean('grey'):.1%} | **{mean('art'):.1%}** | {mean('exported'):.1%} | | | | | | | |")
    atomic_write_text(out / "README.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    try:
        main()
    except ArtStudioError as e:  # a user mistake (unknown task, bad model folder): one line, no traceback
        raise SystemExit(f"error: {e}")
