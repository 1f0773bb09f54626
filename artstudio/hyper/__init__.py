"""Hypernetworks: an adapter or an artwork from a task description, with no training on the task.

    Text-to-Canvas (t2c)  description -> frozen task encoder -> MLP mixer -> a canvas (artwork PNG)
    Text-to-LoRA  (t2l)   description -> frozen task encoder -> MLP mixer -> LoRA A/B (PEFT folder)

Python entry points (the CLI verbs `artstudio hyper train|generate` are generated from these):

    from artstudio.hyper import HyperTrainConfig, hyper_train, HyperGenerateConfig, hyper_generate
    hyper_train(HyperTrainConfig(kind="t2c", mode="sft", tasks="library", out="runs/t2c"))
    hyper_generate(HyperGenerateConfig(description="Reply with the larger digit in [brackets].", out="art.png"))
"""

from .base import HYPERNETWORKS, HyperConfig, Hypernetwork, ResidualBlock, get_hyper, hyper_kinds, register_hyper
from .encoder import TaskEncoder

__all__ = ["HYPERNETWORKS", "HyperConfig", "Hypernetwork", "ResidualBlock", "TaskEncoder", "get_hyper",
           "hyper_kinds", "register_hyper"]
