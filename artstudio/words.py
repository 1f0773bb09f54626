"""Numbers in words for messages: `count(1, "task")` is "1 task", `count(3, "task")` "3 tasks"."""

from __future__ import annotations


def count(n: int, noun: str) -> str:
    """`1 task`, `2 tasks`, `0 tasks` (nouns with a regular plural: every message here uses one)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
