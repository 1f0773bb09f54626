"""Speed-up of GRPO's shared-prefix group sampling over naive per-sample sampling, measured in one run.

GRPO draws G completions for every prompt. Three ways to do it, timed interleaved (warm-up excluded):

- shared: the template start + canvas prefix computed once for the batch, each prompt's own tokens
  once, the resulting cache copied to its G samples (what `artstudio.objectives.grpo` uses);
- prefix only: the shared prefix cache, but each of the G samples recomputes its prompt's tokens;
- naive: each sample recomputes its whole prompt, canvas included (no cache reuse at all).

With one seed all three draw exactly the same samples (checked), so only the time differs.

    python benchmarks/bench_grpo_sampling.py                          # studio-tiny, word problems, G = 8
    python benchmarks/bench_grpo_sampling.py --tiny qwen3_5 --group-size 8 --prompts 8
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from artstudio.backbone import DEFAULT_MODEL, load_backbone
from artstudio.data import Example
from artstudio.generation import GenerationConfig, generate
from artstudio.methods import build_method
from artstudio.tasks import get_task, sample


def sampler(method, prompts: list[Example], args, mode: str):
    """A zero-argument function drawing G samples per prompt in `mode` (shared | prefix | naive)."""
    g = args.group_size
    common = dict(max_new_tokens=args.max_new_tokens, do_sample=True, temperature=1.0, batch_size=len(prompts) * g)
    if mode == "shared":
        return lambda: generate(method, prompts, GenerationConfig(num_return_sequences=g, **common), seed=args.seed)
    rows = [ex for ex in prompts for _ in range(g)]
    cfg = GenerationConfig(prefix_reuse=(mode == "prefix"), **common)
    return lambda: generate(method, rows, cfg, seed=args.seed)


def flat(gen, group_size: int, grouped: bool) -> list[list[int]]:
    return [s for seqs in gen.token_ids for s in seqs] if grouped else [seqs[0] for seqs in gen.token_ids]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder or id (default: studio-tiny)")
    ap.add_argument("--tiny", default=None, help="build a random tiny model of this family instead (e.g. qwen3_5)")
    ap.add_argument("--task", default="word-problems", help="built-in task whose prompts are sampled")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=12)
    ap.add_argument("--canvas-size", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    model = args.model or DEFAULT_MODEL
    if args.tiny or (args.model is None and not Path(DEFAULT_MODEL, "config.json").exists()):
        from artstudio.tiny import build_tiny

        family = args.tiny or "qwen3_5"
        if not args.tiny:
            print(f"studio-tiny is not in {DEFAULT_MODEL}; using a random tiny {family} model instead")
        scratch = tempfile.TemporaryDirectory(prefix="bench-grpo-")  # removed when the run ends
        model = str(build_tiny(family, scratch.name, seed=0))
    bb = load_backbone(model)
    method = build_method("art", bb, {"canvas_size": args.canvas_size, "init": "noise"})
    prompts = [Example(prompt=p, answer=a, id=str(i))
               for i, (p, a, _) in enumerate(sample(get_task(args.task), args.prompts, seed=args.seed))]
    print(f"model {bb.model_id} ({bb.family}, {bb.num_parameters / 1e6:.1f} M), canvas {method.canvas.size[0]}px "
          f"= {method.slot_tokens} visual tokens, {args.prompts} prompts x G={args.group_size}, "
          f"{args.max_new_tokens} new tokens, {torch.get_num_threads()} threads")

    modes = ("shared", "prefix", "naive")
    runs = {m: sampler(method, prompts, args, m) for m in modes}
    drawn = {m: flat(runs[m](), args.group_size, m == "shared") for m in modes}  # warm-up, and the check
    assert drawn["shared"] == drawn["prefix"] == drawn["naive"], "the sampling modes drew different samples"
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.repeats):
        for m in modes:
            start = time.perf_counter()
            runs[m]()
            times[m].append(time.perf_counter() - start)
    med = {m: statistics.median(t) for m, t in times.items()}
    n = args.prompts * args.group_size
    for m, label in zip(modes, ("shared prefix + prompt per group", "shared prefix, prompt per sample",
                                "naive, whole prompt per sample")):
        print(f"  {label:34s} {med[m] * 1000:8.0f} ms  ({med[m] * 1000 / n:.1f} ms/sample)")
    print(f"shared-prefix group sampling is {med['naive'] / med['shared']:.2f}x faster than naive per-sample "
          f"sampling ({med['prefix'] / med['shared']:.2f}x faster than prefix reuse alone); identical samples")


if __name__ == "__main__":
    main()
