"""Two ratios of the ART core, each measured in one run (interleaved repeats, warm-up excluded).

1. Training step time: encoding the canvas once per step and broadcasting it to the batch, vs
   encoding it once per example (what feeding the processor one copy of the image per row does).
2. Inference latency: greedy answers for many prompts reusing the KV cache of the shared prefix
   (template start + canvas), vs recomputing every prompt from its first token.

    python benchmarks/bench_core.py                              # studio-tiny, canvas 256, batch 16
    python benchmarks/bench_core.py --canvas-size 96 --batch-size 16 --prompts 64
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from artstudio.backbone import DEFAULT_MODEL, load_backbone
from artstudio.data import Example
from artstudio.generation import GenerationConfig, generate
from artstudio.methods import build_method
from artstudio.prompts import encode_batch
from artstudio.vision import to_pixel_values


def per_example_slot(method, n: int):
    """The naive path: n copies of the canvas through the vision tower in one call."""
    pixels, grid = to_pixel_values(method.canvas().to(method.backbone.dtype), method.backbone.geometry)
    return method.backbone.encode_images(pixels.repeat(n, 1), grid.repeat(n, 1))


def step(method, rows, shared: bool) -> float:
    """One forward+backward on the answer tokens; only the canvas encoding differs between modes."""
    backbone = method.backbone
    start = time.perf_counter()
    batch = encode_batch(backbone.processor, rows, image_tokens=method.slot_tokens, placement=method.placement,
                         padding_side="right")
    slot = method.slot_outputs() if shared else None
    images = backbone.concat_image_outputs([slot] * len(rows)) if shared else per_example_slot(method, len(rows))
    out = backbone.forward(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                           mm_token_type_ids=batch.mm_token_type_ids, image_outputs=images,
                           image_grid_thw=method.slot_grid.repeat(len(rows), 1), labels=batch.labels)
    out.loss.backward()
    method.canvas.param.grad = None
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--canvas-size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    args = ap.parse_args()

    bb = load_backbone(args.model)
    method = build_method("art", bb, {"canvas_size": args.canvas_size, "init": "noise"})
    rows = [Example(prompt=f"{i % 10} {(3 * i) % 10}", answer=str(i % 10 + (3 * i) % 10), id=str(i))
            for i in range(args.batch_size)]
    print(f"model {bb.model_id} ({bb.family}, {bb.num_parameters / 1e6:.1f} M), canvas {args.canvas_size}px "
          f"= {method.slot_tokens} visual tokens, batch {args.batch_size}, {torch.get_num_threads()} threads")

    step(method, rows, True), step(method, rows, False)  # warm-up
    shared, naive = [], []
    for _ in range(args.repeats):
        shared.append(step(method, rows, True))
        naive.append(step(method, rows, False))
    s, n = statistics.median(shared), statistics.median(naive)
    print(f"training step: shared encoding {s * 1000:.0f} ms, per-example encoding {n * 1000:.0f} ms "
          f"-> once-per-step is {n / s:.2f}x faster")

    prompts = [Example(prompt=f"{i % 10} {(7 * i) % 10}", answer="0", id=str(i)) for i in range(args.prompts)]
    cfg_on = GenerationConfig(max_new_tokens=args.max_new_tokens, prefix_reuse=True, batch_size=args.prompts)
    cfg_off = GenerationConfig(max_new_tokens=args.max_new_tokens, prefix_reuse=False, batch_size=args.prompts)
    generate(method, prompts[:4], cfg_on)
    on, off = [], []
    for _ in range(args.repeats):
        t = time.perf_counter(); a = generate(method, prompts, cfg_on); on.append(time.perf_counter() - t)
        t = time.perf_counter(); b = generate(method, prompts, cfg_off); off.append(time.perf_counter() - t)
        assert a.texts == b.texts, "prefix reuse changed the answers"
    a, b = statistics.median(on), statistics.median(off)
    print(f"inference, {args.prompts} prompts: prefix reuse {a * 1000 / args.prompts:.1f} ms/prompt, "
          f"recompute {b * 1000 / args.prompts:.1f} ms/prompt -> reuse is {b / a:.2f}x faster (identical answers)")


if __name__ == "__main__":
    main()
