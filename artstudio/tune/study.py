"""The `tune` recipe: data splits, the Optuna study in its storage, trials, the final runs, the outputs.

Three splits stay apart (DESIGN §7): trials train on a *proxy* subset of the training rows minus a
*validation* split, and are scored on that validation split; only the final runs (the best
configuration and the default one, both on all training rows, same budget) are scored on the test
split. Trial 0 of a new study is the default configuration (when the space contains it), so the
best-so-far curve starts from the default and its proxy score is measured.

Resuming: the study lives in its storage (SQLite by default). A trial whose process was killed stops
sending heartbeats; the next run fails it and retries its configuration, and only the missing
trials run. Finished trials are never repeated. Several processes may work on one study at once.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..atomic import atomic_write_text, check_only_own, check_output_kind, entries, json_default, output_folder, remove_added
from ..errors import ArtStudioError, ConfigError, DataError
from ..logfilters import rewording
from . import TuneConfig
from .space import Choice, SearchSpace, load_space, signature_of, space_difference

log = logging.getLogger("artstudio.tune")


@dataclass
class TuneResult:
    out: Path
    study_name: str
    storage: str
    best_params: dict
    best_value: float | None
    n_complete: int
    best_config: dict = field(repr=False)  # TrainConfig fields of the best configuration (what best.json holds)
    final: dict | None = None  # {"best": {...}, "default": {...}} test scores of the final runs
    files: dict = field(default_factory=dict, repr=False)
    rerank: list | None = field(default=None, repr=False)  # the re-ranking runs (trial, default, proxy_value, val_accuracy)
    chosen_trial: int | None = None  # the trial whose configuration best.json holds

    def summary(self) -> str:
        """What `artstudio tune` prints at the end."""
        from ..cli import _pct as pct, table

        rows = [("study", f"{self.study_name} in {self.storage}"), ("trials", f"{self.n_complete} finished")]
        if self.rerank:
            picked = next(r for r in self.rerank if r["trial"] == self.chosen_trial)
            runs = ", ".join(("the default (outside --space)" if r["trial"] is None else
                              f"trial {r['trial']}{' (default)' if r['default'] else ''}") + f" {pct(r['val_accuracy'])}"
                             for r in self.rerank)
            rows.append(("picked", f"trial {self.chosen_trial}{' (the default)' if picked['default'] else ''}: "
                                   f"{pct(picked['val_accuracy'])} on validation after the full steps ({runs})"))
        rows += [("proxy trial", f"trial {self.chosen_trial}: {pct(self.best_value)} on validation after its short trial "
                                 "on the proxy rows"),
                 ("params", ", ".join(f"{k}={_short_value(v)}" for k, v in self.best_params.items()))]
        for label in ("default", "best"):
            if self.final and label in self.final:
                rows.append((f"{label} on test", pct(self.final[label].get("accuracy"))))
        if (said := final_verdict(self.final)) is not None:
            rows.append(("verdict", said))
        tuned, command = self.best_config.get("out"), f"artstudio train --config {self.out / 'best.json'}"
        trained = bool(tuned) and (Path(tuned) / "config.json").is_file()  # the command said is then refused
        how = f"{tuned} holds its run already; {command} --out OTHER trains it again" if trained \
            else f"{command} trains it into {tuned}"
        rows.append(("best.json", f"{self.out / 'best.json'}  ({how})"))
        rows += [(name, path) for name, path in self.files.items() if name != "best.json"]  # said above
        return table(rows)


def final_verdict(final: dict | None) -> str | None:
    """What the final runs say about the tuned configuration, where it did not beat the default on test.

    The study ranks configurations by short proxy trials (one start, a tenth of the rows); the final runs
    train the full budget, as `train` does. Where the two disagree the user is told to keep the default
    rather than left to read it from two percentages (measured: tuned ART scored below the default on 2
    of 4 held-out tasks once the default trained two starts; docs/tune.md)."""
    if not final or any(final.get(k, {}).get("accuracy") is None for k in ("default", "best")):
        return None
    if final["best"].get("is_default"):  # the pick is the default: there is no other configuration to judge
        when = "after the short proxy trials" if final["best"].get("reranked") is False else "at the full steps"
        return f"no trial beat the default configuration on validation {when}; best.json holds the default"
    d, b = final["default"]["accuracy"], final["best"]["accuracy"]
    if b > d:
        return None
    if b == d == 1.0:  # a tie at the ceiling is no failure of the proxy: there was nothing to gain
        return "the tuned and the default configuration both score 100% on test: nothing to gain here; keep the default"
    if b == d:
        return (f"the tuned configuration scored the same as the default on test ({b:.1%}): tuning gained nothing. "
                "Keep the default, or tune again with longer trials (--trial-steps) or a larger --proxy")
    return (f"the tuned configuration scored below the default on test ({b:.1%} against {d:.1%}): the proxy "
            "trials did not rank configurations as full runs do. Keep the default, or tune again with longer "
            "trials (--trial-steps) or a larger --proxy")


def _short_value(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# --- checks and storage ---------------------------------------------------------------------------------

STUDY_FILE = "study.json"
# What makes a study. A run whose values differ is another study: its splits, trial folders, best.json and
# report would replace this one's, so it needs its own --out. Trial and final steps, the trial count,
# the timeout and the device may change between a run and its resumption. `space` is recorded as the
# resolved space itself (`SearchSpace.signature`: each parameter's range or choices), not the --space
# path: an edited file is another study, the same file moved is not.
IDENTITY = ("method", "data", "eval_data", "model", "sampler", "space", "proxy", "val_fraction", "val_size",
            "objective", "seed", "study_name", "storage")
DIGEST = "train_digest"  # in study.json beside IDENTITY: the training rows the study searches on


def claim_out(config: TuneConfig, out: Path, *, space: SearchSpace | None = None, write: bool = True,
              elsewhere: str = "another --out", digest: str | None = None) -> None:
    """One --out holds one study: refuse a different one there, naming what differs; else record this
    one (unless not `write`: the app checks a form before queueing it). `space` is the space resolved
    against the model; without it (before the model loads) the space is not compared, nor recorded.
    A folder without `study.json` is taken only if it holds nothing but what a study writes before it
    records itself (its storage, its data splits): a folder of one's own had its report.md replaced. A
    study.json that recorded the --space path (older versions) is compared by that path, and the study's
    own record of its space in the storage by `check_study_space`."""
    want: dict[str, Any] = {k: getattr(config, k) for k in IDENTITY}
    if space is not None:
        want["space"] = space.signature()
    if digest is not None:  # the training rows' (`training.rows_digest`): an edited file under the same name
        want[DIGEST] = digest
    write = write and space is not None
    path = out / STUDY_FILE
    if not path.is_file():
        check_only_own(out, marker=STUDY_FILE, own=("task", "data"), prefixes=("study.db",), elsewhere=elsewhere,
                       what="a study of `artstudio tune`", writes="report.md, best.json, trials.csv and more")
        if write:
            atomic_write_text(path, json.dumps(want, indent=2) + "\n")
        return
    try:
        have = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(have, dict):
            raise ValueError(f"expected a JSON object, got {type(have).__name__}")
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: cannot read which study this folder holds ({err}); choose {elsewhere}") from None
    if digest is not None and have.get(DIGEST) not in (None, digest):  # (older study.json files recorded none)
        raise ConfigError(f"the training rows of --data {config.data} (or the pictures they name) changed since the "
                          f"study in {out} began (it recorded a digest of them): its finished trials were scored on "
                          f"the old rows, and a resumed study must search on the same ones. Restore them, or choose "
                          f"{elsewhere} for a study of the new rows")
    diff = []
    for k in IDENTITY:
        had, wants = have.get(k), want[k]
        if k == "space":
            if not isinstance(had, dict):  # an older study.json: the --space path
                wants = config.space
            elif space is None:
                continue
            elif had != wants:
                diff.append(f"space: {space_difference(had, wants)}")
                continue
        if k == "storage":  # left out, or the same database named another way, is the same storage
            if storage_url(had, out) != storage_url(wants, out):
                diff.append(f"storage {storage_url(had, out)!r}, not {storage_url(wants, out)!r}")
            continue
        if had != wants:
            diff.append(f"{k} {had!r}, not {wants!r}")
    if diff:
        raise ConfigError(f"{out} holds another study ({'; '.join(diff)}); pass the same options to resume it, or "
                          f"choose {elsewhere}")


def study_storage(storage: str | None, out: Path) -> str:
    """The study's database URL as given: `--storage`, or OUT/study.db when it is left out."""
    return storage or f"sqlite:///{out / 'study.db'}"


def storage_url(storage: str | None, out: Path) -> str:
    """The study's database (`study_storage`), a SQLite file by its absolute path: `sqlite:///runs/tune/study.db`
    and the default for `--out runs/tune` are one storage."""
    url = study_storage(storage, out)
    prefix = "sqlite:///"
    if url.startswith(prefix) and url[len(prefix):] not in ("", ":memory:"):
        return prefix + str(Path(url[len(prefix):]).expanduser().resolve())
    return url


def check_study_space(study, space: SearchSpace, name: str, storage_at: str) -> None:
    """A study that already has trials keeps its space: Optuna cannot mix two (a changed choice list is
    its 'dynamic value space' error), and the sampler's model would mix two searches."""
    recorded = study.user_attrs.get("space")
    if not study.trials or not isinstance(recorded, dict):
        return
    have, want = signature_of(recorded), space.signature()
    if have != want:
        raise ConfigError(f"study {name!r} in {storage_at} searches another space ({space_difference(have, want)}); "
                          "pass the --space it was started with to resume it, or another --study-name or --storage")

# Shortest default trial: proxy scores from 20-step trials barely ranked configurations as full
# training does (Spearman +0.39 LoRA, +0.13..+0.36 ART on add-json); 50 steps gave +0.82 and +0.77
# (benchmarks/tune_proxy.py, docs/tune.md).
MIN_TRIAL_STEPS = 50


def _coerce(config: TuneConfig | None, overrides: dict) -> TuneConfig:
    from ..options import from_dict

    if config is not None and not isinstance(config, (TuneConfig, dict)):
        raise ConfigError(f"tune() takes a TuneConfig or a dict of its fields, not a {type(config).__name__}: "
                          "artstudio.tune(method=\"lora\", data=\"add-json\", trials=30)")
    values = (asdict(config) if isinstance(config, TuneConfig) else dict(config or {})) | overrides
    config = from_dict(TuneConfig, values, what="tune")
    from ..methods import get_method

    from ..backbone import check_device, check_dtype

    if not get_method(config.method).trains:  # an unknown method is named here, with the known ones
        raise ConfigError(f"--method {config.method} trains nothing, so it has no hyper-parameters to tune; "
                          "tune art, lora, vera, adalink or soft-prompt")
    if config.timeout is not None and not config.timeout > 0:
        raise ConfigError(f"--timeout is {config.timeout}; expected seconds above 0 (or leave it out: no limit)")
    if config.encoder is not None and not Path(config.encoder).expanduser().is_dir():
        raise ConfigError(f"--encoder {config.encoder} is not a folder; expected a local model folder (with "
                          "config.json) whose language model embeds the configuration texts, or leave it out for "
                          "the backbone's own")
    check_device(config.device)
    check_dtype(config.dtype)
    if config.trials < 1:
        raise ConfigError(f"--trials is {config.trials}; expected at least 1")
    if not 0 < config.proxy <= 1:
        raise ConfigError(f"--proxy is {config.proxy}; expected the fraction of training rows each trial uses, more than 0 and at most 1")
    if not 0 < config.val_fraction < 1:
        raise ConfigError(f"--val-fraction is {config.val_fraction}; expected more than 0 and less than 1 (the validation split carved from the training rows: trials are never scored on test)")
    for name in ("steps", "trial_steps", "startup", "candidates", "val_size"):  # each named (it said "steps and trial_steps")
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} is {value}; expected at least 1")
    if config.rerank < 0:
        raise ConfigError(f"--rerank is {config.rerank}; expected 0 (the best proxy trial is the pick) or more")
    if not config.data:
        raise ConfigError("no training data: pass --data with a JSONL file, a task folder or a built-in task name")
    return config


def shown_url(url: str) -> str:
    """A storage URL as messages, the report and the summary show it: its password as ***."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not a URL sqlalchemy reads: nothing to hide
        return url
    return parsed.render_as_string(hide_password=True) if parsed.password else url


def open_storage(url: str, heartbeat: int = 30):
    """An Optuna RDB storage with heartbeats (a killed trial is failed and retried); clear errors otherwise."""
    import optuna
    import warnings

    from optuna.storages import RDBStorage

    hint = "expected a database URL such as sqlite:///runs/tune/study.db (three slashes: a relative path; four: absolute)"
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"storage {shown_url(url)!r} is not a database URL; {hint}")
    if url.startswith("sqlite:"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path or path == ":memory:":
            raise ConfigError(f"storage {url!r} names no database file; {hint}")
        try:
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"storage {url!r}: cannot create the folder of {path} ({err.strerror}); {hint}") from None
        if Path(path).is_dir():
            raise ConfigError(f"storage {url!r}: {path} is a folder, not a database file; {hint}")
    if heartbeat < 1:
        raise ConfigError(f"--heartbeat is {heartbeat}; expected at least 1 (seconds)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna; they are what resuming needs
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                from optuna.storages import RetryHeartbeatStaleTrialCallback

                retry = RetryHeartbeatStaleTrialCallback(max_retry=3)
                return RDBStorage(url, heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                                  heartbeat_stale_trial_callback=retry,
                                  engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else None)
        except Exception as err:  # noqa: BLE001 - sqlalchemy/optuna raise many kinds; all mean a bad storage
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            # Two processes opening one fresh database both create its schema; the one that loses the race
            # sees the other's rows (a UNIQUE or "already exists" error) and only has to open it again.
            if attempt + 1 < _CREATE_ATTEMPTS and _lost_creation_race(first):
                time.sleep(0.2 * (attempt + 1))
                continue
            raise ConfigError(f"storage {shown_url(url)!r} cannot be opened ({first}); {hint}") from None


_CREATE_ATTEMPTS = 5


def _lost_creation_race(message: str) -> bool:
    """True for the errors a process gets when another one is creating the same database's schema."""
    m = message.lower()
    return any(s in m for s in ("unique constraint failed", "already exists", "database is locked", "duplicate"))


# --- data -------------------------------------------------------------------------------------------------

@dataclass
class Splits:
    proxy_folder: Path  # train.jsonl (the proxy rows) + card.json
    val_file: Path
    fit_folder: Path  # train.jsonl (every non-validation row) + card.json: the re-ranking runs train on it
    n_train: int
    n_fit: int
    n_proxy: int
    n_val: int
    card: dict
    metric: str


def load_task(config: TuneConfig, out: Path):
    """The task of --data (a built-in one written to OUT/task) and its training rows."""
    from ..data import load_jsonl
    from ..tasks.resolve import resolve_data

    task = resolve_data(config.data, out / "task", role="train")
    return task, load_jsonl(task.train_file)


def prepare_splits(config: TuneConfig, out: Path, loaded=None) -> Splits:
    """Carve the validation rows and the proxy subset from --data's training rows (`loaded`: `load_task`'s
    answer, when the caller has it) and write them under OUT/data."""
    from ..data import split_validation, write_jsonl

    task, rows = loaded or load_task(config, out)
    if len(rows) < 2:
        raise DataError(f"--data {config.data} has {len(rows)} training row; a study trains its trials on some rows and "
                        "scores them on a validation part carved from the others (--val-fraction), so it needs at "
                        "least 2, and far more for scores that tell configurations apart")
    if config.final and task.test_file is None and not config.eval_data:
        log.warning("--data %s has no test split: the final runs train but cannot be scored, so the report cannot "
                    "compare the pick with the default on test. Pass a task folder with test.jsonl or --eval-data "
                    "FILE to score them, or --no-final to skip them", config.data)
    fit, val = split_validation(rows, config.val_fraction, config.seed)
    if config.val_size is not None:
        if config.val_size < 1:
            raise ConfigError(f"--val-size is {config.val_size}; expected at least 1")
        val = val[: config.val_size]
    n_proxy = max(1, round(len(fit) * config.proxy))
    keep = set(random.Random(f"proxy:{config.seed}").sample(range(len(fit)), n_proxy))
    proxy = [e for i, e in enumerate(fit) if i in keep]
    folder = out / "data"
    write_jsonl(folder / "proxy" / "train.jsonl", proxy)
    write_jsonl(folder / "fit" / "train.jsonl", fit)
    write_jsonl(folder / "val.jsonl", val)
    card = dict(task.card)
    for part in ("proxy", "fit"):
        atomic_write_text(folder / part / "card.json", json.dumps(card, indent=2, default=json_default) + "\n")
    metric = card.get("metric") or "exact"
    return Splits(folder / "proxy", folder / "val.jsonl", folder / "fit", len(rows), len(fit), len(proxy), len(val),
                  card, metric)


# --- configurations -----------------------------------------------------------------------------------------

def _steps_for(config: TuneConfig, steps: int, batch_size: int) -> int:
    """Steps of a run: the same for every configuration, or scaled so every one sees as many examples."""
    from ..training import TrainConfig

    if config.budget == "examples":
        return max(1, round(steps * TrainConfig().batch_size / batch_size))
    return steps


def trial_steps(config: TuneConfig) -> int:
    return config.trial_steps if config.trial_steps is not None else max(MIN_TRIAL_STEPS, round(config.steps * config.proxy))


def train_config(config: TuneConfig, train_over: dict, options: dict, *, out: Path, data: str,
                 eval_data: str | None, steps: int, final: bool):
    from ..backbone import DEFAULT_MODEL
    from ..training import TrainConfig

    base = TrainConfig()
    batch = train_over.get("batch_size", base.batch_size)
    from ..methods import get_method
    from ..options import field_names

    if not final and "starts" in field_names(get_method(config.method).config_class):
        # A trial measures its configuration from one start. The final runs and best.json train as `train`
        # does (two starts on studio-tiny): the study used to report its default, and hand over its best,
        # with one start, below what `artstudio train` gets with the same options.
        options = {"starts": 1} | dict(options)
    values = {"out": str(out), "data": data, "eval_data": eval_data, "model": config.model or DEFAULT_MODEL,
              "method": config.method, "method_options": dict(options), "objective": config.objective,
              "steps": _steps_for(config, steps, batch), "seed": config.seed, "device": config.device,
              "dtype": config.dtype, "eval_every": 0, "snapshot_every": 50 if final else 0,
              "checkpoint_every": 50 if final else 0, "diagnose": final} | train_over
    return TrainConfig.from_dict(values)


def default_params(space: SearchSpace, method: str) -> dict | None:
    """The default configuration as a point of the space (None if a default lies outside it)."""
    from ..methods import get_method, method_config
    from ..training import TrainConfig

    cls = get_method(method)
    base_train = asdict(TrainConfig()) | {"lr": cls.default_lr}
    opts = method_config(method, {})
    opts = opts if isinstance(opts, dict) else asdict(opts)
    out = {}
    for name, p in space:
        target = p.option or name
        value = base_train.get(target) if target in base_train else opts.get(target)
        if target == "canvas_size" and value is None:
            continue  # resolved by the backbone: handled by the caller
        if isinstance(value, list):
            value = ",".join(value)
        if p.times is not None:
            other = out.get(p.times)
            if other is None or value is None:
                return None
            value = value / other
        if value is None:
            return None
        if isinstance(p, Choice):
            if value not in p.choices:
                return None
        elif not (p.low - 1e-12 <= value <= p.high + 1e-12):
            return None
        out[name] = value
    return out


def default_point(space: SearchSpace, method: str, backbone) -> dict | None:
    """The default configuration as a point of the resolved space, its canvas size the backbone's
    recommended one (None if the default lies outside the space)."""
    default = default_params(space, method)
    if default is not None and "canvas_size" in space.params:
        from ..methods import recommended_canvas_size

        default["canvas_size"] = recommended_canvas_size(backbone)
        if default["canvas_size"] not in space.params["canvas_size"].choices:
            default = None
    return default


def draw_configs(space: SearchSpace, method: str, n: int, *, seed: int, backbone) -> list[dict]:
    """`n` points of the resolved space: the default configuration first (when the space holds it), then
    draws of the `random` sampler with `seed`, suggested as a study's trials suggest them (duplicates
    skipped). Used to measure the proxy (benchmarks/tune_proxy.py)."""
    import optuna

    from .lgbo import _key, make_sampler

    dists = space.distributions()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=make_sampler("random", dists, seed=seed))
    default = default_point(space, method, backbone)
    if default is not None:
        study.enqueue_trial(default)
    out: list[dict] = []
    seen: set = set()
    for _ in range(100 * n):
        if len(out) == n:
            break
        trial = study.ask()
        params = {name: suggest(trial, name, d) for name, d in dists.items()}
        study.tell(trial, 0.0)
        if _key(params) not in seen:
            seen.add(_key(params))
            out.append(params)
    if len(out) < n:
        raise ConfigError(f"the {method} space holds only {len(out)} distinct configurations; asked for {n}")
    return out


# --- the study -----------------------------------------------------------------------------------------------

class _Progress:
    """'trial 7/30 · best 64.0 % (trial 3) · ≈ 12 min left' after every trial."""

    def __init__(self, total: int, callback: Callable[[dict], None] | None):
        self.total, self.callback = total, callback
        self.started = time.perf_counter()
        self.ran = 0

    def __call__(self, study, trial) -> None:
        from optuna.trial import TrialState

        self.ran += 1
        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        per = (time.perf_counter() - self.started) / self.ran
        left = max(0, self.total - done) * per
        try:
            best = study.best_trial
            best_s = f"best {best.value:.1%} (trial {best.number})"
        except ValueError:
            best, best_s = None, "no finished trial yet"
        error = trial.user_attrs.get("error")
        value = (f"failed ({error})" if error else "failed") if trial.value is None else f"{trial.value:.1%}"
        print(f"tune: trial {trial.number} {value} · {done}/{self.total} done · {best_s} · ≈ {_duration(left)} left",
              file=sys.stderr, flush=True)
        if self.callback is not None:
            self.callback({"phase": "trial", "trial": trial.number, "value": trial.value, "done": done,
                           "total": self.total, "best": None if best is None else best.value, "eta_seconds": left,
                           "error": error})


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    if h:
        return f"{h} h {rem // 60:02d} min"
    return f"{rem // 60} min {rem % 60:02d} s" if rem >= 60 else f"{rem} s"  # "6 s", not "0 min 06 s"


def study_name(config: TuneConfig, task_name: str) -> str:
    return config.study_name or f"{config.method}-{task_name}-{config.sampler}-seed{config.seed}"


def check_config(config: TuneConfig) -> TuneConfig:
    """`config` checked as `run_study` checks it, before any model loads (the app checks a form with it)."""
    return _coerce(config, {})


def _each_warning_once():
    """Each warning of the trials' runs once (the same words came from every trial), and a trial's sampled batch
    size is not the --batch-size flag."""
    return rewording(["artstudio.train", "artstudio.starts", "artstudio.data"], once=True,
                     replace={" (--batch-size) ": " (a trial's batch_size) "})


def run_study(config: TuneConfig | None = None, *, progress: Callable[[dict], None] | None = None,
              should_stop: Callable[[], bool] | None = None, **overrides) -> TuneResult:
    config = _coerce(config, overrides)
    space = load_space(config.method, config.space)  # bad spaces fail before any model loads or folder is made
    held = entries(config.out)  # what a folder the user made already holds
    try:
        with _each_warning_once():
            return _run_study(config, space, progress, should_stop)
    except ArtStudioError:
        # A refused study (bad data, a storage it cannot open, a canvas size the model cannot take) that finished
        # no trial leaves nothing behind, as a refused `train` does: not its folder, nor a study.db in a folder
        # the user made.
        out = Path(config.out).expanduser()
        if out.is_dir() and not any((out / "trials").glob("*/result.json")):
            remove_added(out, held)
        raise


def _run_study(config: TuneConfig, space, progress, should_stop) -> TuneResult:
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from ..backbone import DEFAULT_MODEL, load_backbone
    from ..comparison.guard import BackboneGuard
    from ..methods import get_method
    from ..training import config_record, rows_digest
    from .lgbo import TextEncoder, make_sampler

    check_output_kind(config.out, "study.json")
    out = output_folder(config.out)
    url = study_storage(config.storage, out)
    storage = open_storage(url, config.heartbeat)
    storage_at = shown_url(url)  # what messages and the report show
    claim_out(config, out, write=False)  # another study there is refused before the splits are written
    loaded = load_task(config, out)
    digest = rows_digest(loaded[1])
    claim_out(config, out, write=False, digest=digest)  # so is this study's --data, edited since it began
    splits = prepare_splits(config, out, loaded)
    guard = BackboneGuard(lambda: load_backbone(config.model or DEFAULT_MODEL, dtype=config.dtype, device=config.device))
    # Canvas sizes and target modules the model cannot take fail before any trial.
    space = space.resolved(guard.backbone.geometry, guard.backbone)
    claim_out(config, out, space=space, digest=digest)  # records the study, its resolved space and rows included
    dists = space.distributions()
    task_name = str(splits.card.get("name") or Path(config.data).stem)
    name = study_name(config, task_name)
    n_trial_steps = trial_steps(config)
    cls = get_method(config.method)
    header = (f"Fine-tuning a frozen vision-language model with the {config.method} method "
              f"({(cls.__doc__ or '').strip().splitlines()[0] if cls.__doc__ else ''}) on the task {task_name}: "
              f"{splits.card.get('description', '')} Each trial trains {n_trial_steps} steps on {splits.n_proxy} examples "
              f"and is scored by {splits.metric} accuracy on {splits.n_val} held-out examples.")

    def encoder() -> TextEncoder:
        if config.encoder:
            return TextEncoder.from_folder(config.encoder, device=str(guard.backbone.device))
        return TextEncoder.from_backbone(guard.backbone)

    def sampler(seed: int):
        return make_sampler(config.sampler, dists, seed=seed, startup=config.startup, candidates=config.candidates,
                            encoder=encoder, helps={n: p.help for n, p in space}, header=header)

    try:
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize", sampler=sampler(config.seed),
                                    load_if_exists=True)
    except Exception as err:  # noqa: BLE001
        raise ConfigError(f"storage {storage_at!r}: cannot create or load study {name!r} ({err})") from None
    begun = len(study.get_trials(deepcopy=False))
    if begun:
        # A resumed, grown or shared study: a sampler seeded as the first process's drew that process's
        # configurations again (its first new trial repeated trial 1). Seeded past the trials begun, it draws
        # new ones, and still the same ones for the same storage.
        study.sampler = sampler(config.seed + begun)
    if not study.trials:
        study.set_user_attr("method", config.method)
        study.set_user_attr("task", task_name)
        study.set_user_attr("sampler", config.sampler)
        study.set_user_attr("space", space.to_dict())
        default = default_point(space, config.method, guard.backbone)
        if default is not None:
            study.enqueue_trial(default, user_attrs={"default": True})
    elif study.user_attrs.get("method") not in (None, config.method):
        raise ConfigError(f"study {name!r} in {storage_at} tunes method {study.user_attrs['method']!r}, not "
                          f"{config.method!r}; pass another --study-name or --storage")
    check_study_space(study, space, name, storage_at)

    def run_trial(trial) -> float:
        trial.set_user_attr("process", _this_process())  # a resume tells a killed trial from a running one
        params = {n: suggest(trial, n, d) for n, d in dists.items()}
        train_over, options = space.apply(params)
        run_dir = out / "trials" / f"trial-{trial.number:04d}"
        tc = train_config(config, train_over, options, out=run_dir, data=str(splits.proxy_folder),
                          eval_data=str(splits.val_file), steps=n_trial_steps, final=False)
        t0 = time.perf_counter()
        m = train_on(guard, tc)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        trial.set_user_attr("steps", tc.steps)
        trial.set_user_attr("run_dir", str(run_dir))
        if m.get("accuracy") is None:
            raise RuntimeError("no validation score (run stopped?)")
        return float(m["accuracy"])

    def objective(trial) -> float:
        # Optuna's own log of a failed trial (a warning with the traceback) is silenced (_quiet_failed_trials):
        # a RuntimeError (caught: the study goes on) is reported once by the progress line, from the "error"
        # attribute; any other error ends the study and is reported by the caller (the CLI's `error: ...`);
        # Ctrl-C ends it with the CLI's `interrupted`, and the interrupted configuration runs again on resume.
        try:
            return run_trial(trial)
        except RuntimeError as err:
            trial.set_user_attr("error", _one_line(err))
            raise
        except KeyboardInterrupt:
            _retry_later(study, trial)
            raise

    _fail_dead_trials(study)
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    remaining = config.trials - done
    print(f"tune: {config.method} on {task_name} · sampler {config.sampler} · study {name!r} in {storage_at} · "
          f"{done}/{config.trials} trials done · each trial {n_trial_steps} steps on {splits.n_proxy} proxy rows, "
          f"scored on {splits.n_val} validation rows", file=sys.stderr, flush=True)
    stopped = should_stop or (lambda: False)

    def stop_when_asked(study, trial) -> None:  # a stop ends the study after the trial that is running
        if stopped():
            study.stop()

    if remaining > 0:
        _quiet_failed_trials()
        study.optimize(objective, n_trials=remaining, timeout=config.timeout, catch=(RuntimeError,),
                       # running trials count too: two processes sharing the study stopped at 7 of 6 trials
                       callbacks=[MaxTrialsCallback(config.trials, states=(TrialState.COMPLETE, TrialState.RUNNING)),
                                  _Progress(config.trials, progress), stop_when_asked], gc_after_trial=True)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ConfigError(f"study {name!r} has no finished trial; see the errors above")
    best, rerank = study.best_trial, None
    if config.rerank and len(complete) >= config.trials and not stopped():
        best, rerank = _rerank(config, space, complete, splits, out, guard, progress)
    best_train, best_opts = space.apply(best.params)
    best_tc = train_config(config, best_train, best_opts, out=out / "final" / "best", data=config.data,
                           eval_data=config.eval_data, steps=config.steps, final=True)
    # best.json runs as it is (`artstudio train --config OUT/best.json`): into OUT/tuned, a folder the study
    # never writes (its own run of the best configuration is OUT/final/best).
    # Paths absolute: best.json runs from any folder (a relative --data was looked for beside the user's shell).
    best_config = config_record(best_tc) | {"out": str((out / TUNED_RUN).resolve())}
    for key in ("data", "eval_data"):
        if isinstance(best_config.get(key), str) and Path(best_config[key]).expanduser().exists():
            best_config[key] = str(Path(best_config[key]).expanduser().resolve())
    atomic_write_text(out / "best.json", json.dumps(best_config, indent=2, default=json_default) + "\n")
    atomic_write_text(out / "best_method_options.json",
                      json.dumps({config.method: best_opts}, indent=2, default=json_default) + "\n")

    final = None
    if config.final and len(complete) >= config.trials and not stopped():
        default_tc = train_config(config, {}, {}, out=out / "final" / "default", data=config.data,
                                  eval_data=config.eval_data, steps=config.steps, final=True)
        default_trial = _default_trial(complete)
        final = {"default": _final_run(default_tc, guard, progress)}
        # The default picked (by re-ranking, or as the best proxy trial): its run is the best's too, not trained
        # twice. By number: optuna's best_trial is a copy, never the object in `complete`.
        picked_default = default_trial is not None and best.number == default_trial.number
        final["best"] = dict(final["default"]) if picked_default else _final_run(best_tc, guard, progress)
        final["default"]["proxy_value"] = None if default_trial is None else default_trial.value
        final["best"]["proxy_value"] = best.value
        final["best"]["trial"] = best.number
        final["best"]["is_default"] = picked_default
        final["best"]["reranked"] = rerank is not None  # --rerank 0: the pick is the best proxy trial
        atomic_write_text(out / "final.json", json.dumps(final, indent=2, default=json_default) + "\n")

    from .report import write_outputs

    files = write_outputs(study, space, config, out, final=final, storage_url=storage_at, splits=splits, rerank=rerank,
                          chosen=best)
    return TuneResult(out=out, study_name=name, storage=storage_at, best_params=dict(best.params),
                      best_value=best.value, n_complete=len(complete), best_config=best_config, final=final, files=files,
                      rerank=rerank, chosen_trial=best.number)


def _default_trial(complete: list):
    """The study's trial 0, the method's default configuration (None when the space did not contain it)."""
    return next((t for t in complete if t.user_attrs.get("default")), None)


def _rerank(config: TuneConfig, space, complete: list, splits: Splits, out: Path, guard, progress) -> tuple[Any, list]:
    """The study's pick: the best `config.rerank` trials and the default, each trained again for the full
    --steps on the non-validation rows (as `train` trains them: starts included) and scored on validation.

    Proxy trials are short and small; measured on studio-tiny, they ranked high ART learning rates first
    that then lost to the default over full runs (docs/tune.md). The validation split stays the judge, the
    test split is still read only by the final runs. A tie goes to the default (nothing says the change
    helps), then to the better proxy score."""
    from ..cli import _pct

    default_trial = _default_trial(complete)
    ranked = sorted((t for t in complete if t is not default_trial), key=lambda t: -t.value)
    picks = ranked[: config.rerank] + ([default_trial] if default_trial is not None else [])
    results = []
    for t in picks:
        train_over, options = space.apply(t.params)
        tc = train_config(config, train_over, options, out=out / "rerank" / f"trial-{t.number:04d}",
                          data=str(splits.fit_folder), eval_data=str(splits.val_file), steps=config.steps, final=True)
        run = _final_run(tc, guard, progress, what=f"re-ranking trial {t.number}" + (" (default)" if t is default_trial
                                                                                     else ""))
        results.append({"trial": t.number, "default": t is default_trial, "proxy_value": t.value,
                        "val_accuracy": run.get("accuracy"), "train_seconds": run.get("train_seconds"),
                        "params": dict(t.params)})
    if default_trial is None:  # a --space without the default: it is still the reference the pick must beat
        tc = train_config(config, {}, {}, out=out / "rerank" / "default", data=str(splits.fit_folder),
                          eval_data=str(splits.val_file), steps=config.steps, final=True)
        run = _final_run(tc, guard, progress, what="re-ranking the default (outside --space)")
        results.append({"trial": None, "default": True, "proxy_value": None, "val_accuracy": run.get("accuracy"),
                        "train_seconds": run.get("train_seconds"), "params": {}})

    def rank(r):
        return r["val_accuracy"] if r["val_accuracy"] is not None else -1.0, r["default"], r["proxy_value"]

    # The pick is a trial of the space; a default outside it is scored beside them and named if it wins.
    top = max((r for r in results if r["trial"] is not None), key=rank)
    outside = next((r for r in results if r["trial"] is None), None)
    if outside is not None and rank(outside)[0] > rank(top)[0]:
        log.warning("tune: at the full %d steps the default configuration, which lies outside --space, scored %s on "
                    "validation, above every re-ranked trial (best: trial %d, %s); keep the default, or widen --space",
                    config.steps, _pct(outside["val_accuracy"]), top["trial"], _pct(top["val_accuracy"]))
    atomic_write_text(out / "rerank.json", json.dumps({"chosen": top["trial"], "runs": results}, indent=2,
                                                      default=json_default) + "\n")

    chosen = next(t for t in picks if t.number == top["trial"])
    # Said only where validation overrules the proxy: a pick that is also (jointly) the best proxy trial, as the
    # default often is in a tie, agrees with what the progress lines showed as best.
    if chosen is not picks[0] and chosen.value < max(t.value for t in complete):
        first = next(r for r in results if r["trial"] == picks[0].number)
        if top["default"] and first["val_accuracy"] == top["val_accuracy"]:
            log.warning("tune: at the full %d steps the best proxy trial %d ties the default on validation (%s); a tie "
                        "keeps the default, the study's pick", config.steps, picks[0].number, _pct(top["val_accuracy"]))
        else:
            log.warning("tune: at the full %d steps, trial %d%s scored best on validation (%s), not the best proxy "
                        "trial %d; it is the study's pick", config.steps, chosen.number,
                        " (the default)" if top["default"] else "", _pct(top["val_accuracy"]), picks[0].number)
    return chosen, results


TUNED_RUN = "tuned"  # best.json's run folder inside --out


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _this_process() -> str:
    """'HOST:PID' of this process, recorded on each trial it runs."""
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def _fail_dead_trials(study) -> None:
    """Fail, and queue again, the trials left running by a process of this machine that is gone (SIGKILL).

    Optuna's heartbeat fails a killed trial only once its heartbeat is stale (3 heartbeats, 90 s by default):
    a study run again at once finished its count with new trials and left the killed one RUNNING, its
    configuration never tried. A trial of another machine, or of a process still alive, is left to the
    heartbeat."""
    import copy
    import socket

    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    host = socket.gethostname()
    storage = study._storage
    callback = storage.get_heartbeat_stale_trial_callback() if hasattr(storage, "get_heartbeat_stale_trial_callback") else None
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner, _, pid = str(trial.user_attrs.get("process", "")).rpartition(":")
        if owner != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:  # another process failed it first
            continue
        log.warning("tune: trial %d was left running by a process that is gone (killed?); %s", trial.number,
                    "its configuration runs again" if trial.params else  # killed while the sampler was choosing
                    "it had not drawn its configuration yet, so a new one is drawn")
        if callback is not None:
            callback(study, copy.deepcopy(storage.get_trial(trial._trial_id)))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _retry_later(study, trial) -> None:
    """Queue an interrupted trial's configuration, so a resumed study runs it (as a killed trial's is)."""
    try:
        keep = {k: v for k, v in trial.user_attrs.items() if k == "default"}
        study.enqueue_trial(dict(trial.params), user_attrs=keep | {"retry_of": trial.number}, skip_if_exists=False)
    except Exception:  # noqa: BLE001 - a second Ctrl-C or a storage error: the study resumes without the retry
        pass


class _FailedTrialFilter(logging.Filter):
    """Drops Optuna's 'Trial N failed ...' warnings (with their traceback): run_study reports failures itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not (record.levelno == logging.WARNING and msg.startswith("Trial ") and " failed with " in msg)


def _quiet_failed_trials() -> None:
    logger = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _FailedTrialFilter) for f in logger.filters):
        logger.addFilter(_FailedTrialFilter())


def suggest(trial, name: str, dist) -> Any:
    """`trial.suggest_*` for one of the space's Optuna distributions."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    return trial.suggest_int(name, dist.low, dist.high, log=dist.log)


def _final_run(tc, guard, progress, what: str | None = None) -> dict:
    """Train `tc` and score it on its eval data (a final run: all training rows, the test split; `what` names
    another run, a re-ranking one); a finished run with the same config is reused."""

    out = Path(tc.out)
    done = out / "tune_final.json"
    want = json.dumps(asdict(tc), sort_keys=True, default=json_default)
    _wait_for_another_process(out, done)
    if done.is_file():
        record = json.loads(done.read_text(encoding="utf-8"))
        if record.get("config") == want:
            return record["result"]
    if what is None:
        print(f"tune: final run {out.name}: {tc.method} {tc.steps} steps on all training rows, scored on test",
              file=sys.stderr, flush=True)
    else:
        print(f"tune: {what}: {tc.method} {tc.steps} steps on the non-validation rows, scored on validation",
              file=sys.stderr, flush=True)
    if progress is not None:
        progress({"phase": "final", "run": out.name} if what is None else {"phase": "rerank", "run": what})
    try:
        m = _train_final(guard, tc, out)
    except KeyboardInterrupt:
        log.warning("tune: run the same tune command again to go on: the study keeps its trials and the %s %s "
                    "continues from its last checkpoint", "final run" if what is None else "re-ranking run", out)
        raise
    record = {"accuracy": m.get("accuracy"), "eval_n": m.get("eval_n"), "steps": m.get("steps"),
              "train_seconds": round(m.get("train_seconds", 0.0), 2), "lr": tc.lr, "batch_size": tc.batch_size,
              "method_options": tc.method_options, "run_dir": str(out)}
    atomic_write_text(done, json.dumps({"config": want, "result": record}, indent=2) + "\n")
    return record


def _wait_for_another_process(out: Path, done: Path, poll: float = 1.0, settle: float = 30.0) -> None:
    """Two processes sharing a study and its --out reach the re-ranking and final runs both: the second stopped with
    "run folder ... is in use by another training". It now waits for the first, whose result it then reuses."""
    from ..training import wait_while_training

    def say(owner: str) -> None:
        print(f"tune: {out} is being trained by another process of this study ({owner}); waiting for its result",
              file=sys.stderr, flush=True)

    if wait_while_training(out, say):
        deadline = time.monotonic() + settle  # its tune_final.json follows the end of the training
        while not done.is_file() and time.monotonic() < deadline:
            time.sleep(poll)


def _train_final(guard, tc, out: Path) -> dict:
    """A final run stopped part-way (Ctrl-C, a kill) goes on from its checkpoint when the command runs again;
    a run there of another configuration or length (the best changed as the study grew, other --steps) is
    the study's own to replace: resuming it would not give the run asked for."""
    from ..training import RUN_OUTPUTS

    if not any((out / name).exists() for name in RUN_OUTPUTS):
        return train_on(guard, tc)
    try:
        saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = {}
    if isinstance(saved, dict) and saved.get("steps") == tc.steps:
        try:
            return train_on(guard, replace(tc, resume=True))
        except ConfigError as err:  # another configuration: check_resume names what differs
            log.info("tune: final run %s is another configuration (%s); training it again", out, err)
    return train_on(guard, replace(tc, overwrite=True))


def train_on(guard, tc) -> dict:
    """Train `tc` on the guard's shared backbone and hand the backbone back clean; the run's metrics."""
    from ..training import train

    try:
        result = train(tc, backbone=guard.backbone, progress=False)
    except BaseException:
        guard.release(None)  # a failed run may still have patched the backbone
        raise
    metrics = result.metrics
    guard.release(result.method)
    return metrics
