"""Evaluation: greedy generation with a method (or none) and strict 0/1 scoring.

Writes `predictions.jsonl` (id, prompt, answer, prediction, correct) and `metrics.json`
(accuracy, n, metric, latency) when given a folder. The same function scores every method in
training, in `artstudio eval` and in the comparison harness, so numbers are comparable.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .data import Example
from .generation import GenerationConfig, generate
from .atomic import atomic_write_text
from .scoring import score


@dataclass
class EvalResult:
    accuracy: float
    n: int
    metric: str
    predictions: list[dict] = field(repr=False, default_factory=list)
    seconds: float = 0.0

    @property
    def latency_ms(self) -> float:
        """Mean wall-clock time per request (batched, shared prefix)."""
        return 1000 * self.seconds / max(self.n, 1)

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "n": self.n, "metric": self.metric,
                "seconds": round(self.seconds, 3), "latency_ms": round(self.latency_ms, 3)}


def answer_budget(backbone, examples: list[Example], floor: int = 8) -> int:
    """Enough new tokens for the longest reference answer plus the end token and some slack."""
    longest = max(len(backbone.tokenizer(e.answer, add_special_tokens=False)["input_ids"]) for e in examples)
    return max(floor, longest + 4)


def evaluate(method, examples: list[Example], metric: str = "exact", *, pattern: str | None = None,
             max_new_tokens: int | None = None, batch_size: int = 64, out_dir: str | Path | None = None,
             progress=None) -> EvalResult:
    """Greedy answers for `examples`, scored with `metric` (exact | numeric | regex | json)."""
    cfg = GenerationConfig(max_new_tokens=max_new_tokens or answer_budget(method.backbone, examples),
                           batch_size=batch_size)
    start = time.perf_counter()
    gen = generate(method, examples, cfg, progress=progress)
    seconds = time.perf_counter() - start
    rows = []
    for ex, texts in zip(examples, gen.texts):
        pred = texts[0]
        rows.append({"id": ex.id, "prompt": ex.prompt, "answer": ex.answer, "prediction": pred,
                     "correct": bool(score(metric, pred, ex.answer, pattern=pattern))})
    acc = sum(r["correct"] for r in rows) / max(len(rows), 1)
    result = EvalResult(accuracy=acc, n=len(rows), metric=metric, predictions=rows, seconds=seconds)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "predictions.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        atomic_write_text(out / "metrics.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return result
