"""Training rewards for GRPO: plain functions `(prompt, completion, answer) -> float` in [0, 1].

Evaluation stays strictly 0/1 (`artstudio.scoring`); these rewards may give partial credit so that
a GRPO group whose completions are all wrong still has reward variance, hence a gradient (DESIGN §1).
Answer extraction is `artstudio.scoring`'s, so training and evaluation read answers the same way.

Built-in rewards (`names()`):
    numeric         the ART paper's shaped reward, see `numeric_reward`
    exact           1 if the stripped completion equals the stripped answer, else 0
    regex           1 if the answer, read as a regular expression, fullmatches the stripped completion
    json-tool-call  partial credit for JSON answers, see `json_tool_call_reward`
    format          1 if the completion holds a formatted `Answer: <number>`, else 0
    format:REGEX    1 if REGEX is found in the completion (anchor it with ^...$ to demand the whole text)

`get(spec)` also takes `module:function` or `path/to/file.py:function` (a user reward, checked on
every call to return a finite value in [0, 1]) and weighted sums `numeric*0.8+format*0.2`, which are
divided by the sum of the weights so they stay in [0, 1].
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ArtStudioError, ConfigError
from ..scoring import (any_number, compile_pattern, extract_answer_number, json_equal, numbers_equal,
                       parse_prediction_json, parse_reference_json, reference_number, score)

RewardFn = Callable[[str, str, str], float]

# Paper constants (jinymusim/ART reward_shaping.py): fixed, part of the task, not hyperparameters.
CORRECT = 1.0
NEAR_REL, NEAR_REWARD = 0.01, 0.4
MID_REL, MID_REWARD = 0.10, 0.2
FORMAT_FLOOR = 0.1
LOOSE_CREDIT = 0.01
# A zero reference has no relative error; the paper divides by max(|ref|, 1e-9), so any miss of 0
# lands in the "formatted but wrong" band. We keep that.
REL_EPS = 1e-9

# json-tool-call shares: a valid JSON object, the right tool name, and the arguments.
JSON_VALID, JSON_NAME, JSON_ARGS = 0.2, 0.3, 0.5
# Anything not exactly the reference stays below a correct answer, so shaping never outranks it.
JSON_PARTIAL_CAP = 0.9

_REGISTRY: dict[str, RewardFn] = {}
_NAME_RE = re.compile(r"[A-Za-z_][\w.-]*")


def register(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator: make `fn(prompt, completion, answer) -> float in [0, 1]` available as `name`."""
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(f"reward name {name!r} is invalid; use letters, digits, '_', '-' or '.' "
                          "(no ':', '+' or '*', which `get` reads as specs)")

    def decorate(fn: RewardFn) -> RewardFn:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ConfigError(f"a reward named {name!r} is already registered; pick another name")
        _REGISTRY[name] = fn
        return fn

    return decorate


def names() -> list[str]:
    """Registered reward names (plus the `format:REGEX` and `module:function` forms `get` accepts)."""
    return sorted(_REGISTRY)


# --- built-in rewards ----------------------------------------------------------------------------

@register("numeric")
def numeric_reward(prompt: str, completion: str, answer: str) -> float:
    """1.0 correct `Answer: <n>`; formatted and relative error <= 1 %: 0.4, <= 10 %: 0.2, else 0.1;
    no formatted answer but some number in the completion: 0.01; nothing: 0."""
    want = reference_number(answer, "--grpo-reward exact")
    got = extract_answer_number(completion)
    if got is None:
        return LOOSE_CREDIT if any_number(completion) is not None else 0.0
    if numbers_equal(got, want):
        return CORRECT
    rel = abs(got - want) / max(abs(want), REL_EPS)
    if rel <= NEAR_REL:
        return NEAR_REWARD
    if rel <= MID_REL:
        return MID_REWARD
    return FORMAT_FLOOR


@register("exact")
def exact_reward(prompt: str, completion: str, answer: str) -> float:
    return float(score("exact", completion, answer))


@register("regex")
def regex_reward(prompt: str, completion: str, answer: str) -> float:
    return float(score("regex", completion, answer))


@register("format")
def format_reward(prompt: str, completion: str, answer: str) -> float:
    """The paper's answer format: the completion holds an `Answer: <number>`, right or wrong."""
    return float(extract_answer_number(completion) is not None)


@register("json-tool-call")
def json_tool_call_reward(prompt: str, completion: str, answer: str) -> float:
    """Partial credit for a JSON answer; exactly the reference is 1.0, anything else at most 0.9.

    The completion (stripped, no other text) must parse as JSON, else 0.
    - Tool call reference (an object with "name"): valid JSON object 0.2; right "name" +0.3;
      "arguments" (an object, or a JSON string of one, as OpenAI sends them) share 0.5 equally over
      the union of the reference's and the completion's argument keys, and every reference key with
      the right value earns its share, so extra keys cost credit. A reference with no arguments
      earns the 0.5 when the completion has none either.
    - Any other object reference (e.g. {"result": 5}): valid object 0.2, and 0.8 shared over the
      union of keys in the same way.
    - A non-object reference: 1.0 if equal, 0.2 for any other valid JSON.
    """
    want = parse_reference_json(answer, "--grpo-reward exact")
    ok, got = parse_prediction_json(completion)
    if not ok:
        return 0.0
    if json_equal(got, want):
        return CORRECT
    if not isinstance(want, dict):
        return JSON_VALID
    if not isinstance(got, dict):
        return 0.0
    if "name" in want:
        partial = JSON_VALID + JSON_NAME * json_equal(got.get("name"), want["name"])
        partial += JSON_ARGS * _key_credit(_arguments(got.get("arguments")), _arguments(want.get("arguments")))
    else:
        partial = JSON_VALID + (1.0 - JSON_VALID) * _key_credit(got, want)
    return min(partial, JSON_PARTIAL_CAP)


def _arguments(value: Any) -> dict | None:
    """Tool-call arguments as a dict: missing means none; a JSON string is decoded; else unusable."""
    if value is None:
        return {}
    if isinstance(value, str):
        ok, value = parse_prediction_json(value)
        if not ok:
            return None
    return value if isinstance(value, dict) else None


def _key_credit(got: dict | None, want: dict | None) -> float:
    """Fraction of the union of keys whose value the prediction got right (1 when both are empty)."""
    if got is None or want is None:
        return 0.0
    keys = want.keys() | got.keys()
    if not keys:
        return 1.0
    return sum(k in want and k in got and json_equal(got[k], want[k]) for k in keys) / len(keys)


def format_pattern_reward(pattern: str) -> RewardFn:
    """`format:REGEX`: 1 if REGEX is found anywhere in the completion, else 0."""
    compiled = compile_pattern(pattern, f"the REGEX of reward 'format:{pattern}' (--grpo-reward format:REGEX)")

    def reward(prompt: str, completion: str, answer: str) -> float:
        return float(compiled.search(completion) is not None)

    reward.__name__ = reward.__qualname__ = f"format:{pattern}"
    return reward


# --- resolving specs -----------------------------------------------------------------------------

def get(spec: str | RewardFn) -> RewardFn:
    """A reward from a name, `format:REGEX`, `module:function`, `file.py:function` or `a*w+b*w` sum.

    A sum is split at each '+', so a `format:REGEX` term in it may not hold '+' (`combine` takes any);
    a spec that opens with `format:` and goes on like a sum (`format:X*0.3+exact*0.7`) is that sum.
    """
    if callable(spec):
        return checked(spec, getattr(spec, "__qualname__", repr(spec)))
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"reward {spec!r} is not a reward name; choose one of {_choices()}")
    spec = spec.strip()
    if spec in _REGISTRY:
        return _REGISTRY[spec]
    if spec.startswith("format:") and not _is_sum(spec):
        return format_pattern_reward(spec[len("format:"):])
    if _names_file(spec):  # before sums: a file's path may hold '+' or '*'
        return checked(_import_reward(spec), spec)
    if _is_sum(spec):
        try:
            return combine(_parse_sum(spec))
        except ConfigError:
            if "format:" in spec:  # a regex cut at its own '+' said "unknown reward '\\]'"
                raise ConfigError(_format_in_sum(spec)) from None
            raise
    if ":" in spec:
        return checked(_import_reward(spec), spec)
    raise ConfigError(f"unknown reward {spec!r}; choose one of {_choices()}")


def combine(weights: Mapping[str, float]) -> RewardFn:
    """Weighted sum of rewards (any `get` specs as keys), divided by the sum of weights: stays in [0, 1]."""
    if not weights:
        raise ConfigError("a combined reward needs at least one reward, e.g. {'numeric': 0.8, 'format': 0.2}")
    for name, w in weights.items():
        if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ConfigError(f"reward weight for {name!r} is {w!r}; weights must be finite numbers >= 0")
    total = float(sum(weights.values()))
    if total <= 0:
        raise ConfigError(f"reward weights {dict(weights)} sum to 0; give at least one a positive weight")
    parts = [(get(name), w / total) for name, w in weights.items() if w > 0]

    def reward(prompt: str, completion: str, answer: str) -> float:
        value = sum(w * fn(prompt, completion, answer) for fn, w in parts)
        return min(1.0, max(0.0, value))  # only float rounding can step outside

    reward.__name__ = reward.__qualname__ = "+".join(f"{n}*{w:g}" for n, w in weights.items())
    return reward


def checked(fn: Callable, name: str) -> RewardFn:
    """Wrap a user reward so a bad return value or a crash is a clear ConfigError naming it."""
    def reward(prompt: str, completion: str, answer: str) -> float:
        try:
            raw = fn(prompt, completion, answer)
        except ArtStudioError:
            raise
        except Exception as e:
            raise ConfigError(f"reward {name} raised {type(e).__name__}: {e}") from e
        try:
            if isinstance(raw, (str, bytes)):  # float("0.5") would pass text off as a score
                raise TypeError
            value = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"reward {name} returned {raw!r}; a reward must return a float in [0, 1]") from None
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ConfigError(f"reward {name} returned {value}; a reward must return a finite float in [0, 1]")
        return value

    reward.__name__ = reward.__qualname__ = name
    return reward


def portable(spec: Any) -> Any:
    """`spec` as a run records it: a `file.py:function` reward (alone or as a term of a sum) with the
    file's absolute path, so `--resume` and `--config RUN/config.json` find it from any folder.
    Anything else is returned as it is."""
    if not isinstance(spec, str) or not spec.strip():
        return spec
    spec = spec.strip()
    if _names_file(spec):
        target, _, attr = spec.rpartition(":")
        return f"{Path(target).expanduser().resolve()}:{attr}"
    if not _is_sum(spec):
        return spec
    return "+".join(portable(name) + (f"*{weight}" if weight is not None else "") for name, weight, _ in _terms(spec))


# A weight and a further term after a format:REGEX: "...*0.3+exact".
_LOOKS_SUMMED = re.compile(r"\*\s*\d*\.?\d+\s*\+\s*\S")


def _is_sum(spec: str) -> bool:
    """Whether `spec` (stripped) is a weighted sum of rewards, not one reward (a name, a file's function, a
    format:REGEX). A spec that opens with format: is a sum only where it goes on like one ("*0.3+exact",
    "+exact"): 'format:\\[\\d\\]*0.3+exact*0.7' was read as one regex that no answer matched, a reward of 0."""
    if spec in _REGISTRY or _names_file(spec):
        return False
    if spec.startswith("format:"):
        return bool(_LOOKS_SUMMED.search(spec) or re.search(
            rf"\+\s*(?:{'|'.join(map(re.escape, _REGISTRY))})\s*(?:\*[\d.\s]+)?$", spec))
    return "+" in spec or "*" in spec


def _format_in_sum(spec: str) -> str:
    return (f"reward {spec!r} does not read as a sum: a sum is split at each '+', so a format:REGEX term in it "
            "may not hold '+' in its REGEX; use format:REGEX alone, or a reward file (file.py:function) that "
            "returns the weighted sum")


def reward_files(spec: Any) -> list[Path]:
    """The files the `file.py:function` terms of `spec` (alone or in a sum) read, absolute."""
    if not isinstance(spec, str) or not spec.strip():
        return []
    spec = spec.strip()
    if _names_file(spec):
        return [Path(spec.rpartition(":")[0]).expanduser().resolve()]
    if not _is_sum(spec):
        return []
    return [file for name, _, _ in _terms(spec) if _names_file(name) for file in reward_files(name)]


def _names_file(spec: str) -> bool:
    """Whether `spec` is `path:function` for a file that exists (not a sum of such terms)."""
    target, colon, attr = spec.rpartition(":")
    return bool(colon and target) and attr.isidentifier() and Path(target).expanduser().is_file()


def _terms(spec: str) -> list[tuple[str, str | None, str]]:
    """The terms of a reward sum 'numeric*0.8+format*0.2': (name, weight as written or None, the term)."""
    out = []
    for term in spec.split("+"):
        name, star, weight = term.strip().rpartition("*")
        out.append((name.strip(), weight, term.strip()) if star else (term.strip(), None, term.strip()))
    return out


def _parse_sum(spec: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for name, weight, term in _terms(spec):
        try:
            w = float("1" if weight is None else weight)
        except ValueError:
            raise ConfigError(f"reward term {term!r} in {spec!r} has no numeric weight; "
                              "write sums like 'numeric*0.8+format*0.2'") from None
        if not name:
            raise ConfigError(f"reward term {term!r} in {spec!r} has no reward name; "
                              "write sums like 'numeric*0.8+format*0.2'")
        weights[name] = weights.get(name, 0.0) + w
    return weights


def _import_reward(spec: str) -> Callable:
    target, _, attr = spec.rpartition(":")
    hint = "give `package.module:function` (importable from here) or `path/to/file.py:function`"
    if not target or not attr:
        raise ConfigError(f"reward {spec!r} is not `module:function`; {hint}")
    if target.endswith(".py") or os.sep in target or "/" in target:
        module = _load_file(Path(target).expanduser(), spec, hint)
    else:
        module = _load_module(target, spec, hint)
    fn = getattr(module, attr, None)
    if fn is None and target == "__main__":  # a function of a script's own, recorded by the run that it passed to
        raise ConfigError(f"reward {spec!r} was a function of the script that started the run, which a command "
                          "cannot find again: resume it from Python with the same function (TrainConfig(..., "
                          "resume=True, grpo={'reward': fn})), or move it to a file and give `file.py:function`")
    if fn is None:
        raise ConfigError(f"reward {spec!r}: {target} has no attribute {attr!r}; {hint}")
    if not callable(fn):
        raise ConfigError(f"reward {spec!r}: {target}.{attr} is not a function (prompt, completion, answer) -> float")
    return fn


def _load_file(path: Path, spec: str, hint: str):
    if not path.is_file():
        raise ConfigError(f"reward {spec!r}: no file {path}; {hint}")
    name = f"artstudio_user_reward_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        raise ConfigError(f"reward {spec!r}: importing {path} failed with {type(e).__name__}: {e}") from e
    return module


def _load_module(target: str, spec: str, hint: str):
    # The `artstudio` console script does not put the working folder on sys.path; users expect it.
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(target)
    except Exception as e:
        raise ConfigError(f"reward {spec!r}: importing {target} failed with {type(e).__name__}: {e}; {hint}") from e
    finally:
        if added:
            sys.path.remove(os.getcwd())


def _choices() -> str:
    return ", ".join(names()) + ", format:REGEX, module:function, path/to/file.py:function, or a sum like numeric*0.8+format*0.2"


__all__ = ["RewardFn", "register", "names", "get", "portable", "combine", "checked", "numeric_reward", "exact_reward",
           "regex_reward", "format_reward", "json_tool_call_reward", "format_pattern_reward"]
