"""User-facing errors. The CLI and the app print these as one clear message, never a traceback.

Each message says what was wrong and how to fix it (file, line, expected value), per DESIGN §6.
"""


class ArtStudioError(Exception):
    """Base class for every mistake a user can make; anything else is a bug."""


class ModelLoadError(ArtStudioError):
    """The model path/id is missing or is not a Qwen vision-language model."""


class CanvasSizeError(ArtStudioError):
    """The canvas size does not fit the model's patch grid or pixel limits."""


class DataError(ArtStudioError):
    """A dataset file is missing, empty, or has a malformed row."""


class ArtworkError(ArtStudioError):
    """An artwork PNG is unreadable, has bad metadata, or was made for another model."""


class ConfigError(ArtStudioError):
    """An option value is out of range or inconsistent with another."""


class SaidByMainProcess(ArtStudioError):
    """A launcher's other process ending on the main process's refusal (its data, say), which the main process
    printed: the command line exits 2 without printing it again."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's preemption, `kill`, `timeout`): handled as Ctrl-C is, so a training run saves its
    checkpoint after the step under way and `--resume` continues from it; the command line exits 143."""
