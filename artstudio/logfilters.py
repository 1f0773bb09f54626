"""Rewording and thinning the warnings a run prints, for as long as a `with` block lasts.

A run nested in another (a start inside `train`, a trial inside a study, an artwork a server loads
from a request) would otherwise say what its caller already said, or name files its user never made.
`rewording(loggers, ...)` adds one `Reword` filter to the named loggers and takes it off again.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterable, Iterator


class Reword(logging.Filter):
    """Replaces words in each record (`replace`: old → new), drops records whose format string starts
    with one of `drop`, and with `once` passes each warning's text only the first time."""

    def __init__(self, *, replace: dict[str, str] | None = None, drop: Iterable[str] = (), once: bool = False):
        super().__init__()
        self.replace, self.drop, self.once = dict(replace or {}), tuple(drop), once
        self.said: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.drop and str(record.msg).startswith(self.drop):
            return False
        for old, new in self.replace.items():
            if isinstance(record.msg, str) and old in record.msg:  # in the format string: keep it a format
                record.msg = record.msg.replace(old, new)
            elif old in record.getMessage():  # in an argument: the record becomes its text
                record.msg, record.args = record.getMessage().replace(old, new), ()
        if self.once and record.levelno >= logging.WARNING:
            text = record.getMessage()
            if text in self.said:
                return False
            self.said.add(text)
        return True


@contextmanager
def rewording(loggers: Iterable[str], **reword) -> Iterator[Reword]:
    """`Reword(**reword)` on each named logger inside the block (records logged on that logger itself)."""
    filt, named = Reword(**reword), [logging.getLogger(name) for name in loggers]
    for logger in named:
        logger.addFilter(filt)
    try:
        yield filt
    finally:
        for logger in named:
            logger.removeFilter(filt)
