"""`python -m artstudio.comparison.worker CONFIG.json K N CLAIMS`: worker K of N of a `compare --workers N`.

A module of its own: run as `-m artstudio.comparison.harness`, the harness was imported twice (once by the
package, once as __main__) and every worker's log began with runpy's warning about it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import Terminated
from ..progress import quiet_loading_off_terminal
from .config import _coerce
from .harness import _Comparison


def main(argv: list[str]) -> int:
    quiet_loading_off_terminal()  # the log: no "Loading weights" bar redrawn with carriage returns
    spec, k, n, claims = Path(argv[0]), int(argv[1]), int(argv[2]), Path(argv[3])
    config = _coerce(None, json.loads(spec.read_text()) | {"workers": 1})
    try:
        _Comparison(config, None, None).run_share(k, n, claims)
    except (Terminated, KeyboardInterrupt) as stop:  # the parent's Ctrl-C or stop: a line in the log, no traceback
        print(f"worker {k} stopped; its finished cells are kept", file=sys.stderr)
        return 143 if isinstance(stop, Terminated) else 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
