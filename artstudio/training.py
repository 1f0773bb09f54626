"""One training loop for every method and every objective: ART canvases and every baseline go through it.

    artstudio train --data add-json --steps 300 --out runs/add-json          # a built-in task
    artstudio train --model Qwen/Qwen3.5-0.8B --data train.jsonl --eval-data test.jsonl --out runs/x

Per step: draw the next batch (a seeded permutation, so a resumed run sees the same batches), hand
it to the objective (`artstudio.objectives`: SFT or GRPO, each running the batch through
`artstudio.forward`, where the canvas goes through the vision tower once and is shared by every
row), and update only the method's parameters. A non-finite loss or gradient skips the step with a
warning. Checkpoints (method
state + optimiser + step) are written atomically; `--resume` continues bit-for-bit.

A run folder holds `config.json`, `metrics.jsonl`, `checkpoint/`, `snapshots/step-N.png` (ART),
`final/` (the trained method) and, for ART, `artwork.png`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import threading
import time
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import torch

from .backbone import (DEFAULT_MODEL, DEFAULT_NAME, check_device, check_dtype, dtype_name, load_backbone, model_name,
                       named_model, resolve_dtype, same_model)
from .data import Example, load_jsonl, picture_digest, warn_repeated_prompts
from .errors import ArtStudioError, ConfigError, DataError, SaidByMainProcess, Terminated
from .options import DEVICE_HELP, DTYPE_HELP
from .averaging import EMA_PREFIX, ParameterAverage
from .atomic import (atomic_write_text, check_file_target, check_free, check_only_own, check_output_kind, entries, json_default, read_json_object,
                     remove_added)
from .distributed import Processes, fsdp_from_launcher, launcher_asked_for_more
from .diagnosis import FIT_ROWS, diagnose, diagnose_grpo, needs_fit_check, needs_grpo_fit_check
from .starts import CHOICE_FILE, STARTS_FOLDER, StartsStopped, choose_start
from .checkpoint import (check_resume_steps, check_run_kind, key_differences, lr_lambda, option_differences,
                         read_run_config, resume, save_checkpoint, shown)
from .methods import Method, build_method, get_method, method_config, slot_tokens_of
from .objectives import get_objective
from .objectives.grpo import grpo_config
from .objectives.rewards import portable as portable_reward
from .progress import progress_bar
from .prompts import RowRoom, check_row_lengths
from .options import check_kinds, field_defaults, field_names, from_dict
from .scoring import Metric, check_references

log = logging.getLogger("artstudio.train")


def default_lr(method: str, objective: str = "sft") -> float:
    """The learning rate a run of `method` uses when none is given (the method's own, scaled by the objective)."""
    return get_method(method).lr_for(objective)


# The range of each numeric TrainConfig option: name -> (test(value, the method trains), what is expected).
# TrainConfig.check and `tune`'s space files (a searched value) both judge values with these.
RANGES: dict[str, tuple[Callable[[Any, bool], bool], str]] = {
    "batch_size": (lambda v, trains: v >= 1, "expected at least 1"),
    "grad_accum": (lambda v, trains: v >= 1, "expected at least 1"),
    "steps": (lambda v, trains: v >= 1 or (not trains and v == 0),
              "expected at least 1 (to score without training, use `artstudio eval`)"),
    "lr": (lambda v, trains: v is None or (math.isfinite(v) and (v > 0 or (not trains and v == 0))),
           "expected a positive learning rate (leave it out for the method's default)"),
    "warmup": (lambda v, trains: math.isfinite(v) and 0 <= v <= 1,
               "expected the fraction of the steps that warm up, between 0 and 1"),
    "weight_decay": (lambda v, trains: math.isfinite(v) and v >= 0, "expected 0 or more"),
    "ema": (lambda v, trains: v is None or (math.isfinite(v) and 0 <= v < 1),
            "expected 0 (off) or a decay below 1, like 0.95"),
    "eval_every": (lambda v, trains: v >= 0, "expected 0 (only at the end) or more"),
    "checkpoint_every": (lambda v, trains: v >= 0, "expected 0 (never) or more"),
    "snapshot_every": (lambda v, trains: v >= 0, "expected 0 (never) or more"),
    "eval_size": (lambda v, trains: v is None or v >= 1, "expected at least 1"),
    "max_new_tokens": (lambda v, trains: v is None or v >= 1, "expected at least 1"),
}


def check_range(name: str, value: Any, trains: bool = True) -> None:
    """Raise ConfigError when `value` is outside the range of TrainConfig's option `name` (RANGES)."""
    test, expected = RANGES[name]
    if not test(value, trains):
        raise ConfigError(f"--{name.replace('_', '-')} is {value!r}; {expected}")


@dataclass
class TrainConfig:
    """Everything a run needs; saved as `config.json` next to its outputs."""

    out: str = field(default="runs/art", metadata={"help": "run folder"})
    data: str = field(default="", metadata={"help": "train.jsonl, a task folder, or a built-in task name (`artstudio tasks list`)"})
    eval_data: str | None = field(default=None, metadata={"help": "the rows to score: a JSONL file, or a task folder or built-in task (its test split; default: --data's test split)"})
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Hugging Face id or local folder (default: the shipped studio-tiny)"})
    method: str = field(default="art", metadata={"help": "the trained thing: a canvas (art; art-single: one start), an adapter (lora, vera, adalink), a soft prompt, Text-to-Canvas or Text-to-LoRA (t2c, t2c+art, t2l), or a reference (base, random-canvas)"})
    method_options: dict = field(default_factory=dict, metadata={"help": "options of the method's own config (e.g. canvas_size, r)"})
    objective: Literal["sft", "grpo"] = field(default="sft", metadata={"help": "sft (answer tokens' cross-entropy) or grpo"})
    metric: Metric | None = field(default=None, metadata={"help": "exact | numeric | regex | json (default: the task card's)"})
    pattern: str | None = field(default=None, metadata={"help": "regular expression for --metric regex (default: each answer is its own pattern)"})
    steps: int = field(default=300, metadata={"help": "optimisation steps"})
    batch_size: int = field(default=16, metadata={"help": "examples per micro-batch"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per step"})
    lr: float | None = field(default=None, metadata={"help": "peak learning rate (default: the method's; a tenth of it for GRPO)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup: float = field(default=0.05, metadata={"help": "fraction of steps with linear warm-up"})
    ema: float | None = field(default=None, metadata={"help": "decay of a moving average of the trained parameters that evaluations and the export use, e.g. 0.95 (default: off, the last step's parameters; a resumed run keeps its own)"})
    schedule: Literal["cosine", "constant"] = field(default="cosine", metadata={"help": "cosine (to 10% of peak) or constant"})
    seed: int = field(default=0, metadata={"help": "seed of data order, initialisation and sampling"})
    eval_every: int = field(default=0, metadata={"help": "evaluate every N steps (0: only at the end)"})
    eval_size: int | None = field(default=None, metadata={"help": "examples scored by the periodic evaluations of "
                                                                      "--eval-every; the final one scores every test "
                                                                      "row (default: all)"})
    checkpoint_every: int = field(default=50, metadata={"help": "checkpoint every N steps (0: never)"})
    snapshot_every: int = field(default=50, metadata={"help": "save the canvas as PNG every N steps (ART)"})
    resume: bool = field(default=False, metadata={"help": "continue from the run folder's last checkpoint"})
    shared_prefix: bool = field(default=True, metadata={"help": "run the rows' common prefix (template opening and canvas) once per batch and share its cache: the same loss and gradients, less time"})
    fsdp: bool = field(default=False, metadata={"help": "shard the frozen backbone's blocks over the launcher's processes (FSDP2; on by itself under `accelerate launch` with an FSDP config): less weight memory per device, every process evaluates, no shared prefix"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute the frozen model's activations in the backward pass instead of keeping them: less memory, about a third more time; the same gradients up to float rounding (the shared prefix is off under it)"})
    diagnose: bool = field(default=True, metadata={"help": f"at the end, say whether the run looks stuck, cannot fit its task (then it answers up to {FIT_ROWS} of its own training rows, only when the loss ends high) or is unfinished"})
    overwrite: bool = field(default=False, metadata={"help": "replace the run already in the run folder (default: refuse, so no run is overwritten by accident)"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "answer budget in evaluation (default: from the answers)"})
    keep_default_system: bool = field(default=False, metadata={"help": "keep the chat template's default system turn (Qwen2/2.5-VL add one); off: no system prompt, as in the paper"})
    device: str | None = field(default=None, metadata={"help": DEVICE_HELP})
    dtype: str | None = field(default=None, metadata={"help": DTYPE_HELP})
    grpo: dict = field(default_factory=dict, metadata={"help": "GRPO options (see artstudio.objectives.grpo)"})

    def __post_init__(self) -> None:
        for name in ("out", "data", "eval_data", "model"):  # paths are welcome where text is expected
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return from_dict(cls, d, what="training")

    def check(self) -> None:
        """Raise ConfigError naming the first option out of range, before anything is written."""
        check_kinds(TrainConfig, {f.name: getattr(self, f.name) for f in fields(self)}, what="training")
        for name in ("out", "data", "eval_data", "model", "method", "device", "dtype"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"training option {name} is {value!r} ({type(value).__name__}); expected text "
                                  f"(TrainConfig({name}=\"...\"))")
        if self.out is None or not self.out.strip():  # (Path(None) was a TypeError; "" trained into the working folder)
            raise ConfigError(f"training option out is {self.out!r}; expected the run's folder, e.g. out=\"runs/my-run\"")
        trains = get_method(self.method).trains
        for name in RANGES:
            check_range(name, getattr(self, name), trains)
        check_device(self.device)
        check_dtype(self.dtype)
        for name in ("method_options", "grpo"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} is {getattr(self, name)!r}; expected a dict of options")
        method_config(self.method, self.method_options)  # unknown or ill-typed method options, before any folder
        init = self.method_options.get("init")
        if isinstance(init, str) and get_method(self.method).paints():
            # A mistyped --init ('noize') was refused only when the canvas was built: after the starts' advice on
            # the command line, and in the app after the job was queued and the upload written into the run.
            from .canvas import initial_image

            initial_image(init, 8, 8)
        if self.grpo and self.objective != "grpo":
            raise ConfigError(f"GRPO options ({', '.join('--grpo-' + k.replace('_', '-') for k in sorted(self.grpo))}) "
                              f"apply only to --objective grpo; this run's objective is {self.objective}")
        if self.objective == "grpo":
            grpo_config(self.grpo)  # out-of-range or ill-typed GRPO options, before the model loads
            if "reward" in self.grpo:  # a reward file, recorded so a resume from another folder finds it
                self.grpo = {**self.grpo, "reward": portable_reward(self.grpo["reward"])}
        if self.resume and self.overwrite:
            raise ConfigError("--resume continues the run in the folder and --overwrite replaces it; pass one of them")


@dataclass
class TrainResult:
    out: Path
    method: Method = field(repr=False)
    metrics: dict
    history: list[dict] = field(repr=False)  # a record per step: its repr grew with every step
    artwork: Path | None = None
    main: bool = True  # False in the other processes of a multi-process run (they write nothing)


# --- data ---------------------------------------------------------------------------------------

def resolve_data(config: TrainConfig) -> tuple[list[Example], list[Example] | None, dict]:
    """Train rows, eval rows and the task card, from a file, a task folder or a built-in name."""
    from .tasks.resolve import resolve_data as resolve

    task = resolve(config.data, Path(config.out) / "task", role="train")
    # --eval-data is spelled like --data (a file, a task folder, a built-in name); a folder gives its test split
    eval_file = resolve(config.eval_data, Path(config.out) / "eval-task", role="test").test_file \
        if config.eval_data else task.test_file
    data, sibling = Path(config.data).expanduser(), Path(config.data).expanduser().parent / "test.jsonl"
    if not eval_file and data.is_file() and sibling.is_file() and sibling.resolve() != data.resolve():
        # The card beside a training file is read; its test split is not (a folder is the way to name both).
        log.warning("--data %s is a file, so the test.jsonl beside it is not read and the run is not scored; pass "
                    "--eval-data %s, or --data %s for the whole task folder", config.data, sibling, sibling.parent)
    elif not eval_file and data.is_dir():  # (eval refuses such a folder; a run trains on it, unscored)
        log.warning("task folder %s has no test.jsonl, so the run is not scored; add one, or pass --eval-data FILE",
                    config.data)
    train = load_jsonl(task.train_file)
    evals = load_jsonl(eval_file) if eval_file else None
    if evals:
        warn_repeated_prompts(train, evals, str(eval_file), task.card)
    return train, evals, task.card


def batch_indices(n: int, step: int, micro: int, batch_size: int, grad_accum: int, seed: int) -> list[int]:
    """Rows of micro-batch `micro` of `step`: epochs of seeded permutations, a pure function of the step.

    A batch never holds a row twice: a batch size above the `n` rows is `n`, as a data loader gives it
    (--batch-size 100000 on 1,000 rows once drew 100,000 rows a step and ran out of memory)."""
    batch_size = min(batch_size, n)
    start = (step * grad_accum + micro) * batch_size
    out = []
    for k in range(start, start + batch_size):
        epoch, i = divmod(k, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        out.append(int(perm[i]))
    return out


# --- checkpoints ----------------------------------------------------------------------------------

# --- the loop -------------------------------------------------------------------------------------

def train(config: TrainConfig | dict | None = None, *, backbone=None, callbacks: list[Callable[[dict], None]] | None = None,
          should_stop: Callable[[], bool] | None = None, progress: bool = True, **overrides) -> TrainResult:
    """Train `config.method` on `config.data` into the run folder `config.out`; returns a `TrainResult`.

    Args:
        config: a `TrainConfig`, or a dict of its fields (`method_options` a dict of the method's own options);
            every field is an `artstudio train` option, listed with its help by `artstudio train --help`.
        backbone: a loaded `Backbone` to reuse (`artstudio.load_backbone()`); None loads `config.model`.
        callbacks: functions called with each step's record (`step`, `loss`, `lr`, ...; evaluations add `accuracy`).
        should_stop: asked after every step; True saves a checkpoint there and stops (resume with `resume=True`).
        progress: a progress bar on stderr (plain lines where stderr is not a terminal).
        **overrides: TrainConfig fields (`steps=20`) or method options (`canvas_size=96`, `init="noise"`).

    `TrainResult` holds `out` (the run folder), `method` (the trained method, ready for `evaluate` and `generate`),
    `metrics` (test `accuracy`, `trainable_params`, `train_seconds`, ...), `history` and `artwork` (its PNG, if it
    paints). Bad options raise `ConfigError`, bad data `DataError`, before the run folder is written."""
    config = _merge(config, overrides)
    config.check()
    if isinstance(backbone, (str, Path)):  # train(..., backbone="studio-tiny"): a model, named; train loads it
        if model_name(config.model) not in (DEFAULT_NAME, model_name(str(backbone))):
            raise ConfigError(f"model is {config.model!r} but backbone names {str(backbone)!r}; name the model once")
        config, backbone = replace(config, model=str(backbone)), None
    elif backbone is not None and not hasattr(backbone, "geometry"):
        raise ConfigError("backbone must be an artstudio Backbone (artstudio.load_backbone(model)) or a model name "
                          f"or folder, not {type(backbone).__name__}")
    if backbone is not None:
        config = _on_backbone(config, backbone)
    processes = Processes.from_env()
    if not get_method(config.method).trains and config.steps:  # it ran --steps steps at lr 0, changing nothing
        if processes.is_main:
            log.warning("method %s trains nothing (%s): the run scores it as it is, with 0 steps, not %d", config.method,
                        "zero-shot" if config.method in ("t2l", "t2c") else "a reference", config.steps)
        config = replace(config, steps=0)
    if fsdp_from_launcher() and not config.fsdp:
        config = replace(config, fsdp=True)
    if config.fsdp and processes.world == 1:
        raise ConfigError("--fsdp shards the backbone over several processes; start them with a launcher "
                          "(torchrun --nproc_per_node N -m artstudio train ..., or accelerate launch)")
    if processes.world == 1:
        asked = launcher_asked_for_more()
        if asked:
            log.warning("accelerate launch --num_processes %d started one process: without GPUs it starts several "
                        "only with --multi_gpu (gloo on CPU) or a multi-process --config_file; this run trains "
                        "on one", asked)
        with run_folder(config) as out:
            return _train(config, out, backbone, callbacks, should_stop, progress)
    # Several processes (a launcher started them): the main one owns the run folder; the others learn
    # whether it could take it (or why not) before they start, so a refusal stops every process.
    if not get_objective(config.objective).splits_batches:
        raise ConfigError(f"the {config.objective} objective trains on one process; run it without a "
                          "multi-process launcher")
    if config.batch_size < processes.world:
        raise ConfigError(f"--batch-size {config.batch_size} is smaller than the {processes.world} processes; "
                          "each process needs at least one row of the global batch")
    with ExitStack() as stack:
        error = None
        if processes.is_main:
            try:
                stack.enter_context(run_folder(config))
            except ConfigError as err:
                error = str(err)
        error = processes.broadcast(error)
        if error is not None:
            raise ConfigError(error)
        return _train(config, Path(config.out), backbone, callbacks if processes.is_main else None, None,
                      progress and processes.is_main, processes)


def _train(config: TrainConfig, out: Path, backbone, callbacks, should_stop, progress,
           processes: Processes | None = None) -> TrainResult:
    from .evaluation import evaluate

    processes = processes or Processes()
    main = processes.is_main
    # A refused resume writes nothing into the run: the task folders the data brings are taken out again.
    before = {folder: entries(folder) for folder in (out / "task", out / "eval-task")}
    # The main process reads the data first (it materialises a built-in task), then tells the others whether it
    # could: a refused file (a missing picture) ended the others in a broken collective, with a traceback.
    refused = None
    if main:
        try:
            train_rows, eval_rows, card = resolve_data(config)
        except ArtStudioError as err:
            refused = err
        said = processes.broadcast(None if refused is None else str(refused))
        if refused is not None:
            raise refused
    else:
        said = processes.broadcast(None)
        if said is not None:
            raise SaidByMainProcess(said)
        train_rows, eval_rows, card = resolve_data(config)
    if not any(e.answer.strip() for e in train_rows):
        if config.objective == "sft":
            raise DataError(f"--data {config.data}: every training answer is empty, so SFT has nothing to learn; "
                            'give each row its "answer"')
        if main:  # GRPO: a reward of its own may not need answers; the metric's default rewards compare with them
            log.warning("--data %s: every training answer is empty; the default rewards score completions "
                        "against the answers, so only a --grpo-reward that ignores them can teach anything", config.data)
    elif config.objective == "sft" and main:
        empty = [e for e in train_rows if not e.answer.strip()]
        if empty:
            log.warning("--data %s: %d of %d training rows have an empty answer (row %s first): SFT teaches the model "
                        "to say nothing to them", config.data, len(empty), len(train_rows), empty[0].source or empty[0].id)
    try:
        saved_run = check_resume(config, out, train_rows, eval_rows, say=main) if config.resume else None
    except ConfigError:
        if main:
            for folder, held in before.items():
                remove_added(folder, held)
        raise
    saved_steps = saved_run["steps"] if saved_run else None
    if config.batch_size > len(train_rows) and main and config.steps:  # (a method that trains nothing takes no batch)
        log.warning("batch size %d (--batch-size) is larger than the %d training rows: each batch holds every row once",
                    config.batch_size, len(train_rows))
    metric = config.metric or card.get("metric") or "exact"
    # Answers the metric cannot score fail here, not after training (the starts' validation and the fit check
    # score training rows with it too).
    check_references(metric, eval_rows or [], f"--eval-data {config.eval_data}" if config.eval_data
                     else f"the test split of {config.data}", config.pattern)
    check_references(metric, train_rows, f"--data {config.data}", config.pattern)
    if metric == "numeric" and config.objective == "sft":
        check_numeric_format(train_rows, f"--data {config.data}", main)
    if config.pattern is not None and metric != "regex":
        log.warning("--pattern applies to --metric regex; this run scores with %s", metric)
    if backbone is None:
        # A resume keeps the frozen model's dtype (a run begun under `accelerate --mixed_precision bf16`, or on
        # a GPU's bf16 default, resumed in fp32 without a word); --dtype or the launcher may name it again.
        dtype = config.dtype or _launcher_precision() or (saved_run or {}).get("dtype")
        backbone = load_backbone(config.model, dtype=dtype, device=config.device or processes.device)
    room = RowRoom(backbone, slot_tokens_of(config.method, backbone, config.method_options),
                   keep_default_system=config.keep_default_system)
    check_row_lengths(room, train_rows, f"--data {config.data}")
    if config.objective == "grpo" and config.grpo.get("max_new_tokens"):  # GRPO samples that many after each prompt
        check_row_lengths(room, train_rows, f"--data {config.data}", answers=False,
                          max_new_tokens=int(config.grpo["max_new_tokens"]), tokens_option="--grpo-max-new-tokens")
    if eval_rows:
        check_row_lengths(room, eval_rows, f"--eval-data {config.eval_data}" if config.eval_data else f"the test split of {config.data}",
                          answers=config.max_new_tokens is None, max_new_tokens=config.max_new_tokens or 0)
    # Several starts (a canvas option): short runs from different starts, the best continues.
    requested = config  # what config.json records; the start chosen goes under "resolved"
    # A resume with other --steps keeps the starts the run chose (their length is a fraction of the steps).
    def on_start(event: dict) -> None:  # the starts' progress, for callers that show it (the app); not a metric
        for cb in callbacks or []:
            cb({"phase": "start", **event})

    def resolved(**more) -> dict:  # what config.json records beside the options asked for
        return {"task": card, "train_digest": rows_digest(train_rows), "model_family": backbone.family,
                "processes": _segments((saved_run or {}).get("processes"), processes.world),
                "dtype": dtype_name(backbone.dtype), "versions": software_versions()} | more

    chosen_before = (out / STARTS_FOLDER / CHOICE_FILE).is_file()  # a resume that runs the starts has no earlier pick
    try:
        config, start_choice = choose_start(replace(config, steps=saved_steps or config.steps), out, backbone,
                                            train_rows, card, progress=progress, should_stop=should_stop,
                                            on_start=on_start)
    except StartsStopped:
        return _stopped_during_starts(requested, out, resolved(), processes)
    except KeyboardInterrupt:
        # Ctrl-C during the starts: the run's options go on disk, so `--resume --out RUN` finds them and refuses
        # other ones (a resume with another --lr or --seed retrained the starts as a new run, without a word).
        # An --overwrite run has not begun: the run it replaces is put back, and nothing is written.
        if processes.is_main and not requested.overwrite:
            _record_options(requested, out, resolved())
        raise
    config = replace(config, steps=requested.steps)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    options = dict(config.method_options)
    if "seed" in field_names(get_method(config.method).config_class) and options.get("seed") is None:
        options["seed"] = config.seed  # the run's seed also draws the canvas / adapter initialisation
    method = build_method(config.method, backbone, options)
    method.keep_default_system = config.keep_default_system
    method.shared_prefix = config.shared_prefix
    method.bind_task(card)
    if main and config.snapshot_every not in (0, TrainConfig.snapshot_every) and not hasattr(method, "image"):
        log.warning("--snapshot-every saves the canvas of a painting method; %s paints none, so no snapshots are saved",
                    config.method)
    lr = config.lr if config.lr is not None else default_lr(config.method, config.objective)
    params = method.trainable_parameters()
    # Off unless asked for: on studio-tiny it moved ART's mean by -1.7 to +0.3 points (docs/robust.md). A resume
    # left without --ema keeps the run's own (a run begun when canvases averaged by default recorded none).
    ema = config.ema if config.ema is not None else (saved_run or {}).get("ema") or 0.0
    if config.fsdp:
        blocks = processes.shard_frozen(method.model, params)
        if main:
            log.warning("fsdp: %d frozen blocks sharded over %d processes; the shared prefix is off under FSDP",
                        blocks, processes.world)
        method.shared_prefix = False  # see artstudio.distributed: FSDP cannot see the prefix cache's backward
    opt = torch.optim.AdamW(params or [torch.nn.Parameter(torch.zeros(1))], lr=lr, weight_decay=config.weight_decay)
    objective = get_objective(config.objective).build(config.grpo if config.objective == "grpo" else None, metric=metric,
                                                      seed=config.seed, answers=[e.answer for e in train_rows],
                                                      probe=train_rows[0] if train_rows else None)
    objective.bind(method)  # GRPO's KL reference is the method as it starts, before any resume

    ckpt = out / "checkpoint"
    state, start, history = resume(out, opt) if config.resume else (None, 0, [])
    if state is not None:
        method.load_trainable_state({k: v for k, v in state.items() if not k.startswith(EMA_PREFIX)})
        log.info("resumed %s at step %d", out, start)
    elif config.resume and main:
        if chosen_before:  # "starts at step 0" read as if the starts were lost too
            log.warning("--resume: %s holds no checkpoint of the run after its starts; it keeps the start it chose "
                        "and trains from it, from step 0", out)
        elif start_choice:  # stopped during its starts: this resume has just finished them
            # ("it has finished them" read as if the run had finished its starts before it was stopped)
            log.warning("--resume: %s was stopped during its starts; this resume trained the ones left unfinished "
                        "(a start stopped part-way begins again), chose %s, and trains it from step 0", out,
                        start_choice.get("chosen"))
        else:
            log.warning("--resume: %s holds no checkpoint; the run starts at step 0", out)
    # The moving average of the trained tensors (--ema), which evaluations, snapshots and the end of the run use.
    average = None
    if ema and params:
        average = ParameterAverage({k: v for k, v in method.trainable_state().items() if v.requires_grad}, ema)
        if state is not None and not average.load_state(state) and start and main:
            log.warning("--resume: %s's checkpoint holds no moving average (--ema); it starts from the parameters "
                        "at step %d", out, start)

    # What an evaluation record and result.json say of the average the scores are of (the app shows it).
    scored_as = {"ema": ema} if average is not None else {}

    def averaged():  # the parameters as the run would end now: the average where there is one
        return average.applied() if average is not None else nullcontext()

    def trained_state() -> dict:  # what a checkpoint holds: the raw tensors the optimiser trains, and the average
        return method.trainable_state() | (average.state() if average is not None else {})

    for group in opt.param_groups:
        group.setdefault("initial_lr", lr)
    # Built after a resume so the schedule continues at the checkpoint's step.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(config.steps, config.warmup, config.schedule), last_epoch=start - 1)
    chosen = {"starts": start_choice, "init": config.method_options["init"]} if start_choice else {}
    saved = config_record(requested) | {"resolved": resolved(lr=lr, ema=ema, metric=metric,
                                                      trainable_params=method.num_trainable(), **chosen)}
    if main:
        atomic_write_text(out / "config.json", json.dumps(saved, indent=2, default=json_default) + "\n")
        atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))

    def emit(record: dict) -> None:
        history.append(record)
        if not main:
            return
        with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        for cb in callbacks or []:
            cb(record)

    def run_eval(step: int, rows: list[Example]) -> dict:
        res = evaluate(method, rows, metric, pattern=config.pattern, max_new_tokens=config.max_new_tokens)
        return {"step": step, "eval_accuracy": res.accuracy, "eval_n": res.n} | scored_as

    bar = None
    if progress:
        desc = f"{config.method} {config.objective}"
        if out.parent.name == STARTS_FOLDER:  # a start's short run: "art sft: 1/3 steps" read as the run itself
            desc = f"start {out.name} · {desc}"
        bar = progress_bar(total=config.steps, initial=start, desc=desc, unit="step", dynamic_ncols=True)
    # A resumed run's earlier segments count too (their steps' own times, from the metrics).
    before = sum(h.get("seconds_per_step") or 0.0 for h in history if "seconds_per_step" in h)
    t0 = time.perf_counter()
    step = start
    stopped = False
    shard = {"processes": processes} if processes.world > 1 else {}  # each process's share of a batch
    interrupt = StepInterrupt()
    with gradient_checkpointing(method.model, config.gradient_checkpointing), interrupt:
        while step < config.steps:
            if interrupt.heard(processes):
                break
            if should_stop is not None and should_stop():
                stopped = True
                break
            ts = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            total, stats, skipped = 0.0, {}, False
            for micro in range(config.grad_accum):
                idx = batch_indices(len(train_rows), step, micro, config.batch_size, config.grad_accum, config.seed)
                loss, stats = objective(method, [train_rows[i] for i in idx], step=step, micro=micro, **shard)
                loss = loss / config.grad_accum
                if processes.sum(float(not torch.isfinite(loss))):  # every process skips together
                    log.warning("step %d: non-finite loss (%s); step skipped, parameters unchanged", step + 1, loss.item())
                    skipped = True
                    break
                if loss.requires_grad:
                    loss.backward()
                total += processes.sum(loss.item())  # the shares add up to the global batch's loss
            if not skipped and params:
                processes.sum_gradients(params)
                norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
                if torch.isfinite(norm):
                    opt.step()
                    if average is not None:
                        average.update()
                else:  # a NaN/inf gradient would write NaN into every parameter the optimiser touches
                    log.warning("step %d: non-finite gradient norm (%s); step skipped, parameters unchanged",
                                step + 1, norm.item())
                    skipped = True
            if params:  # a method that trains nothing (base, random-canvas) never steps its optimiser: torch warns
                sched.step()
            step += 1
            record = {"step": step, "loss": None if skipped else total, "lr": sched.get_last_lr()[0],
                      "seconds_per_step": time.perf_counter() - ts, **stats}
            if skipped:
                record["skipped"] = True
            if (main or config.fsdp) and config.eval_every and eval_rows and step % config.eval_every == 0 and step < config.steps:
                with averaged():
                    record |= run_eval(step, eval_rows[: config.eval_size] if config.eval_size else eval_rows)
            if main and config.snapshot_every and hasattr(method, "image") and (
                    step % config.snapshot_every == 0 or step == config.steps):
                (out / "snapshots").mkdir(exist_ok=True)
                with averaged():
                    method.image().save(out / "snapshots" / f"step-{step:05d}.png")
            emit(record)
            if main and config.checkpoint_every and (step % config.checkpoint_every == 0 or step == config.steps):
                save_checkpoint(ckpt, trained_state(), opt, step, history_len=len(history))
            if bar is not None:
                shown = {"loss": f"{total:.3f}"} | {k: f"{v:.3f}" for k, v in stats.items() if isinstance(v, float)}
                if "eval_accuracy" in record:
                    shown["acc"] = f"{record['eval_accuracy']:.1%}"
                bar.set_postfix(shown, refresh=False)
                bar.update(1)
    if bar is not None:
        bar.close()
    if interrupt.requested:  # Ctrl-C or SIGTERM: the step under way finished, so the checkpoint holds whole steps
        said = interrupt.verb
        if config.checkpoint_every and step > start:
            if main:
                save_checkpoint(ckpt, trained_state(), opt, step, history_len=len(history))
            processes.barrier()  # no process leaves (and has its launcher stop the others) before it is saved
            if main:
                log.warning("%s after step %d of %s; checkpoint saved: --resume continues from it", said, step, out)
        elif not config.checkpoint_every:  # a start of a run, or --checkpoint-every 0
            # (a start, a comparison's cell, a tuning trial: their verbs resume by running the same command again)
            if main:  # one line for a multi-process run, not one per process
                log.warning("%s after step %d of %s, which keeps no checkpoint: it trains again from its first "
                            "step when resumed", said, step, out)
        elif main:
            log.warning("%s before a step of %s; --resume continues from step %d", said, out, start)
        raise interrupt.exception()
    train_seconds = before + time.perf_counter() - t0
    if stopped and config.checkpoint_every and main:  # before the average replaces the tensors the optimiser trains
        save_checkpoint(ckpt, trained_state(), opt, step, history_len=len(history))
    if average is not None:  # the run ends as its average
        average.apply()

    fit = diagnosis = None
    if config.diagnose and not stopped:
        losses = [h["loss"] for h in history if h.get("loss") is not None]
        grpo_alike = config.objective == "grpo" and method.trains and needs_grpo_fit_check(history)
        if (config.objective == "sft" and needs_fit_check(losses)) or grpo_alike:
            # The loss ended high (SFT) or the groups were rewarded alike (GRPO): does the run answer its own
            # training rows? (A run that cannot fit its task is told apart from one that fits and fails on new
            # prompts; a GRPO run whose completions are all wrong from one whose completions are all right.)
            # A sharded model needs every process.
            rows = [r for r in train_rows if r.answer][:FIT_ROWS]
            if rows and (main or config.fsdp):
                fit = evaluate(method, rows, metric, pattern=config.pattern, max_new_tokens=config.max_new_tokens)
        if config.objective == "grpo":  # its loss is no measure of fit; the reward's spread within groups is
            diagnosis = diagnose_grpo(history, train_accuracy=fit.accuracy if fit else None,
                                      reward=str(getattr(objective, "reward_spec", None) or "")) if method.trains else None
        else:
            diagnosis = diagnose(losses, paints=method.paints(), starts=len((start_choice or {}).get("starts", [])) or 1,
                                 train_accuracy=fit.accuracy if fit else None, train_n=fit.n if fit else 0,
                                 lr=lr, default_lr=default_lr(config.method, config.objective))
    if diagnosis:
        emit({"step": step, "diagnosis": diagnosis.text, "diagnosis_kind": diagnosis.kind})
    # The starts' training is part of the run's cost (and of a comparison's time column).
    starts_seconds = sum(r.get("train_seconds") or 0.0 for r in (start_choice or {}).get("starts", []))
    metrics: dict[str, Any] = {"steps": step, "train_seconds": train_seconds + starts_seconds,
                               "trainable_params": method.num_trainable(), "stopped": stopped, "metric": metric,
                               "train_rows": len(train_rows), "processes": processes.world}
    if config.objective == "grpo":  # the reward GRPO trained on (chosen from the metric when not given)
        metrics["reward"] = str(getattr(objective, "reward_spec", None) or "")
    if start_choice:
        metrics |= {"starts_seconds": starts_seconds, "start": start_choice["chosen"],
                    "start_val_accuracy": {r["start"]: r["val_accuracy"] for r in start_choice["starts"]},
                    "start_final_loss": {r["start"]: r.get("final_loss") for r in start_choice["starts"]}}
    metrics |= scored_as  # what the evaluations and the export used: the average, not the last step's
    if fit:
        metrics |= {"train_accuracy": fit.accuracy, "train_eval_n": fit.n}
    if diagnosis:
        metrics |= {"diagnosis": diagnosis.text, "diagnosis_kind": diagnosis.kind}
    metrics["seconds_per_step"] = train_seconds / step if step else None
    if not main:  # the main process writes the run's outputs and evaluates
        if config.fsdp and eval_rows and not stopped:  # a sharded model's forward needs every process
            evaluate(method, eval_rows, metric, pattern=config.pattern, max_new_tokens=config.max_new_tokens)
        return TrainResult(out=out, method=method, metrics=metrics, history=history, main=False)
    method.save(out / "final")
    if eval_rows and not stopped:
        res = evaluate(method, eval_rows, metric, pattern=config.pattern, max_new_tokens=config.max_new_tokens,
                       out_dir=out / "eval", overwrite=True)  # the run's own folder
        metrics |= {"accuracy": res.accuracy, "eval_n": res.n, "latency_ms": res.latency_ms}
        emit({"step": step, "eval_accuracy": res.accuracy, "eval_n": res.n, "final": True} | scored_as)
    artwork = None
    if method.paints() and method.num_trainable():
        artwork = export_artwork_of(method, out / "artwork.png", card=card, data=config.data,
                                    objective=config.objective, steps=step, metrics=metrics)
    atomic_write_text(out / "result.json", json.dumps(metrics, indent=2) + "\n")
    return TrainResult(out=out, method=method, metrics=metrics, history=history, artwork=artwork)


# Options a resumed run may change: where and how it runs, evaluates and saves, never what it trains.
# `steps` may change too (train longer, or end a stopped run sooner): the schedule then spans the new steps, as
# a resumed transformers Trainer's does.
RESUME_MAY_CHANGE = frozenset({"out", "resume", "overwrite", "device", "eval_data", "eval_every", "eval_size", "pattern",
                               "checkpoint_every", "snapshot_every", "diagnose", "max_new_tokens", "shared_prefix",
                               "gradient_checkpointing", "fsdp", "steps"})


def check_numeric_format(rows: list[Example], where: str, say: bool = True) -> None:
    """SFT teaches the answers as written, and the numeric metric credits only a formatted `Answer: <n>`: training
    answers that are bare numbers ('4') teach the model to say '4', which scores 0 %. Every one bare is refused,
    some bare are warned about (`say`: this process speaks for the run)."""
    from .scoring import extract_answer_number

    answered = [e for e in rows if e.answer.strip()]
    bare = [e for e in answered if extract_answer_number(e.answer) is None]
    if not bare:
        return
    example = bare[0].answer.strip()
    fix = (f"write the answers as 'Answer: {example}' (the numeric metric's format), or score with --metric exact "
           "(the card's \"metric\")")
    if len(bare) == len(answered):
        raise DataError(f"{where}: the numeric metric credits only a formatted `Answer: <n>`, and every training "
                        f"answer is a bare number ({example!r}): SFT teaches the answers as written, so the run would "
                        f"score 0 %; {fix}")
    if say:
        log.warning("%s: %d of %d training answers are bare numbers (%r), which the numeric metric never credits (it "
                    "reads `Answer: <n>`); SFT teaches them as written. %s", where, len(bare), len(answered), example,
                    fix[0].upper() + fix[1:])


def config_record(config: TrainConfig) -> dict:
    """`config` as config.json and best.json record it: the shipped model by name, not by the folder this install
    keeps it in (a run recorded with the folder could not resume once moved to another environment)."""
    return named_model(asdict(config))


def rows_digest(rows: list[Example]) -> str:
    """What identifies a run's training rows, wherever their file sits: text, ids and the pictures' bytes."""
    h = hashlib.sha256()
    pictures: dict[str, bytes] = {}
    for e in rows:
        h.update(json.dumps([e.prompt, e.answer, e.id], ensure_ascii=False).encode() + b"\n")
        if e.image is not None:  # rows without a picture hash as they always did, so older runs still resume
            h.update(picture_digest(e.image, pictures))
    return h.hexdigest()[:16]


def software_versions() -> dict[str, str]:
    """The versions a run's numbers rest on, recorded in its config.json (`resolved.versions`): the same code,
    seed and options gave a GRPO run 97 % on one machine's packages and 18 % on another's (docs/grpo.md)."""
    import platform

    import transformers

    from . import __version__

    return {"artstudio": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def check_resume_before_queueing(config: TrainConfig, advice: str | None = None) -> None:
    """What `train` refuses a resume for (other options or rows than the run's, a finished run), asked without
    writing into the run: the app asks at Start, so a refused resume is never queued. The rows of a built-in
    task are made in a scratch folder. `advice` replaces the command line's way out."""
    import tempfile

    out = Path(config.out)
    if not config.resume or not (out / "config.json").is_file():
        return
    with tempfile.TemporaryDirectory() as scratch:
        train_rows, eval_rows, _ = resolve_data(replace(config, out=scratch))
        check_resume(config, out, train_rows, eval_rows, say=False, advice=advice)


def check_resume(config: TrainConfig, out: Path, train_rows: list[Example],
                 eval_rows: list[Example] | None = None, *, say: bool = True, advice: str | None = None) -> dict | None:
    """Refuse `--resume` with options that would train another run than the one in `out` (its config.json),
    a run that already finished, and --steps that end before its checkpoint: each used to rewrite the run's
    record silently, or fail mid-way. Returns the steps the run was started with and the dtype its frozen
    model ran in (None: no config.json there yet, a run stopped during its starts)."""
    file = out / "config.json"
    if not file.is_file():
        return None
    from .objectives.grpo import GRPOConfig as grpo_options

    saved = read_run_config(file)
    resolved = saved.pop("resolved", None) or {}
    now = json.loads(json.dumps(config_record(config), default=json_default))
    saved = named_model(saved)

    def data_rows(value: Any, was: Any) -> list[str] | None:
        if not resolved.get("train_digest"):
            return None
        if resolved["train_digest"] == rows_digest(train_rows):
            if value != was and not eval_rows and (saved.get("eval_data") or _has_test_split(was)):
                # The same rows from a bare file: the run's test split was silently no longer read.
                log.warning("--data %s holds the run's training rows but no test split, so this resume scores nothing; "
                            "the run was scored on %s. Resume with --data %s (or leave --data out) to score it",
                            value, saved.get("eval_data") or f"the test split of {was}", was)
            return []  # the same rows, named from another folder
        if value == was:  # the same name, edited since: leaving --data out cannot help
            raise ConfigError(f"--resume: the training rows of {was} (or the pictures they name) changed since the run "
                              f"in {out} started (the run recorded a digest of them); a resumed run must train on the "
                              "same rows. Restore them, or start a new run with another --out")
        return [f"--data {value} holds other training rows than the run's {was}"]

    def rate(value: Any, was: Any) -> list[str]:  # the default rate, named or left out, is the same rate
        effective = value if value is not None else default_lr(config.method, config.objective)
        same_rate = resolved.get("lr") is not None and math.isclose(effective, resolved["lr"])
        return [] if same_rate or value == was else [f"--lr {shown(value)} (the run has {resolved.get('lr', was)!r})"]

    def dtype(value: Any, was: Any) -> list[str]:  # left out: the run's own; named: it must be the run's
        ran = resolved.get("dtype") or was
        value = value or _launcher_precision()
        if value is None or value == was or (ran is not None and resolve_dtype(value, "cpu") == resolve_dtype(ran, "cpu")):
            return []
        return [f"--dtype {value} (the run's frozen model ran in {ran or 'the device default'})"]

    def decay(value: Any, was: Any) -> list[str]:  # left out: the run's own; a run with no average may start one
        ran = resolved.get("ema", was) or 0.0
        same = value is None or not ran or math.isclose(value, ran)
        return [] if same else [f"--ema {value:g} (the run has {ran:g}; its checkpoint holds that average)"]

    def scored_by(value: Any, was: Any) -> list[str]:  # SFT: the metric only scores; GRPO: it picks the reward
        if value is None or value == was or config.objective == "sft":
            return []
        return [f"--metric {value} (the run has {was!r}; under GRPO it chooses the default reward)"]

    differ = option_differences(now, saved, RESUME_MAY_CHANGE, {
        "data": data_rows, "lr": rate, "ema": decay, "dtype": dtype, "metric": scored_by,
        "method_options": lambda value, was: key_differences(lambda key: f"method option {key}", value, was,
                                                             field_defaults(get_method(config.method).config_class)),
        "grpo": lambda value, was: key_differences(lambda key: "--grpo-" + key.replace("_", "-"), value, was,
                                                   field_defaults(grpo_options))})
    if differ:
        picture = out / "artwork.png"
        advice = advice or (f"Resume with the run's own options (leave them out: `artstudio train --resume --out {out}` "
                            f"takes them from {file}), or start a new run with another --out")
        raise ConfigError(f"--resume continues the run in {out} with the options it started with; these differ: "
                          f"{'; '.join(differ)}. {advice}"
                          + (f" (a canvas can start from this run's picture: --init {picture})" if picture.is_file() else ""))
    # Starts are a fraction of the run's steps: one chosen keeps its length; while none is chosen (a run stopped
    # during its starts) they are trained for the new --steps (they kept the old ones, "keeping" no start).
    chosen = (out / STARTS_FOLDER / CHOICE_FILE).is_file()
    kept = "; the run keeps the start it chose" if chosen else \
        "; its starts (none was chosen yet) are trained for these steps" if (out / STARTS_FOLDER).is_dir() else ""
    check_resume_steps(out, config.steps, saved.get("steps"), kept=kept, say=say)
    began, now_on = resolved.get("versions") or {}, software_versions()
    moved = [f"{name} {began[name]} -> {now_on[name]}" for name in ("torch", "transformers")
             if began.get(name) and began[name] != now_on[name]]
    if moved and say:
        log.warning("%s began on other versions (%s): the resume continues it, but equals an uninterrupted run only "
                    "on the versions it began with", out, ", ".join(moved))
    return {"steps": saved.get("steps") if chosen else None, "dtype": resolved.get("dtype") or saved.get("dtype"),
            "processes": resolved.get("processes"), "ema": resolved.get("ema")}


def _has_test_split(data: Any) -> bool:
    """Whether a run's --data (as its config.json records it) is a folder with a test split, or a built-in task."""
    if not isinstance(data, str):
        return False
    from .tasks import TASKS

    folder = Path(data).expanduser()
    return (folder / "test.jsonl").is_file() if folder.is_dir() else not folder.exists() and data in TASKS


def _record_options(config: TrainConfig, out: Path, resolved: dict) -> None:
    """config.json of a run stopped before its main loop: its options, what a resume continues with."""
    atomic_write_text(out / "config.json", json.dumps(config_record(config) | {"resolved": resolved}, indent=2,
                                                      default=json_default) + "\n")


def _stopped_during_starts(config: TrainConfig, out: Path, resolved: dict, processes) -> TrainResult:
    """A run asked to stop (the app's Stop) while it trained its starts keeps no canvas: none was chosen to go
    on from. It used to go on to its main loop, stop there at step 0 and keep the untrained grey canvas as
    its checkpoint and artwork, which a resume then trained on in place of the start it chose. Now only its
    options are written (so `--resume` knows them), with the starts that finished under starts/."""
    if processes.is_main:
        _record_options(config, out, resolved)
    log.warning("%s stopped during its starts, before one was chosen: no canvas is kept; --resume keeps the starts "
                "that finished and trains the rest", out)
    return TrainResult(out=out, method=None, metrics={"steps": 0, "stopped": True, "stopped_during_starts": True},
                       history=[], main=processes.is_main)


def _segments(before: int | list | None, now: int) -> int | list[int]:
    """config.json's "processes": the count, or each segment's where a resume changed it ([2, 1]: begun on
    two processes, resumed on one); a resumed run used to record only its last segment's."""
    if before is None or before == now:
        return now
    counts = list(before) if isinstance(before, list) else [before]
    return counts if counts[-1] == now else counts + [now]


# What a run writes in its folder: --overwrite removes exactly these, never anything else a folder holds.
RUN_OUTPUTS = ("config.json", "metrics.jsonl", "result.json", "artwork.png", "checkpoint", "snapshots", "final",
               "eval", STARTS_FOLDER)


def _is_inside(path: str | None, folder: Path) -> bool:
    """Whether `path` (a --data or --eval-data; a built-in task name is not a path) is `folder` or lies in it."""
    return bool(path) and Path(path).expanduser().resolve().is_relative_to(folder.expanduser().resolve())


def wait_while_training(out: Path, on_wait: Callable[[str], None] | None = None) -> bool:
    """Wait until no training holds the run folder `out` (its lock, as `run_folder` takes it); whether one did.
    `on_wait(owner)` is called first with what the holder wrote in the lock ("pid N")."""
    lock_path = out / ".lock"
    if not lock_path.is_file():
        return False
    with open(lock_path, "a+") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            if on_wait is not None:
                on_wait(_lock_owner(lock))
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # until that training ends
            return True
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return False


@contextmanager
def run_folder(config, outputs: tuple[str, ...] = RUN_OUTPUTS) -> Iterator[Path]:
    """The run folder (`config.out`), created, locked against a second training for the whole run, and
    checked not to hold another run (any of `outputs`) unless `config.resume` (continue it) or
    `config.overwrite` (replace it: exactly `outputs` are removed) says so.

    --overwrite moves the old run aside first and removes it only once the new run has written its
    config.json: a replacement refused for bad data or options, or stopped before it began, leaves the
    old run as it was (it used to be deleted before the new one was checked). --resume on a folder
    that holds no run is refused, as transformers' Trainer refuses a missing checkpoint."""
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; expected a folder for the run (a new or an existing run folder)")
    check_output_kind(out, "config.json")
    if not config.resume:  # (a resume on a folder without a run is told so below)
        # data/ only where the run trains on it (the app copies an upload to RUN/data/): a project folder
        # holding the user's own data/ had a run written beside it.
        uploaded = any(_is_inside(getattr(config, key, None), out / "data") for key in ("data", "eval_data"))
        check_only_own(out, marker=outputs[0], own=(*outputs, "task", "eval-task", *(("data",) if uploaded else ())),
                       what="a run", writes=", ".join(outputs[:3]) + " and more")
    held = entries(out)  # what a folder the user made already holds
    out.mkdir(parents=True, exist_ok=True)
    lock = open(out / ".lock", "a+")
    aside: Path | None = None
    try:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"run folder {out} is in use by another training ({_lock_owner(lock)}); wait for it to finish "
                              "or choose another --out") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}\n")
        lock.flush()
        _settle_replaced(out, outputs)
        existing = [name for name in outputs if (out / name).exists()]
        if existing and not config.overwrite and (out / "config.json").is_file():
            # `hyper train --out RUN` on a `train` run was told to pass --resume, which then failed on its options
            check_run_kind(read_json_object(out / "config.json"), out, "hyper" if hasattr(config, "tasks") else "train")
        if existing and not (config.resume or config.overwrite):
            raise ConfigError(f"run folder {out} already holds a run ({', '.join(existing[:3])}); pass --resume to "
                              "continue it, --overwrite to replace it (resume=True, overwrite=True in Python), or "
                              "choose another --out")
        if config.resume and not existing:
            raise ConfigError(f"--resume: {out} holds no run to continue (no {outputs[0]}, no checkpoint); "
                              "leave out --resume to start a run there, or name the run's folder with --out")
        if config.overwrite and existing:
            aside = out / f"{REPLACED}{os.getpid()}"
            aside.mkdir()
            for name in existing:
                (out / name).rename(aside / name)
        yield out
    except BaseException as err:
        if aside is not None and not (out / outputs[0]).exists():  # the new run never began: the old one stays
            _restore(out, aside, outputs)
            log.warning("%s keeps the run it held: the --overwrite run stopped before it began", out)
            aside = None
        elif not (out / "config.json").exists() and isinstance(err, ArtStudioError):
            # Refused before it began (bad data, options, reward): a folder this call made holds no run yet, and
            # one the user made gets back what it held (a `.lock` left there made a later `export -o` refuse it).
            remove_added(out, held)
            if len(err.args) == 1 and isinstance(err.args[0], str):
                err.args = (_without_removed_tasks(err.args[0], out),)
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        lock.close()  # closing releases the lock (so does a killed process)


def _without_removed_tasks(message: str, out: Path) -> str:
    """A refusal that names a row of a built-in task written into the run folder, which is removed with it
    ("runs/b8/task/max-bracket/test.jsonl:1: …"), names the task instead: "built-in task max-bracket, test.jsonl:1"."""
    for folder in ("task", "eval-task"):
        message = re.sub(re.escape(str(out / folder)) + r"/([^/\s]+)/", r"built-in task \1, ", message)
    return message


def training_in(out: Path) -> str | None:
    """Who holds the run folder's lock ("pid N") while a training runs in it; None when none does."""
    try:
        lock = open(Path(out) / ".lock", "r")
    except OSError:
        return None
    with lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _lock_owner(lock)
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return None


def _lock_owner(lock) -> str:
    """What the holder of a run folder's lock wrote in it ("pid N")."""
    lock.seek(0)
    return lock.read().strip() or "another process"


REPLACED = ".replaced-"  # + pid: an --overwrite run's predecessor, until the new run has begun


def _restore(out: Path, aside: Path, outputs: tuple[str, ...]) -> None:
    for name in outputs:  # what the stopped replacement wrote goes; the old run comes back
        if (aside / name).exists() and (out / name).exists():
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        if (aside / name).exists():
            (aside / name).rename(out / name)
    shutil.rmtree(aside, ignore_errors=True)


def _settle_replaced(out: Path, outputs: tuple[str, ...]) -> None:
    """A run killed (SIGKILL) while replacing another leaves the old one aside: put it back if the new run
    never began, else remove it."""
    for aside in sorted(out.glob(REPLACED + "*")):
        if (out / outputs[0]).exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            _restore(out, aside, outputs)
            log.warning("%s: restored the run an interrupted --overwrite had moved aside", out)


class StepInterrupt:
    """Ctrl-C or SIGTERM during the step loop: the first lets the step under way finish (a checkpoint then holds
    whole steps, and --resume continues bit for bit); a second stops at once. Only in a process's main thread:
    the app stops its runs through `should_stop`. Several processes (torchrun, accelerate: the launcher passes
    the signal on to each) agree before each step, so they all stop after the same one."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested: int | None = None  # the signal heard
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise self.exception()
        self.requested = signum

    def heard(self, processes: Processes) -> bool:
        """Whether to stop before the next step: this process heard a signal, or (several processes) any did.
        Every process then holds the same signal, SIGTERM where any heard it."""
        if processes.world == 1:
            return self.requested is not None
        total = processes.sum({None: 0.0, signal.SIGTERM: 1000.0}.get(self.requested, 1.0) if self.enabled else 0.0)
        if total:
            self.requested = signal.SIGTERM if total >= 1000 else (self.requested or signal.SIGINT)
        return bool(total)

    def exception(self) -> KeyboardInterrupt:
        return Terminated() if self.requested == signal.SIGTERM else KeyboardInterrupt()

    @property
    def verb(self) -> str:
        return "terminated (SIGTERM)" if self.requested == signal.SIGTERM else "interrupted"

    def __enter__(self) -> "StepInterrupt":
        if self.enabled:
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


@contextmanager
def gradient_checkpointing(model: torch.nn.Module, enabled: bool) -> Iterator[None]:
    """transformers' activation checkpointing on `model` for the block, then the model as it was.

    Checkpointing only runs in training mode, so the (frozen, dropout-free) model is put in it for the
    block; the shared backbone leaves it in evaluation mode with checkpointing off, as it came.
    """
    if not enabled:
        yield
        return
    was_training = model.training
    # transformers 5.x renamed it (the old names warn that v6 removes them); older 5.x has only the old ones.
    renamed = hasattr(model, "activation_checkpointing_enable")
    if renamed:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    try:
        yield
    finally:
        model.activation_checkpointing_disable() if renamed else model.gradient_checkpointing_disable()
        model.train(was_training)


def _launcher_precision() -> str | None:
    """`accelerate launch --mixed_precision bf16|fp16` (or its config file) chooses the dtype when --dtype
    does not: the frozen model is loaded in it (nothing trains in full weights here to keep in fp32)."""
    mode = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    return mode if mode in ("bf16", "fp16") else None


def _on_backbone(config: TrainConfig, backbone) -> TrainConfig:
    """`config` trained on a backbone the caller loaded: its `model` is that backbone's (what config.json records,
    and what a resume or `export_run` loads). A model left at the default takes the backbone's; another one is
    refused (the run trained on the backbone and recorded the other model)."""
    given = str(getattr(backbone, "model_id", "") or "")
    if not given or same_model(config.model, given):
        return config
    if model_name(config.model) == DEFAULT_NAME:
        return replace(config, model=given)
    raise ConfigError(f"model is {config.model!r} but the backbone given is {given}; the run would train on the "
                      "backbone and record the other model. Leave out model (the backbone's is recorded), or pass "
                      "a backbone of that model")


def _merge(config: TrainConfig | None, overrides: dict) -> TrainConfig:
    """TrainConfig (or a dict of its fields) + keyword overrides; keys that are not TrainConfig fields are method options."""
    if config is not None and not isinstance(config, (TrainConfig, dict)):
        raise ConfigError(f"train() takes a TrainConfig or a dict of its fields, not a {type(config).__name__}: "
                          "artstudio.train(artstudio.TrainConfig(data=\"max-bracket\", out=\"runs/x\"))")
    known = {f.name for f in fields(TrainConfig)}
    base = asdict(config) if isinstance(config, TrainConfig) else {}
    if isinstance(config, dict):  # read as keywords are: a key that is not a TrainConfig field is a method option
        base = {k: v for k, v in config.items() if k in known}
        overrides = {k: v for k, v in config.items() if k not in known} | overrides
    given = base | {k: v for k, v in overrides.items() if k in known}
    if not isinstance(config, TrainConfig) and given.get("resume") and given.get("out"):
        base = run_own_options(given["out"]) | base  # every option left out is the run's own
    for given in (base.get("method_options"), overrides.get("method_options")):
        if given is not None and not isinstance(given, dict):
            raise ConfigError(f"method_options is a dict of the method's options, like {{'canvas_size': 96}}; got "
                              f"a {type(given).__name__}: {given!r}")
    method_opts = dict(base.get("method_options") or {})
    for k, v in overrides.items():
        if k in known:
            base[k] = v
        else:
            method_opts[k] = v
    base["method_options"] = method_opts | dict(overrides.get("method_options") or {})
    _check_method_keys(str(base.get("method") or TrainConfig.method), method_opts, overrides, known)
    return TrainConfig.from_dict(base)


def run_own_options(out: str | Path) -> dict:
    """The options the run in `out` was started with (its config.json), as `train --resume --out RUN` and
    `train(out=RUN, resume=True)` take every option left out; the device is this machine's. {} where there
    is no config.json yet; a config.json that cannot be read is a `ConfigError`."""
    own = Path(str(out)) / "config.json"
    if not own.is_file():
        return {}
    known = {f.name for f in fields(TrainConfig)}
    saved = read_run_config(own)
    check_run_kind(saved, out, "train")
    return {k: v for k, v in saved.items() if k in known and k not in ("device", "resume", "overwrite")}


def _check_method_keys(method: str, options: dict, overrides: dict, known: set[str]) -> None:
    """Keys given beside the training options that the method does not take either: name both lists."""
    from .methods import get_method

    try:
        config_class = get_method(method).config_class
    except ConfigError:
        return  # an unknown method: TrainConfig.check names it
    if config_class is dict:
        return
    takes = {f.name for f in fields(config_class) if f.init}
    unknown = sorted(k for k in overrides if k not in known and k not in takes)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}: neither a training option ({', '.join(sorted(known))}) "
                          f"nor an option of method {method} ({', '.join(sorted(takes))})")


def export_artwork_of(method: Method, path: str | Path, *, card: dict, data: str, objective: str, steps: int,
                      metrics: dict) -> Path:
    """Write a run's method as its deployable artefact (a canvas: an artwork PNG; an adapter: a folder) whose
    metadata names its task, objective, steps and accuracy."""
    # An empty or missing card name falls back to the data's name (a split file is named for its folder).
    source = Path(data)
    fallback = source.parent.name if source.suffix == ".jsonl" and source.stem in ("train", "test") else source.stem
    task = {"name": card.get("name") or fallback, "description": card.get("description", "")}
    return method.export(path, task=task, objective=objective, steps=steps,
                         metrics={k: v for k, v in metrics.items() if k in ("accuracy", "eval_n")})


def export_run(run_dir: str | Path, output: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """Write the deployable artefact of a run folder's final method (ART: a PNG artwork); return its path.

    An existing `output` is refused unless `overwrite`; the run's own `artwork.png` (the default) is the
    run's to rewrite."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        what = "is a file, not a run folder" if run_dir.exists() else "no such run folder"
        raise ConfigError(f"{run_dir}: {what}; expected a folder written by `artstudio train` (its --out, e.g. runs/NAME)")
    cfg_file, final = run_dir / "config.json", run_dir / "final"
    if not cfg_file.is_file():
        raise ConfigError(f"{run_dir} has no config.json; expected a run folder written by `artstudio train`")
    owner = training_in(run_dir)
    if owner:  # final/ is written before the last evaluation: an export then lacked the run's accuracy
        raise ConfigError(f"{run_dir} is still training ({owner}); export it when that run has finished")
    if not (final / "method.json").is_file():
        raise ConfigError(f"{run_dir} has no final/ method (the run did not finish); continue it with "
                          f"`artstudio train --resume --out {run_dir}` first")
    cfg = _read_json(cfg_file)
    result = _read_json(run_dir / "result.json") if (run_dir / "result.json").is_file() else {}
    backbone = load_backbone(cfg.get("model"), device="cpu")
    method = Method.load(final, backbone)
    if type(method).export is Method.export:  # the frozen model itself: say so before asking for a folder
        method.export(output)
    # What -o may be is checked before whether it is free: a refusal used to suggest --overwrite for a
    # target (the run's own folder, README.md for an artwork) that --overwrite then refused too.
    if method.paints():
        if output is not None and Path(output).suffix.lower() != ".png":
            raise ConfigError(f"-o {output}: {run_dir} trained method {method.name!r}, whose artwork is a PNG file; "
                              "expected a path ending in .png")
        if output is not None:
            check_file_target(output, "a PNG artwork")
    else:
        if output is None or Path(output).suffix.lower() == ".png":
            raise ConfigError(f"{run_dir} trained method {method.name!r}, which exports to a folder, not a PNG; "
                              "pass -o FOLDER")
        from artstudio.baselines.lora import check_export_target

        check_export_target(output, run_dir)
    if output is not None and Path(output).expanduser().resolve() != (run_dir / "artwork.png").resolve():
        check_free(output, overwrite)
    card = (cfg.get("resolved") or {}).get("task") or {}
    # The same record of task, objective, steps and accuracy in a PNG's metadata and an adapter's artstudio.json.
    return Path(export_artwork_of(method, Path(output) if output else run_dir / "artwork.png", card=card,
                                  data=cfg.get("data", ""), objective=cfg.get("objective", "sft"),
                                  steps=int(result.get("steps", cfg.get("steps", 0))), metrics=result))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
