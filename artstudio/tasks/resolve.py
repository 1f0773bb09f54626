"""The one answer to "what data did the user mean?": a JSONL file, a task folder or a built-in task name.

`train`, `eval`, `infer` and `compare` all take such a spec and all resolve it here, so the three
spellings work the same everywhere and a wrong one gets the same clear error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DataError
from . import TASKS, load_card, make_task

SPEC_HINT = "`artstudio tasks list` shows the built-in tasks; a task folder holds train.jsonl and test.jsonl"


@dataclass
class TaskData:
    """Where a task's rows are: the training file (None for a bare test file), the test file and its card."""

    train_file: Path | None
    test_file: Path | None
    card: dict = field(default_factory=dict)
    folder: Path | None = None

    @property
    def name(self) -> str:
        return str(self.card.get("name") or (self.folder.name if self.folder else Path(self.train_file or self.test_file or "").stem))


def resolve_data(spec: str, workdir: str | Path, *, role: str = "train") -> TaskData:
    """Resolve `spec` (a file, a task folder, or a built-in task written into `workdir/<name>/` with seed 0).

    `role` is "train" (a file is the training rows) or "test" (a file is the test rows). A folder
    needs the split of its role; the other split is optional.
    """
    if not spec:
        what = "training" if role == "train" else "test"
        raise (ConfigError if role == "train" else DataError)(f"no {what} data: pass --data with a JSONL file, a task folder or a built-in task name")
    path = Path(spec).expanduser()
    if not path.exists() and spec in TASKS:
        # Seed 0 everywhere, so `eval --data NAME` scores the very test split `train --data NAME` reported on.
        folder = Path(workdir) / spec
        path = folder if (folder / "card.json").is_file() else make_task(spec, folder, seed=0, overwrite=True)
    if path.is_dir():
        train, test = path / "train.jsonl", path / "test.jsonl"
        needed = train if role == "train" else test
        if not needed.is_file():
            raise DataError(f"task folder {path} has no {needed.name}; {SPEC_HINT}")
        return TaskData(train if train.is_file() else None, test if test.is_file() else None, load_card(path), path)
    if path.is_file():
        # A split read on its own still belongs to its task folder: the card beside it says its metric.
        card = load_card(path.parent) if (path.parent / "card.json").is_file() else {}
        return TaskData(path, None, card) if role == "train" else TaskData(None, path, card)
    raise DataError(f"{spec} is neither a file, a task folder nor a built-in task; {SPEC_HINT}")
