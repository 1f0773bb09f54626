"""`python -m artstudio ...` is the `artstudio` command."""

from artstudio.cli import run

run()
