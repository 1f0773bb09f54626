"""Progress bars: tqdm's on a terminal, plain lines in a log.

tqdm redraws its bar with carriage returns, which a log file (a compare worker's log, CI, `nohup`)
keeps as one ever-growing line. Where the stream is not a terminal, `progress_bar` returns
`LogProgress` instead: the same calls, and one line per tenth of the work, plus the last, and a line
whenever the work moved and the last line is `LogProgress.every` seconds old (a 156-run comparison's
log was otherwise silent for its first 15 minutes).
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any, Iterable, Iterator


def progress_bar(*, total: int | None = None, desc: str = "", initial: int = 0, unit: str = "it",
                 file: IO[str] | None = None, **tqdm_options: Any):
    """A tqdm bar on a terminal; elsewhere a `LogProgress` with the same `update`, `set_postfix`,
    `set_postfix_str`, `set_description`, `n` and `close`."""
    stream = file if file is not None else sys.stderr
    if is_terminal(stream):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, initial=initial, unit=unit, file=stream, **tqdm_options)
    return LogProgress(total=total, desc=desc, initial=initial, unit=unit, file=stream)


def quiet_loading_off_terminal() -> None:
    """Turn transformers' "Loading weights" bar off where stderr is a log, not a terminal (a command-line
    entry point calls this once; a program that imports artstudio keeps its own settings)."""
    if not is_terminal(sys.stderr):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def progress_iter(items: Iterable, *, desc: str, total: int | None = None) -> Iterator:
    """Iterate `items` with a progress bar."""
    items = list(items) if total is None else items
    bar = progress_bar(total=len(items) if total is None else total, desc=desc)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()


class LogProgress:
    """Progress written as whole lines: `compare: 30/100 runs (30%), 12 s elapsed, ≈ 28 s left`."""

    every = 300.0  # seconds: the longest a log waits for a line while the work moves

    def __init__(self, *, total: int | None, desc: str, initial: int = 0, unit: str = "it", file: IO[str]):
        self.total, self.desc, self.n, self.unit, self.file = total, desc, initial, unit, file
        self.postfix = ""
        self._start = time.monotonic()
        self._shown = self._tenth()  # the work already done at the start (a resumed run) is not news
        self._written: int | None = None  # `n` at the last line
        self._last = self._start  # when the last line was written (or the bar began)
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        tenth = self._tenth()
        if tenth != self._shown:
            self._shown = tenth
            self._write()
        elif n and time.monotonic() - self._last >= self.every:
            self._write()

    def set_postfix(self, values: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in {**(values or {}), **kwargs}.items())

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = text

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def close(self) -> None:
        if not self._closed and self._written != self.n:
            self._write()
        self._closed = True

    def _tenth(self) -> int | None:
        return int(10 * self.n / self.total) if self.total else None

    def _write(self) -> None:
        elapsed = time.monotonic() - self._start
        units = self.unit if self.unit == "it" else self.unit + "s"
        done = f"{self.n}/{self.total} {units}" if self.total else f"{self.n} {units}"
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        tail = f", {self.postfix}" if self.postfix else ""
        try:
            print(f"{self.desc}: {done}{share}, {elapsed:.0f} s elapsed{tail}", file=self.file, flush=True)
        except (OSError, ValueError):  # a closed log: progress is not worth failing the run for
            pass
        self._written, self._last = self.n, time.monotonic()


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
