"""SFT: supervised fine-tuning on reference answers, the default `--objective sft`.

The loss is the mean cross-entropy of the answer tokens (and the end-of-turn token) given the
prompt, plus the method's own regulariser (ART: optional total-variation / L2-to-init terms):

    L = -(1 / |answer tokens|) * sum_t log p(y_t | prompt, canvas, y_<t) + R(method)
"""

from __future__ import annotations

import torch

from ..data import Example
from ..forward import token_logprobs
from . import Objective, register_objective


def compute_loss(method, examples: list[Example], slot=None) -> torch.Tensor:
    """SFT loss of one batch: mean cross-entropy over its answer tokens (+ the method's regulariser)."""
    logp, mask = token_logprobs(method, examples, slot=slot)
    return -(logp.sum() / mask.sum().clamp_min(1)) + method.regularization()


@register_objective
class SFTObjective(Objective):
    name = "sft"
    label = "SFT (cross-entropy on answers)"

    def __call__(self, method, examples: list[Example], *, step: int = 0, micro: int = 0) -> tuple[torch.Tensor, dict]:
        return compute_loss(method, examples), {}
