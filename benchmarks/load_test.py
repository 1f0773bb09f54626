"""Load test of `artstudio serve`: sequential vs concurrent requests, with and without an artwork.

Starts its own server on a free loopback port (nothing else is contacted), sends the held-out test
prompts of the artwork's task, and reports throughput and p50/p95 latency per scenario:

- base, sequential / concurrent: the model with no picture;
- artwork, sequential / concurrent: `MODEL+NAME`, the canvas encoded once per process;
- artwork, sequential, with the canvas cache on and off, alternating request by request (what the cache saves).

Bounded in count (`--requests`, at most 1000) and time (`--seconds` per scenario: a scenario stops
sending when it runs out and reports how many requests it completed).

    python benchmarks/load_test.py                                   # studio-tiny, canvases/max-bracket.png
    python benchmarks/load_test.py --requests 128 --concurrency 32 --max-tokens 16
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from artstudio.data import load_jsonl
from artstudio.server import ServeConfig, start_server
from artstudio.tasks import make_task

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run(url: str, model: str, prompts: list[str], n: int, workers: int, max_tokens: int, budget_s: float) -> dict:
    """Send `n` requests (cycling `prompts`) from `workers` threads; stop sending after `budget_s`."""
    deadline = time.monotonic() + budget_s
    latencies: list[float] = []
    errors = 0

    def one(i: int, client: httpx.Client) -> None:
        nonlocal errors
        if time.monotonic() > deadline:
            return
        body = {"model": model, "messages": [{"role": "user", "content": prompts[i % len(prompts)]}],
                "max_tokens": max_tokens, "temperature": 0}
        t = time.perf_counter()
        r = client.post(url + "/chat/completions", json=body)
        if r.status_code == 200:
            latencies.append(time.perf_counter() - t)
        else:
            errors += 1

    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=workers + 4)) as client:
        start = time.perf_counter()
        if workers == 1:
            for i in range(n):
                one(i, client)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(lambda i: one(i, client), range(n)))
        wall = time.perf_counter() - start
    return {"done": len(latencies), "errors": errors, "wall": wall, "rps": len(latencies) / wall if wall else 0.0,
            "p50": percentile(latencies, 0.5) * 1000 if latencies else float("nan"),
            "p95": percentile(latencies, 0.95) * 1000 if latencies else float("nan")}


def interleaved(server, model: str, prompts: list[str], n: int, max_tokens: int, budget_s: float) -> tuple[list, list]:
    """Sequential latencies with the canvas cache on and off, alternating request by request (fair under drifting load)."""
    deadline, on, off = time.monotonic() + budget_s, [], []
    with httpx.Client(timeout=600) as client:
        for i in range(n):
            if time.monotonic() > deadline:
                break
            server.worker.cache_slots = i % 2 == 0
            body = {"model": model, "messages": [{"role": "user", "content": prompts[i % len(prompts)]}],
                    "max_tokens": max_tokens, "temperature": 0}
            t = time.perf_counter()
            ok = client.post(server.url + "/chat/completions", json=body).status_code == 200
            if ok:
                (on if i % 2 == 0 else off).append(time.perf_counter() - t)
    server.worker.cache_slots = True
    return on, off


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="studio-tiny")
    ap.add_argument("--artwork", default=str(ROOT / "canvases" / "max-bracket.png"), help="artwork PNG (its task names the prompts)")
    ap.add_argument("--requests", type=int, default=64, help="requests per scenario (at most 1000)")
    ap.add_argument("--concurrency", type=int, default=16, help="client threads in the concurrent scenarios")
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--batch-wait-ms", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=120.0, help="time budget per scenario")
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    n = max(1, min(args.requests, 1000))

    from artstudio.artwork import read_artwork

    artwork = Path(args.artwork)
    meta = read_artwork(artwork).metadata
    task = (meta.task or {}).get("name") if meta is not None else None
    with tempfile.TemporaryDirectory() as tmp:
        rows = load_jsonl(make_task(task or "max-bracket", tmp) / "test.jsonl")
    prompts = [r.prompt for r in rows]

    config = ServeConfig(model=args.model, artwork=[f"art={artwork}"], host="127.0.0.1", port=0,
                         max_queue=max(64, args.concurrency * 2), max_batch=args.max_batch,
                         batch_wait_ms=args.batch_wait_ms, device=args.device)
    with start_server(config) as server:
        base, art = server.models.base_name, f"{server.models.base_name}+art"
        run(server.url, art, prompts, 4, 1, args.max_tokens, args.seconds)  # warm-up: first calls, canvas encoding
        run(server.url, base, prompts, 4, 1, args.max_tokens, args.seconds)
        scenarios = [("base", base, 1, True), ("base", base, args.concurrency, True),
                     ("artwork", art, 1, True), ("artwork", art, args.concurrency, True)]
        print(f"{n} requests per scenario, {args.max_tokens} max tokens, greedy; model {base}, artwork {artwork.name}; "
              f"max batch {args.max_batch}, batch wait {args.batch_wait_ms:g} ms")
        print("| scenario | clients | done | req/s | p50 ms | p95 ms | batches |")
        print("|---|---|---|---|---|---|---|")
        for name, model, workers, cache in scenarios:
            server.worker.cache_slots = cache
            before = server.worker.stats["batches"]
            r = run(server.url, model, prompts, n, workers, args.max_tokens, args.seconds)
            batches = server.worker.stats["batches"] - before
            note = "" if not r["errors"] else f" ({r['errors']} errors)"
            print(f"| {name} | {workers} | {r['done']}/{n}{note} | {r['rps']:.1f} | {r['p50']:.0f} | {r['p95']:.0f} | {batches} |",
                  flush=True)
        on, off = interleaved(server, art, prompts, 2 * n, args.max_tokens, args.seconds)
        for label, lat in (("canvas encoded once (cache on)", on), ("canvas re-encoded per call (cache off)", off)):
            print(f"artwork, sequential, {label}: {len(lat)} requests, p50 {percentile(lat, 0.5) * 1000:.0f} ms, "
                  f"p95 {percentile(lat, 0.95) * 1000:.0f} ms, mean {statistics.mean(lat) * 1000:.0f} ms")
        import torch

        method, times = server.models.artworks["art"].method, []
        for _ in range(20):
            method.forget_encoding()  # else the method returns the encoding it remembers
            t = time.perf_counter()
            with torch.no_grad():
                method.slot_outputs()
            times.append(time.perf_counter() - t)
        print(f"canvas encoding alone (vision tower on the artwork): {statistics.median(times) * 1000:.1f} ms, median of 20")
        print(f"canvas encodings in this process: {server.worker.stats['slot_encodings']} "
              "(one per artwork; calls with the cache off are not counted)")


if __name__ == "__main__":
    main()
