"""With-artwork against base-model latency, one request at a time, as `artstudio infer` and the Playground
answer them: the same prompts, interleaved (A B, B A, ...) so drift hits both alike.

    python benchmarks/bench_latency.py --artwork canvases/max-bracket.png --requests 60

A served artwork's canvas encoding and shared-prefix KV cache are computed once per process
(`ArtMethod.slot_outputs`, `generation._prefix_cache`), so a request pays only for its own tokens.
Prints medians and the ratio measured in this one run, twice: as the model answers (the artwork and the
base model answer with different lengths), and with both decoding exactly `--max-new-tokens` tokens
(`ignore_eos`, as vLLM benchmarks do), the like-for-like cost of a request on the same prompts.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from artstudio.backbone import DEFAULT_MODEL, load_backbone
from artstudio.data import load_jsonl
from artstudio.generation import GenerationConfig, generate
from artstudio.methods import build_method, load_artwork
from artstudio.tasks import make_task


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--artwork", default=str(Path(__file__).resolve().parents[1] / "canvases" / "max-bracket.png"))
    ap.add_argument("--task", default="max-bracket", help="built-in task whose test prompts are sent")
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    args = ap.parse_args()
    backbone = load_backbone(DEFAULT_MODEL)
    art, base = load_artwork(args.artwork, backbone), build_method("base", backbone)
    with tempfile.TemporaryDirectory() as tmp:
        rows = load_jsonl(make_task(args.task, Path(tmp) / "t", seed=0) / "test.jsonl")
    for fixed in (False, True):
        config = GenerationConfig(max_new_tokens=args.max_new_tokens, ignore_eos=fixed)
        times: dict[str, list[float]] = {"artwork": [], "base": []}
        tokens: dict[str, list[int]] = {"artwork": [], "base": []}
        for i in range(args.requests + 2):
            pair = (("artwork", art), ("base", base)) if i % 2 == 0 else (("base", base), ("artwork", art))
            for name, method in pair:
                start = time.perf_counter()
                gen = generate(method, [rows[i % len(rows)]], config)
                if i >= 2:  # the first two rounds warm up (and pay the once-per-process encodings)
                    times[name].append(time.perf_counter() - start)
                    tokens[name].append(len(gen.token_ids[0][0]))
        a, b = statistics.median(times["artwork"]), statistics.median(times["base"])
        ta, tb = statistics.mean(tokens["artwork"]), statistics.mean(tokens["base"])
        label = f"exactly {args.max_new_tokens} tokens each" if fixed else f"as answered, {args.max_new_tokens} tokens at most"
        print(f"{args.requests} requests each, one at a time, {label}")
        print(f"  median latency: artwork {1000 * a:.1f} ms ({ta:.1f} tokens), base {1000 * b:.1f} ms ({tb:.1f} tokens)"
              f" -> artwork / base = {a / b:.2f}x per request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
