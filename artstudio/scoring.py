"""Evaluation metrics: strict 0/1 scores of a prediction against a reference answer.

Also the one home of answer extraction, shared with the training rewards
(`artstudio.objectives.rewards`): the formatted answer is the LAST `Answer: <number>` in the text
(case-insensitive; an optional `$`; a sign and decimals allowed; commas and spaces inside the number
removed), and two numbers are equal when |a - b| < 1e-6 (DESIGN §1, the ART paper's evaluation code).

Metrics (`METRICS`):
    exact    whitespace-stripped string equality
    numeric  the prediction's formatted `Answer: <n>` equals the reference's number
    regex    a pattern (or the reference itself) fullmatches the stripped prediction
    json     the stripped prediction parses as JSON equal to the parsed reference
"""

from __future__ import annotations

import json
import logging
import math
import re
from functools import lru_cache
from typing import Any, Callable, Literal, Sequence, get_args

from .errors import ArtStudioError, ConfigError, DataError

log = logging.getLogger("artstudio.scoring")
_SAID_UNMATCHED: set[str] = set()

NUMBER_TOLERANCE = 1e-6

# Separators may sit between digits ("1,234", "1 234") but never a line break, so a number on the
# next line is not glued on; a trailing "." (end of sentence) is not a decimal point.
_NUMBER = r"[-+]?[ \t]*\$?[ \t]*(?:\d(?:[, \t]*\d)*(?:\.\d+)?|\.\d+)"
_ANSWER_RE = re.compile(r"answer\s*:\s*\$?\s*(" + _NUMBER + r")", re.IGNORECASE)
_ANY_NUMBER_RE = re.compile(r"-?(?:\d(?:[, \t]*\d)*(?:\.\d+)?|\.\d+)")
_PLAIN_NUMBER_RE = re.compile(r"\$?\s*(" + _NUMBER + r")\s*\.?")


def normalize_number(s: str) -> float | None:
    """A plain number string ("1,234", "$5", "-3.5", " 42. ") as a float; None if it is not one."""
    match = _PLAIN_NUMBER_RE.fullmatch(s.strip())
    return _to_float(match.group(1)) if match else None


def extract_answer_number(text: str) -> float | None:
    """The number of the last `Answer: <number>` in `text`, or None when there is no such answer."""
    matches = _ANSWER_RE.findall(text)
    return _to_float(matches[-1]) if matches else None


def any_number(text: str) -> float | None:
    """The last number anywhere in `text` (no `Answer:` needed), or None when there is none."""
    matches = _ANY_NUMBER_RE.findall(text)
    return _to_float(matches[-1]) if matches else None


def numbers_equal(a: float, b: float) -> bool:
    return abs(a - b) < NUMBER_TOLERANCE


def reference_number(answer: str, instead: str = "--metric exact") -> float:
    """The number a reference answer stands for: its `Answer: <n>` if it has one, else the plain number.
    `instead` is what the error suggests for answers that are not numbers."""
    value = extract_answer_number(answer)
    if value is None:
        value = normalize_number(answer)
    if value is None:
        raise DataError(f"reference answer {answer!r} is not a number; the numeric metric and reward need "
                        f"answers like '42', '-3.5', '1,234' or 'Answer: 42' (or use {instead})")
    return value


def parse_reference_json(answer: str, instead: str = "--metric exact") -> Any:
    """The parsed JSON of a reference answer; a reference that is not JSON is a data mistake. `instead` is
    what the error suggests."""
    try:
        return json.loads(answer)
    except (json.JSONDecodeError, TypeError) as e:
        raise DataError(f"reference answer {answer!r} is not valid JSON ({e}); the json metric and the "
                        f'json-tool-call reward need answers like {{"result": 5}} (or use {instead})') from None


def parse_prediction_json(prediction: str) -> tuple[bool, Any]:
    """(True, value) when the stripped prediction is JSON, else (False, None); extra text is not tolerated."""
    try:
        return True, json.loads(prediction.strip())
    except (json.JSONDecodeError, RecursionError):
        return False, None


def json_equal(a: Any, b: Any) -> bool:
    """JSON value equality that, unlike Python's ==, keeps true/false apart from 1/0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return a == b


PATTERN_SOURCE = "--pattern (or the answer, which is the pattern when none is given)"


@lru_cache(maxsize=256)
def compile_pattern(pattern: str, source: str = PATTERN_SOURCE) -> re.Pattern:
    """`pattern` compiled; a bad one is a ConfigError telling to fix `source` (where the pattern came from)."""
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"invalid regular expression {pattern!r}: {e}; fix {source}") from None


# --- metrics: (prediction, answer, pattern) -> bool ----------------------------------------------

def _exact(prediction: str, answer: str, pattern: str | None) -> bool:
    return prediction.strip() == answer.strip()


def _numeric(prediction: str, answer: str, pattern: str | None) -> bool:
    # A bare correct number is wrong on purpose: the task asks for the `Answer:` format (paper eval).
    want = reference_number(answer)
    got = extract_answer_number(prediction)
    return got is not None and numbers_equal(got, want)


def _regex(prediction: str, answer: str, pattern: str | None) -> bool:
    return compile_pattern(answer if pattern is None else pattern).fullmatch(prediction.strip()) is not None


def _json(prediction: str, answer: str, pattern: str | None) -> bool:
    want = parse_reference_json(answer)
    ok, got = parse_prediction_json(prediction)
    return ok and json_equal(got, want)


METRICS: dict[str, Callable[[str, str, str | None], bool]] = {
    "exact": _exact,
    "numeric": _numeric,
    "regex": _regex,
    "json": _json,
}
# The metric names as a type, so every config's `metric` field offers exactly these choices.
Metric = Literal["exact", "numeric", "regex", "json"]
assert set(get_args(Metric)) == set(METRICS)


def check_references(metric: str, examples, where: str, pattern: str | None = None) -> None:
    """Refuse reference answers that `metric` cannot score (an answer 'S' under numeric), before anything trains
    or generates: a run used to train all its steps and then fail at its evaluation, keeping no result.
    Rows with an empty answer are skipped (GRPO rows may have none); `where` names the rows in the error."""
    if metric == "regex" and pattern is not None:
        compile_pattern(pattern)
        return
    check = {"numeric": reference_number, "json": parse_reference_json, "regex": compile_pattern}.get(metric)
    if check is None:
        return
    unmatched = []
    for ex in examples:
        if ex.answer is None or not ex.answer.strip():
            continue
        try:
            check(ex.answer)
        except ArtStudioError as err:
            row = ex.source or f"{where}, row {ex.id}"
            raise type(err)(f"{row}: {err}") from None
        if metric == "regex" and not _regex(ex.answer, ex.answer, None):
            unmatched.append(ex)
    if unmatched and unmatched[0].answer not in _SAID_UNMATCHED:  # '[3]' is a character class: 0 % without a word
        first = unmatched[0]
        _SAID_UNMATCHED.add(first.answer)  # a run checks its training and its test rows: one line
        log.warning("%s: under --metric regex each answer is a regular expression, and %d of the answers do not match "
                    "their own text (%s: %r), so a prediction equal to the answer scores 0. If they are plain text, "
                    "use --metric exact, or pass one --pattern", where, len(unmatched),
                    first.source or f"row {first.id}", first.answer)


def score(metric: str, prediction: str, answer: str, *, pattern: str | None = None) -> bool:
    """Whether `prediction` is correct for reference `answer` under `metric` (strictly 0/1)."""
    try:
        fn = METRICS[metric]
    except KeyError:
        raise ConfigError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}") from None
    return bool(fn(prediction, answer, pattern))


def accuracy(metric: str, predictions: Sequence[str], answers: Sequence[str], pattern: str | None = None) -> float:
    """Fraction of predictions scored correct; the two sequences must pair up one to one."""
    if len(predictions) != len(answers):
        raise DataError(f"{len(predictions)} predictions for {len(answers)} answers; they must pair up one to one")
    if not predictions:
        raise DataError("no predictions to score; the dataset is empty")
    return sum(score(metric, p, a, pattern=pattern) for p, a in zip(predictions, answers)) / len(predictions)


def _to_float(raw: str) -> float | None:
    value = float(re.sub(r"[,\s$]", "", raw))
    return value if math.isfinite(value) else None
