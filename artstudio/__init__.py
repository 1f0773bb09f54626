"""ART Studio: fine-tune a frozen Qwen vision-language model by training the pixels of one picture.

The Python API mirrors the `artstudio` command:

    import artstudio
    bb = artstudio.load_backbone()                                   # the shipped studio-tiny
    run = artstudio.train(artstudio.TrainConfig(data="add-json", steps=300, out="runs/add-json"))
    art = artstudio.load_artwork("runs/add-json/artwork.png", bb)   # an ArtMethod, canvas frozen
    rows = artstudio.load_jsonl("runs/add-json/task/add-json/test.jsonl")
    print(artstudio.evaluate(art, rows, "json").accuracy)

Names load on first use, so `import artstudio` does not import torch or transformers. The functions
`train`, `evaluate` and `compare` live in the modules `training`, `evaluation` and `comparison`;
`artstudio.tune(...)` runs a study (`artstudio.tune.tune`).
"""

from __future__ import annotations

import importlib
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
    "TrainConfig": ("artstudio.training", "TrainConfig"),
    "train": ("artstudio.training", "train"),
    "evaluate": ("artstudio.evaluation", "evaluate"),
    "compare": ("artstudio.comparison", "compare"),
    "tune": ("artstudio.tune", ""),  # the module, callable: artstudio.tune(...) runs a study
    "TuneConfig": ("artstudio.tune", "TuneConfig"),
    "CompareConfig": ("artstudio.comparison", "CompareConfig"),
    "export_artwork": ("artstudio.artwork", "export_artwork"),
    "load_artwork": ("artstudio.methods", "load_artwork"),
    "read_artwork": ("artstudio.artwork", "read_artwork"),
    "generate": ("artstudio.generation", "generate"),
    "GenerationConfig": ("artstudio.generation", "GenerationConfig"),
    "build_method": ("artstudio.methods", "build_method"),
    "load_jsonl": ("artstudio.data", "load_jsonl"),
    "write_jsonl": ("artstudio.data", "write_jsonl"),
    "Example": ("artstudio.data", "Example"),  # the messages name artstudio.Example
    "Method": ("artstudio.methods", "Method"),  # Method.load(folder, backbone): a saved run's final/ or an export
    "list_tasks": ("artstudio.tasks", "list_tasks"),
    "make_task": ("artstudio.tasks", "make_task"),
    "vllm_request": ("artstudio.serving", "vllm_request"),
    "ServeConfig": ("artstudio.server", "ServeConfig"),
    "serve": ("artstudio.server", "serve"),
    "start_server": ("artstudio.server", "start_server"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = importlib.import_module(module)
        value = getattr(value, attr) if attr else value
        globals()[name] = value
        return value
    raise AttributeError(f"module 'artstudio' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["__version__", "ArtStudioError", "ArtworkError", "CanvasSizeError", "ConfigError", "DataError",
           "ModelLoadError", *_LAZY]
