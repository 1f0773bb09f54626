"""GRPO on CPU: does training a canvas from rewards raise reward and accuracy on a held-out task?

Runs on a held-out studio-tiny task (never seen in pretraining), each scored by greedy accuracy and
mean reward on the test split: the base model (no canvas); GRPO from a neutral grey canvas; a short
SFT canvas and GRPO started from it (chained through its artwork PNG, as `--init runs/sft/artwork.png`
does); and the same GRPO run for each baseline in `--baselines` (LoRA and the soft prompt by
default), from its own starting state. Writes to `--out`: `results.json` (accuracy, mean reward,
per-step training reward) and `reward_curve.png` (mean sampled reward per GRPO step, base level for
reference).

    python scripts/grpo_demo.py --out runs/grpo-demo                       # studio-tiny, sub-answer task
    python scripts/grpo_demo.py --model /tmp/tiny --steps 2 --sft-steps 2 --out /tmp/demo   # smoke run

Same thing with the command line:

    artstudio train --data sub-answer --objective grpo --grpo-reward numeric --out runs/grpo-gray --starts 1
    artstudio train --data sub-answer --steps 20 --batch-size 8 --starts 1 --out runs/sft
    artstudio train --data sub-answer --objective grpo --grpo-reward numeric --out runs/grpo-sft --init runs/sft/artwork.png
    artstudio train --data sub-answer --objective grpo --grpo-reward numeric --method lora --out runs/grpo-lora
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from artstudio.backbone import DEFAULT_MODEL, load_backbone
from artstudio.data import load_jsonl
from artstudio.evaluation import evaluate
from artstudio.methods import build_method
from artstudio.objectives.grpo import default_reward
from artstudio.objectives.rewards import get as get_reward
from artstudio.tasks import get_task, make_task
from artstudio.training import TrainConfig, software_versions, train


def mean_reward(reward, predictions: list[dict]) -> float:
    """Mean training reward of greedy answers: the deployable behaviour, in the reward's terms."""
    values = [reward(p["prompt"], p["prediction"], p["answer"]) for p in predictions]
    return sum(values) / max(len(values), 1)


def run_grpo(name: str, label: str, method: str, args, bb, task_dir: Path, reward_spec: str,
             init: str | None = None) -> dict:
    """One GRPO run; `init` (ART only) is the starting canvas: 'gray' or an artwork PNG."""
    config = TrainConfig(
        out=str(args.out / name), data=str(task_dir), method=method, objective="grpo", steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, checkpoint_every=0, snapshot_every=0, overwrite=True,
        schedule="constant", grpo={"group_size": args.group_size, "reward": reward_spec, "temperature": args.temperature},
    )
    # One start: the run starts from `init` itself (the default two starts would try the T2C painting too, which
    # already answers sub-answer: "from a grey canvas" then started from the painting).
    canvas = {"init": init, "starts": 1, "canvas_size": args.canvas_size,
              "parametrization": args.parametrization} if method == "art" else {}
    res = train(config, backbone=bb, progress=not args.quiet, **canvas)
    return summarise(res, reward_spec, label)


def summarise(res, reward_spec: str, label: str) -> dict:
    """One run's row in results.json: test accuracy and reward, the training curve, the lr it used."""
    resolved = json.loads((res.out / "config.json").read_text())["resolved"]
    predictions = [json.loads(l) for l in (res.out / "eval" / "predictions.jsonl").read_text().splitlines()]
    curve = [h["reward_mean"] for h in res.history if "reward_mean" in h]
    return {"label": label, "method": res.method.name, "lr": resolved["lr"], "accuracy": res.metrics["accuracy"],
            "reward": mean_reward(get_reward(reward_spec), predictions),
            "train_reward": curve, "train_accuracy": [h["accuracy"] for h in res.history if "reward_mean" in h],
            "seconds": res.metrics["train_seconds"], "artwork": str(res.artwork) if res.artwork else None}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for key in (k for k in results if k.startswith("grpo_")):
        label, curve = results[key]["label"], results[key]["train_reward"]
        ax.plot(range(1, len(curve) + 1), curve, alpha=0.25)
        window = max(1, len(curve) // 10)
        smooth = [sum(curve[max(0, i - window + 1):i + 1]) / len(curve[max(0, i - window + 1):i + 1]) for i in range(len(curve))]
        ax.plot(range(1, len(curve) + 1), smooth, color=ax.lines[-1].get_color(), label=label)
    ax.axhline(results["base"]["reward"], color="grey", linestyle="--", label="base model (greedy, test)")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel(f"mean reward ({results['reward']})")
    ax.set_title(f"GRPO on held-out task {results['task']} ({Path(results['model']).name})")
    top = max(max(results[k]["train_reward"] or [0.0]) for k in results if k.startswith("grpo_"))
    ax.set_ylim(0.0, max(top, results["base"]["reward"]) * 1.45 + 1e-3)  # headroom for the legend
    ax.legend(loc="upper left", fontsize=8, ncol=2, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for results.json, reward_curve.png and the runs")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="model folder (default: the shipped studio-tiny)")
    ap.add_argument("--task", default="sub-answer", help="held-out built-in task")
    ap.add_argument("--reward", default=None, help="training reward (default: as `artstudio train` picks it from the metric and answers)")
    ap.add_argument("--steps", type=int, default=100, help="GRPO steps per run")
    ap.add_argument("--sft-steps", type=int, default=20, help="SFT steps before the second GRPO run")
    ap.add_argument("--batch-size", type=int, default=8, help="prompts per step")
    ap.add_argument("--group-size", type=int, default=8, help="GRPO samples per prompt")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=None, help="GRPO learning rate (default: each method's GRPO default)")
    ap.add_argument("--baselines", default="lora,soft-prompt", help="methods that also run GRPO from their start ('' for none)")
    ap.add_argument("--canvas-size", type=int, default=None)
    # Sigmoid here, not ART's SFT default (pixels): from a grey canvas, GRPO on sub-answer left the cold
    # start with sigmoid logits at lr 0.003-0.005 but not with clamped pixels at 0.005/0.002/0.001
    # (40 steps, one seed each; docs/grpo.md).
    ap.add_argument("--parametrization", default="sigmoid", choices=("sigmoid", "pixels"),
                    help="ART canvas parametrisation for the demo's SFT and GRPO runs")
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
    task_dir = make_task(args.task, args.out / "task", seed=args.seed, n_train=args.train_size, n_test=args.test_size,
                         overwrite=True)  # the demo's own folder
    reward_spec = args.reward or default_reward(card.metric, [e.answer for e in load_jsonl(task_dir / "train.jsonl")])
    bb = load_backbone(args.model)
    start = time.perf_counter()

    base = evaluate(build_method("base", bb), load_jsonl(task_dir / "test.jsonl"), card.metric)
    results: dict = {"model": str(args.model), "task": args.task, "metric": card.metric, "reward": reward_spec,
                     "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                     "versions": software_versions(),  # a sampled run moves with the packages (docs/grpo.md)
                     "base": {"label": "base model (no canvas)", "accuracy": base.accuracy,
                              "reward": mean_reward(get_reward(reward_spec), base.predictions)}}
    results["grpo_from_gray"] = run_grpo("grpo-gray", "ART: GRPO from a grey canvas", "art", args, bb, task_dir,
                                         reward_spec, init="gray")
    sft = train(TrainConfig(out=str(args.out / "sft"), data=str(task_dir), steps=args.sft_steps, batch_size=args.batch_size,
                            seed=args.seed, checkpoint_every=0, snapshot_every=0, overwrite=True),
                backbone=bb, progress=not args.quiet, init="gray", starts=1, canvas_size=args.canvas_size,
                parametrization=args.parametrization)
    results["sft"] = summarise(sft, reward_spec, f"ART: SFT, {args.sft_steps} steps")
    results["grpo_from_sft"] = run_grpo("grpo-sft", "ART: GRPO from the SFT canvas", "art", args, bb, task_dir,
                                        reward_spec, init=str(sft.artwork))
    for method in (m.strip() for m in args.baselines.split(",") if m.strip()):
        results[f"grpo_{method}"] = run_grpo(f"grpo-{method}", f"{method}: GRPO from its start", method, args, bb,
                                             task_dir, reward_spec)
    results["seconds"] = time.perf_counter() - start

    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.out / "reward_curve.png")
    print(f"task {args.task} ({card.metric} metric, reward {reward_spec}), test n={base.n}")
    for r in (v for v in results.values() if isinstance(v, dict) and "accuracy" in v):
        print(f"  {r['label']:34s} accuracy {r['accuracy']:6.1%}   mean reward {r['reward']:.3f}")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'reward_curve.png'} ({results['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
