"""Task cards and datasets: the built-in suite, and the folders users bring.

A task folder holds `train.jsonl`, `test.jsonl` (rows `{"prompt", "answer", "id", "image"?}`),
`card.json` (name, description, metric, answer_format, split sizes) and `images/` when rows carry
pictures. `make_task` writes one from a built-in generator with a seed; `load_task` reads any.
"""

from __future__ import annotations

import difflib
import json
import logging
import random
from pathlib import Path

from ..atomic import atomic_write_text, check_free, check_output_kind
from ..errors import ConfigError, DataError
from ..scoring import METRICS
from .library import LIBRARY, TaskSpec, task_specs
from .suite import HELDOUT, PRETRAIN, TaskCard

log = logging.getLogger("artstudio.tasks")

# The library (hypernetworks' training tasks, see library.py) follows the suite's own tasks.
TASKS: dict[str, TaskCard] = {card.name: card for card in PRETRAIN + HELDOUT + LIBRARY}


TASK_KINDS = ("pretrain", "heldout", "library")


def list_tasks(kind: str | None = None) -> list[TaskCard]:
    """All built-in task cards, or only `kind` ('pretrain', 'heldout' or 'library'); another kind is a ConfigError."""
    if kind is not None and kind not in TASK_KINDS:
        raise ConfigError(f"unknown task kind {kind!r}; choose one of {', '.join(TASK_KINDS)} (or none for all tasks)")
    return [c for c in TASKS.values() if kind is None or c.kind == kind]


def get_task(name: str) -> TaskCard:
    if name not in TASKS:
        raise DataError(f"unknown task {name!r}; `artstudio tasks list` shows the built-in tasks: {', '.join(TASKS)}")
    return TASKS[name]


def resolve_tasks(spec: str) -> list[str]:
    """'heldout', 'pretrain', 'library', 'all' (pretrain + heldout) or a comma-separated list of names/folders."""
    if spec in ("heldout", "pretrain", "library"):
        return [c.name for c in list_tasks(spec)]
    if spec == "all":
        return [c.name for c in PRETRAIN + HELDOUT]
    return [s.strip() for s in spec.split(",") if s.strip()]


def sample(card: TaskCard, n: int, seed: int) -> list[tuple[str, str, object]]:
    """`n` seeded examples (prompt, answer, PIL image or None) from a built-in task."""
    rng = random.Random(f"{card.name}:{seed}")
    return [card.generate(rng) for _ in range(n)]


def make_task(name: str, out: str | Path, *, seed: int = 0, n_train: int | None = None, n_test: int | None = None,
              overwrite: bool = False) -> Path:
    """Write the train/test splits and card of built-in task `name` to folder `out`.

    Train and test come from different seeds, and test prompts that also occur in train are
    redrawn, so a score on test is never a score on memorised training rows. A folder that already
    holds a task is refused unless `overwrite`, or unless its card is this one's (same task, seed and
    sizes: the same rows are written again).
    """
    card = get_task(name)
    out = Path(out)
    n_train = card.n_train if n_train is None else n_train
    n_test = card.n_test if n_test is None else n_test
    for option, n, least in (("n_train", n_train, 0), ("n_test", n_test, 1)):  # n_train 0: a folder to score on only
        if isinstance(n, bool) or not isinstance(n, int) or n < least:
            raise ConfigError(f"--{option.replace('_', '-')} is {n!r}; expected a whole number of rows, at least {least}")
    meta = card.to_dict() | {"n_train": n_train, "n_test": n_test, "seed": seed}
    # A run's, evaluation's or study's folder is not a task's: its files mixed with them (and a later
    # `train --out` there refused it as "a task's data").
    check_output_kind(out, "train.jsonl")
    if _card_of(out) != meta:
        check_free(out, overwrite, names=TASK_FILES)
    out.mkdir(parents=True, exist_ok=True)
    train = sample(card, n_train, seed)
    seen = {p for p, _, img in train if img is None}
    rng = random.Random(f"{card.name}:test:{seed}")
    test: list = []
    tries = 0
    while len(test) < n_test:
        ex = card.generate(rng)
        tries += 1
        # The small digit/word spaces are finite: allow overlap only when no fresh prompt is left.
        if ex[2] is None and ex[0] in seen and tries < 50 * n_test:
            continue
        test.append(ex)
    texts, images = {}, {}
    for split, rows in (("train", train), ("test", test)):
        if not rows:  # n_train 0: a folder to score on only. An empty train.jsonl made `train` say "no rows";
            continue  # without one it says the folder has no train.jsonl
        lines = []
        for i, (prompt, answer, image) in enumerate(rows):
            row = {"id": f"{split}-{i}", "prompt": prompt, "answer": answer}
            if image is not None:
                rel = Path("images") / f"{split}-{i}.png"
                images[rel] = image
                row["image"] = str(rel)
            lines.append(json.dumps(row, ensure_ascii=False))
        texts[f"{split}.jsonl"] = "\n".join(lines) + "\n"
    if not overwrite:  # the same task again: only if its rows are still the ones written, not the user's edits
        edited = [file for file, text in texts.items()
                  if (out / file).is_file() and (out / file).read_text(encoding="utf-8", errors="replace") != text]
        if edited:
            raise ConfigError(f"{out} holds task {name!r} with edited rows ({' and '.join(edited)} "
                              f"{'differs' if len(edited) == 1 else 'differ'} from what `tasks make` writes); pass --overwrite to "
                              "write them anew, or choose another --out")
    for rel, image in images.items():
        (out / rel).parent.mkdir(exist_ok=True)
        image.save(out / rel)
    for file, text in texts.items():
        atomic_write_text(out / file, text)
    if not train:
        (out / "train.jsonl").unlink(missing_ok=True)  # (check_free let only an earlier task's own through)
    atomic_write_text(out / "card.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return out


TASK_FILES = ("train.jsonl", "test.jsonl", "card.json")  # a task folder (README: bring your own data)


def _card_of(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "card.json").read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None


def load_card(folder: str | Path) -> dict:
    """The card of a task folder; a folder without `card.json` gets one named after the folder."""
    folder = Path(folder)
    path = folder / "card.json"
    if path.exists():
        try:
            card = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{e.lineno}: card.json is not valid JSON ({e.msg})") from None
        except UnicodeDecodeError:
            raise DataError(f"{path} is not UTF-8 text; save the card as UTF-8") from None
        check_card(card, path)
        return card
    return {"name": folder.name, "description": "", "metric": "exact"}


CARD_TEXT_FIELDS = ("name", "description", "metric", "answer_format")


def check_card(card: object, path: Path) -> None:
    """Raise DataError naming `path` (and the field) when a card is not an object of the expected types."""
    if not isinstance(card, dict):
        kind = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(type(card), "null")
        raise DataError(f"{path} holds {kind}; a card must be a JSON object like "
                        '{"name": "...", "description": "...", "metric": "exact"}')
    for key in CARD_TEXT_FIELDS:
        value = card.get(key)
        if value is not None and not isinstance(value, str):
            raise DataError(f"{path}: field {key!r} must be a string, not {json.dumps(value, ensure_ascii=False)}")
    metric = card.get("metric")
    if metric and metric not in METRICS:
        raise DataError(f"{path}: unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    unknown = [k for k in card if k not in CARD_FIELDS]
    if unknown:  # a misspelled "descripton" left the artwork without a description and the run without its T2C start
        for key in unknown:
            near = difflib.get_close_matches(key, CARD_FIELDS, n=1)
            log.warning(
                "%s: field %r is not a card field%s; it is ignored (a card holds %s)", path, key,
                f" (did you mean {near[0]!r}?)" if near else "", ", ".join(CARD_FIELDS))


# What a card may hold: TaskCard's fields, the seed `tasks make` drew with, and a library task's other wordings.
CARD_FIELDS = ("name", "description", "metric", "answer_format", "kind", "n_train", "n_test", "seed", "descriptions")


__all__ = ["LIBRARY", "TASKS", "TaskCard", "TaskSpec", "task_specs", "list_tasks", "get_task", "resolve_tasks", "sample", "make_task", "load_card"]
