"""Training objectives: what the one training loop minimises, each behind one interface.

    artstudio train --objective sft     # cross-entropy of the reference answers (the default)
    artstudio train --objective grpo    # rewards on the model's own sampled answers (the paper's)

An objective is a class registered by name, like a method (`@register_objective`). The loop builds it
with `build(options, metric=, seed=, answers=, probe=)` (`probe`: a training row it may try itself on
before the run begins), calls `bind(method)` once before any resume, and
then, per micro-batch, `objective(method, examples, step=, micro=) -> (loss, stats)` (with
`processes=`, for an objective that `splits_batches`, its process's share of the global batch's loss). Facts about an
objective live on its class: `lr_scale` (a method's default learning rate is multiplied by it) and
`config_class` (the dataclass of its options, which the CLI turns into `--<name>-*` options).
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

from ..errors import ConfigError


class Objective:
    """Base class: `objective(method, examples, step=, micro=) -> (loss, stats)`."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # how the app's menus name it
    lr_scale: ClassVar[float] = 1.0
    config_class: ClassVar[type | None] = None
    # True: given `processes` (several data-parallel processes, `artstudio.distributed`), it computes
    # this process's share of the global batch's loss, the shares summing to the one-process loss.
    splits_batches: ClassVar[bool] = False

    @classmethod
    def build(cls, options: dict | None = None, *, metric: str = "exact", seed: int = 0,
              answers: Sequence[str] = (), probe: Any = None) -> "Objective":
        if options:
            raise ConfigError(f"the {cls.name} objective takes no options, got {', '.join(sorted(options))}")
        return cls()

    def bind(self, method) -> None:
        """Called once before training (and before a resume restores the method's state)."""

    def __call__(self, method, examples, *, step: int, micro: int = 0, processes=None) -> tuple[Any, dict]:
        raise NotImplementedError


OBJECTIVES: dict[str, type[Objective]] = {}


def register_objective(cls: type[Objective]) -> type[Objective]:
    OBJECTIVES[cls.name] = cls
    return cls


def get_objective(name: str) -> type[Objective]:
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


def objective_names() -> list[str]:
    return list(OBJECTIVES)


from . import grpo, sft  # noqa: E402,F401  (importing registers them)
