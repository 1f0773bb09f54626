"""The app's one configuration: `artstudio app --help`, `launch(AppSettings(...))` and the pages read it.

No Gradio import here, so the command line builds its options from this dataclass without loading the UI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .files import DEFAULT_MAX_UPLOAD_MB


@dataclass
class AppSettings:
    """The ART Studio web app (Gradio): where it listens, what it reads and writes, and what it may load."""

    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=7860, metadata={"help": "port to listen on"})
    share: bool = field(default=False, metadata={"help": "also open a public Gradio share link"})
    runs_dir: str = field(default="runs", metadata={"help": "folder for runs and comparisons (everything a job writes)"})
    canvases_dir: str = field(default="canvases", metadata={"help": "the gallery: artworks as PNG files"})
    model: str | None = field(default=None, metadata={"help": "default model (default: the shipped studio-tiny)"})
    models: list[str] = field(default_factory=list, metadata={"help": "more models offered in the model menus"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda (default: cuda if available)"})
    max_upload_mb: float = field(default=DEFAULT_MAX_UPLOAD_MB, metadata={"help": "largest accepted upload, in MB"})
    poll_seconds: float = field(default=1.0, metadata={"help": "how often open pages refresh job progress"})
