"""Hypernetworks: an adapter or an artwork from a task description, with no training on the task.

    Text-to-Canvas (t2c)  description -> frozen task encoder -> MLP mixer -> a canvas (artwork PNG)
    Text-to-LoRA  (t2l)   description -> frozen task encoder -> MLP mixer -> LoRA A/B (PEFT folder)

Python entry points (the CLI verbs `artstudio hyper train|generate` are generated from these):

    from artstudio.hyper import HyperTrainConfig, hyper_train, HyperGenerateConfig, hyper_generate
    hyper_train(HyperTrainConfig(kind="t2c", mode="reconstruction", targets="cue", steps=0, out="runs/t2c"))
    hyper_generate(HyperGenerateConfig(description="The prompt is two digits separated by a space, with no instruction. "
                                       "Reply with the larger of the two, written inside square brackets, like [<value>].",
                                       out="art.png"))

The shipped hypernetworks know the wording of the task cards (`artstudio tasks list --kind library --json`); a
short wording such as "Reply with the larger digit in [brackets]." scores 0 % (docs/hyper.md, "Wording").
"""

from __future__ import annotations

import torch

from artstudio.errors import ConfigError

from .base import HYPERNETWORKS, HyperConfig, Hypernetwork, ResidualBlock, get_hyper, hyper_kinds, register_hyper

from .encoder import TaskEncoder
from .generate import DEFAULT_HYPER, HyperGenerateConfig, HyperGenerator, hyper_generate
from .training import (HyperTrainConfig, HyperTrainResult, check_hyper_resume, evaluate_descriptions,
                       heldout_descriptions, resume_options, train_hypernetwork)


def hyper_train(config: HyperTrainConfig, *, backbone=None, progress: bool = True, callbacks=None) -> HyperTrainResult:
    """Train a hypernetwork of `config.kind` in `config.mode` on `config.tasks`; returns the result.

    The trained hypernetwork is in `<out>/final` (use it with `hyper_generate`).
    """
    from pathlib import Path

    from artstudio.backbone import load_backbone
    from artstudio.tasks import task_specs

    config.validate()
    if config.resume:
        check_hyper_resume(config, config.out, say=False)  # before the model loads: a refused resume costs nothing
    if backbone is None:
        backbone = load_backbone(config.model, dtype=config.dtype, device=config.device)
    encoder = TaskEncoder.load(config.encoder, backbone)
    cls = get_hyper(config.kind)
    if config.init is not None:
        hyper = Hypernetwork.from_pretrained(config.init, backbone)
        if hyper.kind != config.kind:
            raise ConfigError(f"init {config.init} holds a {hyper.kind} hypernetwork, not {config.kind}")
        hyper.check_encoder(encoder)
        hyper.train()
    else:
        torch.manual_seed(config.seed)  # the initial weights belong to the seed, not to what ran before
        hyper = cls.build(backbone, encoder, {"preset": config.preset, **config.options})
    tasks = task_specs(config.tasks, Path(config.task_cache))
    return train_hypernetwork(config, backbone, hyper, encoder, tasks, progress=progress, callbacks=callbacks)


__all__ = ["DEFAULT_HYPER", "HYPERNETWORKS", "HyperConfig", "HyperGenerateConfig", "HyperGenerator", "HyperTrainConfig",
           "HyperTrainResult", "Hypernetwork", "ResidualBlock", "TaskEncoder", "evaluate_descriptions", "get_hyper",
           "heldout_descriptions", "hyper_generate", "hyper_kinds", "hyper_train", "register_hyper",
           "resume_options", "train_hypernetwork"]
