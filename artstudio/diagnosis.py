"""Telling a stuck run from a finished one, from its loss curve alone.

`artstudio train` prints the verdict in its summary, writes it to `result.json` (`diagnosis`) and
`metrics.jsonl`, and the app's Train page shows it beside the accuracy.

The rule was read off the 39 ART runs of the held-out comparison (13 tasks × 3 seeds, 300 steps,
docs/results/t2c_art/art300.csv): the three stuck runs (sub-answer, 19-24 %, the model answering in
a format it already knows) ended with a flat training loss of 0.8; every run at 84 % or more ended
below 0.03, and the partly learnt word-problems-json (72-77 %) at 0.08-0.10. So a run is called stuck when the mean loss of its last fifth is at least 0.3 and it
fell by less than a tenth over the fifth before. A loss that is still falling is called unfinished,
never stuck.
"""

from __future__ import annotations

STUCK_LOSS = 0.3  # final-window mean loss at or above which a flat run is stuck (0.8 stuck vs <= 0.10 learnt)
FLAT = 0.1  # relative fall over the window before, below which the curve counts as flat
MIN_STEPS = 20


def diagnose(losses: list[float], *, paints: bool, starts: int = 1) -> str | None:
    """A sentence saying the run looks stuck and what to try, or None when it does not."""
    losses = [v for v in losses if v is not None]
    if len(losses) < MIN_STEPS:
        return None
    w = max(2, len(losses) // 5)
    tail = sum(losses[-w:]) / w
    before = sum(losses[-2 * w:-w]) / w
    if tail < STUCK_LOSS or before <= 0 or (before - tail) / before >= FLAT:
        return None
    start = sum(losses[:w]) / w
    said = (f"the loss plateaued at {tail:.2f} over the last {w} steps (it started at {start:.2f}): the run looks "
            "stuck, in a poor minimum or on a task the frozen model cannot do from its input alone.")
    if not paints:
        return said + " Try another learning rate (artstudio tune) or more steps."
    if starts <= 1:
        tips = ("Try --starts 2: canvases from other starts (the Text-to-Canvas artwork of the task's description "
                "where one fits), the best picked on a validation split; on studio-tiny it took sub-answer from "
                "22 % to 100 %. A larger --canvas-size or more --steps may also help.")
    else:
        tips = (f"All {starts} starts were tried and the best one still plateaued. That points at the task rather "
                "than the start: try a larger --canvas-size, more --steps, or compare with --method lora. A canvas "
                "steers skills the frozen model has and teaches new ones poorly (README, limits).")
    return f"{said} {tips}"
