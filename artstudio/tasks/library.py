"""The task library that hypernetworks (Text-to-LoRA, Text-to-Canvas) are trained on.

Every studio-tiny operation × answer-format pair that is NOT held out becomes an instruction-free
task, made exactly like a held-out task: the prompt holds only the data (two digits, or a word),
there is no cue picture and no instruction, so whatever adapts the model (a canvas, an adapter)
must carry the task. Each card has a description in the held-out cards' own style, so a held-out
description is a new combination of phrases the library already uses (DESIGN §7): 10 operations ×
11 formats - 12 held-out pairs = 98 tasks. Word problems, which pretraining answers in every format
but JSON, join them in those 10 formats (`word-problems-plain`, ...): the held-out
`word-problems-json` is then a new format for a kind of prompt the library knows, as the 12 held-out
pairs are; without them no library task mentions a word problem. 108 tasks in all.

The held-out tasks and their descriptions are never part of the library (tests check it). Users can
train on their own tasks instead: `task_specs("folder1,folder2")` or a text file listing folders,
each folder with `train.jsonl` and a `card.json` whose `description` says what the task is (and,
optionally, `descriptions`: other wordings of it). Library tasks get other wordings from
`artstudio.tasks.wordings`, so a hypernetwork learns the task rather than the cards' template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .suite import (FORMAT_WORDS, HELDOUT_PAIRS, NUMERIC_OPS, PRETRAIN_FORMATS, STRING_OPS, TaskCard,
                    cue_example, fmt, word_problem)
from .wordings import wordings

# How each answer format is put in words; the four held-out formats keep the suite's own phrases.
LIBRARY_FORMAT_WORDS = {
    **FORMAT_WORDS,
    "paren": "inside round brackets, like (<value>)",
    "quote": 'inside double quotes, like "<value>"',
    "equals": "after an equals sign and a space, like = <value>",
    "arrow": "after an arrow and a space, like -> <value>",
    "out": "on one line of the form `out: <value>`",
    "result": "on one line of the form `Result: <value>`",
    "sentence": "as the sentence `The result is <value>.`",
}
MAX_WORDINGS = 64  # descriptions per library task a hypernetwork can train on (the card's + 63 drawn)
LIBRARY_PAIRS = tuple((op, how) for op in (*NUMERIC_OPS, *STRING_OPS) for how in PRETRAIN_FORMATS
                      if (op, how) not in HELDOUT_PAIRS)
WORD_PROBLEM_FORMATS = tuple(how for how in PRETRAIN_FORMATS if how != "json")  # json is the held-out one


def describe_pair(op: str, how: str) -> str:
    """The description of operation `op` answered in format `how`, in the held-out cards' style."""
    if op in NUMERIC_OPS:
        words, data = NUMERIC_OPS[op][2], "two digits separated by a space"
    else:
        words, data = STRING_OPS[op][2], "a lowercase word of 2 to 4 letters"
    text_value = not (op in NUMERIC_OPS or op == "count")
    return (f"The prompt is {data}, with no instruction. Reply with {words}, written {LIBRARY_FORMAT_WORDS[how]}"
            + (" (the value as a JSON string)." if how == "json" and text_value else "."))


def library_card(op: str, how: str) -> TaskCard:
    return TaskCard(
        name=f"{op}-{how}", description=describe_pair(op, how),
        metric="json" if how == "json" else "exact", answer_format=how, kind="library",
        generate=lambda rng, op=op, how=how: cue_example(rng, op, how, with_picture=False),
    )


def describe_word_problem(how: str) -> str:
    """A word problem answered in format `how`, in the held-out `word-problems-json` card's style."""
    return ("A one-sentence arithmetic word problem with no instruction about the format; reply with the number "
            f"{LIBRARY_FORMAT_WORDS[how]}.")


def _word_problem_row(rng, how: str):
    text, value = word_problem(rng)
    return text, fmt(value, how), None


def word_problem_card(how: str) -> TaskCard:
    return TaskCard(
        name=f"word-problems-{how}", description=describe_word_problem(how),
        metric="json" if how == "json" else "exact", answer_format=how, kind="library",
        generate=lambda rng, how=how: _word_problem_row(rng, how),
    )


LIBRARY = ([library_card(op, how) for op, how in LIBRARY_PAIRS]
           + [word_problem_card(how) for how in WORD_PROBLEM_FORMATS])
# What each library task's cue picture shows: (operation glyph, or None for none, format band). A word
# problem's operation is in its words and changes from row to row, so its picture is the band alone.
LIBRARY_CUES: dict[str, tuple[str | None, str]] = (
    {f"{op}-{how}": (op, how) for op, how in LIBRARY_PAIRS}
    | {f"word-problems-{how}": (None, how) for how in WORD_PROBLEM_FORMATS})


# --- the tasks a hypernetwork trains on -----------------------------------------------------------

@dataclass(frozen=True)
class TaskSpec:
    """One training task of a hypernetwork: its name, description, folder (train/test JSONL) and metric."""

    name: str
    description: str
    folder: Path
    metric: str = "exact"
    wordings: tuple[str, ...] = ()  # other descriptions of the same task (artstudio.tasks.wordings, or the card's)

    @property
    def descriptions(self) -> tuple[str, ...]:
        """The card's description first, then the other wordings."""
        return (self.description, *self.wordings)


def _folder_spec(folder: Path) -> TaskSpec:
    from . import load_card

    if not folder.is_dir():
        raise DataError(f"task folder {folder} does not exist; pass folders that hold train.jsonl and card.json")
    if not (folder / "train.jsonl").is_file():
        raise DataError(f"task folder {folder} has no train.jsonl")
    if not (folder / "card.json").is_file():
        raise DataError(f"task folder {folder} has no card.json; a hypernetwork needs each task's description "
                        'there, e.g. {"name": "...", "description": "Reply with ...", "metric": "exact"}')
    card = load_card(folder)
    description = str(card.get("description") or "").strip()
    if not description:
        raise DataError(f"{folder / 'card.json'} has no description; write one sentence or more saying what the task is")
    more = card.get("descriptions") or []
    if not isinstance(more, list) or not all(isinstance(d, str) and d.strip() for d in more):
        raise DataError(f"{folder / 'card.json'}: `descriptions` must be a list of non-empty strings (other "
                        "wordings of the task)")
    return TaskSpec(str(card.get("name") or folder.name), description, folder, str(card.get("metric") or "exact"),
                    tuple(d.strip() for d in more if d.strip() != description))


def task_specs(spec: str | list, cache_dir: str | Path, *, seed: int = 0, n_train: int | None = None,
               n_test: int | None = None) -> list[TaskSpec]:
    """Training tasks from 'library', a built-in name list, task folders, or a .txt file of folders.

    Built-in tasks are written to `cache_dir/<name>` once (reused when their card matches).
    """
    from . import TASKS, make_task

    if isinstance(spec, str):
        path = Path(spec).expanduser()
        if spec == "library":
            items = [c.name for c in LIBRARY]
        elif path.is_file() and path.suffix == ".txt":
            lines = [l.strip() for l in path.read_text(encoding="utf-8").splitlines()]
            items = [str((path.parent / l).expanduser()) if not Path(l).is_absolute() else l
                     for l in lines if l and not l.startswith("#")]
        else:
            items = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        items = [str(s) for s in spec]
    if not items:
        raise DataError(f"no training tasks in {spec!r}; pass 'library', task names, or task folders")
    out: list[TaskSpec] = []
    cache = Path(cache_dir)
    for item in items:
        folder = Path(item).expanduser()
        if folder.is_dir():
            out.append(_folder_spec(folder))
        elif item in TASKS:
            card = TASKS[item]
            target = cache / item
            meta = target / "card.json"
            want = {"seed": seed} | ({"n_train": n_train} if n_train else {}) | ({"n_test": n_test} if n_test else {})
            fresh = meta.is_file() and all(json.loads(meta.read_text()).get(k) == v for k, v in want.items())
            if not fresh:
                make_task(item, target, seed=seed, n_train=n_train, n_test=n_test, overwrite=True)  # a cache
            pair = tuple(card.name.split("-", 1))
            more = tuple(wordings(*pair, MAX_WORDINGS - 1)) if pair in LIBRARY_PAIRS else ()
            out.append(TaskSpec(card.name, card.description, target, card.metric, more))
        else:
            raise DataError(f"{item!r} is neither a task folder nor a built-in task; pass 'library', names from "
                            "`artstudio tasks list --kind library` (any built-in name works; a held-out one is then "
                            "left out of the zero-shot score), or folders with train.jsonl and card.json")
    names = [t.name for t in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"task name(s) {', '.join(dup)} appear twice; each training task needs its own name")
    return out
