"""Text-to-Canvas zero-shot on the 13 held-out tasks: card descriptions, shuffled ones, paraphrases.

    python benchmarks/t2c_heldout.py                                  # the shipped T2C, 200 test rows per task
    python benchmarks/t2c_heldout.py --hyper runs/t2c --eval-size 100 --out runs/t2c/heldout-bench.json

For every held-out task the hypernetwork paints a canvas from a description and the canvas is scored
on the task's test split (the same split, seed 0, as the gallery's per-task ART in canvases/):

    card        the task card's own description
    shuffled    another held-out task's description (rotated by one: no task keeps its own)
    para1..4    paraphrases in other words (artstudio/hyper/paraphrases.json; 3 and 4 written by
                someone who never saw the library or its wordings)

It also times generation (description -> artwork PNG, model already loaded) and, beside the table,
prints per-task ART and the base model from canvases/results.json, and the share of ART's mean gain
over the base model that T2C recovers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    from artstudio.hyper import HyperGenerator, evaluate_descriptions, heldout_descriptions
    from artstudio.hyper.training import description_conditions
    from artstudio.hyper.generate import DEFAULT_HYPER

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hyper", default=DEFAULT_HYPER)
    ap.add_argument("--eval-size", type=int, default=200)
    ap.add_argument("--task-cache", default="runs/hyper-tasks")
    ap.add_argument("--conditions", default="card,shuffled,para1,para2,para3,para4")
    ap.add_argument("--library", type=int, default=0, help="also score this many seeded library (training) tasks")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON results (default: print only)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    gen = HyperGenerator(args.hyper)
    cards = heldout_descriptions()
    names = list(cards)
    sets = description_conditions()
    results: dict = {"hyper": str(gen.folder), "eval_size": args.eval_size}
    if args.library:
        import random

        from artstudio.tasks import list_tasks

        picked = random.Random(0).sample(list_tasks("library"), args.library)
        res = evaluate_descriptions(gen.hyper, gen.backbone, gen.encoder, {c.name: c.description for c in picked},
                                    eval_size=args.eval_size, task_cache=args.task_cache)
        results["library"] = res
        print(f"library   mean {100 * res['mean']:.1f} % on {args.library} training tasks: "
              + ", ".join(f"{k} {100 * v:.0f}" for k, v in res["per_task"].items()), flush=True)
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    unknown = sorted(set(conditions) - set(sets))
    if unknown:
        raise SystemExit(f"unknown condition(s) {', '.join(unknown)}; choose from {', '.join(sets)}")
    for cond in conditions:
        t0 = time.perf_counter()
        res = evaluate_descriptions(gen.hyper, gen.backbone, gen.encoder, sets[cond], eval_size=args.eval_size,
                                    task_cache=args.task_cache)
        results[cond] = res
        print(f"{cond:9s} mean {100 * res['mean']:.1f} %  ({time.perf_counter() - t0:.0f} s)", flush=True)

    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, n in enumerate(names * 3):
            t0 = time.perf_counter()
            gen.generate(cards[n], Path(tmp) / f"{i}.png")
            times.append(time.perf_counter() - t0)
    results["generate_seconds"] = {"median": statistics.median(times), "max": max(times), "n": len(times)}

    gallery_file = ROOT / "canvases" / "results.json"
    gallery = json.loads(gallery_file.read_text()) if gallery_file.is_file() else {}
    rows = []
    header = ["task", "base", "ART (gallery)"] + [c for c in sets if c in results]
    for n in names:
        g = gallery.get(n, {})
        rows.append([n, g.get("base"), g.get("exported", g.get("art"))] + [results[c]["per_task"][n] for c in sets if c in results])
    mean = lambda xs: sum(xs) / len(xs) if xs and None not in xs else None  # noqa: E731
    rows.append(["mean"] + [mean([r[j] for r in rows]) for j in range(1, len(header))])
    base_mean, art_mean = rows[-1][1], rows[-1][2]
    if base_mean is not None and art_mean is not None and art_mean > base_mean:
        results["gain_recovered"] = {c: (results[c]["mean"] - base_mean) / (art_mean - base_mean)
                                     for c in sets if c in results}
    fmt = lambda v: "–" if v is None else (f"{100 * v:.1f}" if isinstance(v, float) else str(v))  # noqa: E731
    table = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    results["table"] = "\n".join(table)
    print(results["table"])
    print("generation:", results["generate_seconds"])
    if "gain_recovered" in results:
        print("share of per-task ART's mean gain over base:", {k: round(v, 3) for k, v in results["gain_recovered"].items()})
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
