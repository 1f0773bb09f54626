"""The tasks of a comparison: built-in ones written once under the results folder, user folders read in
place, each with a content digest so a changed row changes every cell key that depends on it."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..data import load_jsonl, warn_repeated_prompts, write_jsonl
from ..errors import ConfigError, DataError
from .config import parse_list

log = logging.getLogger("artstudio.compare")


@dataclass
class TaskSpec:
    """A task as the harness uses it: training rows, the scored rows and a digest of both."""

    name: str
    folder: Path  # holds train.jsonl and card.json (what TrainConfig.data points to)
    eval_file: Path
    card: dict
    digest: str


def _file_digest(h: "hashlib._Hash", path: Path) -> None:
    h.update(path.name.encode())
    h.update(path.read_bytes())


def _task_digest(train_file: Path, eval_file: Path, card: dict) -> str:
    """Content hash of what decides a result: the rows, their pictures and the card (its metric)."""
    h = hashlib.sha256(json.dumps(card, sort_keys=True, default=str).encode())
    images: set[str] = set()
    for path in (train_file, eval_file):
        _file_digest(h, path)
        images.update(e.image for e in load_jsonl(path) if e.image)
    for image in sorted(images):
        _file_digest(h, Path(image))
    return h.hexdigest()[:16]


def check_tasks(spec: str | list, eval_size: int | None = None) -> list[str]:
    """The task names of `spec`, refused (unknown name, folder without its splits) before anything is written."""
    from ..tasks import TASKS, resolve_tasks

    names = resolve_tasks(spec) if isinstance(spec, str) else parse_list(spec)
    if not names:
        raise ConfigError("no tasks given; pass --tasks heldout, built-in task names or task folders")
    if eval_size is not None and eval_size < 1:
        raise ConfigError(f"eval_size must be at least 1, got {eval_size}")
    unique: dict[str, str] = {}  # a folder by where it is, a built-in task by its name -> the name as given
    for name in names:
        path = Path(name).expanduser()
        key = str(path.resolve()) if path.is_dir() else name
        if key in unique:
            log.warning("task %s is listed twice%s; it runs once", name,
                        "" if unique[key] == name else f" (as {unique[key]})")
        else:
            unique[key] = name
    names = list(unique.values())
    for name in names:
        path = Path(name).expanduser()
        if not path.is_dir() and name not in TASKS:
            raise DataError(f"task {name!r} is neither a folder nor a built-in task; `artstudio tasks list` shows "
                            "the built-in tasks, and a task folder needs train.jsonl and test.jsonl")
        if path.is_dir():
            _check_splits(path.resolve())
    return names


def check_descriptions(names: list[str], methods: dict[str, dict]) -> None:
    """Refuse, before anything runs, a task folder whose card has no description for a method that generates
    from one (t2l, t2c, t2c+art) and was given none: the comparison printed its plan and failed at that cell.
    `methods` maps each such method to its options."""
    from ..tasks import TASKS, load_card

    for method, options in methods.items():
        if str((options or {}).get("description") or "").strip():
            continue
        for name in names:
            path = Path(name).expanduser()
            if not path.is_dir() and name in TASKS:
                continue  # every built-in task has a description
            if not str(load_card(path).get("description") or "").strip():
                raise ConfigError(f"{method} generates from the task's description, and task {name} has none (no "
                                  f"description in {path / 'card.json'}): add one to the card, pass it with "
                                  f"--method-options '{{\"{method}\": {{\"description\": \"...\"}}}}' (every task "
                                  f"then gets that one), or leave {method} out of --methods")


def _check_splits(folder: Path) -> None:
    for split in ("train", "test"):
        if not (folder / f"{split}.jsonl").is_file():
            raise DataError(f"task folder {folder} has no {split}.jsonl; compare trains on train.jsonl and "
                            "scores every method on test.jsonl")


def prepare_tasks(spec: str | list, out: Path, eval_size: int | None = None) -> list[TaskSpec]:
    """Built-in tasks are written to `out/tasks/<name>/`; user folders are read in place."""
    from ..tasks import TASKS
    from ..tasks.resolve import resolve_data

    names = check_tasks(spec, eval_size)
    tasks: list[TaskSpec] = []
    for name in names:
        task = resolve_data(name, out / "tasks", role="test")
        folder, card = task.folder.resolve(), task.card
        display = name if name in TASKS and not Path(name).expanduser().is_dir() else str(card.get("name") or folder.name)
        _check_splits(folder)
        if display in {t.name for t in tasks}:  # two folders whose cards share a name
            display = f"{display}-{len(tasks)}"
        eval_file = folder / "test.jsonl"
        rows = load_jsonl(eval_file)[:eval_size]
        if eval_size is not None:  # named after the task as the table shows it: one file per task
            eval_file = write_jsonl(out / "tasks" / f"{display}.test-first-{eval_size}.jsonl", rows)
        # Said once here; the cells' own `train` runs leave it out (data.REPEATED_PROMPTS).
        if card.get("name") not in TASKS:  # (a built-in task is never warned about: its training rows are not read)
            warn_repeated_prompts(load_jsonl(folder / "train.jsonl"), rows, f"task {display}", card)
        tasks.append(TaskSpec(display, folder, eval_file, card, _task_digest(folder / "train.jsonl", eval_file, card)))
    return tasks

