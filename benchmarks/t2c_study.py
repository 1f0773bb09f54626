"""Text-to-Canvas studies on studio-tiny: which task encoder generalises, and how results grow with tasks.

    python benchmarks/t2c_study.py encoders                 # hidden state 0..6 of the backbone's LM
    python benchmarks/t2c_study.py scaling --seeds 0,1,2    # 25 / 50 / 100 % of the library
    python benchmarks/t2c_study.py all --out docs/results/t2c_study.json

Every run is the shipped T2C's recipe (`--recipe ridge`; `pixels` is the earlier one), reconstruction of
the library's cue pictures with the `parts` head (cheap: no pass through the model), then zero-shot accuracy on the 13 held-out tasks
from their cards' descriptions (`--eval-size` test rows each). The held-out tasks are never trained on.

`encoders` varies the task encoder (`backbone:N` mean-pools hidden state N; 0 is the token
embeddings, 6 the last layer), over `--encoder-seeds`. `scaling` trains on a seeded 25 %, 50 % and 100 % of the 108 library
tasks (`task_fraction`; the seed picks the subset, and with `pixels` the initial weights) and plots held-out accuracy against the number
of training tasks (`--plot`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

# The shipped T2C's recipe (a linear mixer solved in closed form: no gradient steps), and the earlier
# one (mean squared error of the pixels, 1,500 Adam steps), kept to reproduce docs/hyper.md's older tables.
RECIPES = {
    "ridge": ({"head": "parts", "palette": 16, "basis_init": "cues", "blocks": 0, "fit": "ridge", "final_norm": False}, 0),
    "pixels": ({"head": "parts", "palette": 16, "basis_init": "cues", "blocks": 0}, 1500),
}


def run(backbone, *, encoder: str, fraction: float = 1.0, seed: int = 0, steps: int, eval_size: int,
        out: Path, recipe: str = "ridge") -> dict:
    from artstudio.hyper import HyperTrainConfig, hyper_train

    t0 = time.perf_counter()
    r = hyper_train(HyperTrainConfig(kind="t2c", mode="reconstruction", targets="cue", out=str(out), encoder=encoder,
                                     steps=steps, lr=3e-3, options=dict(RECIPES[recipe][0]), task_fraction=fraction, seed=seed,
                                     eval_size=eval_size, checkpoint_every=0), backbone=backbone, progress=False)
    rec = {"encoder": encoder, "fraction": fraction, "seed": seed, "tasks": r.metrics["tasks"],
           "heldout": r.metrics["heldout_accuracy"], "per_task": r.heldout["per_task"],
           "seconds": time.perf_counter() - t0}
    print(f"{encoder:12s} fraction {fraction:.2f} seed {seed} tasks {rec['tasks']:3d}: held-out "
          f"{100 * rec['heldout']:.1f} % ({rec['seconds']:.0f} s)", flush=True)
    return rec


def plot_scaling(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_n: dict[int, list[float]] = {}
    for r in records:
        by_n.setdefault(r["tasks"], []).append(100 * r["heldout"])
    ns = sorted(by_n)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for n in ns:
        ax.scatter([n] * len(by_n[n]), by_n[n], color="tab:blue", alpha=0.4, s=18)
    ax.plot(ns, [statistics.mean(by_n[n]) for n in ns], "-o", color="tab:blue", label="T2C (mean over seeds)")
    ax.set_xlabel("library tasks trained on")
    ax.set_ylabel("held-out accuracy, zero-shot (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Text-to-Canvas: held-out accuracy vs training tasks", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    from artstudio.backbone import load_backbone

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", choices=["encoders", "scaling", "all"])
    ap.add_argument("--layers", default="0,1,2,3,4,5,6")
    ap.add_argument("--encoder-seeds", default="0,1,2", help="seeds of the encoder study")
    ap.add_argument("--encoder", default="backbone:0", help="encoder of the scaling study")
    ap.add_argument("--fractions", default="0.25,0.5,1.0")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="ridge")
    ap.add_argument("--steps", type=int, default=None, help="default: the recipe's (ridge 0, pixels 1500)")
    ap.add_argument("--eval-size", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON results")
    ap.add_argument("--plot", default="docs/results/t2c_scaling.png")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    backbone = load_backbone()
    steps = RECIPES[args.recipe][1] if args.steps is None else args.steps
    results: dict = {"recipe": RECIPES[args.recipe][0], "steps": steps, "eval_size": args.eval_size}
    with tempfile.TemporaryDirectory() as tmp:
        if args.study in ("encoders", "all"):
            results["encoders"] = [run(backbone, encoder=f"backbone:{k}", seed=int(seed), steps=steps,
                                       eval_size=args.eval_size, out=Path(tmp) / f"enc{k}-{seed}", recipe=args.recipe)
                                   for seed in args.encoder_seeds.split(",") for k in args.layers.split(",")]
        if args.study in ("scaling", "all"):
            recs = []
            for seed in (int(s) for s in args.seeds.split(",")):
                for f in (float(x) for x in args.fractions.split(",")):
                    recs.append(run(backbone, encoder=args.encoder, fraction=f, seed=seed, steps=steps,
                                    eval_size=args.eval_size, out=Path(tmp) / f"scale{seed}-{f}", recipe=args.recipe))
            results["scaling"] = recs
            if args.plot:
                plot_scaling(recs, Path(args.plot))
                print("plot:", args.plot)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
