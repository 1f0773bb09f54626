"""The app's one configuration: `artstudio app --help`, `launch(AppSettings(...))` and the pages read it.

No Gradio import here, so the command line builds its options from this dataclass without loading the UI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from artstudio.options import DEVICE_HELP

from .files import DEFAULT_MAX_UPLOAD_MB


@dataclass
class AppSettings:
    """The ART Studio web app (Gradio): where it listens, what it reads and writes, and what it may load."""

    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=7860, metadata={"help": "port to listen on (0: any free port)"})
    share: bool = field(default=False, metadata={"help": "also open a public Gradio share link"})
    runs_dir: str = field(default="runs", metadata={"help": "folder for runs and comparisons (everything a job writes)"})
    canvases_dir: str = field(default="canvases", metadata={"help": "the gallery: artworks as PNG files"})
    model: str | None = field(default=None, metadata={"help": "default model (default: the shipped studio-tiny)"})
    models: list[str] = field(default_factory=list, metadata={
        "help": "models the menus offer besides --model and the gallery's artworks' models (hub ids or folders); "
                "a request naming any other model is refused"})
    model_roots: list[str] = field(default_factory=list, metadata={
        "help": "folders whose model subfolders (with config.json) are offered too, as ROOT/FOLDER"})
    allow_any_model: bool = field(default=False, metadata={
        "help": "accept any Hugging Face hub id a request names (single-user use: a request can make the "
                "server download a model)"})
    auth: str | None = field(default=None, metadata={
        "help": "USER:PASS: require Gradio's login (needed with a --host other than 127.0.0.1, unless --no-auth)"})
    no_auth: bool = field(default=False, metadata={
        "help": "listen on a non-loopback --host without a login (everyone who reaches the port can train, "
                "read and delete)"})
    max_artwork_pixels: int = field(default=4096 * 4096, metadata={
        "help": "largest picture (width x height) the gallery decodes; bigger PNGs are refused from their header"})
    hyper: str | None = field(default=None, metadata={
        "help": "Text-to-Canvas hypernetwork of the Describe tab: a folder from `artstudio hyper train` "
                "(default: the shipped one, for studio-tiny)"})
    device: str | None = field(default=None, metadata={"help": DEVICE_HELP})
    max_upload_mb: float = field(default=DEFAULT_MAX_UPLOAD_MB, metadata={"help": "largest accepted upload, in MB"})
    poll_seconds: float = field(default=1.0, metadata={"help": "how often open pages refresh job progress"})
    max_steps: int = field(default=1_000_000, metadata={
        "help": "most training steps a job may ask for (a run's, each comparison cell's, a study's final runs): "
                "jobs run one at a time, so a typo like 1e12 would hold the queue for years"})
    max_trials: int = field(default=1000, metadata={"help": "most trials a study started from the Tune page may ask for"})

    def check(self) -> None:
        """Refuse settings that would expose the app by accident: a network address needs a login or --no-auth."""
        from artstudio.errors import ConfigError
        from artstudio.network import check_port, is_loopback

        check_port(self.port)
        for name in ("max_steps", "max_trials"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} is {getattr(self, name)}; expected at least 1")
        if self.auth is not None and (":" not in self.auth or not self.auth.split(":", 1)[0] or not self.auth.split(":", 1)[1]):
            raise ConfigError("--auth must be USER:PASS (both non-empty), e.g. --auth ana:s3cret")
        if self.auth and self.no_auth:
            raise ConfigError("--auth and --no-auth contradict each other; give one of them")
        if not is_loopback(self.host) and not self.auth and not self.no_auth:
            raise ConfigError(f"--host {self.host} lets other machines reach the app, and anyone who reaches it can "
                              "train, read runs and canvases (uploaded training data included) and delete them; "
                              "add --auth USER:PASS for a login, or --no-auth if that is really what you want")
        if self.share and not self.auth and not self.no_auth:
            raise ConfigError("--share opens a public link; add --auth USER:PASS (or --no-auth if you mean it)")
        for root in self.model_roots:
            if not Path(root).expanduser().is_dir():
                raise ConfigError(f"--model-roots {root}: no such folder; give folders that hold local models "
                                  "(the app offers their subfolders on the Train page)")

    def credentials(self) -> tuple[str, str] | None:
        if not self.auth:
            return None
        user, password = self.auth.split(":", 1)
        return user, password
