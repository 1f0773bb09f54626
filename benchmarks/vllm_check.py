"""The serving claim, checked against the real engine: vLLM (prefix caching on) answers an artwork's
prompts as `artstudio infer` does.

For every gallery artwork (default `canvases/*.png`), the test prompts of its task are sent to vLLM as
the chat requests `artstudio infer --print-request` prints (the artwork as a PNG data URL, first in the
user turn), greedy. The same prompts are answered by the studio. It reports, per artwork:

- agreement: the share of prompts where vLLM's answer equals the studio's, character for character;
- latency, one request at a time: with the artwork against the base model (text only), medians;
- vLLM's prefix-cache hit rate over the artwork's requests (its own counters).

vLLM needs a CUDA GPU. Without vLLM or a GPU the script says so and exits 0 (skipped), so it can sit in
a test suite that runs on CPU machines.

    pip install vllm
    python benchmarks/vllm_check.py                                    # studio-tiny, every gallery artwork
    python benchmarks/vllm_check.py --canvases canvases/max-bracket.png --limit 50 --json vllm.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def why_not() -> str | None:
    """None when vLLM can run here, else the reason it cannot."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "vLLM is not installed (pip install vllm)"
    import torch

    if not torch.cuda.is_available():
        return "vLLM needs a CUDA GPU and none is visible"
    return None


def prefix_cache_counters(llm) -> tuple[float, float] | None:
    """(queries, hits) of vLLM's prefix cache, in tokens, or None where this vLLM does not expose them."""
    try:
        metrics = llm.get_metrics()
    except Exception:  # older vLLM: no metrics API in the offline engine
        return None
    found = {m.name: getattr(m, "value", None) for m in metrics}
    q, h = found.get("vllm:prefix_cache_queries"), found.get("vllm:prefix_cache_hits")
    return (float(q), float(h)) if q is not None and h is not None else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model folder (default: the shipped studio-tiny)")
    ap.add_argument("--canvases", nargs="*", default=None, help="artwork PNGs (default: canvases/*.png)")
    ap.add_argument("--limit", type=int, default=50, help="test prompts per artwork")
    ap.add_argument("--latency-requests", type=int, default=20, help="one-at-a-time requests per artwork for latency")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    reason = why_not()
    if reason:
        print(f"skipped: {reason}")
        return 0

    from vllm import LLM, SamplingParams

    from artstudio.artwork import read_artwork
    from artstudio.backbone import DEFAULT_MODEL, load_backbone
    from artstudio.data import load_jsonl
    from artstudio.inference import answer
    from artstudio.methods import load_artwork
    from artstudio.serving import vllm_request
    from artstudio.tasks import make_task

    model = args.model or DEFAULT_MODEL
    canvases = [Path(c) for c in args.canvases] if args.canvases else sorted((ROOT / "canvases").glob("*.png"))
    llm = LLM(model=model, enable_prefix_caching=True, limit_mm_per_prompt={"image": 2}, max_model_len=4096,
              gpu_memory_utilization=0.3, seed=0)
    greedy = SamplingParams(temperature=0.0, max_tokens=args.max_new_tokens)
    backbone = load_backbone(model, device="cuda", dtype="fp32")

    def ask(messages: list[list[dict]]) -> list[str]:
        return [o.outputs[0].text.strip() for o in llm.chat(messages, greedy, use_tqdm=False)]

    report = {}
    for canvas in canvases:
        meta = read_artwork(canvas).metadata
        task = (meta.task or {}).get("name") if meta is not None else None
        if not task:
            print(f"{canvas.name}: no task in its metadata; skipped")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            rows = load_jsonl(make_task(task, Path(tmp) / task, seed=0) / "test.jsonl")[: args.limit]
        requests = [vllm_request(str(canvas), r.prompt, model, max_tokens=args.max_new_tokens) for r in rows]
        before = prefix_cache_counters(llm)
        served = ask([q["messages"] for q in requests])
        after = prefix_cache_counters(llm)
        ours = answer(load_artwork(canvas, backbone), rows, max_new_tokens=args.max_new_tokens)
        agree = sum(a == b for a, b in zip(served, ours)) / len(rows)
        lat = {"artwork": [], "base": []}
        for i, row in enumerate(rows[: args.latency_requests]):
            with_art = requests[i]["messages"]
            text_only = vllm_request(None, row.prompt, model, max_tokens=args.max_new_tokens)["messages"]
            for name, messages in (("artwork", with_art), ("base", text_only)):
                start = time.perf_counter()
                ask([messages])
                lat[name].append(time.perf_counter() - start)
        hit = None
        if before is not None and after is not None and after[0] > before[0]:
            hit = (after[1] - before[1]) / (after[0] - before[0])
        report[canvas.name] = {
            "task": task, "prompts": len(rows), "agreement": agree,
            "latency_ms": {k: 1000 * statistics.median(v) for k, v in lat.items() if v},
            "prefix_cache_hit_rate": hit,
            "disagreements": [{"prompt": r.prompt, "vllm": a, "studio": b}
                              for r, a, b in zip(rows, served, ours) if a != b][:5],
        }
        lm = report[canvas.name]["latency_ms"]
        print(f"{canvas.name:<28} agreement {agree:6.1%}  latency artwork {lm.get('artwork', float('nan')):.1f} ms / "
              f"base {lm.get('base', float('nan')):.1f} ms  prefix-cache hits "
              f"{'n/a' if hit is None else f'{hit:.1%}'}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if report:
        mean = statistics.mean(r["agreement"] for r in report.values())
        print(f"\nmean agreement over {len(report)} artworks: {mean:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
