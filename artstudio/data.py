"""The JSONL data format every task, method and command reads: one example per line.

A row is `{"prompt": str, "answer": str}` with an optional `"id"` (str or int) and an optional
`"image"`: the path of an extra image shown to the model right after the canvas (relative paths
resolve against the JSONL file's folder). Bad input stops with a `DataError` that names the file,
the line, what was wrong and what was expected (DESIGN §6), so a user never has to read a traceback.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import random
import re

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from artstudio.atomic import atomic_write_text
from artstudio.errors import ConfigError, DataError

_ROW_HINT = 'expected a JSON object like {"prompt": "...", "answer": "..."}'
ROW_FIELDS = ("prompt", "answer", "id", "image")
log = logging.getLogger("artstudio.data")
_said_near: set[tuple[str, str]] = set()  # (file, field) already warned about in this process


@dataclass(frozen=True)
class Example:
    """One prompt/answer pair; `image` is an absolute path to an extra image, or None."""

    prompt: str
    answer: str = ""
    id: str = ""
    image: str | None = None
    # Where the row was read ("FILE:LINE"), for messages; not part of the row (equality, digests ignore it).
    source: str | None = field(default=None, compare=False, repr=False)


def load_jsonl(path: str | os.PathLike, *, require_answer: bool = True) -> list[Example]:
    """Read and validate a JSONL dataset; every problem raises `DataError` naming file and line.

    `require_answer=False` accepts rows without `"answer"` (prompts to generate from); their
    answer is the empty string. Ids default to the 0-based row index (blank lines not counted).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise DataError(f"load_jsonl takes the path of a JSONL file, not {path!r} ({type(path).__name__})")
    file = Path(path)
    text = _read_text(file)
    examples: list[Example] = []
    id_lines: dict[str, tuple[int, bool]] = {}  # id -> (line, whether the id is the row's position)
    checked_images: set[Path] = set()
    # "\n" alone ends a line: str.splitlines() also breaks at U+2028, U+0085 and others, which JSON allows in strings.
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        row = _parse_row(file, lineno, line)
        _warn_near_misses(file, lineno, row)
        example = _example_from_row(file, lineno, row, len(examples), require_answer, checked_images)
        positional = row.get("id") is None  # the id `_id_field` gave it: the row's position
        if example.id in id_lines:
            first, implicit = id_lines[example.id]
            here = ", which is its position among the rows, as it has no \"id\"" if positional else ""
            there = " (where it is that row's position, as it has no \"id\")" if implicit else ""
            raise DataError(
                f"{file}:{lineno}: duplicate id {example.id!r}{here}; line {first} has it too{there}. "
                "Expected every row to have a unique id: give every row an \"id\", or none"
            )
        id_lines[example.id] = (lineno, positional)
        examples.append(example)
    if not examples:
        raise DataError(f"{file}: the file has no rows; {_ROW_HINT} on each line")
    return examples


def as_examples(rows: Iterable, *, needs_answers: bool = False) -> list[Example]:
    """`rows` from Python as Examples: an Example passes, a dict is read as a JSONL row is, a string is a
    prompt. Anything else, an empty list or (with `needs_answers`) a row without an answer is a DataError."""
    if isinstance(rows, os.PathLike):
        raise DataError(f"expected a list of rows, got the path {os.fspath(rows)}; read the file first: "
                        f"artstudio.load_jsonl({str(os.fspath(rows))!r})")
    if isinstance(rows, (str, bytes, dict, Example)):
        raise DataError(f"expected a list of rows, got a single {type(rows).__name__}; wrap it in a list"
                        + (" (or, for a file of rows, artstudio.load_jsonl(path))" if isinstance(rows, str) else ""))
    if hasattr(rows, "columns") and hasattr(rows, "to_dict"):  # a pandas DataFrame iterates its column names
        rows = rows.to_dict("records")
    try:
        rows = iter(rows)
    except TypeError:
        raise DataError(f"expected a list of rows, got a {type(rows).__name__}") from None
    out: list[Example] = []
    for i, row in enumerate(rows):
        if isinstance(row, Example):
            for name in ("prompt", "answer", "id"):  # a number here was written, then refused on reading
                if not isinstance(getattr(row, name), str):
                    raise DataError(f"row {i}: Example {name} is {json_type(getattr(row, name))}; expected a string")
            out.append(row)
        elif isinstance(row, dict):
            out.append(_example_from_row(Path("rows"), i, row, i, needs_answers, set()))
        elif isinstance(row, str) and not needs_answers:
            out.append(Example(prompt=row, id=str(i)))
        else:
            want = "an artstudio.Example or a dict" if needs_answers else "an artstudio.Example, a dict or a prompt string"
            raise DataError(f"row {i} is a {type(row).__name__}; expected {want} like "
                            '{"prompt": "...", "answer": "..."} (artstudio.load_jsonl reads a file of them)')
    if not out:
        raise DataError("no rows: expected at least one example")
    return out


REPEATED_PROMPTS = ("%d of the %d test rows in %s ask a prompt that is also in the training rows; their score counts "
                    "what the run memorised, not only what it learnt (leave them out of the test rows for a held-out "
                    "score)")


def picture_digest(path: str, seen: dict[str, bytes] | None = None) -> bytes:
    """The SHA-256 of a picture file's bytes (`seen` caches them by path for one pass over rows)."""
    if seen is not None and path in seen:
        return seen[path]
    digest = hashlib.sha256(Path(path).read_bytes()).digest()
    if seen is not None:
        seen[path] = digest
    return digest


def repeated_prompts(train: Iterable[Example], test: Iterable[Example]) -> int:
    """How many `test` rows ask what a training row asks (the same prompt and picture, by its bytes: a copy under
    another name is the same picture): a score on those rows measures what a run memorised as much as what it
    learnt."""
    seen: dict[str, bytes] = {}

    def asks(row: Example) -> tuple:
        return row.prompt, None if row.image is None else picture_digest(row.image, seen)

    asked = {asks(row) for row in train}
    return sum(asks(row) in asked for row in test)


def warn_repeated_prompts(train: list[Example], test: list[Example], test_name: str, card: dict) -> None:
    """Warn when test rows repeat training prompts, except on a built-in task, whose digit tasks
    repeat them by design (two digits: 100 prompts; the README's limits say so)."""
    from artstudio.tasks import TASKS

    if card.get("name") in TASKS or not test:
        return
    if shared := repeated_prompts(train, test):
        log.warning(REPEATED_PROMPTS, shared, len(test), test_name)


def write_jsonl(path: str | os.PathLike, examples: Iterable[Example]) -> Path:
    """Write `examples` (Examples, dicts or prompt strings, as `as_examples` reads them) as JSONL atomically;
    image paths are stored relative to the file when inside its folder. What `load_jsonl` would refuse on
    reading (no rows, a repeated id) is refused here."""
    examples = as_examples(examples)
    ids = [ex.id for ex in examples if ex.id]
    if len(set(ids)) < len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"two rows have the id {twice!r}; ids must be unique (leave them empty for row numbers)")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = out.parent.resolve()
    lines = [json.dumps(_row_from_example(ex, folder), ensure_ascii=False) for ex in examples]
    payload = "".join(line + "\n" for line in lines)
    atomic_write_text(out, payload)
    return out


def split_validation(
    examples: Sequence[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Carve a deterministic validation split; both parts keep the original order.

    The validation part has `round(len * fraction)` examples, at least one when `fraction > 0`,
    and the training part is never left empty.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"validation fraction {fraction} is out of range; expected 0 <= fraction < 1")
    n = len(examples)
    n_val = round(n * fraction)
    if fraction > 0:
        n_val = max(n_val, 1)
    if n_val >= n:
        if fraction > 0 and n < 2:
            raise DataError(
                f"cannot carve a validation split from {n} example(s); expected at least 2 examples "
                "or a validation fraction of 0"
            )
        n_val = n - 1
    order = list(range(n))
    random.Random(seed).shuffle(order)
    val_idx = set(order[:n_val])
    train = [ex for i, ex in enumerate(examples) if i not in val_idx]
    val = [ex for i, ex in enumerate(examples) if i in val_idx]
    return train, val


def _read_text(file: Path) -> str:
    if not file.exists():
        raise DataError(f"{file}: no such file; expected a JSONL dataset (one {{\"prompt\", \"answer\"}} object per line)")
    if not file.is_file():
        raise DataError(f"{file}: is not a file; expected a JSONL dataset file")
    raw = file.read_bytes()
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not part of the data
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DataError(f"{file}:{line}: is not UTF-8 text (byte {err.start}); expected a UTF-8 JSONL file "
                        "(save it as UTF-8)") from None


def _warn_near_misses(file: Path, lineno: int, row: dict) -> None:
    """A field spelled almost like a row field ("imag", "images") is said once per file: the row trained without
    its picture in silence. Other extra fields (a row's own metadata) are kept quiet and ignored."""
    for key in row:
        if key in ROW_FIELDS or key == "messages" or (str(file), key) in _said_near:
            continue
        near = [k for k in difflib.get_close_matches(key, ROW_FIELDS, n=1, cutoff=0.7) if k not in row]
        if near:
            _said_near.add((str(file), key))
            log.warning('%s:%d: field "%s" is not a row field (did you mean "%s"?); it is ignored (a row holds %s)',
                        file, lineno, key, near[0], ", ".join(ROW_FIELDS))


def _parse_row(file: Path, lineno: int, line: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        hint = _ROW_HINT
        if file.suffix.lower() in (".csv", ".tsv", ".json") and lineno == 1:
            # A spreadsheet export or one JSON array: name the format read, not only the JSON error.
            hint += (f"; {file.suffix} files are not read: rows are JSONL, one JSON object per line "
                     "(pandas: df.to_json(path, orient='records', lines=True))")
        raise DataError(f"{file}:{lineno}: invalid JSON ({err.msg}: column {err.colno}); {hint}") from None
    except RecursionError:  # a field nested thousands deep: Python's decoder gives up (it was a traceback)
        raise DataError(f"{file}:{lineno}: a value is nested too deeply to read; {_ROW_HINT}") from None
    except ValueError as err:  # a number with more digits than Python converts
        raise DataError(f"{file}:{lineno}: {err}; {_ROW_HINT}") from None
    if not isinstance(row, dict):
        raise DataError(f"{file}:{lineno}: the row is a JSON {type(row).__name__}, not an object; {_ROW_HINT}")
    return row


def _example_from_row(
    file: Path, lineno: int, row: dict, index: int, require_answer: bool, checked_images: set[Path]
) -> Example:
    prompt = _string_field(file, lineno, row, "prompt", required=True)
    if not prompt.strip():  # as `infer --prompt ""` and the server refuse it: answered, it scored as any row
        raise DataError(f'{file}:{lineno}: field "prompt" is empty; expected the text the model answers')
    answer = _string_field(file, lineno, row, "answer", required=require_answer)
    return Example(
        prompt=prompt,
        answer=answer if answer is not None else "",
        id=_id_field(file, lineno, row, index),
        image=_image_field(file, lineno, row, checked_images),
        source=f"{file}:{lineno}",
    )


def _string_field(file: Path, lineno: int, row: dict, key: str, *, required: bool) -> str | None:
    if key not in row:
        if required and "messages" in row:
            raise DataError(f'{file}:{lineno}: a chat row ("messages"); expected one prompt and its answer per row, '
                            f'{{"prompt": <the user turn>, "answer": <the assistant turn>}}')
        if required:
            raise DataError(f'{file}:{lineno}: missing field "{key}"; {_ROW_HINT}')
        return None
    value = row[key]
    if not isinstance(value, str):
        raise DataError(
            f'{file}:{lineno}: field "{key}" is {json_type(value)}; expected a string'
        )
    at = lone_surrogate(value)
    if at is not None:  # "\ud800" in JSON: half of a character (an emoji cut in two); no tokenizer takes it
        raise DataError(f'{file}:{lineno}: field "{key}" holds a lone surrogate ({value[at]!r} at character {at}), '
                        "half of a character that is not text on its own; expected whole characters")
    return value


def lone_surrogate(text: str) -> int | None:
    """Where `text` holds half of a character (U+D800-U+DFFF alone: an emoji cut in two, or bytes that were not
    UTF-8 on a command line), or None. No tokenizer takes one: it was a UnicodeEncodeError deep in a run."""
    return next((i for i, ch in enumerate(text) if "\ud800" <= ch <= "\udfff"), None)


def _id_field(file: Path, lineno: int, row: dict, index: int) -> str:
    if "id" not in row or row["id"] is None:
        return str(index)
    value = row["id"]
    # bool is an int subclass, but `true` as an id is almost certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f'{file}:{lineno}: field "id" is {json_type(value)}; expected a string or an integer')
    return str(value)


def _image_field(file: Path, lineno: int, row: dict, checked: set[Path]) -> str | None:
    if row.get("image") is None:
        return None
    value = row["image"]
    if not isinstance(value, str) or not value.strip():
        what = "is empty" if isinstance(value, str) else f"is {json_type(value)}"
        raise DataError(f'{file}:{lineno}: field "image" {what}; expected a path to an image file (or no "image" field)')
    if re.match(r"(?i)(data:|[a-z][a-z0-9+.-]*://)", value.strip()):  # the server takes these; a row does not
        shown = value if len(value) <= 60 else value[:45] + "…"
        raise DataError(f'{file}:{lineno}: image "{shown}" is a URL; expected the path of a picture file on this '
                        "machine, relative to the JSONL file's folder or absolute (save the picture and name its file)")
    image = Path(value).expanduser()
    if not image.is_absolute():
        image = file.parent / image
    image = image.resolve()
    if image not in checked:
        _verify_image(file, lineno, value, image)
        checked.add(image)
    return str(image)


def _verify_image(file: Path, lineno: int, value: str, image: Path) -> None:
    found = image_problem(image)
    if found is not None:
        problem, expected = found
        if expected != PICTURE_FILE:  # the file is found and read: what it should be is all there is to say
            raise DataError(f'{file}:{lineno}: image "{value}" {problem}; expected {expected}')
        where = " (looked for {})".format(image) if not image.exists() else ""
        raise DataError(f'{file}:{lineno}: image "{value}" {problem}{where}; expected a path relative to the JSONL '
                        f"file's folder or an absolute path, to {PICTURE_FILE}")


# Qwen's processors refuse a picture whose long side is more than this many times its short side.
MAX_ASPECT_RATIO = 200


PICTURE_FILE = "a PNG, JPEG or other picture PIL reads"


def image_problem(image: Path) -> tuple[str, str] | None:
    """What keeps `image` from being a row's picture (missing, a folder, undecodable, too long and thin) and
    what it should be instead, or None."""
    if not image.exists():
        return "does not exist", PICTURE_FILE
    if not image.is_file():
        return "is a folder, not an image file", PICTURE_FILE
    try:
        with Image.open(image) as img:
            width, height = img.size
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return f"cannot be decoded ({err})", PICTURE_FILE
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        return (f"is {width}×{height}, more than {MAX_ASPECT_RATIO} times as long as it is wide, which Qwen's "
                f"processors refuse", f"a picture at most {MAX_ASPECT_RATIO} times as long as it is wide (crop it, "
                "or pad its short side)")
    return None


def _row_from_example(example: Example, folder: Path) -> dict:
    # An Example made without an id is written without one (read back, it gets its line's): "id": "" on
    # every row was refused on reading as a duplicate id.
    row: dict = ({"id": example.id} if example.id else {}) | {"prompt": example.prompt, "answer": example.answer}
    if example.image is not None:
        image = Path(example.image).resolve()
        row["image"] = image.relative_to(folder).as_posix() if image.is_relative_to(folder) else str(image)
    return row


def json_type(value: object) -> str:
    """What JSON calls `value`'s kind, with its article ("a number", "an object", "null"), for messages about a
    value a user wrote."""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return "null" if value is None else names.get(type(value), f"a {type(value).__name__}")
