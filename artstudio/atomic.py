"""Atomic file writes: every checkpoint, export and dataset is written to a temporary file in the
target's folder, flushed to disk and renamed over the target, so a killed process never leaves a
torn file behind (DESIGN §6). One implementation for the whole package; beside it, the checks of an
--out folder and the lenient reader of JSON records the package wrote."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator


def output_folder(path: str | os.PathLike, option: str = "--out") -> Path:
    """`path`, created as a folder; a file already there is a ConfigError naming the option."""
    from .errors import ConfigError

    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{option} {out} is a file; expected a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def json_default(value: object) -> str:
    """How a run's records write what JSON has no type for: a function as `module:qualname`, the same text
    in every process (its repr holds a memory address, so a resume or a comparison's cell key would never
    match again); anything else as its text."""
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', None) or '?'}:{value.__qualname__}"
    return str(value)


def read_json_object(path: str | os.PathLike) -> dict:
    """A JSON object file as a dict; {} where it is missing, unreadable or not an object (records a command only
    adds to or shows, never ones it must trust: those say what is wrong)."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


# What each verb keeps at the top of its --out, by a file only that verb writes there.
OUTPUT_KINDS = {"config.json": "a run", "compare_config.json": "a comparison", "study.json": "a tuning study"}
# Folders no verb's --out should share: an evaluation's, a task's data, a run's saved method (its final/).
OTHER_FOLDERS = {"predictions.jsonl": "an evaluation", "train.jsonl": "a task's data",
                 "test.jsonl": "a task's data", "method.json": "a run's saved method"}


def check_output_kind(out: str | os.PathLike, own: str, option: str = "--out") -> None:
    """Refuse an output folder that holds another verb's results (`own` is this verb's file in OUTPUT_KINDS):
    a comparison written into a run folder, or a study into a comparison, mixed both their files."""
    from .errors import ConfigError

    folder = Path(out).expanduser()
    kinds = OUTPUT_KINDS | OTHER_FOLDERS
    mine = {marker for marker, what in kinds.items() if what == kinds[own]}  # a task's data: train and test
    for marker, what in kinds.items():
        if marker not in mine and (folder / marker).is_file():
            raise ConfigError(f"{option} {folder} holds {what} ({marker}), not {kinds[own]}; their files would "
                              f"mix: choose another folder")


def check_file_target(out: str | os.PathLike, what: str, option: str = "-o") -> None:
    """Refuse a path for one file (`what`, e.g. "a PNG artwork") that names a folder: one ending in a slash (it
    wrote a file `x.png` for `-o x.png/`), or one whose parent is a file (said as "File exists")."""
    from .errors import ConfigError

    text = os.fspath(out)
    if text.endswith(("/", os.sep)):
        raise ConfigError(f"{option} {text} ends in a slash, which names a folder; this output is {what}: pass "
                          f"{option} {text.rstrip('/' + os.sep)}")
    for parent in Path(text).expanduser().parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {text}: {parent} is a file, not a folder")
            break


def check_only_own(out: str | os.PathLike, *, marker: str, own: Iterable[str], what: str, writes: str,
                   prefixes: tuple[str, ...] = (), elsewhere: str = "another --out") -> None:
    """Refuse an output folder that holds no `marker` (the verb's record of itself, e.g. a run's config.json)
    but holds files of someone else's: anything but hidden entries, the names in `own` and names starting with
    one of `prefixes`. `train --out /` wrote a run into the root folder, and a folder of one's own notes got a
    run's files mixed into it; a folder the verb wrote, or a new or empty one, is taken."""
    from .errors import ConfigError

    folder, own = Path(out).expanduser(), set(own)
    if not folder.is_dir() or (folder / marker).exists():
        return
    foreign = sorted(name for name in os.listdir(folder)
                     if not name.startswith(".") and name not in own and not (prefixes and name.startswith(prefixes)))
    if foreign:
        raise ConfigError(f"{folder} holds files that are not {what} ({', '.join(foreign[:3])}"
                          f"{', …' if len(foreign) > 3 else ''}), which writes {writes} there; choose {elsewhere} "
                          "(a new or empty folder)")


def check_free(out: str | os.PathLike, overwrite: bool, *, names: tuple[str, ...] = ()) -> None:
    """Refuse to write over what a user already has, unless `overwrite` (DESIGN §6: nothing a user has is lost silently).

    Without `names`, `out` is the output itself and must not exist (an empty folder is free); with them,
    `out` is a folder and only those files in it are what would be replaced."""
    from .errors import ConfigError

    target = Path(out).expanduser()
    if names and target.exists() and not target.is_dir():
        raise ConfigError(f"{target} is a file; this output is a folder (it gets {', '.join(names)}): choose a "
                          "folder path")
    if overwrite:
        return
    if names:
        taken = [n for n in names if (target / n).exists()]
        if taken:
            raise ConfigError(f"{target} already holds {', '.join(taken)}; pass --overwrite (overwrite=True in "
                              f"Python) to replace {'it' if len(taken) == 1 else 'them'}, or choose another folder")
    elif target.exists() and not (target.is_dir() and not any(target.iterdir())):
        raise ConfigError(f"{target} already exists; pass --overwrite (overwrite=True in Python) to replace it, "
                          "or choose another output")


def check_writable(out: str | os.PathLike) -> None:
    """Raise the system's error (PermissionError, ...) for an output that cannot be written, before the work
    that makes it: `eval --out` into a read-only folder generated every answer first. The nearest folder that
    exists is tried with a file made and removed there; what is missing below it is created later."""
    target = Path(out).expanduser()
    folder = target
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():  # a file in the way: making the folder says so, as before
        return
    os.unlink(_temp_file(folder, target, prefix=".artstudio-probe-"))


def _temp_file(folder: Path, target: Path, **names) -> str:
    """A new empty file in `folder` (`tempfile.mkstemp` names); the system's refusal names `target`, the file
    asked for, not the hidden temporary one."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, **names)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(target)) from None
    os.close(fd)
    return tmp


def entries(folder: str | os.PathLike) -> set[str] | None:
    """The names a folder holds, None where there is no folder: what a refused command must leave there."""
    folder = Path(folder).expanduser()
    return {p.name for p in folder.iterdir()} if folder.is_dir() else None


def remove_added(folder: str | os.PathLike, held: set[str] | None) -> None:
    """Undo what a refused command wrote, given `entries(folder)` from before it: the whole folder where
    there was none (`held` None), else every entry the folder did not hold."""
    folder = Path(folder).expanduser()
    if held is None:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for path in folder.iterdir() if folder.is_dir() else ():
        if path.name not in held:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_file(out.parent, out, prefix=f".{out.name}.", suffix=".tmp")
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates the file private (0600); the result gets the mode any new file would (umask).
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: setting it to read it is not thread-safe


def _umask() -> int:
    return _UMASK


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_save_file(tensors: dict, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """safetensors, atomically (tensors are detached, made contiguous and moved to CPU first)."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    return Path(path)
