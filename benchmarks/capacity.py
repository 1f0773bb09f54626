"""Canvas capacity: accuracy against the canvas's visual tokens, on tasks that need a skill studio-tiny lacks.

The held-out tasks recombine operations and answer formats studio-tiny already knows, so a 9-token
canvas only has to point at the right pair. These two tasks do not, and no test or library task
uses them:

- `last-letter`: a 2-4 letter string -> its last letter twice (`qzb` -> `bb`), the task a new user
  tried, on which ART reached 12-15 % against LoRA's 99 %;
- `parity`: a 2-digit number -> `even` or `odd` (70 numbers to train on, 20 never seen).

For each canvas size, ART (one start from grey, `art-single`, and the default two starts, `art`) and
the soft prompt run with the same number of slot tokens (the soft prompt's vectors go where the
canvas's visual tokens go), and LoRA runs once as the reference line.
Everything goes through `artstudio compare` (same data order, steps, batch, evaluation); the plot
is accuracy against visual tokens.

    python benchmarks/capacity.py --out runs/capacity                    # 96, 192, 288 px; seed 0
    python benchmarks/capacity.py --sizes 96,192 --steps 100 --seeds 0,1
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import string
import sys
from pathlib import Path

from artstudio.comparison import compare
from artstudio.data import Example, write_jsonl

TASKS = {
    "last-letter": "Reply with the last letter of the string, written twice.",
    "parity": "Reply with even or odd: the parity of the number.",
}


def make_tasks(folder: Path, train: int, test: int, seed: int = 0) -> list[Path]:
    """The two task folders (train.jsonl, test.jsonl, card.json), disjoint prompts in each."""
    rng = random.Random(seed)
    out = []
    for name, description in TASKS.items():
        if name == "last-letter":
            pool = sorted({"".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 4)))
                           for _ in range(4 * (train + test))})
            rng.shuffle(pool)
            rows = [Example(prompt=w, answer=w[-1] * 2, id=f"{name}-{i}") for i, w in enumerate(pool[:train + test])]
            n_test = test
        else:  # only 90 two-digit numbers: 70 to train on, 20 never seen
            numbers = list(range(10, 100))
            rng.shuffle(numbers)
            rows = [Example(prompt=str(n), answer="even" if n % 2 == 0 else "odd", id=f"{name}-{i}")
                    for i, n in enumerate(numbers)]
            n_test = 20
        task = folder / name
        write_jsonl(task / "train.jsonl", rows[:-n_test])
        write_jsonl(task / "test.jsonl", rows[-n_test:])
        (task / "card.json").write_text(json.dumps({"name": name, "description": description, "metric": "exact"}) + "\n")
        out.append(task)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/capacity"))
    ap.add_argument("--sizes", default="96,192,288", help="canvas sides in pixels (studio-tiny: multiples of 32)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--train-rows", type=int, default=300)
    ap.add_argument("--test-rows", type=int, default=100)
    ap.add_argument("--model", default=None, help="model folder (default: studio-tiny)")
    ap.add_argument("--ema", type=float, default=None,
                    help="moving-average decay of the trained parameters for every method (default: off)")
    args = ap.parse_args(argv)

    tasks = make_tasks(args.out / "data", args.train_rows, args.test_rows)
    common = {"tasks": ",".join(str(t) for t in tasks), "seeds": args.seeds, "steps": args.steps, "batch_size": 16}
    if args.model:
        common["model"] = args.model
    if args.ema is not None:
        common["ema"] = args.ema
    rows = []
    for side in [int(s) for s in args.sizes.split(",")]:
        # Plain ART (one start from grey) measures the canvas's own capacity; ART as it runs by default
        # (two starts, one the shipped T2C's painting of the task's description, resized) what a user gets.
        table = compare(methods="art-single,art,soft-prompt", out=str(args.out / f"px{side}"),
                        method_options={m: {"canvas_size": side} for m in ("art-single", "art", "soft-prompt")},
                        **common)
        rows += [r | {"canvas_size": side, "tokens": (side // 32) ** 2} for r in table]
    table = compare(methods="lora", out=str(args.out / "lora"), **common)
    rows += [r | {"canvas_size": None, "tokens": None} for r in table]

    keys = ["method", "task", "seed", "canvas_size", "tokens", "accuracy", "final_loss", "train_seconds"]
    with open(args.out / "capacity.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    plot(rows, args.out / "capacity.png")
    for r in rows:
        print(f"{r['method']:<12} {r['task']:<12} seed {r['seed']}  {str(r['tokens'] or '-'):>4} tokens  "
              f"accuracy {100 * r['accuracy']:.1f} %  final loss {r.get('final_loss')}")
    print(f"wrote {args.out / 'capacity.csv'} and {args.out / 'capacity.png'}")
    return 0


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for method, colour in (("art-single", "#2563eb"), ("art", "#7c3aed"), ("soft-prompt", "#f59e0b")):
            pts = sorted((r["tokens"], r["accuracy"]) for r in rows if r["task"] == task and r["method"] == method)
            by = {}
            for t, a in pts:
                by.setdefault(t, []).append(a)
            xs = sorted(by)
            ax.plot(xs, [100 * sum(by[x]) / len(by[x]) for x in xs], "o-", color=colour, label=method)
        lora = [r["accuracy"] for r in rows if r["task"] == task and r["method"] == "lora"]
        if lora:
            ax.axhline(100 * sum(lora) / len(lora), color="#10b981", ls="--", label="lora")
        seeds = len({r["seed"] for r in rows if r["task"] == task})
        ax.set(title=task, xlabel="visual tokens in the slot", ylim=(0, 102),
               ylabel="test accuracy (%)" if seeds == 1 else f"test accuracy (%), mean of {seeds} seeds")
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
