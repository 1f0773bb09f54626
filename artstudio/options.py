"""Config dataclasses as the one source of options: defaults, choices, types, building from a dict.

Every run, verb and method is configured by a dataclass whose fields carry `metadata={"help": ...}`
and typed choices (`Literal[...]`). The command line (`artstudio.cli`), the Python API and the web
app (`artstudio.ui`) all read their options from those dataclasses through the helpers here, so an
option, its default, its choices and its help exist in exactly one place.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from typing import Any, Literal, Union

from .errors import ConfigError

# Help of the options every verb that loads a model shares.
DEVICE_HELP = "cpu, cuda, cuda:1 (default: cuda if available)"
DTYPE_HELP = "bf16 | fp16 | fp32 (default: bf16 on GPU, fp32 on CPU)"


def default_of(f: dataclasses.Field) -> Any:
    """A field's default value (calling its factory), or None when it has none."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def field_type(cls: type, name: str) -> tuple[Any, bool]:
    """(type, optional) of field `name` of dataclass `cls`: `int | None` gives (int, True)."""
    tp = typing.get_type_hints(cls)[name]
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return (args[0] if len(args) == 1 else str), True
    return tp, False


def choices_of(cls: type, name: str) -> tuple[Any, ...] | None:
    """The values a `Literal[...]` field takes (None for a free field)."""
    tp, _ = field_type(cls, name)
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else None


def from_dict(cls: type, values: dict[str, Any] | None, *, what: str | None = None, flag: str | None = None) -> Any:
    """Build dataclass `cls` from `values`; unknown keys and values outside a field's choices are
    `ConfigError`s naming the option and what is valid (and its command-line flag, `flag` + the name
    with dashes, where the options have one: `flag="--grpo-"`)."""
    values = dict(values or {})
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(values) - set(known))
    if unknown:
        head = f"unknown {what} option(s) {', '.join(unknown)}" if what else \
            f"unknown option(s) {', '.join(unknown)} for {cls.__name__}"
        raise ConfigError(f"{head}; valid: {', '.join(sorted(known))}")
    for name, value in values.items():  # numpy's numbers (np.int64(300) from an array) as Python's
        if isinstance(value, numbers.Number) and not isinstance(value, (bool, int, float, complex)):
            if isinstance(value, numbers.Integral):
                values[name] = int(value)
            elif isinstance(value, numbers.Real):
                values[name] = float(value)
    check_choices(cls, values, what=what or cls.__name__, flag=flag)
    check_kinds(cls, values, what=what or cls.__name__, flag=flag)
    for name, value in values.items():  # NaN passes every `value >= 0` check (a NaN --tv-weight trained nothing)
        if isinstance(value, float) and value != value and field_type(cls, name)[0] in (int, float):
            raise ConfigError(f"{_option(cls, name, what or cls.__name__, flag)} is {value!r}; expected a number")
    for name, value in values.items():  # 300.0 from a JSON writer that writes every number as a float
        if isinstance(value, float) and value.is_integer() and field_type(cls, name)[0] is int:
            values[name] = int(value)
    return cls(**values)


def _option(cls: type, name: str, what: str | None, flag: str | None) -> str:
    """How an error names option `name`: `GRPO option loss_type (--grpo-loss-type)`."""
    return option_label(what or cls.__name__, name, flag)


def option_label(what: str, name: str, flag: str | None = None) -> str:
    """Option `name` of `what` as an error names it, its key and (with the command line's `flag` prefix) its flag:
    `LoRA option r (--lora-r)`. A key alone sent compare and Python users, who write keys, to train's flags."""
    named = f"{what} option {name}"
    return f"{named} ({flag}{name.replace('_', '-')})" if flag else named


def check_kinds(cls: type, values: dict[str, Any], *, what: str | None = None, flag: str | None = None) -> None:
    """Refuse a switch that is not true/false and a number that is not a number (as JSON config files give
    them: `"overwrite": "false"` is a non-empty string, which Python reads as true)."""
    for name, value in values.items():
        tp, optional = field_type(cls, name)
        if value is None and optional:
            continue
        if tp is bool and not isinstance(value, bool):
            raise ConfigError(f"{_option(cls, name, what, flag)} is {value!r}; expected true or false")
        if tp in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{_option(cls, name, what, flag)} is {value!r}; expected a number")
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{_option(cls, name, what, flag)} is {value!r}; expected a whole number")
        if name == "seed" and tp is int:
            check_seed(value, _option(cls, name, what, flag))


SEED_MAX = 2**32 - 1  # what every seeded library here takes (numpy and Optuna's samplers: 0 to 2**32 - 1)


def check_seed(value: int, option: str = "--seed") -> None:
    """Refuse a seed the random generators cannot take: 99999999999999999999 was a raw OverflowError from torch
    after the run had begun, and -1 was taken by `train` but refused by `tune` (Optuna)."""
    if not 0 <= value <= SEED_MAX:
        raise ConfigError(f"{option} is {value}; expected a whole number from 0 to {SEED_MAX}")


def check_choices(cls: type, values: dict[str, Any], *, what: str | None = None, flag: str | None = None) -> None:
    """Refuse a value outside a `Literal` field's choices (None is allowed where the field is optional)."""
    for name, value in values.items():
        tp, optional = field_type(cls, name)
        if typing.get_origin(tp) is not Literal or (value is None and optional):
            continue
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{_option(cls, name, what, flag)} is {value!r}; choose one of "
                              f"{', '.join(map(str, choices))}")


def coerce_numbers(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Form values (text or float) of `cls`'s int/float fields as numbers; '' means the default (None)."""
    out = dict(values)
    for f in dataclasses.fields(cls):
        if f.name not in out:
            continue
        tp, optional = field_type(cls, f.name)
        if tp not in (int, float) or isinstance(out[f.name], bool):
            continue
        number = parse_number(out[f.name], f.name.replace("_", " "), tp)
        if number is None and not optional:
            raise ConfigError(f"{f.name.replace('_', ' ')} is empty; expected a number")
        out[f.name] = number
    return out


def parse_number(value: Any, name: str, kind: type) -> int | float | None:
    """A number from a form or a command line: empty means None; text that is not one is a clear error."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
        if kind is int and not number.is_integer():
            raise ValueError
        return int(number) if kind is int else number
    except (TypeError, ValueError):
        expected = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name} is {value!r}; expected {expected} (or leave it empty for the default)") from None


def field_names(cls: type) -> set[str]:
    """The init fields of a dataclass (an empty set for a dict-configured method)."""
    return {f.name for f in dataclasses.fields(cls) if f.init} if dataclasses.is_dataclass(cls) else set()


def field_defaults(cls: type) -> dict[str, Any]:
    """Each init field's default value (its factory's, called) as JSON would hold it; empty for a dict-configured
    method. A resume compares an option typed as its default with a run that recorded nothing for it by these."""
    if not dataclasses.is_dataclass(cls):
        return {}
    out = {}
    for f in dataclasses.fields(cls):
        if f.init and f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.init and f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out
