"""The `artstudio` command: one verb per job, every option generated from a typed dataclass.

    artstudio train --data add-json --steps 300 --out runs/add-json
    artstudio export runs/add-json -o add-json.png
    artstudio eval --canvas add-json.png --data add-json --out runs/add-json-eval
    artstudio infer --canvas add-json.png --prompt "3 4" [--print-request]
    artstudio info add-json.png
    artstudio tasks list | artstudio tasks make add-json --out data/add-json
    artstudio app

As in litgpt, options are not written by hand: `dataclass_options` turns the fields of `TrainConfig`,
of every registered method's config class and of the library's recipe configs (`EvalConfig`,
`InferConfig`, `CompareConfig`, `AppSettings`, ...) into `--kebab-case` options with the field's type,
`Literal` choices and `metadata["help"]`, so an option cannot exist in the Python API and be missing
here, or the reverse. Canvas options (`ArtConfig`) are unprefixed (`--canvas-size`); other methods'
options carry the method's name (`--lora-r`). The verbs only parse and print: the work is done by
the library functions they call (`training.train`, `evaluation.run_eval`, `inference.run_infer`, ...).

A user mistake (`ArtStudioError`) prints `error: <message>` and exits with status 2, never a
traceback (`--debug` shows one); `-v` logs progress to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import traceback
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from artstudio.errors import ArtStudioError, ConfigError, SaidByMainProcess, Terminated
from artstudio.options import default_of, field_type
from artstudio.progress import quiet_loading_off_terminal

log = logging.getLogger("artstudio.cli")

# Extra spellings of generated options, per config field: the names transformers' TrainingArguments
# users type (`--output-dir`, `--max-steps`, `--learning-rate`, ...) work beside the short ones.
ALIASES: dict[str, tuple[str, ...]] = {
    "out": ("-o", "--output-dir", "--output"),
    "steps": ("--max-steps",),
    "lr": ("--learning-rate",),
    "grad_accum": ("--gradient-accumulation-steps",),
    "schedule": ("--lr-scheduler-type",),
    "warmup": ("--warmup-ratio",),
    "eval_every": ("--eval-steps",),
    "checkpoint_every": ("--save-steps",),
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


def _json_value(text: str) -> Any:
    """A JSON value, or the text itself when it is not JSON (a bare word)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _json_object(text: str) -> dict:
    """A JSON object, written inline or as the path of a .json file holding one (tune's
    best_method_options.json is meant for `compare --method-options FILE`; the path was refused as bad JSON)."""
    source = ""
    if not text.lstrip().startswith("{") and text.endswith(".json"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise argparse.ArgumentTypeError(f"{text}: no such file; give a JSON object like '{{\"k\": 1}}' or "
                                             "the path of a .json file holding one")
        source, text = f"{text}: ", path.read_text(encoding="utf-8")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"{source}not valid JSON ({err.msg}); expected an object like "
                                         "'{\"k\": 1}' or the path of a .json file holding one") from None
    except (RecursionError, ValueError) as err:
        raise argparse.ArgumentTypeError(f"{source}not valid JSON ({type(err).__name__})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{source}expected a JSON object like '{{\"k\": 1}}'")
    return value


def _help_text(f: dataclasses.Field, default: Any) -> str:
    text = f.metadata.get("help", "")
    said = text.lower()
    if "(default" in said or "default:" in said or default == "":  # the help already says it
        return text.replace("%", "%%")
    shown = "none" if default is None else ("on" if default else "off") if isinstance(default, bool) else default
    return f"{text} (default: {shown})".strip().replace("%", "%%")


class _Repeatable(argparse.Action):
    """`nargs="+"` whose repeats add up (`--artwork a.png --artwork b.png`, as `docker -v` or `pip -r`):
    argparse's own store keeps only the last use and drops the others silently. The first use replaces
    the field's default; later ones extend it."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        fresh = current is None or current is self.default
        setattr(namespace, self.dest, list(values) if fresh else [*current, *values])


class _Once(argparse.Action):
    """An option that holds one thing, where a second use would silently drop the first
    (`infer --prompt "3 4" --prompt "5 6"` answered only "5 6")."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        if current is not None and current is not self.default and current != values:
            raise argparse.ArgumentError(self, f"given twice ({current!r}, then {values!r}); it takes one"
                                         + (" (several prompts: --data FILE.jsonl)" if self.dest == "prompt" else ""))
        setattr(namespace, self.dest, values)


ONCE = ("prompt",)  # options a user may expect to repeat, whose repeats argparse would drop


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
    specs = []
    for f in dataclasses.fields(cls):
        if f.name in skip or (only is not None and f.name not in only) or not f.init:
            continue
        name = f.name.replace("_", "-")
        flag = f"--{prefix}-{name}" if prefix else f"--{name}"
        dest = f"{dest_prefix}{f.name}"
        tp, _ = field_type(cls, f.name)
        default = default_of(f)
        kwargs: dict[str, Any] = {"help": _help_text(f, default)}
        if f.name in positional:  # required unless it has a real default (None counts as one)
            optional = {"nargs": "?", "default": default} if default != "" else {}
            parser.add_argument(dest, metavar=f.name.upper(), **optional, **kwargs)
            specs.append(OptionSpec(f.name.upper(), dest, f.name, owner, applies_to))
            continue
        kwargs["dest"] = dest
        kwargs["default"] = argparse.SUPPRESS if suppress_defaults else default
        if tp is bool and f.name.startswith("no_"):  # --no-auth: a --no-no-auth twin would only confuse
            kwargs["action"] = "store_true"
        elif tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is Literal:
            kwargs["choices"] = typing.get_args(tp)
        elif typing.get_origin(tp) in (list, tuple) or tp in (list, tuple):
            item = (typing.get_args(tp) or (str,))[0]
            kwargs |= {"nargs": "+", "type": item if item in (int, float, str) else _json_value,
                       "metavar": f.name.upper(), "action": _Repeatable}
        elif tp is dict or typing.get_origin(tp) is dict:
            kwargs |= {"type": _json_object, "metavar": "JSON"}
        elif tp is str and f.name in PATH_OPTIONS:
            kwargs |= {"type": _path_text, "metavar": f.name.upper()} | ({"action": _Once} if f.name in ONCE else {})
        elif tp in (int, float, str):
            kwargs |= {"type": tp, "metavar": f.name.upper()} | ({"action": _Once} if f.name in ONCE else {})
        else:
            kwargs |= {"type": _json_value, "metavar": f.name.upper()}
        if f.name == "method" and tp is str:  # the registry names the methods; no list is kept here
            kwargs["choices"] = _method_names()
            kwargs.pop("metavar", None)
        aliases = ALIASES.get(f.name, ()) if not prefix else ()
        short = [a for a in aliases if not a.startswith("--")]
        if aliases:
            kwargs["help"] = kwargs["help"] + (f" (also {', '.join(a for a in aliases if a.startswith('--'))})"
                                               if len(short) < len(aliases) else "")
        parser.add_argument(flag, *short, **kwargs)
        long = [a for a in aliases if a.startswith("--")]
        if long:  # separate, so errors and usage name the spelling the user typed
            alias_kwargs = {k: v for k, v in kwargs.items() if k != "help"} | {"default": argparse.SUPPRESS,
                                                                              "help": argparse.SUPPRESS}
            parser.add_argument(*long, **alias_kwargs)
        specs.append(OptionSpec(flag, dest, f.name, owner, applies_to))
    return specs


# Options naming a file or folder: an empty value (an unset shell variable) meant the working folder, so
# `--out ""` wrote a run into it and `--artwork ""` served every PNG there.
PATH_OPTIONS = frozenset({"out", "canvas", "adapter", "eval_data", "init", "storage", "space", "encoder"})


def _path_text(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("is empty; name a file or folder")
    return value


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
    """Options of every registered method's config, in groups.

    One rule, the methods' own: `ArtConfig`'s options are unprefixed and apply to every method that
    paints a canvas (`Method.paints()`); `--canvas-size` applies to every method whose slot is sized
    like a canvas (`Method.takes_canvas_size()`, the soft prompt too); every other option carries its
    method's name (`--lora-r`).
    """
    from artstudio.methods import ArtConfig, get_method
    from artstudio.training import TrainConfig

    classes = {m: get_method(m) for m in _method_names()}
    painters = tuple(m for m, c in classes.items() if c.paints())
    sized = tuple(m for m, c in classes.items() if c.takes_canvas_size())
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    art_fields = {f.name for f in dataclasses.fields(ArtConfig)}
    group = parser.add_argument_group(
        f"canvas options (--method {' | '.join(painters)}; --canvas-size also {' | '.join(m for m in sized if m not in painters)})",
        "An option left out keeps the method's own default (random-canvas starts from noise).",
    )
    specs = dataclass_options(group, ArtConfig, only=("canvas_size",), dest_prefix="method:art:",
                              suppress_defaults=True, owner="art", applies_to=sized)
    # A canvas field named like a training option (seed) keeps the method's name as a prefix.
    specs += dataclass_options(group, ArtConfig, skip=tuple(train_fields) + ("canvas_size",), dest_prefix="method:art:",
                               suppress_defaults=True, owner="art", applies_to=painters)
    specs += dataclass_options(group, ArtConfig, only=tuple(art_fields & train_fields), prefix="art",
                               dest_prefix="method:art:", suppress_defaults=True, owner="art", applies_to=painters)
    for m, method in classes.items():
        cls = method.config_class
        if not dataclasses.is_dataclass(cls):
            continue
        shared = art_fields if m in painters else {"canvas_size"} if m in sized else set()
        own = tuple(f.name for f in dataclasses.fields(cls) if f.name not in shared)
        if not own:
            continue
        group = parser.add_argument_group(f"{m} options (--method {m})", (cls.__doc__ or "").strip() or None)
        specs += dataclass_options(group, cls, only=own, prefix=m, dest_prefix=f"method:{m}:",
                                   suppress_defaults=True, owner=m, applies_to=(m,))
    return specs


def _grpo_option_group(p: argparse.ArgumentParser) -> list[OptionSpec]:
    """The --grpo-* options (one per GRPOConfig field; absent ones keep its defaults), in their own group."""
    from artstudio.objectives.grpo import GRPOConfig

    g = p.add_argument_group("GRPO options (--objective grpo)")
    return dataclass_options(g, GRPOConfig, prefix="grpo", dest_prefix="grpo:", suppress_defaults=True)


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
    from artstudio.training import TrainConfig

    run_group = p.add_argument_group("training options")
    run_group.add_argument("--config", metavar="JSON", default=None,
                           help="a TrainConfig as JSON (a run's config.json, or best.json of `artstudio tune`); "
                                "options given on the command line override it")
    # Suppressed defaults: only what the user typed is in the namespace, so it can override --config.
    specs = dataclass_options(run_group, TrainConfig, skip=("method_options", "grpo"), suppress_defaults=True)
    grpo_specs = _grpo_option_group(p)
    method_specs = method_option_specs(p)
    return lambda ns: train_config_from_args(ns, specs, method_specs, grpo_specs)


@verb("train", "train a canvas (or a baseline) on a task", _build_train,
      "examples:\n  artstudio train --data add-json --steps 300 --out runs/add-json\n"
      "  artstudio train --model Qwen/Qwen3.5-0.8B --data train.jsonl --eval-data test.jsonl "
      "--metric numeric --canvas-size 256 --out runs/gsm8k\n"
      "  artstudio train --method lora --lora-r 8 --data add-json --out runs/add-json-lora")
def _train(config) -> int:
    from artstudio.training import train

    result = train(config)
    if result.main:  # one summary for a multi-process run
        print(train_summary(result))
    return 0


def train_config_from_args(ns, specs, method_specs, grpo_specs):
    """The TrainConfig a parsed `artstudio train` command line describes."""
    from artstudio.starts import STARTS_FOLDER
    from artstudio.training import TrainConfig, run_own_options

    given = {s.name: getattr(ns, s.dest) for s in specs if hasattr(ns, s.dest)}
    # `train --resume --out RUN`: every option left out is the run's own, as `hyper train --resume` does (it
    # used to ask for --data again); the device is this machine's. Typed options are checked against the run.
    resuming = not ns.config and given.get("resume") and given.get("out")
    own = run_own_options(given["out"]) if resuming else {}
    base = _read_config_file(ns.config) if ns.config else dict(own)
    if ns.config:  # what to do with --out is this command's to say: a run's config.json records both switches as
        # it was started, so `--config RUN/config.json --out NEW` replaced NEW's run (overwrite: true) or asked
        # for a run to resume there (resume: true) without either being typed
        for switch in ("resume", "overwrite"):
            if not isinstance(base.get(switch), bool):
                continue  # absent, or of the wrong kind: named by the check of the file's values
            if base.pop(switch) and switch not in given:
                log.warning("--config %s has %s: true, which a config file does not carry over; pass --%s to %s",
                            ns.config, switch, switch, "continue the run in --out" if switch == "resume"
                            else "replace the run in --out")
    # A run's config.json also records what it resolved (not an option). Its run is the folder it sits in:
    # a run copied or moved elsewhere and resumed with `--config COPY/config.json --resume` trained the
    # original folder named by its "out".
    if base.pop("resolved", None) is not None and "out" not in given and Path(ns.config).name == "config.json":
        folder = Path(ns.config).parent
        if base.get("out") and Path(base["out"]).resolve() != folder.resolve():
            log.warning("--config %s is the config of the run in %s (it was started as %s); --out %s",
                        ns.config, folder, base["out"], folder)
        base["out"] = str(folder)
    values = base | given
    if given.get("resume") and given.get("out") and not own and not values.get("data") \
            and (Path(given["out"]) / STARTS_FOLDER).is_dir():
        raise ConfigError(f"--resume: {given['out']} was stopped during its starts, before its config.json was written, "
                          "so its options are not on disk: repeat the command that started it, with --resume")
    options = method_options_from_args(ns, method_specs, values.get("method", "art"))
    kept = dict(base.get("method_options") or {})
    if kept and "method" in given and given["method"] != base.get("method", "art"):
        # The file's method options belong to its method: `--config best.json --method lora` (an ART study's
        # best) was refused for ART's canvas options, and `--resume --method lora` too, before the resume
        # could say that the run trained another method.
        log.warning("--method %s: the method options of %s's %s (%s) are left out", given["method"],
                    ns.config or Path(given["out"]) / "config.json", base.get("method", "art"), ", ".join(sorted(kept)))
        kept = {}
    if "method" in given and given["method"] != base.get("method", "art") and base.get("lr") is not None \
            and "lr" not in given:  # a rate tuned for ART (0.05) trained LoRA, whose default is 0.002, in silence
        log.warning("--method %s: the learning rate of %s's %s (%g) is left out; %s trains at its own default "
                    "(or pass --lr)", given["method"], ns.config or Path(given["out"]) / "config.json",
                    base.get("method", "art"), base["lr"], given["method"])
        values["lr"] = None
    values["method_options"] = kept | options
    file_grpo = dict(base.get("grpo") or {})
    if file_grpo and given.get("objective", "grpo") != "grpo":
        # `--objective sft` over a GRPO run's config was refused for GRPO options nobody typed (and a resume so
        # changed was refused for them too, before it could say that the objective differs)
        log.warning("--objective %s: the GRPO options of %s (%s) are left out", given["objective"],
                    ns.config or Path(given["out"]) / "config.json", ", ".join(sorted(file_grpo)))
        file_grpo = {}
    values["grpo"] = file_grpo | _grpo_options(ns, grpo_specs)
    return TrainConfig.from_dict(values)


def _read_config_file(path: str) -> dict:
    file = Path(path)
    if not file.is_file():
        what = "a folder" if file.is_dir() else "no such file"
        hint = f" (a run folder's is {file / 'config.json'})" if (file / "config.json").is_file() else ""
        raise ConfigError(f"--config {path}: {what}; expected a JSON TrainConfig (a run's config.json){hint}")
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"--config {path}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"--config {path}: a JSON {type(value).__name__}; expected an object of training options")
    return value


EMA_OFF = "--ema 0 keeps the last step's"


def train_summary(result) -> str:
    from artstudio.averaging import averaged_over

    m = result.metrics
    per_step = m.get("seconds_per_step")
    rows = [("method", result.method.name),
            ("data", f"{m.get('train_rows')} training rows"),
            ("metric", m.get("metric"))]
    if m.get("reward"):  # GRPO's, chosen from the metric when not given: it was never said
        rows.append(("reward", m["reward"]))
    rows.append(("accuracy", f"{_pct(m.get('accuracy'))} (n={m['eval_n']})" if "accuracy" in m else "- (no eval data)"))
    if m.get("train_accuracy") is not None:  # measured when the loss ended high (artstudio.diagnosis)
        rows.append(("on train", f"{_pct(m['train_accuracy'])} (n={m['train_eval_n']} of its own training rows)"))
    rows += [("steps", m.get("steps")),
             ("time", f"{m.get('train_seconds', 0):.1f} s" + (f" ({per_step:.3f} s/step)" if per_step else "")
              + (f", {m['starts_seconds']:.1f} s of it on {len(m['start_val_accuracy'])} starts" if m.get("start") else "")
              + (f", {m['processes']} processes" if (m.get("processes") or 1) > 1 else "")),
             ("trainable", f"{m.get('trainable_params', 0):,} parameters")]
    if m.get("start"):
        scores = ", ".join(f"{k} {_pct(v)}" for k, v in m["start_val_accuracy"].items())
        tie = len(set(m["start_val_accuracy"].values())) == 1 and len(m["start_val_accuracy"]) > 1
        # Under GRPO every start's surrogate loss may be 0: then nothing chose, the first start was kept.
        losses = set((m.get("start_final_loss") or {}).values())
        broke = "the first start was kept (their final training losses tie too)" if len(losses) == 1 \
            else "the lower final training loss chose"
        rows.append(("start", f"{m['start']} (validation accuracy after the short runs: {scores}"
                              + (f"; a tie, so {broke}" if tie else "") + ")"))
    if m.get("ema"):
        what = "the canvas" if result.artwork is not None else "the trained parameters"
        rows.append(("average", f"{what} {averaged_over(m['ema'], note=EMA_OFF)}"))
    if result.artwork is not None:
        rows.append(("artwork", result.artwork))
    rows.append(("run", result.out))
    text = table(rows)
    if m.get("diagnosis"):
        text += "\n\nwarning: " + m["diagnosis"]
    return text


# ---------------------------------------------------------------------------- export

@dataclass
class ExportConfig:
    """Export the trained method of a run folder (ART: a PNG artwork with metadata)."""

    run_dir: str = field(default="", metadata={"help": "run folder written by `artstudio train`"})
    out: str | None = field(default=None, metadata={"help": "PNG path (ART) or folder (other methods); default: RUN_DIR/artwork.png"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing --out (default: refuse; RUN_DIR/artwork.png, the run's own, is always rewritten)"})


def _builder(cls: type, positional: tuple[str, ...] = ()) -> Callable[[argparse.ArgumentParser], Callable]:
    """An option builder for a verb whose config is the dataclass `cls`."""
    def build(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], Any]:
        specs = dataclass_options(p, cls, positional=positional)
        return lambda ns: config_from_args(cls, ns, specs)
    return build


@verb("export", "export a run: a canvas as a PNG artwork (with metadata), any other method as an adapter folder",
      _builder(ExportConfig, positional=("run_dir",)),
      "example:\n  artstudio export runs/add-json -o canvases/add-json.png")
def _export(config: ExportConfig) -> int:
    from artstudio.training import export_run

    path = export_run(config.run_dir, config.out, overwrite=config.overwrite)
    # Printed as the user named it (an adapter folder's path came back absolute, a PNG's as typed).
    if config.out and Path(config.out).expanduser().resolve() == path.resolve():
        path = Path(config.out)
    print(path)
    return 0


# ---------------------------------------------------------------------------- eval

def _lazy_builder(module: str, cls_name: str, positional: tuple[str, ...] = ()) -> Callable:
    """`_builder` for a config class that lives in a library module, imported only when the verb is used."""
    def build(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], Any]:
        import importlib

        return _builder(getattr(importlib.import_module(module), cls_name), positional)(p)
    return build


@verb("eval", "evaluate an artwork, an adapter or the base model on a test set", _lazy_builder("artstudio.evaluation", "EvalConfig"),
      "examples:\n  artstudio eval --canvas art.png --data test.jsonl --metric numeric --out runs/eval\n"
      "  artstudio eval --data add-json            # the base model, no image")
def _eval(config) -> int:
    from artstudio.evaluation import EVAL_FILES, run_eval

    res = run_eval(config)
    rows = [("adapter", config.adapter) if config.adapter else
            ("canvas", "none (base model)" if config.canvas is None else config.canvas),
            ("metric", res.metric),
            ("accuracy", f"{_pct(res.accuracy)} ({sum(r['correct'] for r in res.predictions)}/{res.n})"),
            ("latency", f"{res.latency_ms:.1f} ms per request")]
    if config.out:
        rows.append(("written", ", ".join(str(Path(config.out) / name) for name in EVAL_FILES)))
    print(table(rows))
    return 0


# ---------------------------------------------------------------------------- infer

@verb("infer", "answer prompts with an artwork or an adapter, or print an artwork's vLLM request", _lazy_builder("artstudio.inference", "InferConfig"),
      "examples:\n  artstudio infer --canvas art.png --prompt \"3 4\"\n"
      "  artstudio infer --canvas art.png --prompt \"3 4\" --print-request > request.json\n"
      "  curl -s localhost:8000/v1/chat/completions -H 'Content-Type: application/json' -d @request.json")
def _infer(config) -> int:
    from artstudio.inference import infer_examples, requests_for, run_infer, unused_options
    from artstudio.serving import curl_command

    for note in unused_options(config):
        log.warning("%s; it is not used here", note)

    if config.print_request or config.print_curl:
        requests = requests_for(config, infer_examples(config))
        for req in requests:
            if config.print_curl:
                print(curl_command(req, config.url))
            else:
                print(json.dumps(req, ensure_ascii=False, indent=None if len(requests) > 1 else 2))
        return 0
    examples = infer_examples(config)  # once: a built-in task is written out to read its test split
    answers = run_infer(config, examples)
    if config.prompt is not None:
        print(answers[0])
    else:
        for ex, answer in zip(examples, answers):
            print(json.dumps({"id": ex.id, "prompt": ex.prompt, "prediction": answer}, ensure_ascii=False))
    return 0


# ---------------------------------------------------------------------------- info

@dataclass
class InfoConfig:
    """What `artstudio info` shows."""

    artwork: str | None = field(default=None, metadata={"help": "artwork PNG (or exported adapter folder) whose metadata to show"})
    model: str | None = field(default=None, metadata={"help": "a model whose geometry to show (with an artwork: check they fit; default without an artwork: studio-tiny)"})
    json: bool = field(default=False, metadata={"help": "print JSON instead of a table"})


@verb("info", "show an artwork's metadata, or a model's canvas geometry",
      _builder(InfoConfig, positional=("artwork",)),
      "examples:\n  artstudio info canvases/add-json.png\n  artstudio info --model Qwen/Qwen3.5-0.8B --json")
def _info(config: InfoConfig) -> int:
    from artstudio.info import gather_info

    info = gather_info(config.artwork, config.model)
    print(json.dumps(info, indent=2, ensure_ascii=False) if config.json else format_info(info))
    return 0


def _task_rows(task: dict) -> list[tuple[str, Any]]:
    """The task rows of `info`: its name and description, each where it has one (an artwork painted from a
    sentence has no task name)."""
    return [("task" if k == "name" else k, task[k]) for k in ("name", "description") if task.get(k)]


def _generated_by(hyper: Any, source: str | None) -> list[tuple[str, str]]:
    """The 'generated by' row of an output painted or written by a hypernetwork (none for a trained one)."""
    if not isinstance(hyper, dict):
        return []
    return [("generated by", f"the {hyper.get('kind', '')} hypernetwork {source or ''}".strip())]


def format_info(info: dict[str, Any]) -> str:
    out = []
    if "export" in info:
        ex = info["export"]
        meta = ex.get("metadata") or {}
        task = meta.get("task") or {}
        rows = [("export", ex["path"]), ("method", ex.get("method", "")), ("model", ex.get("model_id", "")),
                ("family", ex.get("family", ""))]
        if ex.get("trainable_params") is not None:
            rows.append(("trainable", f"{ex['trainable_params']:,} parameters"))
        if task:
            rows += _task_rows(task)
        elif ex.get("description"):  # generated from a sentence (hyper generate t2l), not trained on a task
            rows += [("name", meta["name"])] if meta.get("name") else []
            rows.append(("description", ex["description"]))
        rows += _generated_by(ex.get("hypernetwork"), meta.get("source"))
        rows += [(k, meta[k]) for k in ("objective", "steps") if k in meta]
        rows += [(k, _pct(v) if k.endswith("accuracy") else v) for k, v in (meta.get("metrics") or {}).items()]
        out.append(table(rows))
    if "adapter" in info:
        ad = info["adapter"]
        rows = [("adapter", ad["path"]), ("peft type", ad.get("peft_type") or "unknown"),
                ("base model", ad.get("base_model") or "not recorded")]
        rows += [(k, ad[k]) for k in ("r", "alpha") if ad.get(k) is not None]
        if ad.get("target_modules"):
            targets = ad["target_modules"]
            rows.append(("targets", ", ".join(targets) if isinstance(targets, list) else targets))
        rows.append(("trainable", f"{ad['parameters']:,} parameters" if "parameters" in ad else ad["weights_error"]))
        rows.append(("record", "none (no artstudio.json: not written by `artstudio export`); eval and infer take "
                               "it as --adapter, on its base model" + (" (or --model)" if ad.get("base_model") else
                                                                       ": name it with --model")))
        out.append(table(rows))
    if "artwork" in info:
        art, meta = info["artwork"], info["artwork"]["metadata"]
        rows: list[tuple[Any, ...]] = [("artwork", art["path"]), ("size", f"{art['width']}×{art['height']}")]
        if art.get("mode", "RGB") not in ("RGB", "RGBA"):  # an artwork is written in RGB: a re-saved copy
            rows.append(("colours", f"mode {art['mode']}, not the RGB an artwork is written in: a copy another "
                                    "program re-saved? The canvas the model sees is not the trained one"))
        if meta is None:
            from artstudio.backbone import GRID_FACTORS, fits_some_model

            if fits_some_model(art["width"], art["height"]):
                rows.append(("metadata", "none (a plain PNG: name the model with --model when using it)"))
            else:  # "name the model" sent a user to a model that then refused the size
                grids = "; ".join(f"{f} for {names}" for f, names in GRID_FACTORS.items())
                rows.append(("metadata", f"none (a plain PNG), and {art['width']}×{art['height']} is no canvas size of "
                                         f"any Qwen-VL model: both sides must be multiples of its patch grid ({grids}). "
                                         "Resize it first"))
        else:
            task = meta.get("task") or {}
            geo = meta["geometry"]
            rows += [("model", meta["model_id"]), ("family", meta["family"]), ("placement", meta["placement"]),
                     ("geometry", f"patch {geo.get('patch_size')} × merge {geo.get('merge_size')}, "
                                  f"factor {geo.get('factor')}")]
            if task:
                rows += _task_rows(task)
            extra = meta.get("extra") or {}
            # What the app's "Save to gallery" recorded (shown there, but only in --json here)
            rows += [("title", extra["title"])] if extra.get("title") else []
            if extra.get("description") and extra["description"] != task.get("description"):
                rows.append(("note", extra["description"]))
            hyper = extra.get("hypernetwork")
            trained = bool(meta.get("steps"))  # a painting trained further (a run's T2C start) is trained too
            if hyper and trained:
                rows.append(("start", f"painted by the {hyper.get('kind', '')} hypernetwork, then trained"))
            else:
                rows += _generated_by(hyper, (hyper or {}).get("source"))
            if not hyper or trained:  # a painted artwork was never trained: "objective t2c, steps 0" read like a failed run
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


# ---------------------------------------------------------------------------- hyper

# A held-out task's card (max-bracket): the wording the shipped hypernetworks know. Measured 2026-12-05, 50 rows:
# T2C 100 %, T2L 100 %; "reply with the larger of the two digits, in square brackets" scores 0 % with both.
_HYPER_EXAMPLE = ("The prompt is two digits separated by a space, with no instruction. Reply with the larger of the "
                  "two, written inside square brackets, like [<value>].")
_HYPER_WORDING = ("The shipped hypernetworks know the wording of the task cards (`artstudio tasks list --kind library "
                  "--json` prints them);\na short wording of the same task (\"reply with the larger digit in [brackets]\") "
                  "scores 0 % (docs/hyper.md).")


# The shipped Text-to-Canvas's recipe, in `hyper --help` and `hyper train --help` (the README shows it too).
_T2C_RECIPE = ("artstudio hyper train --kind t2c --mode reconstruction --targets cue --steps 0 --out runs/t2c \\\n"
               "      --options '{\"head\": \"parts\", \"palette\": 16, \"basis_init\": \"cues\", \"blocks\": 0, "
               "\"fit\": \"ridge\", \"final_norm\": false}'")


def _build_hyper(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], Any]:
    """`artstudio hyper train|generate`, each generated from its config dataclass."""
    from artstudio.hyper import HyperGenerateConfig, HyperTrainConfig

    sub = p.add_subparsers(dest="hyper_command", metavar="{train,generate}", required=True, parser_class=_Parser)
    built = {}
    for name, cls, positional, help, epilog in (
            ("train", HyperTrainConfig, (), "train a Text-to-Canvas (t2c) or Text-to-LoRA (t2l) hypernetwork",
             "--resume continues the run in --out: every option left out is the run's own (its config.json); one "
             "typed that\nwould train another run is refused. Not taken from the run: --device, --max-minutes.\n\n"
             f"examples (the shipped T2C's recipe, a closed-form fit; README, Text-to-Canvas):\n  {_T2C_RECIPE}\n"
             "  artstudio hyper train --resume --out runs/t2c\n  artstudio hyper train --resume --out runs/t2c --steps 2000"),
            ("generate", HyperGenerateConfig, ("hyper",), "an artwork (t2c) or adapter (t2l) from a task description",
             f"examples:\n  artstudio hyper generate --description \"{_HYPER_EXAMPLE}\" -o art.png\n"
             f"  artstudio hyper generate t2l --description \"{_HYPER_EXAMPLE}\" -o adapter/\n"
             f"  artstudio hyper generate runs/t2c/final --description \"...\" -o art.png\n\n{_HYPER_WORDING}")):
        sp = sub.add_parser(name, help=help, description=(cls.__doc__ or help).strip(), parents=[_common()],
                            epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        # train: suppressed defaults, so what was typed is known (a resume takes the rest from the run).
        built[name] = (cls, dataclass_options(sp, cls, positional=positional, suppress_defaults=name == "train"))

    def config(ns: argparse.Namespace):
        from artstudio.hyper.training import resume_options

        cls, specs = built[ns.hyper_command]
        if ns.hyper_command == "train":
            given = {s.name: getattr(ns, s.dest) for s in specs if hasattr(ns, s.dest)}
            return "train", HyperTrainConfig.from_dict(resume_options(given))
        return ns.hyper_command, config_from_args(cls, ns, specs)

    return config


@verb("hyper", "train a hypernetwork, or generate an artwork / adapter from a task description", _build_hyper,
      f"examples:\n  artstudio hyper generate --description \"{_HYPER_EXAMPLE}\" -o art.png\n"
      f"  {_T2C_RECIPE}\n"
      "  artstudio hyper generate runs/t2c/final --description \"...\" -o art.png\n\n" + _HYPER_WORDING)
def _hyper(parsed) -> int:
    from artstudio.hyper import hyper_generate, hyper_train

    command, config = parsed
    if command == "train":
        _show(hyper_train(config))
    else:
        print(hyper_generate(config))  # as named (-o), or the kind's default output
    return 0


# ---------------------------------------------------------------------------- tune

def _tune(config) -> int:
    from artstudio.tune import tune

    _show(tune(config))
    return 0


verb("tune", "search a method's hyper-parameters (Optuna; samplers lgbo, gp, tpe, random)",
     _lazy_builder("artstudio.tune", "TuneConfig"),
     "examples:\n  artstudio tune --method lora --data add-json --trials 30 --sampler lgbo --out runs/tune\n"
     "  optuna-dashboard sqlite:///runs/tune/study.db")(_tune)


# ---------------------------------------------------------------------------- tasks

def _build_tasks(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], Any]:
    from artstudio.tasks import TASK_KINDS

    sub = p.add_subparsers(dest="tasks_command", metavar="{list,make}", required=True, parser_class=_Parser)
    lp = sub.add_parser("list", help="list the built-in tasks", parents=[_common()])
    lp.add_argument("--kind", choices=TASK_KINDS, default=None,
                    help="only this kind of task (library: the hypernetworks' training tasks)")
    lp.add_argument("--json", action="store_true", help="print the task cards as JSON")
    mp = sub.add_parser("make", help="write a task's train/test JSONL and card to a folder", parents=[_common()])
    mp.add_argument("name", metavar="NAME", help="a built-in task (`artstudio tasks list`)")
    mp.add_argument("--out", "-o", required=True, type=_path_text, help="output folder")
    mp.add_argument("--seed", type=int, default=0, help="generator seed (default: 0, what `train --data NAME` uses)")
    mp.add_argument("--n-train", type=int, default=None, help="training rows (default: the card's)")
    mp.add_argument("--n-test", type=int, default=None, help="test rows (default: the card's)")
    mp.add_argument("--overwrite", action="store_true",
                    help="replace a task already in --out (default: refuse, unless it is this very task)")

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
            # Whole descriptions: cut at 70 characters, the held-out digit tasks all read "The prompt is two digits
            # separated by a space, with no instruction. R…", the part that tells them apart cut off.
            print(table([(c.name, c.kind, c.metric, c.answer_format, c.description) for c in cards],
                        ("name", "kind", "metric", "format", "description")))
        return 0
    out = make_task(ns.name, ns.out, seed=ns.seed, n_train=ns.n_train, n_test=ns.n_test, overwrite=ns.overwrite)
    written = [name for name in ("train.jsonl", "test.jsonl", "card.json") if (out / name).is_file()]
    print(f"wrote {out}/{', '.join(written)}" + ("" if "train.jsonl" in written else
                                                " (no training rows: a folder to evaluate on, `artstudio eval --data`)"))
    return 0


# ---------------------------------------------------------------------------- app

def _app(settings) -> int:
    from artstudio.ui.app import launch

    launch(settings)
    return 0


verb("app", "start the web app", _lazy_builder("artstudio.ui.settings", "AppSettings"),
     "example:\n  artstudio app --port 7860")(_app)


# ---------------------------------------------------------------------------- serve

def _serve(config) -> int:
    from artstudio.server import serve

    serve(config)
    return 0


verb("serve", "serve the model and artworks behind an OpenAI-compatible HTTP API",
     _lazy_builder("artstudio.server", "ServeConfig"),
     "examples:\n  artstudio serve --artwork max-bracket=canvases/max-bracket.png\n"
     "  artstudio serve --artwork canvases --port 8000 --api-key SECRET\n"
     "  curl -s localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \\\n"
     "    -d '{\"model\": \"studio-tiny+max-bracket\", \"messages\": [{\"role\": \"user\", \"content\": \"3 8\"}]}'")(_serve)


# ---------------------------------------------------------------------------- compare

def _build_compare(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace], Any]:
    from artstudio.comparison import CompareConfig

    p.description = (CompareConfig.__doc__ or "").strip()
    specs = dataclass_options(p, CompareConfig, skip=("grpo",))
    grpo_specs = _grpo_option_group(p)
    return lambda ns: config_from_args(CompareConfig, ns, specs, grpo=_grpo_options(ns, grpo_specs))


@verb("compare", "compare methods × tasks × seeds in one harness", _build_compare,
      "examples:\n  artstudio compare --methods art,lora,base --tasks heldout --seeds 0,1,2 --steps 100\n"
      "  artstudio compare --tasks data/my-task --methods art,lora --lr-grid auto")
def _compare(config) -> int:
    from artstudio.comparison import compare

    _show(compare(config))
    return 0


# ============================================================================ main

class _Parser(argparse.ArgumentParser):
    """A usage error is one line and a pointer to --help, not the whole usage of a verb with forty options.
    A verb's parser (and `hyper train`'s, `tasks make`'s) reports an unknown option itself, so the pointer
    is to `artstudio train --help`, not to the top level's, which lists none of the verb's options."""

    def error(self, message: str):
        self.exit(2, f"error: {message}\n(`{self.prog} --help` lists the options)\n")

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns, extras


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
    from artstudio import __version__

    parser = _Parser(
        prog="artstudio", parents=[_common()],
        description="Fine-tune frozen Qwen vision-language models by training one picture (an ART canvas).",
        epilog="`artstudio VERB --help` shows a verb's options.",
    )
    parser.set_defaults(verbose=0, debug=False)
    parser.add_argument("--version", action="version", version=f"artstudio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="VERB", required=True, parser_class=_Parser)
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


class _Formatter(logging.Formatter):
    """Warnings and errors read as the command's own messages do (`warning: ...`, as `error: ...`); progress
    and debug lines (-v, -vv) keep the logger's name."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.WARNING and not record.exc_info:
            return f"{'warning' if record.levelno == logging.WARNING else 'error'}: {record.getMessage()}"
        return super().format(record)


def _setup_logging(verbosity: int) -> None:
    """Log ArtStudio's messages to stderr: warnings by default, INFO with -v, DEBUG with -vv.

    Only the `artstudio` logger is configured, so calling `main()` inside another program leaves
    that program's logging alone.
    """
    logger = logging.getLogger("artstudio")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_Formatter())
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG)
    quiet_loading_off_terminal()  # a log: no "Loading weights" bar redrawn with carriage returns


def _silence_stdout() -> None:
    """Point stdout at devnull, so the interpreter's final flush does not hit the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout replaced (a test, a notebook): nothing to redirect
        pass


LAUNCHED_VERBS = ("train",)  # the verbs a multi-process launcher may start


def _terminated(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); return the exit status."""
    # SIGTERM (a scheduler's preemption, `kill`, `timeout`) unwinds as Ctrl-C does, so a run saves what it can
    # (training: its checkpoint after the step under way) instead of dying mid-write.
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if on_main else None
    try:
        return _main(argv)
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def run(argv: list[str] | None = None) -> None:
    """The `artstudio` command (its console script and `python -m artstudio`): `main(argv)`, then exit with its
    status.

    A process a launcher started (torchrun, accelerate launch) ends with `os._exit` once its output is flushed.
    Gloo's worker threads can outlive `destroy_process_group`, and the interpreter's teardown then aborted a
    process whose work was done ("terminate called without an active exception", SIGABRT), so the launcher
    reported a finished run as failed (seen twice in CI runs of the test suite). Nothing is left to tear
    down: every file the command writes is written and closed before `main` returns.
    """
    status = main(argv)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "torch.distributed" in sys.modules:
        logging.shutdown()  # flushes every handler
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)
    sys.exit(status)


def _main(argv: list[str] | None) -> int:
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
        if ns.command not in LAUNCHED_VERBS and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # Every process would run the whole verb and write the same files (`torchrun ... eval` did).
            raise ConfigError(f"artstudio {ns.command} runs in one process; start it without torchrun or accelerate "
                              f"(only {' and '.join(LAUNCHED_VERBS)} split their work over a launcher's processes)")
        status = int(VERBS[ns.command].execute(ns._config(ns)) or 0)
        if "torch.distributed" in sys.modules:  # a launcher's processes leave their group together
            from artstudio.distributed import end_processes

            end_processes()
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
        return status
    except BrokenPipeError:  # `artstudio ... | head`: the reader left; say nothing more (Python docs' pattern)
        _silence_stdout()
        return 1
    except ArtStudioError as err:
        if debug:
            traceback.print_exc()
        if not isinstance(err, SaidByMainProcess):
            print(f"error: {err}", file=sys.stderr)
        return 2
    except Terminated:
        if int(os.environ.get("RANK", "0")) == 0:  # a launcher signals every process: one line, not one each
            print("terminated", file=sys.stderr)
        return 143  # 128 + SIGTERM, as the shell reports a process it ended
    except KeyboardInterrupt:
        if int(os.environ.get("RANK", "0")) == 0:
            print("interrupted", file=sys.stderr)
        return 130
    except (NotADirectoryError, FileExistsError, PermissionError, IsADirectoryError, FileNotFoundError) as err:
        # A path the system refuses (an --out under a file, a folder that cannot be made): the user's to
        # fix, so a one-line error like any other mistake, not a traceback (--debug shows it).
        if debug:
            traceback.print_exc()
        where = f" {err.filename}" if err.filename else ""
        why = err.strerror or str(err)
        if isinstance(err, NotADirectoryError) and err.filename:  # name the file in the way ("Not a directory")
            blocking = next((p for p in Path(str(err.filename)).parents if p.is_file()), None)
            why = f"{blocking} is a file, not a folder" if blocking is not None else why
        print(f"error: cannot use{where}: {why}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
