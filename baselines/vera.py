"""VeRA baseline (Kopiczko et al., ICLR 2024, "VeRA: Vector-based Random Matrix Adaptation"), through PEFT.

One pair of frozen random matrices A (r x in) and B (out x r) is shared by every adapted layer; each
layer trains only two scaling vectors: `h = W0 x + Λ_b B Λ_d A x` (DESIGN §2, seed 004), with b = 0
(so step 0 is the frozen model) and d = `d_initial` (0.1). Llama-2-7B: 1.4 M trainable parameters
against 159.9 M for LoRA at similar quality.

Layers of different shapes: PEFT draws A and B at the largest (in, out) over the targeted layers and
slices them per layer, so the default q and v projections work on every family, including Qwen3.5
whose gated q_proj is twice as wide as v_proj. The projections are seeded (`seed` ->
`projection_prng_key`) and saved with the adapter (`save_projection=True`), so an exported folder
loads back bit-identically without regenerating them.

Shares the backbone-preserving wrapper and the export format with LoRA (`baselines/lora.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from artstudio.errors import ConfigError
from artstudio.methods import register
from artstudio.options import option_label
from artstudio.tune.space import Choice, Float, Int

from .lora import PeftMethod, target_regex, targeted_linears

PAPER_RANK = 256


@dataclass
class VeraOptions:
    """VeRA (Kopiczko et al. 2024): h = W0 x + diag(b) B diag(d) A x, A and B frozen, random and shared.

    The paper uses rank 256 on 7B-13B models and d_initial 0.1. The default here is
    min(256, hidden size): on a small model (studio-tiny) a rank above the hidden size cannot raise
    the rank of the update and only adds d-entries, so it is capped.
    """

    r: int | None = field(default=None, metadata={"help": "rank of the shared random projections (default: min(256, the language model's hidden size))"})
    d_initial: float = field(default=0.1, metadata={"help": "initial value of every d scaling entry"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the adapter's input while training"})
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"],
                                      metadata={"help": "projections of the language model to adapt (the vision tower is never adapted)"})
    seed: int | None = field(default=None, metadata={"help": "seed of the shared random projections (default: the run's --seed)"})

    def __post_init__(self) -> None:
        if self.r is not None and self.r < 1:
            raise ConfigError(f"{option_label('VeRA', 'r', '--vera-')} is {self.r}; the rank must be 1 or more")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{option_label('VeRA', 'dropout', '--vera-')} is {self.dropout}; expected a probability in [0, 1)")
        if not self.d_initial > 0:  # d scales the shared projections: zero or below starts with no (or a flipped) update
            raise ConfigError(f"{option_label('VeRA', 'd_initial', '--vera-')} is {self.d_initial}; expected a positive initial scale (VeRA's is 0.1)")
        if isinstance(self.target_modules, str):
            self.target_modules = [self.target_modules]


def default_rank(backbone) -> int:
    cfg = backbone.model.config
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    return min(PAPER_RANK, int(text.hidden_size))


@register
class VeraMethod(PeftMethod):
    """VeRA scaling vectors on the frozen language model; prompts carry no canvas."""

    name = "vera"
    config_class = VeraOptions
    default_lr = 1e-2  # tuned on studio-tiny's held-out tasks
    dropout_module_name = "vera_dropout"
    # What `artstudio tune` searches (artstudio/tune/space.py); the sentences are read by the lgbo sampler.
    search_space = {
        "r": Int(16, 256, log=True, help="rank of the shared frozen random projections; a higher rank gives the "
                 "trained scaling vectors more directions to use"),
        "d_initial": Float(0.01, 1.0, log=True, help="initial value of the d scaling vector; larger values make "
                           "the first updates larger, like a higher learning rate"),
        "lr": Float(1e-3, 1e-1, log=True, help="peak AdamW learning rate of the scaling vectors; VeRA needs "
                    "higher rates than LoRA because it trains so few parameters"),
        "dropout": Float(0.0, 0.3, help="dropout on the adapter input; regularises, slows fitting"),
        "batch_size": Choice((8, 16, 32), help="examples per step; larger batches give less noisy gradients, "
                             "cost more per step and tolerate a larger learning rate"),
    }

    def __init__(self, backbone, config: VeraOptions | None = None):
        config = config if config is not None else VeraOptions()
        if config.r is None:  # resolved here so that a saved config names the rank it trained with
            config = replace(config, r=default_rank(backbone))
        super().__init__(backbone, config)

    def _wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        from peft import VeraConfig, get_peft_model

        cfg: VeraOptions = self.config
        targeted_linears(model, cfg.target_modules)  # a clear error before PEFT's
        peft_cfg = VeraConfig(r=cfg.r, d_initial=cfg.d_initial, vera_dropout=cfg.dropout,
                              target_modules=target_regex(cfg.target_modules),
                              projection_prng_key=0 if cfg.seed is None else cfg.seed, save_projection=True)
        return get_peft_model(model, peft_cfg)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The scaling vectors plus the shared projections, so a saved state stands on its own."""
        projections = {n: b for n, b in self._peft.named_buffers() if ".vera_A." in f".{n}." or ".vera_B." in f".{n}."}
        return super().trainable_state() | projections
