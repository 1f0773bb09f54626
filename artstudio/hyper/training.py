"""One training loop for every hypernetwork kind (T2C, T2L), in both modes.

    sft             end to end: description -> hypernetwork -> canvas / adapter -> frozen model ->
                    cross-entropy of the task's answers; gradients reach only the hypernetwork
    reconstruction  match a cached library of per-task targets (ART canvases for T2C, LoRA weights
                    for T2L), trained once by `Hypernetwork.train_target` and kept on disk

Each optimiser step mixes `tasks_per_step` tasks: one micro-batch of `batch_size` rows per task,
each row served by its own task's generated output, with the gradients accumulated across the tasks.
The task order and the rows are pure functions of (seed, step), so `resume` continues exactly.
Checkpoints are atomic; the run folder holds `config.json`, `metrics.jsonl`, `checkpoint/`,
`final/` (the hypernetwork, loadable with `Hypernetwork.from_pretrained`) and `heldout.json`
(zero-shot accuracy on the held-out tasks, from their cards' descriptions).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Literal

import torch

from artstudio.atomic import atomic_write_text, json_default
from artstudio.backbone import DEFAULT_MODEL, model_name, named_model
from artstudio.checkpoint import (check_resume_steps, check_run_kind, key_differences, read_run_config, lr_lambda, option_differences, resume,
                                  save_checkpoint)
from artstudio.distributed import Processes
from artstudio.errors import ConfigError
from artstudio.hyper.base import get_hyper
from artstudio.options import DEVICE_HELP, DTYPE_HELP, field_defaults
from artstudio.progress import progress_bar, progress_iter
from artstudio.training import StepInterrupt
from artstudio.words import count

log = logging.getLogger("artstudio.hyper")

DEFAULT_TASK_CACHE = "runs/hyper-tasks"


@dataclass
class HyperTrainConfig:
    """Everything a hypernetwork training run needs; saved as `config.json` in the run folder."""

    kind: Literal["t2c", "t2l"] = field(default="t2c", metadata={"help": "t2c (Text-to-Canvas: an artwork) or t2l (Text-to-LoRA: a PEFT adapter)"})
    mode: Literal["sft", "reconstruction"] = field(default="sft", metadata={"help": "sft (end to end through the frozen model) or reconstruction (match per-task trained targets)"})
    tasks: str = field(default="library", metadata={"help": "'library' (every non-held-out operation x format pair, and word problems in the 10 formats but JSON: 108 tasks), comma-separated task names or folders (each with train.jsonl and card.json), or a .txt file listing folders"})
    out: str | None = field(default=None, metadata={"help": "run folder (default: runs/KIND, runs/t2c or runs/t2l)"})
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Hugging Face id or local folder (default: the shipped studio-tiny)"})
    encoder: str = field(default="backbone:0", metadata={"help": "task encoder: 'backbone:N' (the model's own language model, hidden state N mean-pooled; the default backbone:0 = its token embeddings, measured best on studio-tiny), 'backbone' (its last layer) or a local transformers model folder"})
    preset: Literal["S", "M", "L"] = field(default="S", metadata={"help": "hypernetwork size preset"})
    options: dict = field(default_factory=dict, metadata={"help": "options of the kind's own config (e.g. head, grid for t2c; rank for t2l)"})
    steps: int = field(default=1000, metadata={"help": "optimisation steps"})
    tasks_per_step: int = field(default=8, metadata={"help": "tasks mixed in one step (one micro-batch each)"})
    batch_size: int = field(default=8, metadata={"help": "rows per task micro-batch"})
    task_fraction: float = field(default=1.0, metadata={"help": "train on this seeded fraction of the tasks (scaling studies)"})
    lr: float = field(default=1e-3, metadata={"help": "peak learning rate (AdamW)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup: float = field(default=0.05, metadata={"help": "fraction of steps with linear warm-up"})
    wordings: int = field(default=1, metadata={"help": "descriptions per task used in training: the card's and up to N-1 other wordings (library tasks, or a card's `descriptions`); 1 = the card's only (best on studio-tiny, docs/hyper.md)"})
    word_dropout: float = field(default=0.0, metadata={"help": "with wordings > 1: the other wordings are the card's description with each word dropped with this probability (drawn with the seed), instead of the grammar's; teaches the mixer to read every word, not a fixed phrase"})
    seed: int = field(default=0, metadata={"help": "seed of initialisation, task order and rows"})
    targets: Literal["trained", "cue"] = field(default="trained", metadata={"help": "reconstruction targets: trained (an ART canvas / LoRA per task, trained once and cached) or cue (t2c on studio-tiny's library only: the cue picture the model was pretrained to read for that task, free)"})
    init: str | None = field(default=None, metadata={"help": "start from this hypernetwork folder (e.g. a reconstruction run's final/, then fine-tune with sft); its kind, preset and options replace this run's"})
    target_steps: int = field(default=300, metadata={"help": "reconstruction: ART/LoRA steps per library target"})
    target_cache: str | None = field(default=None, metadata={"help": "reconstruction: folder of cached per-task targets (default: <task cache>/targets-<kind>)"})
    task_cache: str = field(default=DEFAULT_TASK_CACHE, metadata={"help": "folder where built-in tasks' splits are written once"})
    checkpoint_every: int = field(default=50, metadata={"help": "checkpoint every N steps (0: only at the end)"})
    eval_every: int = field(default=0, metadata={"help": "held-out evaluation every N steps (0: only at the end)"})
    eval_size: int = field(default=100, metadata={"help": "test rows per held-out task in evaluations"})
    heldout_eval: bool = field(default=True, metadata={"help": "evaluate zero-shot on the held-out tasks at the end"})
    max_minutes: float | None = field(default=None, metadata={"help": "stop (with a checkpoint) after this many minutes"})
    resume: bool = field(default=False, metadata={"help": "continue from the run folder's last checkpoint"})
    overwrite: bool = field(default=False, metadata={"help": "replace the run already in the run folder (default: refuse, so no run is overwritten by accident)"})
    device: str | None = field(default=None, metadata={"help": DEVICE_HELP})
    dtype: str | None = field(default=None, metadata={"help": DTYPE_HELP})

    def __post_init__(self) -> None:
        if self.out is None:  # a T2L run went to runs/t2c, where it then blocked a T2C run
            self.out = f"runs/{self.kind}"

    def validate(self) -> None:
        """Raise ConfigError naming the first option out of range, before anything is loaded or written."""
        from artstudio.backbone import check_device, check_dtype
        from artstudio.options import check_kinds

        check_kinds(HyperTrainConfig, {f.name: getattr(self, f.name) for f in fields(self)}, what="hyper training")
        if self.kind not in ("t2c", "t2l"):
            raise ConfigError(f"--kind is {self.kind!r}; expected t2c or t2l")
        if self.mode not in ("sft", "reconstruction"):
            raise ConfigError(f"--mode is {self.mode!r}; expected sft or reconstruction")
        if self.preset not in ("S", "M", "L"):
            raise ConfigError(f"--preset is {self.preset!r}; expected S, M or L")
        if not isinstance(self.options, dict):
            raise ConfigError(f"--options is {self.options!r}; expected a dict of the {self.kind} hypernetwork's options")
        rules = [
            ("steps", self.steps >= 0, "expected 0 (fit or evaluate only) or more"),
            ("tasks_per_step", self.tasks_per_step >= 1, "expected at least 1"),
            ("batch_size", self.batch_size >= 1, "expected at least 1"),
            ("lr", math.isfinite(self.lr) and self.lr > 0, "expected a positive learning rate"),
            ("weight_decay", math.isfinite(self.weight_decay) and self.weight_decay >= 0, "expected 0 or more"),
            ("warmup", math.isfinite(self.warmup) and 0 <= self.warmup < 1,
             "expected the fraction of the steps that warm up, at least 0 and below 1"),
            ("target_steps", self.target_steps >= 1, "expected at least 1"),
            ("checkpoint_every", self.checkpoint_every >= 0, "expected 0 (only at the end) or more"),
            ("eval_every", self.eval_every >= 0, "expected 0 (only at the end) or more"),
            ("eval_size", self.eval_size >= 1, "expected at least 1"),
            ("max_minutes", self.max_minutes is None or (math.isfinite(self.max_minutes) and self.max_minutes > 0),
             "expected a positive number of minutes (leave it out for no limit)"),
        ]
        for name, ok, expected in rules:
            if not ok:
                raise ConfigError(f"--{name.replace('_', '-')} is {getattr(self, name)!r}; {expected}")
        check_device(self.device)
        check_dtype(self.dtype)
        if self.resume and self.overwrite:
            raise ConfigError("--resume continues the run in the folder and --overwrite replaces it; pass one of them")
        if self.wordings < 1:
            raise ConfigError(f"--wordings is {self.wordings}; expected at least 1 (1: the card's description only)")
        if not 0 <= self.word_dropout < 1:
            raise ConfigError(f"--word-dropout is {self.word_dropout}; expected at least 0 and less than 1")
        if self.word_dropout > 0 and self.wordings < 2:
            raise ConfigError("--word-dropout makes the other wordings: pass --wordings 2 or more (e.g. 64)")
        if not 0 < self.task_fraction <= 1:
            raise ConfigError(f"--task-fraction is {self.task_fraction}; expected more than 0 and at most 1")
        if self.targets not in ("trained", "cue"):
            raise ConfigError(f"--targets is {self.targets!r}; expected trained or cue")
        if self.targets == "cue" and self.kind != "t2c":
            raise ConfigError("--targets cue is for t2c only (a cue is a picture); t2l reconstructs trained LoRAs")
        if self.targets == "cue" and self.mode == "sft":  # accepted without a word, and changed nothing
            raise ConfigError("--targets cue chooses what --mode reconstruction matches; --mode sft trains through "
                              "the model on the tasks' rows and has no targets: add --mode reconstruction, or leave "
                              "out --targets")
        if self.init is not None and not Path(self.init).expanduser().is_dir():
            raise ConfigError(f"--init {self.init} does not exist; pass a hypernetwork folder (a run's final/)")

    @classmethod
    def from_dict(cls, d: dict) -> "HyperTrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown hyper training option(s): {', '.join(unknown)}")
        return cls(**d)


@dataclass
class HyperTrainResult:
    out: Path
    hypernetwork: Any
    metrics: dict
    history: list[dict]
    heldout: dict | None = None

    def summary(self) -> str:
        """What `artstudio hyper train` prints: where the hypernetwork is, the run's numbers, held-out accuracy."""
        m = self.metrics
        losses = [h["loss"] for h in self.history if h.get("loss") is not None]
        lines = [f"hypernetwork: {self.out / 'final'}  ({m['parameters']:,} parameters, {count(m['tasks'], 'training task')})",
                 f"steps: {m['steps']}{' (stopped by max_minutes; --resume continues)' if m.get('stopped') else ''}"
                 f" in {m['train_seconds'] / 60:.1f} min" + (f", final loss {losses[-1]:.4g}" if losses else "")]
        fit = m.get("closed_form_fit")
        if fit:
            right = fit.get("left_out_right")
            lines.append(f"closed-form fit: ridge penalty {fit['ridge_penalty']:g}" + (
                f", chosen by leave-one-task-out (left-out tasks chosen right, of {fit['tasks']}: "
                + ", ".join(f"{k}: {v}" for k, v in right.items()) + ")" if right else ""))
        if self.heldout:
            per = ", ".join(f"{k} {100 * v:.0f}" for k, v in self.heldout["per_task"].items())
            counts = sorted(set(self.heldout.get("rows", {}).values())) or [self.heldout["eval_size"]]
            rows = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
            lines.append(f"held-out, zero-shot from the cards ({rows} rows each): "
                         f"{100 * self.heldout['mean']:.1f} %  [{per}]")
        lines.append(f"next: artstudio hyper generate {self.out / 'final'} --description \"...\" -o "
                     + ("art.png" if getattr(self.hypernetwork, "kind", "t2c") == "t2c" else "adapter/"))
        return "\n".join(lines)


# --- data order -----------------------------------------------------------------------------------

def _perm(n: int, seed: int) -> list[int]:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()


def step_tasks(n_tasks: int, step: int, k: int, seed: int) -> list[int]:
    """Tasks of `step`: consecutive slices of seeded permutations (every task once per epoch)."""
    out = []
    for j in range(step * k, step * k + k):
        epoch, i = divmod(j, n_tasks)
        out.append(_perm(n_tasks, seed * 7919 + epoch)[i])
    return out


def step_rows(n_rows: int, step: int, task: int, batch_size: int, seed: int) -> list[int]:
    """Rows of `task`'s micro-batch at `step` (a pure function, so a resumed run sees the same rows)."""
    out = []
    for j in range(step * batch_size, step * batch_size + batch_size):
        epoch, i = divmod(j, n_rows)
        out.append(_perm(n_rows, seed * 1_000_003 + task * 7907 + epoch)[i])
    return out


def step_wording(n_wordings: int, step: int, task: int, seed: int) -> int:
    """Which of a task's descriptions `step` uses: a pure function of (seed, step, task), like the rows."""
    if n_wordings == 1:
        return 0
    return _perm(n_wordings, seed * 104_729 + task * 7919 + step // n_wordings)[step % n_wordings]


def word_dropped(description: str, n: int, p: float, *, seed: int) -> list[str]:
    """`n` copies of `description`, each word dropped with probability `p` (never all of them)."""
    rng = random.Random(seed)
    words = description.split(" ")
    out = []
    for _ in range(n):
        kept = [w for w in words if rng.random() >= p]
        out.append(" ".join(kept or words))
    return out


def select_tasks(tasks: list, fraction: float, seed: int) -> list:
    if fraction >= 1:
        return list(tasks)
    keep = max(1, round(fraction * len(tasks)))
    order = sorted(_perm(len(tasks), seed + 17)[:keep])
    return [tasks[i] for i in order]


# --- evaluation -----------------------------------------------------------------------------------

def heldout_descriptions() -> dict[str, str]:
    """The held-out tasks' card descriptions, by name (never seen in training)."""
    from artstudio.tasks import list_tasks

    return {c.name: c.description for c in list_tasks("heldout")}


def description_conditions() -> dict[str, dict[str, str]]:
    """Held-out descriptions to score a hypernetwork with, by condition: `card` (the cards' own),
    `shuffled` (another held-out task's, rotated by one: no task keeps its own) and `para1`..`paraN`
    (artstudio/hyper/paraphrases.json)."""
    cards = heldout_descriptions()
    names = list(cards)
    out = {"card": cards, "shuffled": {n: cards[names[(i + 1) % len(names)]] for i, n in enumerate(names)}}
    paraphrases = json.loads(Path(__file__).with_name("paraphrases.json").read_text(encoding="utf-8"))
    for j in range(min(len(paraphrases[n]) for n in names)):
        out[f"para{j + 1}"] = {n: paraphrases[n][j] for n in names}
    return out


def evaluate_descriptions(hyper, backbone, encoder, descriptions: dict[str, str], *, eval_size: int = 100,
                          task_cache: str | Path = DEFAULT_TASK_CACHE, folders: dict[str, Path] | None = None,
                          progress: bool = False, bar: bool = False) -> dict:
    """Zero-shot accuracy per task: generate from `descriptions[name]`, score on `name`'s test split.

    The description and the task are separate on purpose: pass shuffled or paraphrased
    descriptions to measure how much the words matter.
    """
    from artstudio.data import load_jsonl
    from artstudio.evaluation import evaluate
    from artstudio.tasks import task_specs

    folders = dict(folders or {})
    names = list(descriptions)
    need = [n for n in names if n not in folders]
    specs = {s.name: s for s in task_specs(need, task_cache)} if need else {}
    generated = hyper.generate(encoder, [descriptions[n] for n in names])
    per_task, scored = {}, {}
    for name, g in _bar(list(zip(names, generated)), bar, "held-out evaluation"):
        folder = folders.get(name) or specs[name].folder
        metric = specs[name].metric if name in specs else json.loads((Path(folder) / "card.json").read_text()).get("metric", "exact")
        rows = load_jsonl(Path(folder) / "test.jsonl")[:eval_size]
        method = hyper.method_for(backbone, g)
        with torch.no_grad():
            res = evaluate(method, rows, metric)
        per_task[name] = res.accuracy
        scored[name] = len(rows)
        if progress:
            log.info("%s: %.1f%%", name, 100 * res.accuracy)
    mean = sum(per_task.values()) / max(len(per_task), 1)
    # eval_size is what was asked; rows, what each task had (a test split shorter than eval_size is scored whole)
    return {"mean": mean, "per_task": per_task, "eval_size": eval_size, "rows": scored}


# --- the loop -------------------------------------------------------------------------------------

def train_hypernetwork(config: HyperTrainConfig, backbone, hypernetwork, encoder, tasks: list, *,
                       progress: bool = True, callbacks: list[Callable[[dict], None]] | None = None) -> HyperTrainResult:
    """Train `hypernetwork` on `tasks` (TaskSpecs) with `config`; returns the run's result.

    The run folder is locked for the run and must not hold another run unless `resume` or `overwrite`."""
    from artstudio.training import run_folder

    config.validate()
    if not tasks:
        raise ConfigError("no training tasks; pass --tasks library or task folders")
    with run_folder(config, HYPER_RUN_OUTPUTS) as out:
        if config.resume:
            check_hyper_resume(config, out)
        return _train_in(out, config, backbone, hypernetwork, encoder, tasks, progress, callbacks)


# Options a resumed hypernetwork run may change: where it runs, how it evaluates and saves, never what it
# trains. `steps` may change too (train longer; the learning-rate schedule then spans the new steps).
HYPER_RESUME_MAY_CHANGE = frozenset({"out", "resume", "overwrite", "device", "checkpoint_every", "eval_every",
                                     "eval_size", "heldout_eval", "max_minutes", "steps"})


# Options a resume on the command line does not take from the run's config.json when left out: where and
# for how long this invocation runs (`--max-minutes` is this sitting's budget; a run it stopped is resumed
# to go on, not to stop again after the same minutes).
RESUME_PER_INVOCATION = frozenset({"out", "resume", "overwrite", "device", "max_minutes"})


def resume_options(given: dict) -> dict:
    """The options of `artstudio hyper train`: `given` (what the command line typed) and, with `resume`,
    every other option from the run's own config.json, as a resumed run continues the same run. `--options`
    keys typed add to the run's. What is typed stays typed, so `check_hyper_resume` still refuses a
    difference by name. Without `resume`, or with no readable config.json (the resume then explains), `given`."""
    if not given.get("resume"):
        return dict(given)
    out = Path(str(given.get("out") or f"runs/{given.get('kind', 't2c')}")).expanduser()
    try:
        saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return dict(given)
    if not isinstance(saved, dict):
        return dict(given)
    check_run_kind(saved, out, "hyper")
    known = {f.name for f in fields(HyperTrainConfig)} - RESUME_PER_INVOCATION
    taken = {k: v for k, v in saved.items() if k in known and k not in given}
    values = taken | given
    if isinstance(given.get("options"), dict) and isinstance(saved.get("options"), dict):
        values["options"] = saved["options"] | given["options"]
    if taken:
        log.info("--resume: options not given are the run's own, from %s: %s", out / "config.json",
                 ", ".join(f"{k}={v!r}" for k, v in taken.items()))
    return values


def check_hyper_resume(config: HyperTrainConfig, out: str | Path, *, say: bool = True) -> int | None:
    """Refuse `--resume` with options that would train another run than the one in `out` (its config.json),
    a run that already finished its steps, and --steps that end before its checkpoint: each used to train on
    and rewrite config.json with options that no longer describe the weights (or fail on the checkpoint's
    shapes). Returns the steps the run was started with (None: no run there yet). `say` False: a check ahead of
    the one under the run's lock, which warns (about other --steps) once."""

    out = Path(out)
    file = out / "config.json"
    if not file.is_file():
        return None
    saved = read_run_config(file)
    check_run_kind(saved, out, "hyper")
    saved.pop("resolved", None)
    now = json.loads(json.dumps(asdict(config), default=json_default))
    differ = option_differences(now, saved, HYPER_RESUME_MAY_CHANGE, {
        "options": lambda value, was: key_differences(lambda key: f"--options {key}", value, was,
                                                      field_defaults(get_hyper(config.kind).config_class)),
        "model": lambda value, was: [] if isinstance(was, str) and model_name(value) == model_name(was) else None})
    if differ:
        raise ConfigError(f"--resume continues the hypernetwork run in {out} with the options it started with; these "
                          f"differ: {'; '.join(differ)}. Leave them out to resume with the run's own options "
                          f"(`artstudio hyper train --resume --out {out}` takes every option left out from {file}), "
                          "or start a new run with another --out")
    check_resume_steps(out, config.steps, saved.get("steps"), "the hypernetwork run",
                       f"Use it as it is (artstudio hyper generate {out / 'final'} ...)", say=say)
    return saved.get("steps")


# What a hypernetwork run writes in its folder: --overwrite removes exactly these.
HYPER_RUN_OUTPUTS = ("config.json", "metrics.jsonl", "result.json", "heldout.json", "checkpoint", "final")


def _train_in(out: Path, config: HyperTrainConfig, backbone, hypernetwork, encoder, tasks: list, progress: bool,
              callbacks) -> HyperTrainResult:
    from artstudio.data import load_jsonl
    from artstudio.objectives.sft import compute_loss

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    hypernetwork.check_backbone(backbone)
    hypernetwork.to(backbone.device)
    tasks = select_tasks(tasks, config.task_fraction, config.seed)
    # A held-out task trained on would be reported as zero-shot: the closing evaluation leaves it out.
    unseen = {n: d for n, d in heldout_descriptions().items() if n not in {t.name for t in tasks}}
    trained_heldout = sorted(set(heldout_descriptions()) - set(unseen))
    if trained_heldout and config.heldout_eval:
        log.warning("--tasks trains on held-out task(s) %s: the zero-shot evaluation at the end leaves %s out",
                    ", ".join(trained_heldout), "it" if len(trained_heldout) == 1 else "them")
    # Each task's descriptions (the card's first); a step uses one, drawn by (seed, step, task).
    if config.word_dropout > 0:
        texts = [[t.description] + word_dropped(t.description, config.wordings - 1, config.word_dropout,
                                                seed=config.seed * 7919 + i) for i, t in enumerate(tasks)]
    else:
        texts = [t.descriptions[: config.wordings] for t in tasks]
    flat = encoder.encode([d for ds in texts for d in ds]).to(backbone.device)
    embeddings = flat.split([len(ds) for ds in texts])
    rows = [load_jsonl(Path(t.folder) / "train.jsonl") for t in tasks]

    targets = None
    if config.mode == "reconstruction":
        cache = Path(config.target_cache or Path(config.task_cache) / f"targets-{hypernetwork.kind}")
        targets = []
        for t in _bar(tasks, progress, "library targets"):
            if config.targets == "cue":
                targets.append(hypernetwork.cue_target(t))
            else:
                targets.append(hypernetwork.train_target(backbone, t, cache, steps=config.target_steps, seed=config.seed))

    params = [p for p in hypernetwork.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    ckpt = out / "checkpoint"
    state, start, history = resume(out, opt) if config.resume else (None, 0, [])
    if state is not None:
        try:
            hypernetwork.load_state_dict(state)
        except RuntimeError as e:  # a run from before its config.json was compared, or a hand-edited folder
            first = str(e).strip().splitlines()[-1].strip()
            raise ConfigError(f"the checkpoint in {ckpt} does not fit this {hypernetwork.kind} hypernetwork ({first}); "
                              "resume with the run's own options (its config.json), or start a new run with "
                              "another --out") from None
        log.info("resumed %s at step %d", out, start)
    elif config.resume:
        log.warning("--resume: %s holds no checkpoint (it was stopped before one was saved); the run starts at step 0",
                    out)
    if state is None and config.init is None:  # one started from `init` keeps the statistics it was trained with
        hypernetwork.set_embedding_stats(flat)
        if targets is not None:
            hypernetwork.prepare_reconstruction(list(embeddings), targets)
    for group in opt.param_groups:
        group.setdefault("initial_lr", config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(config.steps, config.warmup), last_epoch=start - 1)
    saved = named_model(asdict(config)) | {"resolved": {"tasks": [t.name for t in tasks], "hypernetwork": hypernetwork.describe(),
                                           "model_id": backbone.model_id, "family": backbone.family}}
    atomic_write_text(out / "config.json", json.dumps(saved, indent=2, default=json_default) + "\n")
    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))

    def emit(record: dict) -> None:
        history.append(record)
        with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        for cb in callbacks or []:
            cb(record)

    bar = None
    if progress:
        bar = progress_bar(total=config.steps, initial=start, desc=f"{hypernetwork.kind} {config.mode}", unit="step",
                           dynamic_ncols=True)
    t0 = time.perf_counter()
    step, stopped = start, False
    k = min(config.tasks_per_step, len(tasks))
    if k < config.tasks_per_step and start < config.steps:
        log.warning("--tasks-per-step %d is more than the %s; each step uses all of them", config.tasks_per_step,
                    count(len(tasks), "training task"))
    hypernetwork.train()
    interrupt = StepInterrupt()  # Ctrl-C / SIGTERM: the step under way finishes, and a checkpoint is saved there
    with interrupt:
        while step < config.steps:
            if interrupt.heard(Processes()):
                break
            if config.max_minutes is not None and time.perf_counter() - t0 > 60 * config.max_minutes:
                stopped = True
                break
            ts = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            total, skipped = 0.0, False
            for ti in step_tasks(len(tasks), step, k, config.seed):
                # One hypernetwork pass per task keeps each task's graph separate, so its backward can run
                # (and free it) before the next task: memory stays that of one micro-batch.
                w = step_wording(len(texts[ti]), step, ti, config.seed)
                if config.mode == "sft":
                    generated = hypernetwork(embeddings[ti][w: w + 1])[0]
                    idx = step_rows(len(rows[ti]), step, ti, config.batch_size, config.seed)
                    loss = compute_loss(hypernetwork.method_for(backbone, generated), [rows[ti][i] for i in idx])
                else:
                    loss = hypernetwork.reconstruction_objective(embeddings[ti][w: w + 1], targets[ti])
                loss = loss / k
                if not torch.isfinite(loss):
                    log.warning("step %d: non-finite loss on task %s; step skipped", step + 1, tasks[ti].name)
                    skipped = True
                    break
                loss.backward()
                total += loss.item()
            if not skipped:
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
            sched.step()
            step += 1
            record = {"step": step, "loss": None if skipped else total, "lr": sched.get_last_lr()[0],
                      "seconds_per_step": time.perf_counter() - ts}
            if skipped:
                record["skipped"] = True
            if config.eval_every and step % config.eval_every == 0 and step < config.steps:
                res = evaluate_descriptions(hypernetwork, backbone, encoder, heldout_descriptions(),
                                            eval_size=min(config.eval_size, 50), task_cache=config.task_cache)
                record["heldout_accuracy"] = res["mean"]
                hypernetwork.train()
            emit(record)
            if (config.checkpoint_every and step % config.checkpoint_every == 0) or step == config.steps:
                save_checkpoint(ckpt, hypernetwork.state_dict(), opt, step)
            if bar is not None:
                shown = {"loss": f"{total:.3f}"}
                if "heldout_accuracy" in record:
                    shown["heldout"] = f"{record['heldout_accuracy']:.1%}"
                bar.set_postfix(shown, refresh=False)
                bar.update(1)
    if bar is not None:
        bar.close()
    if interrupt.requested:
        if step > start:
            save_checkpoint(ckpt, hypernetwork.state_dict(), opt, step)
            log.warning("%s after step %d of %s; checkpoint saved: --resume continues from it", interrupt.verb, step,
                        out)
        else:
            log.warning("%s before a step of %s; --resume continues from step %d", interrupt.verb, out, start)
        raise interrupt.exception()
    train_seconds = time.perf_counter() - t0
    if stopped:
        save_checkpoint(ckpt, hypernetwork.state_dict(), opt, step)
    hypernetwork.eval()
    hypernetwork.save_pretrained(out / "final", steps=step, mode=config.mode, tasks=len(tasks))
    metrics: dict[str, Any] = {"steps": step, "train_seconds": train_seconds, "stopped": stopped,
                               "tasks": len(tasks), "parameters": hypernetwork.num_parameters()}
    done = step - start
    metrics["seconds_per_step"] = train_seconds / done if done else None
    if hypernetwork.fit_report:
        metrics["closed_form_fit"] = hypernetwork.fit_report
    elif step == 0 and config.init is None:  # it saved the network as built, and scored and offered it in silence
        log.warning("--steps 0 with no closed-form fit trained nothing: %s holds the %s hypernetwork as initialised "
                    "(seed %d). Train it with --steps N, fit it in closed form (t2c: --mode reconstruction "
                    "--options '{\"head\": \"parts\", \"fit\": \"ridge\", ...}', docs/hyper.md), or start "
                    "from a trained one with --init", out / "final", config.kind, config.seed)
    heldout = None
    if config.heldout_eval and not stopped and unseen:
        heldout = evaluate_descriptions(hypernetwork, backbone, encoder, unseen,
                                        eval_size=config.eval_size, task_cache=config.task_cache, bar=progress)
        atomic_write_text(out / "heldout.json", json.dumps(heldout, indent=2) + "\n")
        metrics["heldout_accuracy"] = heldout["mean"]
        emit({"step": step, "heldout_accuracy": heldout["mean"], "final": True})
    atomic_write_text(out / "result.json", json.dumps(metrics, indent=2) + "\n")
    return HyperTrainResult(out=out, hypernetwork=hypernetwork, metrics=metrics, history=history, heldout=heldout)


def _bar(items, progress: bool, desc: str):
    return progress_iter(items, desc=desc) if progress else items
