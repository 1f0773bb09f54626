"""One training loop for every method: ART canvases and every baseline go through this code.

    artstudio train --data add-json --steps 300 --out runs/add-json          # a built-in task
    artstudio train --model Qwen/Qwen3.5-0.8B --data train.jsonl --eval-data test.jsonl --out runs/x

Per step: draw the next batch (a seeded permutation, so a resumed run sees the same batches), ask
the method for its canvas-slot embeddings ONCE (the canvas goes through the vision tower one time
and is broadcast to the batch), run the frozen model, take the objective's loss, and update only
the method's parameters. A non-finite loss skips the step with a warning. Checkpoints (method
state + optimiser + step) are written atomically; `--resume` continues bit-for-bit.

A run folder holds `config.json`, `metrics.jsonl`, `checkpoint/`, `snapshots/step-N.png` (ART),
`final/` (the trained method) and, for ART, `artwork.png`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file

from .backbone import DEFAULT_MODEL, load_backbone
from .data import Example, load_jsonl
from .errors import ConfigError, DataError
from .atomic import atomic_save_file, atomic_write_text
from .methods import Method, build_method
from .prompts import IGNORE_INDEX, encode_batch

log = logging.getLogger("artstudio.train")

# Learning rates that worked per method when none is given (tuned on studio-tiny held-out tasks).
DEFAULT_LR = {"art": 0.05, "random-canvas": 0.0, "soft-prompt": 0.01, "lora": 2e-3, "vera": 1e-2,
              "adalink": 2e-3, "base": 0.0}
# GRPO's default is a tenth of SFT's. Its gradients come from a few rewarded samples, and Adam moves
# every parameter by about the learning rate whatever the gradient's size, so a full SFT-size step
# throws the policy off those samples. Measured on studio-tiny, ART from grey on sub-answer: at
# 0.05 and 0.01 the reward collapsed after one step; at 0.003-0.005 it rose.
GRPO_LR_FACTOR = 0.1


def default_lr(method: str, objective: str = "sft") -> float:
    """The learning rate a run uses when none is given: the method's, scaled down for GRPO."""
    lr = DEFAULT_LR.get(method, 1e-3)
    return lr * GRPO_LR_FACTOR if objective == "grpo" else lr


@dataclass
class TrainConfig:
    """Everything a run needs; saved as `config.json` next to its outputs."""

    out: str = field(default="runs/art", metadata={"help": "run folder"})
    data: str = field(default="", metadata={"help": "train.jsonl, a task folder, or a built-in task name (`artstudio tasks list`)"})
    eval_data: str | None = field(default=None, metadata={"help": "test.jsonl (default: the task folder's test split)"})
    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Hugging Face id or local folder (default: the shipped studio-tiny)"})
    method: str = field(default="art", metadata={"help": "art | base | random-canvas | lora | vera | adalink | soft-prompt"})
    method_options: dict = field(default_factory=dict, metadata={"help": "options of the method's own config (e.g. canvas_size, r)"})
    objective: str = field(default="sft", metadata={"help": "sft (answer tokens' cross-entropy) or grpo"})
    metric: str | None = field(default=None, metadata={"help": "exact | numeric | regex | json (default: the task card's)"})
    steps: int = field(default=300, metadata={"help": "optimisation steps"})
    batch_size: int = field(default=16, metadata={"help": "examples per micro-batch"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per step"})
    lr: float | None = field(default=None, metadata={"help": "peak learning rate (default: the method's; a tenth of it for GRPO)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup: float = field(default=0.05, metadata={"help": "fraction of steps with linear warm-up"})
    schedule: str = field(default="cosine", metadata={"help": "cosine (to 10% of peak) or constant"})
    seed: int = field(default=0, metadata={"help": "seed of data order, initialisation and sampling"})
    eval_every: int = field(default=0, metadata={"help": "evaluate every N steps (0: only at the end)"})
    eval_size: int | None = field(default=None, metadata={"help": "examples used by periodic evaluations (default: all)"})
    checkpoint_every: int = field(default=50, metadata={"help": "checkpoint every N steps (0: never)"})
    snapshot_every: int = field(default=50, metadata={"help": "save the canvas as PNG every N steps (ART)"})
    resume: bool = field(default=False, metadata={"help": "continue from the run folder's last checkpoint"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "answer budget in evaluation (default: from the answers)"})
    keep_default_system: bool = field(default=False, metadata={"help": "keep the chat template's default system turn (Qwen2/2.5-VL add one); off: no system prompt, as in the paper"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, cuda:1 (default: cuda if available)"})
    dtype: str | None = field(default=None, metadata={"help": "bf16 | fp16 | fp32 (default: bf16 on GPU, fp32 on CPU)"})
    grpo: dict = field(default_factory=dict, metadata={"help": "GRPO options (see artstudio.objectives.grpo)"})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        return cls(**d)


@dataclass
class TrainResult:
    out: Path
    method: Method
    metrics: dict
    history: list[dict]
    artwork: Path | None = None


# --- data ---------------------------------------------------------------------------------------

def resolve_data(config: TrainConfig) -> tuple[list[Example], list[Example] | None, dict]:
    """Train rows, eval rows and the task card, from a file, a task folder or a built-in name."""
    from .tasks import TASKS, load_card, make_task

    if not config.data:
        raise ConfigError("no training data: pass --data with a train.jsonl, a task folder or a built-in task name")
    path = Path(config.data)
    card: dict = {}
    if not path.exists() and config.data in TASKS:
        path = make_task(config.data, Path(config.out) / "task", seed=0)
    if path.is_dir():
        card = load_card(path)
        train_file, test_file = path / "train.jsonl", path / "test.jsonl"
        if not train_file.exists():
            raise DataError(f"task folder {path} has no train.jsonl")
        eval_file = config.eval_data or (str(test_file) if test_file.exists() else None)
    elif path.exists():
        train_file, eval_file = path, config.eval_data
    else:
        raise DataError(f"{config.data} is neither a file, a task folder nor a built-in task; "
                        "`artstudio tasks list` shows the built-in tasks")
    train = load_jsonl(train_file)
    evals = load_jsonl(eval_file) if eval_file else None
    return train, evals, card


def batch_indices(n: int, step: int, micro: int, batch_size: int, grad_accum: int, seed: int) -> list[int]:
    """Rows of micro-batch `micro` of `step`: epochs of seeded permutations, a pure function of the step."""
    start = (step * grad_accum + micro) * batch_size
    out = []
    for k in range(start, start + batch_size):
        epoch, i = divmod(k, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        out.append(int(perm[i]))
    return out


# --- the forward pass shared by training and evaluation -----------------------------------------

def image_outputs_for(method: Method, examples: list[Example], slot=None):
    """Vision outputs for every picture of a batch in sequence order, their grid rows, and the row
    pictures' token counts (see `generation.row_images`)."""
    from .generation import row_images

    images, grids, tokens = row_images(method, examples, slot)
    outputs = [o for row in images for o in row]
    if not outputs:
        return None, None, tokens
    joined = method.transform_image_outputs(method.backbone.concat_image_outputs(outputs))
    return joined, torch.cat([g for row in grids for g in row]), tokens


def token_logprobs(method: Method, examples: list[Example], completions: list[str] | None = None,
                   slot=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities of the answers (or `completions`) and their mask, (B, L-1) each.

    `slot` lets a caller pass the canvas encoding it already computed for this step.
    """
    backbone = method.backbone
    if completions is not None:
        examples = [Example(prompt=e.prompt, answer=c, id=e.id, image=e.image) for e, c in zip(examples, completions)]
    if slot is None:
        slot = method.slot_outputs()
    images, grid, extra_tokens = image_outputs_for(method, examples, slot)
    batch = encode_batch(backbone.processor, examples, image_tokens=method.slot_tokens,
                         extra_image_tokens=extra_tokens, placement=method.placement, keep_default_system=backbone.keep_default_system,
                         with_answers=True, padding_side="right").to(backbone.device)
    out = method.forward(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                         mm_token_type_ids=batch.mm_token_type_ids, image_outputs=images, image_grid_thw=grid)
    logits = out.logits[:, :-1].float()
    labels = batch.labels[:, 1:]
    mask = labels.ne(IGNORE_INDEX)
    logp = torch.log_softmax(logits, -1).gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return logp * mask, mask


def compute_loss(method: Method, examples: list[Example], slot=None) -> torch.Tensor:
    """SFT loss: mean cross-entropy over the answer tokens of the batch (+ the method's regulariser)."""
    logp, mask = token_logprobs(method, examples, slot=slot)
    return -(logp.sum() / mask.sum().clamp_min(1)) + method.regularization()


# --- checkpoints ----------------------------------------------------------------------------------

def _save_checkpoint(folder: Path, method: Method, opt: torch.optim.Optimizer, step: int, history: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"method.{k}": v for k, v in method.trainable_state().items()}
    opt_state = opt.state_dict()
    scalars: dict[str, Any] = {"param_groups": opt_state["param_groups"], "state": {}}
    for pid, st in opt_state["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"opt.{pid}.{name}"] = value
            else:
                scalars["state"].setdefault(str(pid), {})[name] = float(value) if torch.is_tensor(value) else value
    atomic_save_file(tensors, folder / "state.safetensors")
    meta = {"step": step, "optimizer": scalars, "history_len": len(history)}
    atomic_write_text(folder / "checkpoint.json", json.dumps(meta) + "\n")


def _load_checkpoint(folder: Path, method: Method, opt: torch.optim.Optimizer) -> int:
    meta = json.loads((folder / "checkpoint.json").read_text())
    tensors = load_file(str(folder / "state.safetensors"))
    method.load_trainable_state({k[len("method."):]: v for k, v in tensors.items() if k.startswith("method.")})
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for pid, st in meta["optimizer"]["state"].items():
        for name, value in st.items():
            state.setdefault(int(pid), {})[name] = torch.tensor(value) if name == "step" else value
    opt.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
    return int(meta["step"])


# --- the loop -------------------------------------------------------------------------------------

def _lr_lambda(config: TrainConfig) -> Callable[[int], float]:
    warm = max(1, int(config.warmup * config.steps))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if config.schedule == "constant":
            return 1.0
        t = (step - warm) / max(1, config.steps - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


def train(config: TrainConfig | None = None, *, backbone=None, callbacks: list[Callable[[dict], None]] | None = None,
          should_stop: Callable[[], bool] | None = None, progress: bool = True, **overrides) -> TrainResult:
    """Train `config.method` on `config.data`; keyword overrides are TrainConfig fields or method options."""
    from .evaluate import evaluate
    from .methods import ArtMethod, get_method

    config = _merge(config, overrides)
    if config.steps < 0 or config.batch_size < 1 or config.grad_accum < 1:
        raise ConfigError("steps must be >= 0 and batch size / gradient accumulation >= 1")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    train_rows, eval_rows, card = resolve_data(config)
    metric = config.metric or card.get("metric") or "exact"
    if backbone is None:
        backbone = load_backbone(config.model, dtype=config.dtype, device=config.device)
    backbone.keep_default_system = config.keep_default_system
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    options = dict(config.method_options)
    config_class = get_method(config.method).config_class
    if is_dataclass(config_class) and "seed" in {f.name for f in fields(config_class)} and options.get("seed") is None:
        options["seed"] = config.seed  # the run's seed also draws the canvas / adapter initialisation
    method = build_method(config.method, backbone, options)
    if hasattr(method, "bind_task"):  # zero-shot methods (t2l) generate from the task card's description
        method.bind_task(card)
    lr = config.lr if config.lr is not None else default_lr(config.method, config.objective)
    params = method.trainable_parameters()
    opt = torch.optim.AdamW(params or [torch.nn.Parameter(torch.zeros(1))], lr=lr, weight_decay=config.weight_decay)
    objective = _objective(config, metric, [e.answer for e in train_rows])
    if hasattr(objective, "bind"):
        objective.bind(method)  # GRPO's KL reference is the method as it starts, before any resume

    ckpt = out / "checkpoint"
    start, history = 0, []
    if config.resume and (ckpt / "checkpoint.json").exists():
        start = _load_checkpoint(ckpt, method, opt)
        if (out / "metrics.jsonl").exists():
            history = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines() if l.strip()]
            history = [h for h in history if h.get("step", 0) <= start]
        log.info("resumed %s at step %d", out, start)
    for group in opt.param_groups:
        group.setdefault("initial_lr", lr)
    # Built after a resume so the schedule continues at the checkpoint's step.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(config), last_epoch=start - 1)
    saved = asdict(config) | {"resolved": {"lr": lr, "metric": metric, "task": card, "trainable_params": method.num_trainable(),
                                           "model_family": backbone.family}}
    atomic_write_text(out / "config.json", json.dumps(saved, indent=2, default=str) + "\n")
    atomic_write_text(out / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))

    def emit(record: dict) -> None:
        history.append(record)
        with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        for cb in callbacks or []:
            cb(record)

    def run_eval(step: int, rows: list[Example]) -> dict:
        res = evaluate(method, rows, metric, max_new_tokens=config.max_new_tokens)
        return {"step": step, "eval_accuracy": res.accuracy, "eval_n": res.n}

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=config.steps, initial=start, desc=f"{config.method} {config.objective}", dynamic_ncols=True)
    t0 = time.perf_counter()
    step = start
    stopped = False
    while step < config.steps:
        if should_stop is not None and should_stop():
            stopped = True
            break
        ts = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        total, stats, skipped = 0.0, {}, False
        for micro in range(config.grad_accum):
            idx = batch_indices(len(train_rows), step, micro, config.batch_size, config.grad_accum, config.seed)
            loss, stats = objective(method, [train_rows[i] for i in idx], step=step, micro=micro)
            loss = loss / config.grad_accum
            if not torch.isfinite(loss):
                log.warning("step %d: non-finite loss (%s); step skipped, parameters unchanged", step + 1, loss.item())
                skipped = True
                break
            if loss.requires_grad:
                loss.backward()
            total += loss.item()
        if not skipped and params:
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        sched.step()
        step += 1
        record = {"step": step, "loss": None if skipped else total, "lr": sched.get_last_lr()[0],
                  "seconds_per_step": time.perf_counter() - ts, **stats}
        if skipped:
            record["skipped"] = True
        if config.eval_every and eval_rows and step % config.eval_every == 0 and step < config.steps:
            record |= run_eval(step, eval_rows[: config.eval_size] if config.eval_size else eval_rows)
        if config.snapshot_every and hasattr(method, "image") and (step % config.snapshot_every == 0 or step == config.steps):
            (out / "snapshots").mkdir(exist_ok=True)
            method.image().save(out / "snapshots" / f"step-{step:05d}.png")
        emit(record)
        if config.checkpoint_every and (step % config.checkpoint_every == 0 or step == config.steps):
            _save_checkpoint(ckpt, method, opt, step, history)
        if bar is not None:
            bar.update(1)
            shown = {"loss": f"{total:.3f}"} | {k: f"{v:.3f}" for k, v in stats.items() if isinstance(v, float)}
            if "eval_accuracy" in record:
                shown["acc"] = f"{record['eval_accuracy']:.1%}"
            bar.set_postfix(shown)
    if bar is not None:
        bar.close()
    train_seconds = time.perf_counter() - t0

    if stopped and config.checkpoint_every:
        _save_checkpoint(ckpt, method, opt, step, history)
    method.save(out / "final")
    metrics: dict[str, Any] = {"steps": step, "train_seconds": train_seconds, "trainable_params": method.num_trainable(),
                               "stopped": stopped}
    done = step - start
    metrics["seconds_per_step"] = train_seconds / done if done else None
    if eval_rows and not stopped:
        res = evaluate(method, eval_rows, metric, max_new_tokens=config.max_new_tokens, out_dir=out / "eval")
        metrics |= {"accuracy": res.accuracy, "eval_n": res.n, "latency_ms": res.latency_ms}
        emit({"step": step, "eval_accuracy": res.accuracy, "eval_n": res.n, "final": True})
    artwork = None
    if isinstance(method, ArtMethod) and method.num_trainable():
        artwork = method.export(out / "artwork.png", task={"name": card.get("name", Path(config.data).stem),
                                                          "description": card.get("description", "")},
                                objective=config.objective, steps=step,
                                metrics={k: v for k, v in metrics.items() if k in ("accuracy", "eval_n")})
    atomic_write_text(out / "result.json", json.dumps(metrics, indent=2) + "\n")
    return TrainResult(out=out, method=method, metrics=metrics, history=history, artwork=artwork)


def _merge(config: TrainConfig | None, overrides: dict) -> TrainConfig:
    """TrainConfig + keyword overrides; keys that are not TrainConfig fields are method options."""
    base = asdict(config) if config is not None else {}
    known = {f.name for f in fields(TrainConfig)}
    method_opts = dict(base.get("method_options") or {})
    for k, v in overrides.items():
        if k in known:
            base[k] = v
        else:
            method_opts[k] = v
    base["method_options"] = method_opts | dict(overrides.get("method_options") or {})
    return TrainConfig.from_dict(base)


def _objective(config: TrainConfig, metric: str, answers: list[str]):
    if config.objective == "sft":
        def sft(method, examples, **_):
            return compute_loss(method, examples), {}
        return sft
    if config.objective == "grpo":
        from .objectives.grpo import GRPOObjective

        return GRPOObjective.from_options(config.grpo, metric=metric, seed=config.seed, answers=answers)
    raise ConfigError(f"unknown objective {config.objective!r}; choose sft or grpo")


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
