"""SFT: supervised fine-tuning on reference answers, the default `--objective sft`.

The loss is the mean cross-entropy of the answer tokens (and the end-of-turn token) given the
prompt, plus the method's own regulariser (ART: optional total-variation / L2-to-init terms):

    L = -(1 / |answer tokens|) * sum_t log p(y_t | prompt, canvas, y_<t) + R(method)

It lives in `artstudio.train.compute_loss`, next to the forward pass it shares with evaluation;
this module names it as an objective beside `grpo`, with the same call signature.
"""

from __future__ import annotations

import torch

from ..data import Example
from ..train import compute_loss


class SFTObjective:
    """`objective(method, examples, step=, micro=) -> (loss, stats)`, as the training loop calls it."""

    def __call__(self, method, examples: list[Example], *, step: int = 0, micro: int = 0) -> tuple[torch.Tensor, dict]:
        return compute_loss(method, examples), {}


__all__ = ["SFTObjective", "compute_loss"]
