"""ART Studio: fine-tune a frozen Qwen vision-language model by training the pixels of one picture.

The Python API mirrors the `artstudio` command:

    import artstudio
    bb = artstudio.load_backbone()                                   # the shipped studio-tiny
    run = artstudio.train(artstudio.TrainConfig(data="add-json", steps=300, out="runs/add-json"))
    art = artstudio.load_artwork("runs/add-json/artwork.png", bb)   # an ArtMethod, canvas frozen
    print(artstudio.evaluate(art, rows, "json").accuracy)

Names load on first use, so `import artstudio` does not import torch or transformers.

`train`, `evaluate` and `compare` are both functions of the API and modules of the package
(`artstudio.train.TrainConfig`, `import artstudio.train as T`). The package keeps them as modules and
makes those three modules callable, so `artstudio.train(config)` calls `artstudio.train.train(config)`
whichever way they were first imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

from artstudio.errors import (  # noqa: F401  (cheap, and every caller wants them)
    ArtStudioError, ArtworkError, CanvasSizeError, ConfigError, DataError, ModelLoadError,
)

try:
    from importlib.metadata import PackageNotFoundError, version as _dist_version

    __version__: str = _dist_version("artstudio")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.1.0"

# public name -> (module, attribute)
_LAZY: dict[str, tuple[str, str]] = {
    "load_backbone": ("artstudio.backbone", "load_backbone"),
    "DEFAULT_MODEL": ("artstudio.backbone", "DEFAULT_MODEL"),
    "Canvas": ("artstudio.canvas", "Canvas"),
    "TrainConfig": ("artstudio.train", "TrainConfig"),
    "export_artwork": ("artstudio.artwork", "export_artwork"),
    "load_artwork": ("artstudio.artwork", "load_artwork"),
    "read_artwork": ("artstudio.artwork", "read_artwork"),
    "generate": ("artstudio.generation", "generate"),
    "GenerationConfig": ("artstudio.generation", "GenerationConfig"),
    "build_method": ("artstudio.methods", "build_method"),
    "load_jsonl": ("artstudio.data", "load_jsonl"),
    "list_tasks": ("artstudio.tasks", "list_tasks"),
    "make_task": ("artstudio.tasks", "make_task"),
    "vllm_request": ("artstudio.serving", "vllm_request"),
}
# Modules that are also the function of the same name.
_CALLABLE_MODULES = ("train", "evaluate", "compare")


class _CallableModule(types.ModuleType):
    """A module that, called, calls its namesake function (`artstudio.train(...)`)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        # The import system binds a freshly imported submodule here; give the three clashing ones a call.
        if name in _CALLABLE_MODULES and isinstance(value, types.ModuleType) and type(value) is types.ModuleType:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name in _CALLABLE_MODULES:
        try:
            return importlib.import_module(f"artstudio.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"artstudio.{name}":
                raise
            raise AttributeError(f"artstudio.{name} is not available in this installation") from None
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'artstudio' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_CALLABLE_MODULES))


__all__ = ["__version__", "ArtStudioError", "ArtworkError", "CanvasSizeError", "ConfigError", "DataError",
           "ModelLoadError", *_LAZY,
           *(m for m in _CALLABLE_MODULES if importlib.util.find_spec(f"artstudio.{m}") is not None)]
