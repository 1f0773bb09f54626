"""Safe file handling for the web app: names, folder confinement and upload validation.

The app reads and writes only inside its configured folders (DESIGN §6), whatever a request names.
Every path a request can influence goes through `inside(root, relative)`, which resolves symlinks
and `..` and refuses anything that lands outside `root` (absolute paths included). Names a user
types (run names, gallery names) become file names through `safe_name`, which refuses a name with
`/`, `\\` or `..` and turns any other character than letters, digits, `.`, `_` and `-` into `-`
(spaces included: 'my run' is `my-run`).

Uploads are checked before anything reads them as data: a size limit, then a real decode (a PNG must
open as a PNG, with valid ArtStudio metadata when it has some; a JSONL file must parse, and errors
name the uploaded file's own name and line, not the server's temporary path).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from artstudio.errors import ArtStudioError, ArtworkError, DataError

DEFAULT_MAX_UPLOAD_MB = 20
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class PathRefused(ArtStudioError):
    """A request named a file outside the app's configured folders."""


NAME_MAX = 80


def safe_name(name: str, what: str = "name", *, derived: bool = False) -> str:
    """A file-system-safe version of a name a user typed ('My run 1' -> 'My-run-1').

    A typed name that looks like a path (a `/`, a `\\` or `..`) is refused, not rewritten: '../../etc'
    silently becoming 'etc' would put the run somewhere its owner did not ask for. `derived=True` is for
    names the app derives itself (an uploaded file's stem, a task's name), which are only cleaned."""
    text = (name or "").strip()
    if not derived and ("/" in text or "\\" in text or ".." in text):
        raise PathRefused(f"the {what} {text!r} looks like a path (a slash, a backslash or '..'); it must be a "
                          "plain name inside the app's folder: use letters, digits, '-', '_' or '.'")
    if not derived and len(text) > NAME_MAX:  # it was cut to 80 characters without a word
        raise ArtStudioError(f"the {what} is {len(text)} characters long; keep it to {NAME_MAX}")
    cleaned = _NAME_CHARS.sub("-", text).strip("-.")[:NAME_MAX]
    if not cleaned:
        raise ArtStudioError(f"the {what} {name!r} is empty once unsafe characters are removed; "
                             "use letters, digits, '-', '_' or '.'")
    return cleaned


def inside(root: str | Path, relative: str | Path) -> Path:
    """`root / relative`, resolved, or `PathRefused` when it would leave `root`."""
    base = Path(root).resolve()
    candidate = (base / relative).resolve()
    if not candidate.is_relative_to(base):
        raise PathRefused(f"{str(relative)!r} is outside the app's folder {base.name}/; "
                          "the app only reads and writes inside its configured folders")
    return candidate


EMPTY_JSONL = 'a training or test file holds one JSON object a line, like {"prompt": "3 4", "answer": "7"}'
EMPTY_PNG = "choose a PNG picture (an artwork exported by ArtStudio, or one saved from an image editor)"


def check_size(path: str | Path, max_mb: float, display: str, expected: str = "upload the file again, or another one") -> int:
    """Size of an uploaded file in bytes, or an error when it is missing or over `max_mb`; an empty
    file's message says what a file should hold (`expected`)."""
    file = Path(path)
    if not file.is_file():
        raise ArtStudioError(f"{display}: the upload did not arrive; try uploading it again")
    size = file.stat().st_size
    if size > max_mb * 1024 * 1024:
        raise ArtStudioError(f"{display} is {size / 2**20:.1f} MB; uploads are limited to {max_mb:g} MB")
    if size == 0:
        raise ArtStudioError(f"{display} is empty (0 bytes); {expected}")
    return size


def png_header_size(path: str | Path, display: str) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, read without decoding any pixels."""
    import struct

    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ArtworkError(f"{display} is not a PNG file (its first bytes are not a PNG header); "
                           "expected a lossless PNG exported by ArtStudio or saved from an image editor")
    width, height = struct.unpack(">II", head[16:24])
    if width == 0 or height == 0:
        raise ArtworkError(f"{display}: its header says {width}×{height} pixels; expected a picture")
    return width, height


def validate_png(path: str | Path, max_mb: float, display: str | None = None):
    """Decode an uploaded PNG and its metadata (an `Artwork`); errors name the upload, not the temp file."""
    from artstudio.artwork import read_artwork

    display = display or Path(path).name
    check_size(path, max_mb, display, EMPTY_PNG)
    try:
        return read_artwork(path)
    except ArtworkError as err:
        raise ArtworkError(str(err).replace(str(path), display)) from None


def validate_jsonl(path: str | Path, max_mb: float, display: str | None = None, *, require_answer: bool = True):
    """Parse an uploaded JSONL dataset (a list of `Example`); errors say `NAME:LINE: what was wrong`.

    Rows may not name an `"image"`: an uploaded file has no folder of pictures next to it, and a row
    naming one could otherwise make the app open any file on the server.
    """
    from artstudio.data import load_jsonl

    display = display or Path(path).name
    check_size(path, max_mb, display, EMPTY_JSONL)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{display}: is not UTF-8 text (byte {err.start}); expected a JSONL file") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue  # load_jsonl reports it with the line and column
        if isinstance(row, dict) and row.get("image") is not None:
            raise DataError(f"{display}:{lineno}: rows of an uploaded file cannot name an \"image\"; "
                            "train on tasks with pictures from the command line (`artstudio train --data FOLDER`)")
    try:
        return load_jsonl(path, require_answer=require_answer)
    except DataError as err:
        raise DataError(str(err).replace(str(path), display)) from None


def copy_into(src: str | Path, root: str | Path, relative: str) -> Path:
    """Copy an (already validated) upload to `root/relative`, refusing to leave `root`."""
    dest = inside(root, relative)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dest)
    return dest


def unique_path(root: str | Path, stem: str, suffix: str) -> Path:
    """`root/stem.suffix`, or `root/stem-2.suffix`, ... whichever does not exist yet."""
    candidate = inside(root, f"{stem}{suffix}")
    n = 2
    while candidate.exists():
        candidate = inside(root, f"{stem}-{n}{suffix}")
        n += 1
    return candidate
