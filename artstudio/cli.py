"""The `artstudio` command: one verb per job, every option generated from a typed dataclass.

    artstudio train --data add-json --steps 300 --out runs/add-json
    artstudio export runs/add-json -o add-json.png
    artstudio eval --canvas add-json.png --data add-json --out runs/add-json-eval
    artstudio infer --canvas add-json.png --prompt "3 4" [--print-request]
    artstudio info add-json.png
    artstudio tasks list | artstudio tasks make add-json --out data/add-json
    artstudio app

As in litgpt, options are not written by hand: `dataclass_options` turns the fields of `TrainConfig`,
of every registered method's config class and of the verbs' own configs (`EvalConfig`,
`InferConfig`, ...) into `--snake-case` options with the field's type and `metadata["help"]`, so an
option cannot exist in the Python API and be missing here, or the reverse. Canvas options (`ArtConfig`)
are unprefixed (`--canvas-size`); other methods' options carry the method's name (`--lora-r`).

A user mistake (`ArtStudioError`) prints `error: <message>` and exits with status 2, never a
traceback (`--debug` shows one); `-v` logs progress to stderr. Verbs live in a small registry
(`VERBS`), so an optional module (`artstudio.compare`) adds its verb when it is installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import inspect
import json
import logging
import sys
import tempfile
import traceback
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Union

from artstudio.errors import ArtStudioError, ConfigError, DataError

log = logging.getLogger("artstudio.cli")

METRICS = ("exact", "numeric", "regex", "json")
# Extra spellings of generated options, per verb config field.
ALIASES: dict[str, tuple[str, ...]] = {"out": ("-o",), "output": ("-o",)}
# Fields whose values come from a fixed set (the dataclass types them as plain strings).
CHOICES: dict[str, Callable[[], tuple[str, ...]]] = {
    "metric": lambda: METRICS,
    "method": lambda: tuple(_method_names()),
    "objective": lambda: ("sft", "grpo"),
    "schedule": lambda: ("cosine", "constant"),
    "placement": lambda: ("first", "after-text"),
    "parametrization": lambda: ("sigmoid", "pixels"),
}


# ============================================================================ dataclass -> options

@dataclass(frozen=True)
class OptionSpec:
    """One generated option: where its value lands and which config field it fills."""

    flag: str
    dest: str
    name: str  # the dataclass field
    owner: str = ""  # for method options: "art" (all canvas methods) or the method's name
    applies_to: tuple[str, ...] = ()


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None`, else (tp, False)."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)):
            return (args[0] if len(args) == 1 else str), True
    return tp, False


def _json_value(text: str) -> Any:
    """A JSON value, or the text itself when it is not JSON (a bare word)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err.msg}); expected an object like '{{\"k\": 1}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object like '{\"k\": 1}'")
    return value


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _help_text(f: dataclasses.Field, default: Any) -> str:
    text = f.metadata.get("help", "")
    if "default" in text.lower() or isinstance(default, bool) or default == "":
        return text.replace("%", "%%")
    shown = "none" if default is None else default
    return f"{text} (default: {shown})".strip().replace("%", "%%")


def dataclass_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                      prefix: str = "", dest_prefix: str = "", skip: tuple[str, ...] = (),
                      only: tuple[str, ...] | None = None, suppress_defaults: bool = False,
                      owner: str = "", applies_to: tuple[str, ...] = (),
                      positional: tuple[str, ...] = ()) -> list[OptionSpec]:
    """Add one option per field of dataclass `cls`; return what was added.

    Types come from the annotations: `bool` -> `--flag/--no-flag`, `X | None` -> X, `Literal[...]`
    -> choices, `list[X]` -> one or more X, `dict` -> a JSON object. With `suppress_defaults` an
    option left out is absent from the namespace, so the config class keeps its own default.
    """
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        if f.name in skip or (only is not None and f.name not in only) or not f.init:
            continue
        name = f.name.replace("_", "-")
        flag = f"--{prefix}-{name}" if prefix else f"--{name}"
        dest = f"{dest_prefix}{f.name}"
        tp, _ = _unwrap_optional(hints[f.name])
        default = _default_of(f)
        kwargs: dict[str, Any] = {"help": _help_text(f, default)}
        if f.name in positional:  # required unless it has a real default (None counts as one)
            optional = {"nargs": "?", "default": default} if default != "" else {}
            parser.add_argument(dest, metavar=f.name.upper(), **optional, **kwargs)
            specs.append(OptionSpec(f.name.upper(), dest, f.name, owner, applies_to))
            continue
        kwargs["dest"] = dest
        kwargs["default"] = argparse.SUPPRESS if suppress_defaults else default
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is Literal:
            kwargs["choices"] = typing.get_args(tp)
        elif typing.get_origin(tp) in (list, tuple) or tp in (list, tuple):
            item = (typing.get_args(tp) or (str,))[0]
            kwargs |= {"nargs": "+", "type": item if item in (int, float, str) else _json_value,
                       "metavar": f.name.upper()}
        elif tp is dict or typing.get_origin(tp) is dict:
            kwargs |= {"type": _json_object, "metavar": "JSON"}
        elif tp in (int, float, str):
            kwargs |= {"type": tp, "metavar": f.name.upper()}
        else:
            kwargs |= {"type": _json_value, "metavar": f.name.upper()}
        if f.name in CHOICES and "choices" not in kwargs:
            kwargs["choices"] = CHOICES[f.name]()
            kwargs.pop("metavar", None)
        flags = [flag, *(ALIASES.get(f.name, ()) if not prefix else ())]
        parser.add_argument(*flags, **kwargs)
        specs.append(OptionSpec(flag, dest, f.name, owner, applies_to))
    return specs


def config_from_args(cls: type, ns: argparse.Namespace, specs: list[OptionSpec], **extra: Any) -> Any:
    """Build `cls` from the namespace values of `specs` (absent ones keep the class default)."""
    values = {s.name: getattr(ns, s.dest) for s in specs if hasattr(ns, s.dest)}
    return cls(**(values | extra))


# ============================================================================ verbs

@dataclass
class Verb:
    """A subcommand. `build(parser)` adds its options and returns the function that turns the parsed
    namespace into the verb's config; `execute(config)` does the work and returns the exit status."""

    name: str
    help: str
    build: Callable[[argparse.ArgumentParser], Callable[[argparse.Namespace], Any]]
    execute: Callable[[Any], int]
    epilog: str = ""


VERBS: dict[str, Verb] = {}


def verb(name: str, help: str, build: Callable, epilog: str = "") -> Callable:
    """Decorator: register the decorated `execute(config)` with its option builder as the verb `name`."""
    def wrap(execute: Callable[[Any], int]) -> Callable[[Any], int]:
        VERBS[name] = Verb(name, help, build=build, execute=execute, epilog=epilog)
        return execute
    return wrap


def parse_config(argv: list[str]) -> Any:
    """The config object a command line describes (`TrainConfig` for `train ...`), without running it.

    User errors raise `ArtStudioError`; argparse usage errors raise `SystemExit(2)`.
    """
    ns = build_parser(only=_verb_in(argv) or "").parse_args(argv)
    return ns._config(ns)


def config_verb(name: str, help: str, module: str, config_class: str, function: str) -> None:
    """Register a verb whose options are generated from `module.config_class` and that calls
    `module.function(config)`, if that module is installed (an optional part of the package).

    The module is imported only when the verb runs or shows its help, so it costs nothing otherwise.
    """
    try:
        if importlib.util.find_spec(module) is None:
            return
    except ModuleNotFoundError:
        return

    def parts() -> tuple[type, Callable]:
        mod = importlib.import_module(module)
        cls, func = getattr(mod, config_class, None), getattr(mod, function, None)
        if cls is None or func is None or not dataclasses.is_dataclass(cls):
            raise ConfigError(f"{module} has no {config_class} dataclass and {function}() function; "
                              f"`artstudio {name}` needs both")
        return cls, func

    def build(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], Any]:
        cls, _ = parts()
        p.description = (cls.__doc__ or help).strip()
        # A config with a `grpo` dict takes the same --grpo-* options as `artstudio train`.
        grpo_cls = _grpo_config_class() if "grpo" in {f.name for f in dataclasses.fields(cls)} else None
        specs = dataclass_options(p, cls, skip=("grpo",) if grpo_cls else ())
        if grpo_cls is None:
            return lambda ns: config_from_args(cls, ns, specs)
        grpo_specs = _grpo_option_group(p, grpo_cls)
        return lambda ns: config_from_args(cls, ns, specs, grpo=_grpo_options(ns, grpo_specs))

    def execute(config: Any) -> int:
        _show(parts()[1](config))
        return 0

    VERBS[name] = Verb(name, help, build=build, execute=execute)


def _show(result: Any) -> None:
    """Print what a verb function returned, in the most readable form it offers."""
    if result is None:
        return
    for attr in ("summary", "table", "to_markdown"):
        value = getattr(result, attr, None)
        if value is not None:
            print(value() if callable(value) else value)
            return
    if isinstance(result, (dict, list)):
        print(json.dumps(result, indent=2, default=str))
    else:
        print(result)


def table(rows: list[tuple[Any, ...]], headers: tuple[str, ...] | None = None) -> str:
    """A plain aligned text table (no dependency, readable in any terminal and in logs)."""
    cells = [tuple(str(c) for c in r) for r in ([headers] if headers else []) + rows]
    if not cells:
        return ""
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(max(len(r) for r in cells))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    if headers:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _pct(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "-"


# ---------------------------------------------------------------------------- train

def _method_names() -> list[str]:
    from artstudio.methods import method_names

    return method_names()


def method_option_specs(parser: argparse.ArgumentParser) -> list[OptionSpec]:
    """Options of every registered method's config, in groups; ArtConfig's are shared and unprefixed."""
    from artstudio.methods import ArtConfig, get_method
    from artstudio.train import TrainConfig

    names = _method_names()
    configs = {m: get_method(m).config_class for m in names}
    canvas_methods = tuple(m for m, c in configs.items() if isinstance(c, type) and issubclass(c, ArtConfig))
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    art_fields = {f.name for f in dataclasses.fields(ArtConfig)}
    group = parser.add_argument_group(
        f"canvas options (--method {' | '.join(canvas_methods)})",
        "An option left out keeps the method's own default (random-canvas starts from noise).",
    )
    # A canvas field named like a training option (seed) keeps the method's name as a prefix.
    specs = dataclass_options(group, ArtConfig, skip=tuple(train_fields), dest_prefix="method:art:",
                              suppress_defaults=True, owner="art", applies_to=canvas_methods)
    specs += dataclass_options(group, ArtConfig, only=tuple(art_fields & train_fields), prefix="art",
                               dest_prefix="method:art:", suppress_defaults=True, owner="art",
                               applies_to=canvas_methods)
    for m, cls in configs.items():
        if not dataclasses.is_dataclass(cls):
            continue
        own = tuple(f.name for f in dataclasses.fields(cls)
                    if not (m in canvas_methods and f.name in art_fields))
        if not own:
            continue
        group = parser.add_argument_group(f"{m} options (--method {m})", (cls.__doc__ or "").strip() or None)
        specs += dataclass_options(group, cls, only=own, prefix=m, dest_prefix=f"method:{m}:",
                                   suppress_defaults=True, owner=m, applies_to=(m,))
    return specs


def _grpo_config_class() -> type | None:
    """The GRPO options dataclass, when the GRPO objective is installed."""
    try:
        mod = importlib.import_module("artstudio.objectives.grpo")
    except ImportError:
        return None
    for value in vars(mod).values():
        if (isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == mod.__name__
                and value.__name__.lower().startswith("grpo") and value.__name__.endswith("Config")):
            return value
    return None


def _grpo_option_group(p: argparse.ArgumentParser, grpo_cls: type) -> list[OptionSpec]:
    """The --grpo-* options (one per GRPOConfig field; absent ones keep its defaults), in their own group."""
    g = p.add_argument_group("GRPO options (--objective grpo)")
    return dataclass_options(g, grpo_cls, prefix="grpo", dest_prefix="grpo:", suppress_defaults=True)


def _grpo_options(ns: argparse.Namespace, specs: list[OptionSpec]) -> dict[str, Any]:
    """The --grpo-* options given on the command line (absent ones keep GRPOConfig's defaults)."""
    return {s.name: getattr(ns, s.dest) for s in specs if hasattr(ns, s.dest)}


def method_options_from_args(ns: argparse.Namespace, specs: list[OptionSpec], method: str) -> dict[str, Any]:
    """The chosen method's options; an option of another method is an error (exit 2)."""
    given = [s for s in specs if hasattr(ns, s.dest)]
    wrong = [s for s in given if method not in s.applies_to]
    if wrong:
        parts = [f"{s.flag} is an option of --method {' / '.join(s.applies_to)}" for s in wrong]
        raise ConfigError("; ".join(parts) + f", not of --method {method}; drop it or choose that method")
    return {s.name: getattr(ns, s.dest) for s in given}


def _build_train(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], Any]:
    from artstudio.train import TrainConfig

    run_group = p.add_argument_group("training options")
    specs = dataclass_options(run_group, TrainConfig, skip=("method_options", "grpo"))
    grpo_cls = _grpo_config_class()
    if grpo_cls is not None:
        grpo_specs = _grpo_option_group(p, grpo_cls)
    else:
        grpo_specs = dataclass_options(run_group, TrainConfig, only=("grpo",))
    method_specs = method_option_specs(p)
    return lambda ns: train_config_from_args(ns, specs, method_specs, grpo_specs, grpo_cls is not None)


@verb("train", "train a canvas (or a baseline) on a task", _build_train,
      "examples:\n  artstudio train --data add-json --steps 300 --out runs/add-json\n"
      "  artstudio train --model Qwen/Qwen3.5-0.8B --data train.jsonl --eval-data test.jsonl "
      "--metric numeric --canvas-size 256 --out runs/gsm8k\n"
      "  artstudio train --method lora --lora-r 8 --data add-json --out runs/add-json-lora")
def _train(config) -> int:
    from artstudio.train import train

    print(train_summary(train(config)))
    return 0


def train_config_from_args(ns, specs, method_specs, grpo_specs, grpo_prefixed: bool):
    """The TrainConfig a parsed `artstudio train` command line describes."""
    from artstudio.train import TrainConfig

    method = getattr(ns, "method")
    options = method_options_from_args(ns, method_specs, method)
    if grpo_prefixed:
        grpo = _grpo_options(ns, grpo_specs)
    else:
        grpo = getattr(ns, "grpo") or {}
    return config_from_args(TrainConfig, ns, specs, method_options=options, grpo=grpo)


def train_summary(result) -> str:
    m = result.metrics
    per_step = m.get("seconds_per_step")
    rows = [("method", result.method.name),
            ("accuracy", f"{_pct(m.get('accuracy'))} (n={m['eval_n']})" if "accuracy" in m else "- (no eval data)"),
            ("steps", m.get("steps")),
            ("time", f"{m.get('train_seconds', 0):.1f} s" + (f" ({per_step:.3f} s/step)" if per_step else "")),
            ("trainable", f"{m.get('trainable_params', 0):,} parameters")]
    if result.artwork is not None:
        rows.append(("artwork", result.artwork))
    rows.append(("run", result.out))
    return table(rows)


# ---------------------------------------------------------------------------- export

@dataclass
class ExportConfig:
    """Export the trained method of a run folder (ART: a PNG artwork with metadata)."""

    run_dir: str = field(default="", metadata={"help": "run folder written by `artstudio train`"})
    output: str | None = field(default=None, metadata={"help": "PNG path (ART) or folder (other methods); default: RUN_DIR/artwork.png"})


def _builder(cls: type, positional: tuple[str, ...] = ()) -> Callable[[argparse.ArgumentParser], Callable]:
    """An option builder for a verb whose config is the dataclass `cls`."""
    def build(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], Any]:
        specs = dataclass_options(p, cls, positional=positional)
        return lambda ns: config_from_args(cls, ns, specs)
    return build


@verb("export", "export a run's trained canvas as a PNG artwork (with metadata)",
      _builder(ExportConfig, positional=("run_dir",)),
      "example:\n  artstudio export runs/add-json -o canvases/add-json.png")
def _export(config: ExportConfig) -> int:
    print(export_run(config))
    return 0


def export_run(config: ExportConfig) -> Path:
    """Write the deployable artefact of `config.run_dir`'s final method; return its path."""
    from artstudio.backbone import load_backbone
    from artstudio.methods import ArtMethod, Method

    run_dir = Path(config.run_dir)
    cfg_file, final = run_dir / "config.json", run_dir / "final"
    if not cfg_file.is_file():
        raise ConfigError(f"{run_dir} has no config.json; expected a run folder written by `artstudio train`")
    if not (final / "method.json").is_file():
        raise ConfigError(f"{run_dir} has no final/ method (the run did not finish); continue it with "
                          f"`artstudio train --resume --out {run_dir} ...` first")
    cfg = _read_json(cfg_file)
    result = _read_json(run_dir / "result.json") if (run_dir / "result.json").is_file() else {}
    backbone = load_backbone(cfg.get("model"), device="cpu")
    method = Method.load(final, backbone)
    if isinstance(method, ArtMethod):
        out = Path(config.output) if config.output else run_dir / "artwork.png"
        card = (cfg.get("resolved") or {}).get("task") or {}
        task = {"name": card.get("name", Path(cfg.get("data", "")).stem), "description": card.get("description", "")}
        metrics = {k: result[k] for k in ("accuracy", "eval_n") if k in result}
        return method.export(out, task=task, objective=cfg.get("objective", "sft"),
                             steps=int(result.get("steps", cfg.get("steps", 0))), metrics=metrics)
    if config.output is None or Path(config.output).suffix.lower() == ".png":
        raise ConfigError(f"{run_dir} trained method {method.name!r}, which exports to a folder, not a PNG; "
                          "pass -o FOLDER")
    return Path(method.export(config.output))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None


# ---------------------------------------------------------------------------- eval

@dataclass
class EvalConfig:
    """Greedy answers on a test set, scored 0/1 per row."""

    data: str = field(default="", metadata={"help": "test.jsonl, a task folder (its test split) or a built-in task name"})
    model: str | None = field(default=None, metadata={"help": "Hugging Face id or local folder (default: the artwork's model, else studio-tiny)"})
    canvas: str | None = field(default=None, metadata={"help": "artwork PNG; without it the base model answers with no image"})
    metric: str | None = field(default=None, metadata={"help": "exact | numeric | regex | json (default: the task card's, else exact)"})
    pattern: str | None = field(default=None, metadata={"help": "regular expression for --metric regex (default: the answer must match it)"})
    out: str | None = field(default=None, metadata={"help": "folder for predictions.jsonl and metrics.json (default: print only)"})
    allow_model_mismatch: bool = field(default=False, metadata={"help": "use an artwork made for another model anyway"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "answer budget in tokens (default: from the answers)"})
    batch_size: int = field(default=64, metadata={"help": "prompts decoded together"})
    limit: int | None = field(default=None, metadata={"help": "evaluate only the first N rows (default: all)"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1 (default: cuda if available)"})
    dtype: str | None = field(default=None, metadata={"help": "bf16 | fp16 | fp32 (default: bf16 on GPU, fp32 on CPU)"})


def eval_rows(spec: str, workdir: Path):
    """(rows, task card) from a JSONL file, a task folder's test split or a built-in task's."""
    from artstudio.data import load_jsonl
    from artstudio.tasks import TASKS, load_card, make_task

    if not spec:
        raise DataError("no test data: pass --data with a test.jsonl, a task folder or a built-in task name")
    path = Path(spec)
    if not path.exists() and spec in TASKS:
        # seed 0, as `artstudio train --data NAME` uses, so the test split is the one training reported on
        path = make_task(spec, workdir / spec, seed=0)
    if path.is_dir():
        if not (path / "test.jsonl").is_file():
            raise DataError(f"task folder {path} has no test.jsonl; expected the folder `artstudio tasks make` writes")
        return load_jsonl(path / "test.jsonl"), load_card(path)
    if path.exists():
        return load_jsonl(path), {}
    raise DataError(f"{spec} is neither a file, a task folder nor a built-in task; "
                    "`artstudio tasks list` shows the built-in tasks")


def method_for(model: str | None, canvas: str | None, allow_mismatch: bool, device: str | None = None,
               dtype: str | None = None):
    """The ArtMethod serving `canvas`, or the base model with no picture when there is none."""
    from artstudio.artwork import load_artwork
    from artstudio.backbone import DEFAULT_MODEL, load_backbone
    from artstudio.methods import build_method

    if canvas is not None:
        return load_artwork(canvas, model=model, allow_mismatch=allow_mismatch, device=device, dtype=dtype)
    return build_method("base", load_backbone(model or DEFAULT_MODEL, device=device, dtype=dtype))


def run_eval(config: EvalConfig):
    """Evaluate `config.canvas` (or the base model) on `config.data`; returns an `EvalResult`."""
    from artstudio.evaluate import evaluate

    if config.metric is not None and config.metric not in METRICS:
        raise ConfigError(f"unknown metric {config.metric!r}; choose one of {', '.join(METRICS)}")
    with tempfile.TemporaryDirectory(prefix="artstudio-eval-") as tmp:
        rows, card = eval_rows(config.data, Path(tmp))
        if config.limit is not None:
            rows = rows[: config.limit]
        method = method_for(config.model, config.canvas, config.allow_model_mismatch, config.device, config.dtype)
        metric = config.metric or card.get("metric") or "exact"
        return evaluate(method, rows, metric, pattern=config.pattern, max_new_tokens=config.max_new_tokens,
                        batch_size=config.batch_size, out_dir=config.out)


@verb("eval", "evaluate an artwork (or the base model) on a test set", _builder(EvalConfig),
      "examples:\n  artstudio eval --canvas art.png --data test.jsonl --metric numeric --out runs/eval\n"
      "  artstudio eval --data add-json            # the base model, no image")
def _eval(config: EvalConfig) -> int:
    res = run_eval(config)
    rows = [("canvas", "none (base model)" if config.canvas is None else config.canvas),
            ("metric", res.metric),
            ("accuracy", f"{_pct(res.accuracy)} ({sum(r['correct'] for r in res.predictions)}/{res.n})"),
            ("latency", f"{res.latency_ms:.1f} ms per request")]
    if config.out:
        rows.append(("written", Path(config.out) / "predictions.jsonl"))
    print(table(rows))
    return 0


# ---------------------------------------------------------------------------- infer

@dataclass
class InferConfig:
    """Answer prompts with an artwork (or the base model), or print the request a vLLM server takes."""

    prompt: str | None = field(default=None, metadata={"help": "one prompt"})
    data: str | None = field(default=None, metadata={"help": "a JSONL file of prompts (answers optional); prints one JSON line per row"})
    model: str | None = field(default=None, metadata={"help": "Hugging Face id or local folder (default: the artwork's model, else studio-tiny)"})
    canvas: str | None = field(default=None, metadata={"help": "artwork PNG (default: none, the base model)"})
    image: str | None = field(default=None, metadata={"help": "an extra picture shown after the canvas (with --prompt)"})
    max_new_tokens: int = field(default=64, metadata={"help": "longest answer in tokens"})
    temperature: float = field(default=0.0, metadata={"help": "0 for greedy decoding, else sampling temperature"})
    seed: int = field(default=0, metadata={"help": "sampling seed (temperature > 0)"})
    allow_model_mismatch: bool = field(default=False, metadata={"help": "use an artwork made for another model anyway"})
    print_request: bool = field(default=False, metadata={"help": "print the OpenAI-compatible chat request for a vLLM server instead of answering"})
    print_curl: bool = field(default=False, metadata={"help": "print that request as a curl command"})
    served_model_name: str | None = field(default=None, metadata={"help": "model name in printed requests (default: --model, else the artwork's model id)"})
    url: str = field(default="http://localhost:8000/v1/chat/completions", metadata={"help": "server endpoint used by --print-curl"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1 (default: cuda if available)"})
    dtype: str | None = field(default=None, metadata={"help": "bf16 | fp16 | fp32 (default: bf16 on GPU, fp32 on CPU)"})


def infer_examples(config: InferConfig):
    from artstudio.data import Example, load_jsonl

    if (config.prompt is None) == (config.data is None):
        raise ConfigError("pass exactly one of --prompt TEXT or --data FILE.jsonl")
    if config.prompt is not None:
        image = str(Path(config.image).resolve()) if config.image else None
        if image is not None and not Path(image).is_file():
            raise DataError(f"{config.image}: no such image file")
        return [Example(prompt=config.prompt, image=image)]
    if config.image is not None:
        raise ConfigError("--image goes with --prompt; rows of --data name their own picture in \"image\"")
    return load_jsonl(config.data, require_answer=False)


def requests_for(config: InferConfig, examples) -> list[dict]:
    """The vLLM chat requests for `examples`, built without loading the model."""
    from artstudio.artwork import read_artwork
    from artstudio.backbone import DEFAULT_MODEL
    from artstudio.serving import vllm_request

    placement, name = "first", config.served_model_name or config.model
    if config.canvas is not None:
        meta = read_artwork(config.canvas).metadata
        placement = meta.placement if meta is not None else "first"
        name = name or (meta.model_id if meta is not None else None)
    name = name or DEFAULT_MODEL
    return [vllm_request(config.canvas, ex.prompt, name, placement, config.max_new_tokens, config.temperature,
                         image=ex.image) for ex in examples]


def run_infer(config: InferConfig) -> list[str]:
    """Answers to the prompts of `config` (greedy unless `temperature` > 0)."""
    from artstudio.generation import GenerationConfig, generate

    examples = infer_examples(config)
    if config.max_new_tokens < 1 or config.temperature < 0:
        raise ConfigError("--max-new-tokens must be >= 1 and --temperature >= 0")
    method = method_for(config.model, config.canvas, config.allow_model_mismatch, config.device, config.dtype)
    gen = generate(method, examples, GenerationConfig(max_new_tokens=config.max_new_tokens,
                                                      do_sample=config.temperature > 0,
                                                      temperature=config.temperature or 1.0), seed=config.seed)
    return [t[0] for t in gen.texts]


@verb("infer", "answer prompts with an artwork, or print the vLLM request that does", _builder(InferConfig),
      "examples:\n  artstudio infer --canvas art.png --prompt \"3 4\"\n"
      "  artstudio infer --canvas art.png --prompt \"3 4\" --print-request > request.json\n"
      "  curl -s localhost:8000/v1/chat/completions -H 'Content-Type: application/json' -d @request.json")
def _infer(config: InferConfig) -> int:
    from artstudio.serving import curl_command

    if config.print_request or config.print_curl:
        requests = requests_for(config, infer_examples(config))
        for req in requests:
            if config.print_curl:
                print(curl_command(req, config.url))
            else:
                print(json.dumps(req, ensure_ascii=False, indent=None if len(requests) > 1 else 2))
        return 0
    answers = run_infer(config)
    if config.prompt is not None:
        print(answers[0])
    else:
        for ex, answer in zip(infer_examples(config), answers):
            print(json.dumps({"id": ex.id, "prompt": ex.prompt, "prediction": answer}, ensure_ascii=False))
    return 0


# ---------------------------------------------------------------------------- info

@dataclass
class InfoConfig:
    """What `artstudio info` shows."""

    artwork: str | None = field(default=None, metadata={"help": "artwork PNG whose metadata to show"})
    model: str | None = field(default=None, metadata={"help": "a model whose geometry to show (with an artwork: check they fit; default without an artwork: studio-tiny)"})
    json: bool = field(default=False, metadata={"help": "print JSON instead of a table"})


@verb("info", "show an artwork's metadata, or a model's canvas geometry",
      _builder(InfoConfig, positional=("artwork",)),
      "examples:\n  artstudio info canvases/add-json.png\n  artstudio info --model Qwen/Qwen3.5-0.8B --json")
def _info(config: InfoConfig) -> int:
    info = gather_info(config.artwork, config.model)
    print(json.dumps(info, indent=2, ensure_ascii=False) if config.json else format_info(info))
    return 0


def gather_info(artwork: str | None, model: str | None) -> dict[str, Any]:
    """Metadata of `artwork` and/or the description of `model` (default: studio-tiny)."""
    from artstudio.artwork import read_artwork
    from artstudio.backbone import DEFAULT_MODEL, load_backbone

    info: dict[str, Any] = {}
    art = None
    if artwork is not None:
        art = read_artwork(artwork)
        info["artwork"] = {"path": str(art.path), "size": [art.image.height, art.image.width],
                           "metadata": json.loads(art.metadata.to_json()) if art.metadata else None}
    if model is not None or artwork is None:
        backbone = load_backbone(model or DEFAULT_MODEL, device="cpu")
        desc = backbone.describe()
        desc["tokens_per_size"] = {str(s): backbone.geometry.tokens(s) for s in desc["valid_sizes"]}
        info["model"] = desc
        if art is not None:
            from artstudio.artwork import check_compatible

            try:
                issues = check_compatible(art, backbone, allow_mismatch=True)
                info["compatible"] = {"ok": not issues, "mismatches": issues}
            except ArtStudioError as err:
                info["compatible"] = {"ok": False, "mismatches": [str(err)]}
    return info


def format_info(info: dict[str, Any]) -> str:
    out = []
    if "artwork" in info:
        art, meta = info["artwork"], info["artwork"]["metadata"]
        rows: list[tuple[Any, ...]] = [("artwork", art["path"]), ("size", "×".join(map(str, art["size"])))]
        if meta is None:
            rows.append(("metadata", "none (a plain PNG: name the model with --model when using it)"))
        else:
            task = meta.get("task") or {}
            geo = meta["geometry"]
            rows += [("model", meta["model_id"]), ("family", meta["family"]), ("placement", meta["placement"]),
                     ("geometry", f"patch {geo.get('patch_size')} × merge {geo.get('merge_size')}, "
                                  f"factor {geo.get('factor')}")]
            if task:
                rows += [("task", task.get("name", "")), ("description", task.get("description", ""))]
            rows += [("objective", meta["objective"]), ("steps", meta["steps"])]
            rows += [(k, _pct(v) if k.endswith("accuracy") else v) for k, v in meta["metrics"].items()]
            rows += [("created", meta["created"]), ("artstudio", meta["artstudio_version"])]
        out.append(table(rows))
    if "model" in info:
        m = info["model"]
        geo = m["geometry"]
        sizes = ", ".join(f"{s} ({t})" for s, t in m["tokens_per_size"].items())
        out.append(table([
            ("model", m["model_id"]), ("family", m["family"]), ("parameters", f"{m['params']:,}"),
            ("patch", f"{geo['patch_size']} × merge {geo['merge_size']} (side multiple of {geo['factor']}), "
                      f"temporal {geo['temporal_patch_size']}"),
            ("pixels", f"{geo['min_pixels']} .. {geo['max_pixels']}"),
            ("mean / std", f"{geo['image_mean']} / {geo['image_std']}"),
            ("sizes (tokens)", sizes),
        ]))
    if "compatible" in info:
        c = info["compatible"]
        out.append("compatible: yes" if c["ok"] else "compatible: no\n  " + "\n  ".join(c["mismatches"]))
    return "\n\n".join(out)


# ---------------------------------------------------------------------------- tasks

def _build_tasks(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], Any]:
    sub = p.add_subparsers(dest="tasks_command", metavar="{list,make}", required=True)
    lp = sub.add_parser("list", help="list the built-in tasks", parents=[_common()])
    lp.add_argument("--kind", choices=("pretrain", "heldout"), default=None, help="only this kind of task")
    lp.add_argument("--json", action="store_true", help="print the task cards as JSON")
    mp = sub.add_parser("make", help="write a task's train/test JSONL and card to a folder", parents=[_common()])
    mp.add_argument("name", metavar="NAME", help="a built-in task (`artstudio tasks list`)")
    mp.add_argument("--out", "-o", required=True, help="output folder")
    mp.add_argument("--seed", type=int, default=0, help="generator seed (default: 0, what `train --data NAME` uses)")
    mp.add_argument("--n-train", type=int, default=None, help="training rows (default: the card's)")
    mp.add_argument("--n-test", type=int, default=None, help="test rows (default: the card's)")

    return lambda ns: ns


@verb("tasks", "list the built-in tasks, or write one as JSONL splits", _build_tasks,
      "examples:\n  artstudio tasks list --kind heldout\n  artstudio tasks make add-json --out data/add-json")
def _tasks(ns: argparse.Namespace) -> int:
    from artstudio.tasks import list_tasks, make_task

    if ns.tasks_command == "list":
        cards = list_tasks(ns.kind)
        if ns.json:
            print(json.dumps([c.to_dict() for c in cards], indent=2, ensure_ascii=False))
        else:
            print(table([(c.name, c.kind, c.metric, c.answer_format, _short(c.description, 70)) for c in cards],
                        ("name", "kind", "metric", "format", "description")))
        return 0
    for n in ("n_train", "n_test"):
        if getattr(ns, n) is not None and getattr(ns, n) < 1:
            raise ConfigError(f"--{n.replace('_', '-')} must be at least 1")
    out = make_task(ns.name, ns.out, seed=ns.seed, n_train=ns.n_train, n_test=ns.n_test)
    print(f"wrote {out}/train.jsonl, test.jsonl, card.json")
    return 0


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# ---------------------------------------------------------------------------- app

@dataclass
class AppConfig:
    """The ART Studio web app (Gradio)."""

    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=7860, metadata={"help": "port to listen on"})
    share: bool = field(default=False, metadata={"help": "also open a public Gradio share link"})
    runs_dir: str = field(default="runs", metadata={"help": "folder the app reads and writes runs in"})
    canvases_dir: str = field(default="canvases", metadata={"help": "folder of artworks the app shows and exports to"})
    model: str | None = field(default=None, metadata={"help": "model to load (default: studio-tiny)"})


def launch_app(config: AppConfig) -> int:
    """Start the web app if `artstudio.ui` provides one (blocking); else say so and return 1."""
    try:
        app = importlib.import_module("artstudio.ui.app")
    except ModuleNotFoundError as err:
        if err.name not in ("artstudio.ui.app", "artstudio.ui"):
            raise
        app = None
    launch = getattr(app, "launch", None)
    if launch is None:
        print("The web app is not part of this installation yet (artstudio.ui.app.launch is missing).\n"
              "Meanwhile: artstudio train | export | eval | infer | info  (each with --help).", file=sys.stderr)
        return 1
    params = inspect.signature(launch).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in dataclasses.asdict(config).items()
              if (k in params or takes_any) and not (v is None and k not in params)}
    launch(**kwargs)
    return 0


verb("app", "start the web app", _builder(AppConfig), "example:\n  artstudio app --port 7860")(launch_app)


# Optional verbs: present when their module is installed.
_OPTIONAL_VERBS = (("compare", "compare methods × tasks × seeds in one harness", "artstudio.compare",
                    "CompareConfig", "compare"),)


# ============================================================================ main

def _common() -> argparse.ArgumentParser:
    """Options every verb takes; SUPPRESS keeps a value given before the verb."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="log progress to stderr (-vv: debug)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the traceback of an error")
    return p


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with `only`, the options of that verb alone are built (the others cost imports)."""
    for name, help, module, cls, func in _OPTIONAL_VERBS:
        if name not in VERBS:
            try:
                config_verb(name, help, module, cls, func)
            except Exception as err:  # noqa: BLE001 - a broken optional module must not take down every verb
                log.warning("the `%s` verb is unavailable: %s", name, err)
    from artstudio import __version__

    parser = argparse.ArgumentParser(
        prog="artstudio", parents=[_common()],
        description="Fine-tune frozen Qwen vision-language models by training one picture (an ART canvas).",
        epilog="`artstudio VERB --help` shows a verb's options.",
    )
    parser.set_defaults(verbose=0, debug=False)
    parser.add_argument("--version", action="version", version=f"artstudio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="VERB", required=True)
    for v in VERBS.values():
        p = sub.add_parser(v.name, help=v.help, description=v.help[0].upper() + v.help[1:] + ".",
                           epilog=v.epilog, parents=[_common()],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if only is None or only == v.name:
            p.set_defaults(_config=v.build(p))
    return parser


def _verb_in(argv: list[str]) -> str | None:
    """The verb of a command line: its first word that is not an option (global options take no value)."""
    return next((a for a in argv if not a.startswith("-")), None)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (tests and notebooks replace it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _setup_logging(verbosity: int) -> None:
    """Log ArtStudio's messages to stderr: warnings by default, INFO with -v, DEBUG with -vv.

    Only the `artstudio` logger is configured, so calling `main()` inside another program leaves
    that program's logging alone.
    """
    logger = logging.getLogger("artstudio")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG)


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        parser = build_parser(only=_verb_in(argv) or "")
        try:
            ns = parser.parse_args(argv)
        except SystemExit as exit_:  # --help, --version, or a usage error argparse already printed
            return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
        debug = ns.debug
        _setup_logging(ns.verbose)
        return int(VERBS[ns.command].execute(ns._config(ns)) or 0)
    except ArtStudioError as err:
        if debug:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
