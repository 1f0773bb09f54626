"""Search spaces: a small typed description of the hyper-parameters a method can be tuned over.

Each `Method` class declares its own space next to its config (`search_space = {...}`), so a new
method brings its space with it and no table elsewhere lists method names. A parameter is one of

    Float(low, high, log=False)   a real number; log=True samples on a log scale (learning rates)
    Int(low, high, log=False)     a whole number
    Choice(values)                one of a few values (str, int, float, bool)
    CanvasSize(low, high)         a canvas side among the backbone's valid sizes in [low, high],
                                  resolved against its `Geometry` when the study starts

and says where its value lands: a `TrainConfig` field (`lr`, `batch_size`, `schedule`, ...), an
option of the method's config (`r`, `dropout`, `canvas_size`, ...), or an option scaled by another
parameter (`Float(0.5, 4, option="alpha", times="r")`: LoRA's alpha as a ratio of the rank). Every
parameter carries a sentence saying what it does and how it interacts with the others; the `lgbo`
sampler reads those sentences.

A user narrows or extends a space with a YAML/JSON file (`--space file`):

    lr: {low: 0.001, high: 0.01, log: true}       # narrow a range
    r: {choices: [4, 8]}                           # a range becomes a choice
    dropout: null                                  # drop a parameter: the default value is used
    weight_decay: {low: 0.0, high: 0.1}            # a TrainConfig field the method did not list
    init: {choices: [gray, noise], help: "..."}    # a method option
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..errors import ConfigError

# TrainConfig fields a space may search (the rest describe the run, not its hyper-parameters).
TRAIN_FIELDS = ("lr", "batch_size", "schedule", "warmup", "weight_decay", "grad_accum", "ema")


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False
    help: str = ""
    option: str | None = None  # where the value lands (default: the parameter's name)
    times: str | None = None  # the landed value is value x this other parameter's value

    def describe(self) -> str:
        return f"{self.low:g}..{self.high:g}" + (" (log scale)" if self.log else "")


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False
    help: str = ""
    option: str | None = None
    times: str | None = None

    def describe(self) -> str:
        return f"{self.low}..{self.high}" + (" (log scale)" if self.log else "")


@dataclass(frozen=True)
class Choice:
    choices: tuple
    help: str = ""
    option: str | None = None
    times: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))

    def describe(self) -> str:
        return " | ".join(map(str, self.choices))


@dataclass(frozen=True)
class CanvasSize:
    """A canvas side among the backbone's valid sizes within [low, high] (a `Choice` once resolved)."""

    low: int = 64
    high: int = 256
    help: str = ""
    option: str | None = None
    times: str | None = None

    def describe(self) -> str:
        return f"valid canvas sides in {self.low}..{self.high}"

    def resolve(self, geometry, where: str = "canvas_size") -> Choice:
        sizes = [s for s in geometry.valid_sizes(self.high) if s >= self.low]
        if not sizes:
            raise ConfigError(f"{where}: the range {self.low}..{self.high} holds no size this model takes "
                              f"({_valid_sizes_text(geometry)}); widen the range in the space file")
        return Choice(tuple(sizes), help=self.help, option=self.option, times=self.times)


def _valid_sizes_text(geometry) -> str:
    valid = geometry.valid_sizes()
    return (f"each side a multiple of {geometry.factor}; valid sizes: {', '.join(map(str, valid[:12]))}"
            f"{' ...' if len(valid) > 12 else ''}")


def check_canvas_choice(p: "Choice", geometry, where: str) -> None:
    """Every side a canvas-size choice lists must be one the model takes (None: the model's recommended one)."""
    valid = set(geometry.valid_sizes())
    bad = [c for c in p.choices if c is not None and (isinstance(c, bool) or c not in valid)]
    if bad:
        raise ConfigError(f"{where}: canvas size{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))} "
                          f"{'do' if len(bad) > 1 else 'does'} not fit this model ({_valid_sizes_text(geometry)}); "
                          "list valid sizes, or give a range {low: 64, high: 256} to search every valid size in it")


Param = Union[Float, Int, Choice, CanvasSize]


@dataclass
class SearchSpace:
    """An ordered set of named parameters for one method (the order is the order trials suggest them)."""

    method: str
    params: dict[str, Param] = field(default_factory=dict)
    source: str = ""  # where the space came from (the --space file), named by errors

    def __iter__(self):
        return iter(self.params.items())

    def __len__(self) -> int:
        return len(self.params)

    def names(self) -> list[str]:
        return list(self.params)

    # -- where values land -----------------------------------------------------------------------
    def apply(self, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(TrainConfig overrides, method options) for one configuration."""
        train: dict[str, Any] = {}
        options: dict[str, Any] = {}
        for name, p in self.params.items():
            if name not in values:
                continue
            value = values[name]
            if p.times is not None:
                value = value * values[p.times]
            target = p.option or name
            if target in TRAIN_FIELDS:
                train[target] = value
            else:
                options[target] = _option_value(self.method, target, value)
        return train, options

    # -- Optuna --------------------------------------------------------------------------------
    def distributions(self) -> dict[str, Any]:
        """Optuna distributions, in order (call `resolved` first when the space has a CanvasSize)."""
        import optuna.distributions as D

        out = {}
        for name, p in self.params.items():
            if isinstance(p, Float):
                out[name] = D.FloatDistribution(p.low, p.high, log=p.log)
            elif isinstance(p, Int):
                out[name] = D.IntDistribution(p.low, p.high, log=p.log)
            elif isinstance(p, Choice):
                out[name] = D.CategoricalDistribution(p.choices)
            else:
                raise ConfigError(f"parameter {name} is a canvas size not yet resolved against a model")
        return out

    def resolved(self, geometry, backbone=None) -> "SearchSpace":
        """The space with every `CanvasSize` turned into a `Choice` of this model's valid sides, and every
        canvas-size choice checked against them (before any trial: a trial would only fail on it). With
        the `backbone`, every other choice of a method option is checked on it too (the method's
        `check_option`: LoRA's target modules)."""
        from ..methods import get_method

        params = {}
        for name, p in self.params.items():
            where = f"{self.source or self.method + ' space'}: parameter {name!r}"
            target = p.option or name
            if backbone is not None and isinstance(p, Choice) and target not in TRAIN_FIELDS and target != "canvas_size":
                for choice in p.choices:
                    try:
                        get_method(self.method).check_option(backbone, target, _option_value(self.method, target, choice))
                    except ConfigError as err:
                        raise ConfigError(f"{where}: choice {choice!r}: {err}") from None
            if target == "canvas_size" and p.times is None:
                if isinstance(p, CanvasSize):
                    p = p.resolve(geometry, where)
                elif isinstance(p, Choice):
                    check_canvas_choice(p, geometry, where)
                else:
                    raise ConfigError(f"{where}: a canvas size is searched among the sizes the model takes: give a "
                                      "range {low: 64, high: 256} (without type) or a list of sizes, not a "
                                      f"{type(p).__name__.lower()} range")
            params[name] = p
        return SearchSpace(self.method, params, self.source)

    def to_dict(self) -> dict[str, dict]:
        out = {}
        for name, p in self.params.items():
            d = {"type": type(p).__name__.lower()} | {k: v for k, v in dataclasses.asdict(p).items() if v not in (None, "")}
            if "choices" in d:
                d["choices"] = list(d["choices"])
            out[name] = d
        return out

    def signature(self) -> dict[str, dict]:
        """What makes this space this space (its distributions and where values land, not the help
        sentences): JSON-able, recorded in study.json and compared when a study resumes."""
        return signature_of(self.to_dict())

    def describe(self) -> str:
        return "\n".join(f"  {n:<16} {p.describe():<36} {p.help}" for n, p in self.params.items())


def signature_of(space_dict: dict) -> dict[str, dict]:
    """`SearchSpace.signature` from a `to_dict` (an Optuna study's recorded space, space.json)."""
    return {n: {k: v for k, v in d.items() if k != "help"} for n, d in space_dict.items()}


def _spec_text(d: dict | None) -> str:
    if d is None:
        return "absent"
    if "choices" in d:
        text = " | ".join(map(str, d["choices"]))
    elif "low" in d:
        text = f"{d['low']:g}..{d['high']:g}" + (" log" if d.get("log") else "")
    else:
        text = json.dumps(d)
    return text + (f" as {d['option']}" if d.get("option") else "") + (f" x {d['times']}" if d.get("times") else "")


def space_difference(have: dict, want: dict) -> str:
    """'canvas_size 95 | 97, not 64 | 96; lr absent, not 0.01..0.2 log' for two signatures."""
    names = list(have) + [n for n in want if n not in have]
    return "; ".join(f"{n} {_spec_text(have.get(n))}, not {_spec_text(want.get(n))}"
                     for n in names if have.get(n) != want.get(n))


def _option_value(method: str, option: str, value: Any) -> Any:
    """A list-typed option (LoRA's target_modules) is searched as 'q_proj,v_proj' strings."""
    from ..methods import get_method

    cls = get_method(method).config_class
    if dataclasses.is_dataclass(cls):
        f = {f.name: f for f in dataclasses.fields(cls)}.get(option)
        if f is not None and isinstance(value, str) and "list" in str(f.type):
            return [v.strip() for v in value.split(",") if v.strip()]
    return value


# --- the space of a method, checked ------------------------------------------------------------------

def method_space(method: str) -> SearchSpace:
    """The space the method declares (`search_space` class attribute), checked."""
    from ..methods import get_method

    cls = get_method(method)
    declared = getattr(cls, "search_space", None)
    if not cls.trains:
        raise ConfigError(f"method {method!r} trains nothing, so it has no hyper-parameters to tune")
    if not declared:
        raise ConfigError(f"method {method!r} declares no search space; give one with --space FILE "
                          "(a YAML or JSON object: parameter -> {low, high, log} or {choices: [...]})")
    space = SearchSpace(method, dict(declared), f"{cls.__name__}.search_space")
    check_space(space, source=space.source)
    return space


def load_space(method: str, path: str | Path | None) -> SearchSpace:
    """The method's space, narrowed or extended by the YAML/JSON file at `path` (if any)."""
    from ..methods import get_method

    if path is None:
        return method_space(method)
    data = read_space_file(path)
    cls = get_method(method)
    params = dict(getattr(cls, "search_space", None) or {})
    for name, spec in data.items():
        where = f"{path}: parameter {name!r}"
        if spec is None:
            if name not in params:
                raise ConfigError(f"{where} is set to null (drop it), but the {method} space has no such parameter; "
                                  f"it has: {', '.join(params) or 'none'}")
            params.pop(name)
            continue
        params[name] = param_from_spec(spec, params.get(name), where)
    space = SearchSpace(method, params, str(path))
    if not cls.trains:
        raise ConfigError(f"method {method!r} trains nothing, so it has no hyper-parameters to tune")
    if not space.params:
        raise ConfigError(f"{path}: the space is empty; keep at least one parameter to search")
    check_space(space, source=str(path))
    return space


def read_space_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"space file {path} {'is a folder' if path.is_dir() else 'does not exist'}; expected a YAML "
                          "or JSON file holding an object: "
                          "parameter -> {low, high, log} or {choices: [...]}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    except Exception as err:  # yaml.YAMLError
        raise ConfigError(_yaml_error(path, err)) from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"  # "got NoneType" for an empty file
        raise ConfigError(f"{path}: expected an object of parameters (name -> {{low, high}} or {{choices}}), "
                          f"got {got}")
    return data


_SPEC_KEYS = {"low", "high", "log", "choices", "type", "help", "option", "times"}


def param_from_spec(spec: Any, base: Param | None, where: str) -> Param:
    """A parameter from a file entry; keys it leaves out come from the method's own declaration."""
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected {{low, high[, log]}}, {{choices: [...]}} or null, got {spec!r}")
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(_SPEC_KEYS))}")
    kind = spec.get("type")
    common = {k: spec[k] for k in ("help", "option", "times") if k in spec}
    if base is not None:
        common = {"help": base.help, "option": base.option, "times": base.times} | common
    if "choices" in spec or kind == "choice":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list, got {choices!r}")
        return Choice(tuple(choices), **common)
    if kind == "canvassize" or (kind is None and isinstance(base, CanvasSize)):
        b = base if isinstance(base, CanvasSize) else CanvasSize()
        return CanvasSize(int(spec.get("low", b.low)), int(spec.get("high", b.high)), **common)
    low = spec.get("low", getattr(base, "low", None))
    high = spec.get("high", getattr(base, "high", None))
    if low is None or high is None:
        raise ConfigError(f"{where}: a range needs low and high (or give choices: [...])")
    for bound, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: {bound} must be a number, got {value!r}")
    log = bool(spec.get("log", getattr(base, "log", False)))
    # A range replacing a choice (or a new parameter) is whole-numbered when its bounds are.
    is_int = kind == "int" or (kind is None and (isinstance(base, Int) or (
        (base is None or isinstance(base, Choice)) and isinstance(low, int) and isinstance(high, int) and not log)))
    if is_int:
        if float(low) != int(low) or float(high) != int(high):
            raise ConfigError(f"{where}: an integer range needs whole numbers, got {low}..{high}")
        return Int(int(low), int(high), log=log, **common)
    return Float(float(low), float(high), log=log, **common)


def check_space(space: SearchSpace, source: str) -> None:
    """Clear errors for a space that cannot be searched: unknown parameter, empty or reversed range,
    a value the method (or TrainConfig) does not accept."""
    from ..methods import get_method
    from ..options import check_choices, field_names, field_type
    from ..training import TrainConfig

    cls = get_method(space.method)
    options = field_names(cls.config_class) if cls.config_class is not dict else set()
    declared = {n: p for n, p in (getattr(cls, "search_space", None) or {}).items() if p.option and p.option != n}
    setters: dict[str, str] = {}
    for name, p in space.params.items():
        where = f"{source}: parameter {name!r}"
        target = p.option or name
        if target not in TRAIN_FIELDS and target not in options:
            raise ConfigError(f"{where}: unknown parameter for method {space.method!r}; searchable: "
                              f"{', '.join(sorted(set(TRAIN_FIELDS) | options | set(declared)))}")
        if target in setters:  # alpha beside alpha_ratio: one of the two was sampled, recorded and ignored
            other = setters[target]
            how = {n: f"{n} searches {target} as a multiple of {q.times}" for n, q in declared.items() if q.times}
            raise ConfigError(f"{where}: {other!r} sets {target} too; keep one of them"
                              + (f" ({how[other if other in how else name]})" if other in how or name in how else ""))
        setters[target] = name
        owner = TrainConfig if target in TRAIN_FIELDS else cls.config_class
        if isinstance(p, Float) and p.times is None and field_type(owner, target)[0] is int:
            raise ConfigError(f"{where}: {target} takes whole numbers, but the range {p.low!r}..{p.high!r} samples "
                              "real numbers; write whole-number bounds without a decimal point, add type: int, or "
                              "list the choices")
        if p.times is not None and p.times not in space.params:
            raise ConfigError(f"{where}: scaled by {p.times!r}, which is not a parameter of this space")
        if isinstance(p, (Float, Int, CanvasSize)):
            if p.low > p.high:
                raise ConfigError(f"{where}: low {p.low} > high {p.high}; swap them")
            if isinstance(p, (Float, Int)) and p.log and p.low <= 0:
                raise ConfigError(f"{where}: a log-scale range needs low > 0, got {p.low}")
            if isinstance(p, Float) and p.low == p.high:
                raise ConfigError(f"{where}: the range {p.low}..{p.high} is empty; give low < high or a single choice")
            probes = [p.low, p.high]
        else:
            if not p.choices:
                raise ConfigError(f"{where}: no choices")
            bad = [c for c in p.choices if not isinstance(c, (str, int, float, bool, type(None)))]
            if bad:
                raise ConfigError(f"{where}: choices must be strings, numbers or booleans, got {bad[0]!r}")
            probes = list(p.choices)
        for value in probes:
            _probe(space, name, p, target, value, where, cls, check_choices, TrainConfig)


def _check_canvas_init(cls, target: str, value) -> None:
    """ART's `init` is free text (gray, noise, a colour, an image path): judge it as the canvas will, on a
    tiny canvas, so a choice the canvas would refuse fails now, not in the middle of the study."""
    from ..methods import ArtConfig

    config_class = cls.config_class
    if target == "init" and isinstance(value, str) and isinstance(config_class, type) and issubclass(config_class, ArtConfig):
        from ..canvas import initial_image

        initial_image(value, 8, 8)


def _probe(space, name, p, target, value, where, cls, check_choices, train_cls) -> None:
    """Build the config that `value` lands in, so the method's own checks judge it."""
    from ..methods import method_config

    if p.times is not None:
        other = space.params[p.times]
        value = value * (other.low if isinstance(other, (Float, Int, CanvasSize)) else other.choices[0])
    try:
        if target in TRAIN_FIELDS:
            from ..options import check_kinds

            from ..training import RANGES, check_range

            check_choices(train_cls, {target: value}, what="training")
            check_kinds(train_cls, {target: value}, what="training")
            if target in RANGES:  # the range TrainConfig.check holds a run's value to
                check_range(target, value)
        else:
            check_choices(cls.config_class, {target: value}, what=space.method)
            method_config(space.method, {target: _option_value(space.method, target, value)})
            _check_canvas_init(cls, target, value)
    except ConfigError as err:
        raise ConfigError(f"{where}: {value!r} is outside what {space.method} accepts ({err})") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {value!r} is not a valid value ({err})") from None


def _yaml_error(path, err: Exception) -> str:
    """One line for a YAML error, `FILE:LINE:COLUMN: not valid YAML (what)`, as for a JSON one; PyYAML's own
    message is six lines with the offending text and a caret drawn under it."""
    mark = getattr(err, "problem_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    what = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{path}{where}: not valid YAML ({what})"

