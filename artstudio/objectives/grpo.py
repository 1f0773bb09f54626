"""GRPO: train a canvas (or any method) from rewards on the model's own sampled answers.

Group Relative Policy Optimisation (Shao et al. 2024, DeepSeekMath), as the paper trains its
canvases (DESIGN §1) and with the option names and loss variants of TRL's `GRPOTrainer`:

    artstudio train --data sub-answer --objective grpo --steps 200 --out runs/grpo
    artstudio train --data sub-answer --objective grpo --init runs/sft/artwork.png   # from an SFT canvas

One call per micro-batch of the training loop (`artstudio.train`), which then takes one optimiser step:

1. Sample G completions per prompt without gradients (`artstudio.generation.generate`: the shared
   prefix is computed once, each prompt once, and its cache copied to its G samples), seeded by
   (seed, sample batch, micro-batch) so a resumed run draws exactly the same samples.
2. Score them with the reward r in [0, 1] (`artstudio.objectives.rewards`) and, strictly 0/1, with
   the task metric (`accuracy` in the logs).
3. Group-centred advantages   A_i = (r_i - mean_g r) / (std_g r + eps)   (or r_i - mean_g r).
4. Recompute the completions' log-probabilities WITH gradients in one batched forward pass (the
   canvas encoded once for the whole batch) and minimise, per completion token t,

       l_t = -min(rho_t A, clip(rho_t, 1 - epsilon, 1 + epsilon_high) A) + beta * KL_t,
       rho_t = exp(logp_t - logp_old_t),   KL_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1,

   KL_t being the k3 estimator against the reference: the method as it was when GRPO started
   (ART: the frozen model with the initial canvas, e.g. the SFT artwork given with --init).
5. Aggregate the token losses: `grpo` mean per completion then over completions; `bnpo` mean over
   all tokens of the batch; `dr_grpo` sum over tokens / (completions * max_new_tokens).

With `num_iterations` mu > 1 the samples (and their log-probs at sampling time, logp_old) are kept
and reused for mu consecutive loop steps, each one optimiser step, as TRL does; with mu = 1,
rho = 1 but its gradient is the policy gradient.
"""

from __future__ import annotations

import math

import logging
from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import torch

from ..data import Example
from ..errors import ConfigError, DataError
from ..forward import token_logprobs
from ..options import from_dict
from ..scoring import extract_answer_number
from . import Objective, register_objective

log = logging.getLogger("artstudio.grpo")

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALE_REWARDS = ("group", "batch", "none")
# The training reward a task metric gets by default: the shaped `numeric` reward of the paper for
# numeric answers; for JSON answers the partial-credit `json-tool-call` reward (valid JSON, right
# keys, each right value), whose gradient signal is denser than a 0/1 match; otherwise the metric itself.
DEFAULT_REWARD = {"numeric": "numeric", "json": "json-tool-call", "exact": "exact", "regex": "regex"}
STD_EPS = 1e-4  # TRL's epsilon in (r - mean) / (std + eps)

RewardFn = Callable[[str, str, str], float]


@dataclass
class GRPOConfig:
    """GRPO options (`TrainConfig.grpo`, `--grpo-*` on the command line); names follow TRL's GRPOConfig."""

    group_size: int = field(default=8, metadata={"help": "G, completions sampled per prompt (TRL: num_generations)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "longest completion in tokens (TRL: max_completion_length; default: the batch's longest reference answer + 4, at least 8)"})
    reward: str | None = field(default=None, metadata={"help": "reward: a name (numeric, exact, json-tool-call, regex, format), format:REGEX, module:function, file.py:function, or a weighted sum like \"numeric*0.8+format*0.2\" (default: from the metric: numeric->numeric, json->json-tool-call, exact->exact, or numeric when every answer is 'Answer: <number>', regex->regex)"})
    scale_rewards: Literal["group", "batch", "none"] = field(default="group", metadata={"help": "divide group-centred rewards by the std of the group, of the whole batch, or not at all (none: Dr. GRPO's r - mean); in Python, TRL's true/false also mean group/none"})
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] = field(default="grpo", metadata={"help": "grpo (mean per completion) | bnpo (mean over batch tokens) | dr_grpo (sum / (completions x max_new_tokens)) | dapo (mean over the active tokens of the global batch; one process: bnpo)"})
    importance_sampling_level: Literal["token", "sequence"] = field(default="token", metadata={"help": "token: one probability ratio per token (GRPO); sequence: one per completion, the geometric mean of its token ratios (GSPO)"})
    epsilon: float = field(default=0.2, metadata={"help": "clip range of the probability ratio (lower; also upper unless epsilon_high)"})
    epsilon_high: float | None = field(default=None, metadata={"help": "upper clip range (DAPO's clip-higher; default: epsilon)"})
    num_iterations: int = field(default=1, metadata={"help": "mu, optimiser steps on each batch of samples"})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient towards the starting method (k3 estimator; 0: off, no reference pass)"})
    generation_batch_size: int = field(default=64, metadata={"help": "rows decoded together while sampling"})

    def check(self) -> None:
        """Raise ConfigError naming the first option out of range."""
        if isinstance(self.scale_rewards, bool):  # TRL's older boolean spelling
            self.scale_rewards = "group" if self.scale_rewards else "none"
        rules = [  # (ok, option, what it must be)
            (self.scale_rewards in SCALE_REWARDS, "scale_rewards", f"must be one of {', '.join(SCALE_REWARDS)}, got {self.scale_rewards!r}"),
            (self.importance_sampling_level in ("token", "sequence"), "importance_sampling_level",
             f"must be token or sequence, got {self.importance_sampling_level!r}"),
            (self.group_size >= 2, "group_size", f"must be >= 2 (advantages compare samples within a group), got {self.group_size}"),
            (math.isfinite(self.temperature) and self.temperature > 0, "temperature", f"must be a finite number > 0, got {self.temperature}"),
            (0 < self.top_p <= 1, "top_p", f"must be in (0, 1], got {self.top_p}"),
            (self.max_new_tokens is None or self.max_new_tokens >= 1, "max_new_tokens", f"must be >= 1, got {self.max_new_tokens}"),
            (self.loss_type in LOSS_TYPES, "loss_type", f"must be one of {', '.join(LOSS_TYPES)}, got {self.loss_type!r}"),
            (math.isfinite(self.epsilon) and self.epsilon >= 0, "epsilon", f"must be a finite number >= 0, got {self.epsilon}"),
            (self.epsilon_high is None or (math.isfinite(self.epsilon_high) and self.epsilon_high >= 0), "epsilon_high",
             f"must be a finite number >= 0, got {self.epsilon_high}"),
            (self.num_iterations >= 1, "num_iterations", f"must be >= 1, got {self.num_iterations}"),
            (math.isfinite(self.beta) and self.beta >= 0, "beta", f"must be a finite number >= 0, got {self.beta}"),
            (self.generation_batch_size >= 1, "generation_batch_size", f"must be >= 1, got {self.generation_batch_size}"),
        ]
        for ok, option, message in rules:
            if not ok:
                raise ConfigError(f"GRPO option {option} (--grpo-{option.replace('_', '-')}) {message}")


def grpo_config(options: dict | None) -> GRPOConfig:
    """`TrainConfig.grpo` as a checked GRPOConfig; a ConfigError names the option and its --grpo- flag."""
    options = dict(options or {})
    if isinstance(options.get("scale_rewards"), bool):  # TRL's older boolean spelling
        options["scale_rewards"] = "group" if options["scale_rewards"] else "none"
    config = from_dict(GRPOConfig, options, what="GRPO", flag="--grpo-")
    config.check()
    return config


def default_reward(metric: str, answers: Sequence[str] = ()) -> str:
    """The training reward used when none is given, from the task's metric and its reference answers.

    Exact-match tasks whose every answer is `Answer: <number>` (the paper's math format) get the
    paper's shaped `numeric` reward: its partial credit for the format gives GRPO a signal long before
    a sample is exactly right. The evaluation metric stays exact 0/1 either way.
    """
    if metric == "exact" and answers and all(extract_answer_number(a) is not None for a in answers):
        return "numeric"
    return DEFAULT_REWARD.get(metric, "exact")


# --- the maths: pure functions of tensors -------------------------------------------------------

def group_advantages(rewards: torch.Tensor, scale: str | bool = "group", eps: float = STD_EPS) -> torch.Tensor:
    """(B, G) rewards -> (B, G) advantages: centred on the group mean, then divided by the std of the
    group ("group", or True), of the whole batch ("batch"), or not at all ("none", or False), as TRL does."""
    scale = {True: "group", False: "none"}.get(scale, scale) if isinstance(scale, bool) else scale
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if scale == "none":
        return centred
    if scale == "batch":
        return centred / (rewards.std() + eps)
    return centred / (rewards.std(dim=1, keepdim=True) + eps)


def aggregate(token_loss: torch.Tensor, mask: torch.Tensor, loss_type: str, max_new_tokens: int) -> torch.Tensor:
    """One scalar from (N, T) per-token losses over the completion tokens `mask`, as TRL names the variants."""
    mask = mask.to(token_loss.dtype)
    masked = token_loss * mask
    if loss_type == "grpo":
        return (masked.sum(-1) / mask.sum(-1).clamp_min(1)).mean()
    if loss_type in ("bnpo", "dapo"):  # dapo normalises by the active tokens of the global batch: one process here
        return masked.sum() / mask.sum().clamp_min(1)
    if loss_type == "dr_grpo":
        return masked.sum() / (token_loss.shape[0] * max_new_tokens)
    raise ConfigError(f"unknown GRPO loss_type {loss_type!r}; choose one of {', '.join(LOSS_TYPES)}")


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
                loss_type: str = "grpo", epsilon: float = 0.2, epsilon_high: float | None = None,
                beta: float = 0.0, ref_logp: torch.Tensor | None = None,
                max_new_tokens: int = 1, importance_sampling_level: str = "token") -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped GRPO loss from (N, T) token log-probs and (N,) advantages; returns (loss, {clip_frac, kl?}).

    With `importance_sampling_level="sequence"` (GSPO) every token of a completion shares one ratio,
    exp(mean over its tokens of logp - logp_old).
    """
    high = epsilon if epsilon_high is None else epsilon_high
    adv = advantages.to(logp.dtype).unsqueeze(1)
    log_ratio = logp - old_logp
    if importance_sampling_level == "sequence":
        m = mask.to(logp.dtype)
        log_ratio = ((log_ratio * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp_min(1)).expand_as(logp)
    ratio = torch.exp(log_ratio)
    token_loss = -torch.min(ratio * adv, torch.clamp(ratio, 1 - epsilon, 1 + high) * adv)
    stats: dict[str, float] = {}
    if beta > 0:
        if ref_logp is None:
            raise ValueError("beta > 0 needs the reference log-probabilities")
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1
        token_loss = token_loss + beta * kl
        stats["kl"] = _masked_mean(kl.detach(), mask)
    clipped = ((ratio < 1 - epsilon) & (adv < 0)) | ((ratio > 1 + high) & (adv > 0))
    stats["clip_frac"] = _masked_mean(clipped.detach().float(), mask)
    return aggregate(token_loss, mask, loss_type, max_new_tokens), stats


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    return float((x * mask).sum() / mask.sum().clamp_min(1))


# --- log-probabilities of sampled completions ---------------------------------------------------

def completion_logprobs(method, examples: list[Example], completion_ids: list[list[int]], slot=None,
                        temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs (with gradients) of the sampled `completion_ids` after each prompt, and their mask.

    Row i continues `examples[i]`; rows may repeat a prompt (a group), whose own picture is then
    encoded once. The distribution is the sampler's: logits over `temperature` (as TRL does) and
    picture placeholders excluded. Returns (N, L-1) tensors, the log-probs already multiplied by the mask.
    """
    from ..generation import placeholder_ids

    return token_logprobs(method, examples, completion_ids=completion_ids, slot=slot, temperature=temperature,
                          banned=placeholder_ids(method.backbone))


# --- the objective --------------------------------------------------------------------------------

@dataclass
class SampledBatch:
    """One batch of groups: kept for `num_iterations` loop steps."""

    cycle: int
    prompts: list[Example]  # each prompt repeated G times, in group order
    completion_ids: list[list[int]]
    advantages: torch.Tensor  # (B * G,)
    max_new_tokens: int
    stats: dict[str, float]
    old_logp: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None


@register_objective
class GRPOObjective(Objective):
    """`objective(method, examples, step=, micro=) -> (loss, stats)` for the training loop."""

    name = "grpo"
    label = "GRPO: sampled, rewarded"  # the Train form's menu: short enough not to be cut
    config_class = GRPOConfig
    # A tenth of SFT's learning rate. GRPO's gradients come from a few rewarded samples, and Adam moves
    # every parameter by about the learning rate whatever the gradient's size, so a full SFT-size step
    # throws the policy off those samples. Measured on studio-tiny, ART from grey on sub-answer: at
    # 0.05 and 0.01 the reward collapsed after one step; at 0.003-0.005 it rose.
    lr_scale = 0.1

    def __init__(self, config: GRPOConfig | None = None, *, metric: str = "exact", seed: int = 0,
                 reward: RewardFn | None = None, answers: Sequence[str] = ()) -> None:
        from .rewards import get as get_reward

        self.config = config or GRPOConfig()
        self.config.check()
        self.metric = metric
        self.seed = seed
        self.reward_spec = self.config.reward or default_reward(metric, answers)
        # A Python caller may hand a reward function directly; the registry checks its values either way.
        self.reward: RewardFn = get_reward(reward if reward is not None else self.reward_spec)
        self._batches: dict[int, SampledBatch] = {}  # per micro-batch index
        self._reference: dict[str, torch.Tensor] | None = None

    @classmethod
    def build(cls, options: dict | None = None, *, metric: str = "exact", seed: int = 0,
              answers: Sequence[str] = (), probe: Example | None = None) -> "GRPOObjective":
        """Build from `TrainConfig.grpo`; unknown keys raise ConfigError listing the valid ones. With `probe`
        (a training row), the reward is tried on it, its reference answer as the completion: a reward that
        fails (a wrong signature, a crash, a value outside [0, 1]) is refused before the run begins, not at
        its first step with the run folder already written."""
        objective = cls(grpo_config(options), metric=metric, seed=seed, answers=answers)
        if probe is not None:
            try:
                right = objective.reward(probe.prompt, probe.answer, probe.answer)
                if right < 1.0 and probe.answer.strip():  # "exact*0.7+format*0.3" on a bracket task: right scores 0.7
                    log.warning("reward %s gives the reference answer of training row %s only %.2f as a completion, so "
                                "an exactly right answer is not rewarded fully (a term that does not fit this task's "
                                "answers? 'format' rewards an 'Answer: <number>'; format:REGEX takes your own)",
                                objective.reward_spec, probe.id or 1, right)
            except ConfigError as e:
                raise ConfigError(f"{e} (tried before training on training row {probe.id or 1}, with its "
                                  "reference answer as the completion)") from None
            except DataError as e:  # a reference answer the reward cannot read: say which row
                raise DataError(f"{probe.source or f'training row {probe.id or 1}'}: {e}") from None
        return objective

    def _reward(self, ex: Example, completion: str) -> float:
        """The reward of one sampled completion; a reward that fails on it names the row and the completion (it
        said only "reward picky returned None", mid-run)."""
        try:
            return self.reward(ex.prompt, completion, ex.answer)
        except ConfigError as e:
            raise ConfigError(f"{e} (on training row {ex.id or '?'}, for the sampled completion {completion!r})") from None

    def bind(self, method) -> None:
        """Remember `method`'s current trainable state as the KL reference (call before resuming a run)."""
        self._reference = {k: v.detach().clone() for k, v in method.trainable_state().items()}

    def __call__(self, method, examples: list[Example], *, step: int, micro: int = 0,
                 processes=None) -> tuple[torch.Tensor, dict]:
        cfg = self.config
        if cfg.beta > 0 and self._reference is None:
            if step > 0:
                log.warning("GRPO KL reference taken at step %d (the resumed state), not at the run's start", step)
            self.bind(method)
        cycle = step // cfg.num_iterations
        batch = self._batches.get(micro)
        slot = None
        if batch is None or batch.cycle != cycle:
            if cycle * cfg.num_iterations != step:
                log.warning("step %d resumes inside a GRPO sample batch: its samples are redrawn with the current "
                            "method (use checkpoint_every divisible by num_iterations for exact resumes)", step + 1)
            # With a KL term the reference is swapped into the method's parameters in place, which an
            # autograd graph kept from sampling would not survive: sample from a gradient-free encoding then.
            with torch.set_grad_enabled(cfg.beta == 0):
                slot = method.slot_outputs()
            batch = self._sample(method, examples, cycle, micro, slot)
            self._batches[micro] = batch
            if cfg.beta > 0:
                batch.ref_logp = self._reference_logprobs(method, batch)
                slot = None
        if slot is None:
            slot = method.slot_outputs()
        logp, mask = completion_logprobs(method, batch.prompts, batch.completion_ids, slot=slot,
                                         temperature=cfg.temperature)
        if batch.old_logp is None and cfg.num_iterations > 1:
            batch.old_logp = logp.detach()
        old = batch.old_logp if batch.old_logp is not None else logp.detach()
        loss, extra = policy_loss(logp, old, batch.advantages.to(logp.device), mask, loss_type=cfg.loss_type,
                                  epsilon=cfg.epsilon, epsilon_high=cfg.epsilon_high, beta=cfg.beta,
                                  ref_logp=batch.ref_logp, max_new_tokens=batch.max_new_tokens,
                                  importance_sampling_level=cfg.importance_sampling_level)
        return loss + method.regularization(), batch.stats | extra

    # --- sampling and scoring --------------------------------------------------------------------

    def sample_seed(self, cycle: int, micro: int) -> int:
        """Seed of one sample batch: a pure function of the run seed and the batch's place in the run."""
        return (self.seed * 1_000_003 + cycle) * 1_009 + micro

    def _sample(self, method, examples: list[Example], cycle: int, micro: int, slot) -> SampledBatch:
        from ..evaluation import answer_budget
        from ..generation import GenerationConfig, generate
        from ..scoring import score

        cfg = self.config
        budget = cfg.max_new_tokens or answer_budget(method.backbone, examples, metric=self.metric)
        gen = generate(method, examples, GenerationConfig(
            max_new_tokens=budget, do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p,
            num_return_sequences=cfg.group_size, batch_size=cfg.generation_batch_size,
        ), seed=self.sample_seed(cycle, micro), slot=slot)
        rewards = torch.tensor([[self._reward(ex, text) for text in texts] for ex, texts in zip(examples, gen.texts)])
        correct = [float(score(self.metric, text, ex.answer)) for ex, texts in zip(examples, gen.texts) for text in texts]
        std = rewards.std(dim=1)
        ids = [seq for seqs in gen.token_ids for seq in seqs]
        stats = {
            "reward_mean": float(rewards.mean()),
            "reward_std": float(std.mean()),
            "frac_zero_std": float((std < 1e-6).float().mean()),
            "completion_length": sum(len(s) for s in ids) / len(ids),
            "accuracy": sum(correct) / len(correct),
        }
        return SampledBatch(
            cycle=cycle, prompts=[ex for ex in examples for _ in range(cfg.group_size)], completion_ids=ids,
            advantages=group_advantages(rewards, cfg.scale_rewards).flatten(), max_new_tokens=budget, stats=stats,
        )

    @torch.no_grad()
    def _reference_logprobs(self, method, batch: SampledBatch) -> torch.Tensor:
        """Log-probs of the batch under the reference state, swapped into the method for one pass."""
        t = self.config.temperature
        if not self._reference:
            return completion_logprobs(method, batch.prompts, batch.completion_ids, temperature=t)[0]
        current = {k: v.detach().clone() for k, v in method.trainable_state().items()}
        try:
            method.load_trainable_state(self._reference)
            return completion_logprobs(method, batch.prompts, batch.completion_ids, temperature=t)[0]
        finally:
            method.load_trainable_state(current)
