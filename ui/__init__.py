"""The ART Studio web app (Gradio): `artstudio app`, `make demo`, or `artstudio.ui.launch()`.

`app.py` assembles the pages, `studio.py` does the work behind them, `jobs.py` runs trainings and
comparisons in the background, `files.py` keeps every read and write inside the configured folders.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AppSettings", "build_app", "launch", "start"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import artstudio.ui.files` does not import gradio.
    if name in ("build_app", "launch", "start"):
        from . import app

        return getattr(app, name)
    if name == "AppSettings":
        from .settings import AppSettings

        return AppSettings
    raise AttributeError(f"module 'artstudio.ui' has no attribute {name!r}")
