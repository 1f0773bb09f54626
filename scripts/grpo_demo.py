"""GRPO on CPU: does training a canvas from rewards raise reward and accuracy on a held-out task?

Three numbers per run on a held-out studio-tiny task (never seen in pretraining): the base model
(no canvas), GRPO from a neutral grey canvas, and GRPO from a canvas first trained briefly with SFT
(chained through its artwork PNG, as `--init runs/sft/artwork.png` does). Writes to `--out`:
`results.json` (greedy accuracy and mean reward on the test split, per-step training reward) and
`reward_curve.png` (mean sampled reward per GRPO step, both starts, base level for reference).

    python scripts/grpo_demo.py --out runs/grpo-demo                       # studio-tiny, sub-answer task
    python scripts/grpo_demo.py --model /tmp/tiny --steps 2 --sft-steps 2 --out /tmp/demo   # smoke run

Same thing with the command line:

    artstudio train --data sub-answer --objective grpo --out runs/grpo-gray --init gray
    artstudio train --data sub-answer --steps 40 --out runs/sft
    artstudio train --data sub-answer --objective grpo --out runs/grpo-sft --init runs/sft/artwork.png
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from artstudio.backbone import DEFAULT_MODEL, load_backbone
from artstudio.data import load_jsonl
from artstudio.errors import ArtStudioError
from artstudio.evaluate import evaluate
from artstudio.methods import build_method
from artstudio.objectives.grpo import default_reward
from artstudio.objectives.rewards import get as get_reward
from artstudio.scoring import reference_number
from artstudio.tasks import get_task, make_task
from artstudio.train import TrainConfig, train


def mean_reward(reward, predictions: list[dict]) -> float:
    """Mean training reward of greedy answers: the deployable behaviour, in the reward's terms."""
    values = [reward(p["prompt"], p["prediction"], p["answer"]) for p in predictions]
    return sum(values) / max(len(values), 1)


def numeric_or_default(card, rows) -> str:
    """Answers like "Answer: 7" are numbers in a format: the paper's shaped numeric reward fits them."""
    if card.answer_format == "answer":
        try:
            for row in rows[:20]:
                reference_number(row.answer)
            return "numeric"
        except (ArtStudioError, ValueError):
            pass
    return default_reward(card.metric)


def run_grpo(name: str, init: str, args, bb, task_dir: Path, reward_spec: str) -> dict:
    config = TrainConfig(
        out=str(args.out / name), data=str(task_dir), objective="grpo", steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, checkpoint_every=0, snapshot_every=0, schedule="constant",
        grpo={"group_size": args.group_size, "reward": reward_spec, "temperature": args.temperature},
    )
    res = train(config, backbone=bb, progress=not args.quiet, init=init, canvas_size=args.canvas_size)
    return summarise(res, reward_spec)


def summarise(res, reward_spec: str) -> dict:
    predictions = [json.loads(l) for l in (res.out / "eval" / "predictions.jsonl").read_text().splitlines()]
    curve = [h["reward_mean"] for h in res.history if "reward_mean" in h]
    return {"accuracy": res.metrics["accuracy"], "reward": mean_reward(get_reward(reward_spec), predictions),
            "train_reward": curve, "train_accuracy": [h["accuracy"] for h in res.history if "reward_mean" in h],
            "seconds": res.metrics["train_seconds"], "artwork": str(res.artwork) if res.artwork else None}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for key, label in (("grpo_from_gray", "GRPO from grey canvas"), ("grpo_from_sft", "GRPO from SFT canvas")):
        curve = results[key]["train_reward"]
        ax.plot(range(1, len(curve) + 1), curve, alpha=0.3)
        window = max(1, len(curve) // 10)
        smooth = [sum(curve[max(0, i - window + 1):i + 1]) / len(curve[max(0, i - window + 1):i + 1]) for i in range(len(curve))]
        ax.plot(range(1, len(curve) + 1), smooth, color=ax.lines[-1].get_color(), label=label)
    ax.axhline(results["base"]["reward"], color="grey", linestyle="--", label="base model (greedy, test)")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel(f"mean reward ({results['reward']})")
    ax.set_title(f"GRPO on held-out task {results['task']} ({Path(results['model']).name})")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for results.json, reward_curve.png and the runs")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="model folder (default: the shipped studio-tiny)")
    ap.add_argument("--task", default="sub-answer", help="held-out built-in task")
    ap.add_argument("--reward", default=None, help="training reward (default: numeric for numeric answers, else from the metric)")
    ap.add_argument("--steps", type=int, default=60, help="GRPO steps per run")
    ap.add_argument("--sft-steps", type=int, default=20, help="SFT steps before the second GRPO run")
    ap.add_argument("--batch-size", type=int, default=8, help="prompts per step")
    ap.add_argument("--group-size", type=int, default=8, help="GRPO samples per prompt")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--canvas-size", type=int, default=None)
    ap.add_argument("--train-size", type=int, default=400)
    ap.add_argument("--test-size", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args()

    if not Path(args.model, "config.json").exists():
        print(f"no model at {args.model}: studio-tiny is built by scripts/pretrain_studio_tiny.py "
              "(or pass --model with a model folder)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    card = get_task(args.task)
    task_dir = make_task(args.task, args.out / "task", seed=args.seed, n_train=args.train_size, n_test=args.test_size)
    reward_spec = args.reward or numeric_or_default(card, load_jsonl(task_dir / "train.jsonl"))
    bb = load_backbone(args.model)
    start = time.perf_counter()

    base = evaluate(build_method("base", bb), load_jsonl(task_dir / "test.jsonl"), card.metric)
    results: dict = {"model": str(args.model), "task": args.task, "metric": card.metric, "reward": reward_spec,
                     "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                     "base": {"accuracy": base.accuracy, "reward": mean_reward(get_reward(reward_spec), base.predictions)}}
    results["grpo_from_gray"] = run_grpo("grpo-gray", "gray", args, bb, task_dir, reward_spec)
    sft = train(TrainConfig(out=str(args.out / "sft"), data=str(task_dir), steps=args.sft_steps, batch_size=args.batch_size,
                            seed=args.seed, checkpoint_every=0, snapshot_every=0),
                backbone=bb, progress=not args.quiet, init="gray", canvas_size=args.canvas_size)
    results["sft"] = summarise(sft, reward_spec)
    results["grpo_from_sft"] = run_grpo("grpo-sft", str(sft.artwork), args, bb, task_dir, reward_spec)
    results["seconds"] = time.perf_counter() - start

    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out / "reward_curve.png")
    print(f"task {args.task} ({card.metric} metric, reward {reward_spec}), test n={base.n}")
    for key in ("base", "grpo_from_gray", "sft", "grpo_from_sft"):
        r = results[key]
        print(f"  {key:15s} accuracy {r['accuracy']:6.1%}   mean reward {r['reward']:.3f}")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'reward_curve.png'} ({results['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
