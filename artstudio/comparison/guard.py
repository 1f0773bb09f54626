"""One backbone lent to every cell of a comparison, and the check that no cell changed it for the next."""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Callable

import torch

log = logging.getLogger("artstudio.compare")


def _fingerprint(model: torch.nn.Module) -> tuple:
    """What a cell could leave behind: modules, hooks, train/eval flags, requires_grad, weights."""
    h = hashlib.sha256()
    for name, m in model.named_modules():
        hooks = len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        h.update(f"{name}:{type(m).__name__}:{hooks}:{int(m.training)};".encode())
    with torch.no_grad():
        sums = [torch.stack([p.detach().float().sum(), p.detach().float().abs().sum()]) for p in model.parameters()]
    flags = tuple(p.requires_grad for p in model.parameters())
    return h.hexdigest(), flags, torch.stack(sums).cpu() if sums else torch.zeros(0)


class BackboneGuard:
    """Lends one backbone to every cell and makes sure no cell changes it for the next one."""

    def __init__(self, loader: Callable[[], Any]):
        self.loader = loader
        self.reloads = 0
        self._load()

    def _load(self) -> None:
        self.backbone = self.loader()
        self._model = self.backbone.model
        self._print = _fingerprint(self._model)

    def clean(self) -> bool:
        if self.backbone.model is not self._model:
            return False
        digest, flags, sums = _fingerprint(self._model)
        return digest == self._print[0] and flags == self._print[1] and torch.equal(sums, self._print[2])

    def release(self, method: Any) -> None:
        """After a cell: unload a PEFT wrapper if the method has one, then reload if still changed."""
        wrapper = getattr(method, "model", None) if method is not None else None
        if wrapper is not None and wrapper is not self._model and hasattr(wrapper, "unload"):
            try:
                wrapper.unload()
            except Exception as err:  # noqa: BLE001 - the fingerprint below decides what happens next
                log.info("unloading the %s wrapper failed (%s); the fingerprint check decides", type(wrapper).__name__, err)
        del method, wrapper
        if not self.clean():
            log.warning("a cell left the backbone changed; reloading it so the next cell starts clean")
            self.reloads += 1
            self._load()

