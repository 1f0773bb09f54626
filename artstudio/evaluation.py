"""Evaluation: greedy generation with a method (or none) and strict 0/1 scoring.

Writes `predictions.jsonl` (id, prompt, answer, prediction, correct) and `metrics.json`
(accuracy, n, metric, latency) when given a folder. The same function scores every method in
training, in `artstudio eval` and in the comparison harness, so numbers are comparable.
"""

from __future__ import annotations

import json
import logging
import numbers
import re
import tempfile
from contextlib import contextmanager
import time
from dataclasses import dataclass, field
from pathlib import Path

from .data import Example, as_examples, load_jsonl
from .methods import check_method
from .generation import GenerationConfig, generate
from .errors import ArtStudioError, ConfigError
from .options import DEVICE_HELP, DTYPE_HELP
from .atomic import atomic_write_text, check_free, check_output_kind, check_writable
from .scoring import Metric, check_references, extract_answer_number, score

log = logging.getLogger(__name__)

EVAL_FILES = ("predictions.jsonl", "metrics.json")  # what an evaluation writes into its folder


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


def answer_budget(backbone, examples: list[Example], floor: int = 8, metric: str = "exact") -> int:
    """Enough new tokens for the longest reference answer plus the end token and some slack. Under the numeric
    metric an answer is written `Answer: <n>` whatever the reference looks like: a bare '3' left 8 tokens, which
    cut studio-tiny's answers off at 'Answer:' (0 %, and GRPO rewarded nothing)."""
    def written(answer: str) -> str:  # a reference without the format the metric reads (as check_numeric_format)
        if metric == "numeric" and extract_answer_number(answer) is None:
            return f"Answer: {answer}"
        return answer

    longest = max(len(backbone.tokenizer(written(e.answer), add_special_tokens=False)["input_ids"]) for e in examples)
    return max(floor, longest + 4)


def evaluate(method, examples: list[Example], metric: str = "exact", *, pattern: str | None = None,
             max_new_tokens: int | None = None, batch_size: int = 64, out_dir: str | Path | None = None,
             overwrite: bool = False, progress=None, about: dict | None = None) -> EvalResult:
    """Greedy answers for `examples`, scored with `metric` (exact | numeric | regex | json). `about` (what was
    evaluated: model, canvas, adapter, data) goes into `out_dir`'s metrics.json beside the scores; an `out_dir`
    holding earlier results is refused unless `overwrite`, as `artstudio eval --out` refuses it."""
    check_method(method)
    examples = as_examples(examples, needs_answers=True)
    check_references(metric, examples, "the evaluation rows", pattern)  # before any answer is generated
    if out_dir is not None:
        check_free(out_dir, overwrite, names=EVAL_FILES)
    empty = [e for e in examples if not e.answer.strip()]
    if empty:
        log.warning("%d of %d evaluation rows have an empty answer (row %s first): only an empty prediction "
                    "scores there", len(empty), len(examples), empty[0].source or empty[0].id)
    if max_new_tokens is not None:  # 0 fell back to the automatic budget, unsaid
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens is {max_new_tokens!r}; expected 1 or more, or None for the longest "
                              "reference answer + 4")
        max_new_tokens = int(max_new_tokens)
    cfg = GenerationConfig(max_new_tokens=max_new_tokens or answer_budget(method.backbone, examples, metric=metric),
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
        predictions, metrics = EVAL_FILES
        atomic_write_text(out / predictions, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        atomic_write_text(out / metrics, json.dumps(result.to_dict() | (about or {}), indent=2) + "\n")
    return result


# --- the `artstudio eval` recipe ------------------------------------------------------------------

@dataclass
class EvalConfig:
    """Greedy answers on a test set, scored 0/1 per row."""

    data: str = field(default="", metadata={"help": "test.jsonl, a task folder (its test split) or a built-in task name"})
    model: str | None = field(default=None, metadata={"help": "Hugging Face id or local folder (default: the model the artwork's metadata names; studio-tiny without --canvas; a PNG without ArtStudio metadata needs it)"})
    canvas: str | None = field(default=None, metadata={"help": "artwork PNG; without it the base model answers with no image"})
    adapter: str | None = field(default=None, metadata={"help": "PEFT adapter folder (a lora, vera or t2l export) instead of an artwork"})
    metric: Metric | None = field(default=None, metadata={"help": "exact | numeric | regex | json (default: the task card's, else exact)"})
    pattern: str | None = field(default=None, metadata={"help": "regular expression for --metric regex (default: the answer must match it)"})
    out: str | None = field(default=None, metadata={"help": "folder for predictions.jsonl and metrics.json (default: print only)"})
    overwrite: bool = field(default=False, metadata={"help": "replace predictions.jsonl and metrics.json already in --out (default: refuse)"})
    allow_model_mismatch: bool = field(default=False, metadata={"help": "use an artwork made for another model anyway"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "answer budget in tokens (default: from the answers)"})
    batch_size: int = field(default=64, metadata={"help": "prompts decoded together"})
    limit: int | None = field(default=None, metadata={"help": "evaluate only the first N rows (default: all)"})
    device: str | None = field(default=None, metadata={"help": DEVICE_HELP})
    dtype: str | None = field(default=None, metadata={"help": DTYPE_HELP})

    def check(self) -> None:
        """Raise ConfigError naming the first count below 1, before anything is loaded."""
        for name in ("limit", "batch_size", "max_new_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} is {value}; expected at least 1")


def eval_rows(spec: str, workdir: Path) -> tuple[list[Example], dict]:
    """(rows, task card) from a JSONL file, a task folder's test split or a built-in task's."""
    from .tasks.resolve import resolve_data

    task = resolve_data(spec, workdir, role="test")
    return load_jsonl(task.test_file), task.card


@contextmanager
def _named_in_errors(tmp: Path, data: str):
    """A built-in task is written into `tmp` to be read: an error names its row as `--data NAME`, not by a
    temporary file that is gone when the message is read."""
    try:
        yield
    except ArtStudioError as err:
        text = str(err)
        for folder in {str(tmp), str(tmp.resolve())}:
            text = re.sub(re.escape(folder) + r"/[^/\s:]+/(\w+)\.jsonl", rf"--data {data} (its \1 split)", text)
        if text == str(err):
            raise
        raise type(err)(text) from None


def run_eval(config: EvalConfig) -> EvalResult:
    """Evaluate `config.canvas` (or the base model) on `config.data`."""
    from .methods import artwork_or_base

    config.check()
    if config.out:  # never into a run's folder: its --resume then refused it as "an evaluation"
        check_output_kind(config.out, "predictions.jsonl")
        check_free(config.out, config.overwrite, names=EVAL_FILES)
        check_writable(config.out)  # before every row is answered
    with tempfile.TemporaryDirectory(prefix="artstudio-eval-") as tmp, _named_in_errors(Path(tmp), config.data):
        rows, card = eval_rows(config.data, Path(tmp))
        metric = config.metric or card.get("metric") or "exact"
        if config.pattern is not None and metric != "regex":
            source = "--metric" if config.metric else "the task card's metric" if card.get("metric") else "the default metric"
            raise ConfigError(f"--pattern applies only to --metric regex, and {source} is {metric!r}; pass "
                              "--metric regex to score with the pattern, or drop --pattern")
        if config.limit is not None:
            rows = rows[: config.limit]
        method = artwork_or_base(config.model, config.canvas, allow_mismatch=config.allow_model_mismatch,
                                 device=config.device, dtype=config.dtype, adapter=config.adapter)
        from .forward import row_room
        from .prompts import check_row_lengths

        # a row longer than the model's positions was answered with garbage (and 23 s), as in training refused
        check_row_lengths(row_room(method), rows, f"--data {config.data}",
                          answers=config.max_new_tokens is None, max_new_tokens=config.max_new_tokens or 0)
        about = {"model": getattr(method.backbone, "model_id", config.model), "data": config.data, "limit": config.limit,
                 "canvas": str(Path(config.canvas).resolve()) if config.canvas else None,
                 "adapter": str(Path(config.adapter).resolve()) if config.adapter else None}
        return evaluate(method, rows, metric, pattern=config.pattern, max_new_tokens=config.max_new_tokens,
                        batch_size=config.batch_size, out_dir=config.out, overwrite=config.overwrite, about=about)
