"""SFT: supervised fine-tuning on reference answers, the default `--objective sft`.

The loss is the mean cross-entropy of the answer tokens (and the end-of-turn token) given the
prompt, plus the method's own regulariser (ART: optional total-variation / L2-to-init terms):

    L = -(1 / |answer tokens|) * sum_t log p(y_t | prompt, canvas, y_<t) + R(method)
"""

from __future__ import annotations

import torch

from ..data import Example
from ..forward import encode, token_logprobs
from ..prompts import IGNORE_INDEX
from . import Objective, register_objective


def compute_loss(method, examples: list[Example], slot=None) -> torch.Tensor:
    """SFT loss of one batch: mean cross-entropy over its answer tokens (+ the method's regulariser)."""
    logp, mask = token_logprobs(method, examples, slot=slot)
    return -(logp.sum() / mask.sum().clamp_min(1)) + method.regularization()


@register_objective
class SFTObjective(Objective):
    name = "sft"
    label = "SFT: cross-entropy"  # the Train form's menu: short enough not to be cut

    splits_batches = True

    def __call__(self, method, examples: list[Example], *, step: int = 0, micro: int = 0,
                 processes=None) -> tuple[torch.Tensor, dict]:
        if processes is None or processes.world == 1:
            return compute_loss(method, examples), {}
        # This process's rows, over the WHOLE batch's answer-token count, and a 1/N share of the
        # regulariser: summed over the processes (gradients are), exactly the one-process loss.
        logp, _ = token_logprobs(method, processes.shard(examples))
        return -(logp.sum() / max(answer_tokens(method, examples), 1)) + method.regularization() / processes.world, {}


def answer_tokens(method, examples: list[Example]) -> int:
    """How many answer tokens (with the end-of-turn token) a batch's loss averages over: tokenising only."""
    extra = [1 if e.image is not None else None for e in examples]  # a row picture's size does not move its labels
    batch = encode(method, examples, with_answers=True, extra_image_tokens=extra)
    return int(batch.labels[:, 1:].ne(IGNORE_INDEX).sum())
