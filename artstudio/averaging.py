"""An exponential moving average (EMA) of the trained tensors: what a run scores and exports when `ema` > 0.

    artstudio train --data word-problems-json --ema 0.95      # off unless asked for, for every method

After each optimiser step, average = d × average + (1 − d) × parameter, from the parameters as the run
starts, with d = min(decay, (1 + t) / (10 + t)) after t earlier steps (TensorFlow's
ExponentialMovingAverage with num_updates). Early on the average follows the parameters closely, so a
short run is not dragged back towards its first steps (max-bracket, one start from grey, 20 steps:
100 % from the last step and from this average, 49.5 % from a bias-corrected 0.95 average without the
warm-up); from step 170 on it averages over about the last 20 steps. Periodic evaluations, snapshots
and the end of the run use the average (a canvas that stops bouncing between steps); the optimiser
keeps training the raw parameters. The checkpoint holds both, so `--resume` continues the same
average. Measured on ART in docs/robust.md.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch

EMA_PREFIX = "ema."  # the average's tensors in a checkpoint, beside the raw parameters ("model.")
UPDATES = EMA_PREFIX + "updates"  # how many steps the average holds (a 0-d tensor in the checkpoint)


def averaged_over(decay: float, note: str = "") -> str:
    """How a summary says what an average spans: 1 / (1 - decay) steps, in effect (0.95: about 20)."""
    return f"averaged over about the last {round(1 / (1 - decay))} steps (--ema {decay:g}{'; ' + note if note else ''})"


class ParameterAverage:
    """The moving average of named parameters (a method's trainable state)."""

    def __init__(self, params: dict[str, torch.nn.Parameter], decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"an average's decay lies between 0 and 1, not {decay}")
        self.params, self.decay = dict(params), float(decay)
        self.average = {name: p.detach().clone() for name, p in self.params.items()}
        self.updates = 0

    def current_decay(self) -> float:
        """The decay of the next update: the warm-up's (1 + t) / (10 + t), at most `decay`."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Fold the parameters as they are now into the average (after an optimiser step)."""
        weight = 1.0 - self.current_decay()
        for name, p in self.params.items():
            self.average[name].lerp_(p.detach(), weight)
        self.updates += 1

    @torch.no_grad()
    def _swap(self) -> None:
        for name, p in self.params.items():
            raw = p.detach().clone()
            p.copy_(self.average[name])
            self.average[name].copy_(raw)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The parameters hold the average inside the block, their own values again after it."""
        self._swap()
        try:
            yield
        finally:
            self._swap()

    @torch.no_grad()
    def apply(self) -> None:
        """Put the average into the parameters for good (the end of a run)."""
        for name, p in self.params.items():
            p.copy_(self.average[name])

    def state(self) -> dict[str, torch.Tensor]:
        """The average's tensors for a checkpoint (prefixed names, and its count of updates)."""
        return {EMA_PREFIX + name: t for name, t in self.average.items()} | {UPDATES: torch.tensor(self.updates)}

    @torch.no_grad()
    def load_state(self, tensors: dict[str, torch.Tensor]) -> bool:
        """Restore the average from a checkpoint's tensors; False when they hold none for these parameters
        (a checkpoint written without an average: it then starts afresh from the parameters as loaded)."""
        found = {name: tensors.get(EMA_PREFIX + name) for name in self.params}
        if UPDATES not in tensors or any(t is None or tuple(t.shape) != tuple(self.average[name].shape)
                                         for name, t in found.items()):
            return False
        for name, t in found.items():
            self.average[name].copy_(t.to(self.average[name].device, self.average[name].dtype))
        self.updates = int(tensors[UPDATES])
        return True
