"""The baselines ART is compared with, each a `Method` registered by name on import (DESIGN §2).

    lora         LoRA adapters on the language model's q/v projections (PEFT)           baselines/lora.py
    vera         VeRA: shared frozen random projections, trained scaling vectors (PEFT)  baselines/vera.py
    adalink      AdaLink: low-rank residual adapters on the text and visual input embeddings  baselines/adalink.py
    soft-prompt  trainable vectors in the canvas slot, as many as the canvas has tokens  baselines/soft_prompt.py
    t2c, t2c+art Text-to-Canvas: the artwork generated from the task description (frozen, or ART from it)  baselines/t2c.py
    t2l          Text-to-LoRA: a q/v LoRA generated zero-shot from the task description   baselines/t2l.py

`artstudio.methods.build_method(name, backbone, options)` builds any of them; importing this package
is what registers them (`artstudio.methods` does it on first use).
"""

from . import adalink, lora, soft_prompt, t2c, t2l, vera  # noqa: F401  (importing registers each method)
from .adalink import AdaLinkMethod, AdaLinkOptions
from .lora import LoraMethod, LoraOptions
from .soft_prompt import SoftPromptMethod, SoftPromptOptions
from .vera import VeraMethod, VeraOptions

__all__ = ["AdaLinkMethod", "AdaLinkOptions", "LoraMethod", "LoraOptions", "SoftPromptMethod",
           "SoftPromptOptions", "VeraMethod", "VeraOptions"]
