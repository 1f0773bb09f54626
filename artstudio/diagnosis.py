"""Telling a stuck run, a run that cannot fit its task and an unfinished run from a finished one.

`artstudio train` prints the verdict in its summary, writes it to `result.json` (`diagnosis`,
`diagnosis_kind`) and `metrics.jsonl`, and the app's Train page shows it beside the accuracy.

The rules were read off the 39 ART runs of the held-out comparison (13 tasks × 3 seeds, 300 steps;
docs/robust.md):

- **stuck**: the three stuck runs (sub-answer, 19-24 %, the model answering in a format it already
  knows) ended with a flat training loss of 0.8. A run is stuck when the mean loss of its last fifth
  is at least `STUCK_LOSS` and it fell by less than `FLAT` (relative) over the fifth before, unless it
  answers `FITS` of its own training rows (measured as below).
- **cannot fit**: the 36 runs of the other tasks ended at a loss of 0.018 or below and answer 94-100 %
  of their own training rows; word-problems-json ended flat at 0.07-0.08 and its canvases answer only
  78-83 % of their OWN training rows (test 72-84 %), with a 288 px canvas, 600 steps or the
  after-text placement alike. So when the last fifth's loss is at least
  `FIT_CHECK_LOSS`, the run answers `FIT_ROWS` of its training rows at the end; below `FITS` it is
  told apart from a run that fits but does not generalise.
- **unfinished**: the same, but the loss is still falling: more steps. A run under `SHORT_RUN` steps
  whose loss fell by more than `FLAT` over its last three fifths is unfinished, not stuck (its fifths
  are a few noisy steps). A run that answers too few of its training rows is unfinished, not unable to
  fit, when its loss fell by `STILL_FALLING` or more over its last three fifths though its last fifth was
  flat (as the cosine schedule's rate ends at a tenth of its peak): first-json at 200 steps × batch 8
  fell 37-40 % there, answered 78-80 % of its training rows, and fits at 300 × 16 (94-100 % on test);
  word-problems-json's flat runs fell 17 % or rose.
A loss that is still falling is never called stuck. A learning rate `LR_FAR` times off the method's
default is named first in what to try.

A GRPO run is judged by `diagnose_grpo` instead: its loss is 0 whenever every advantage is, so the share
of groups whose completions all got the same reward (`frac_zero_std`) tells a run with nothing to learn from.
"""

from __future__ import annotations

from dataclasses import dataclass

STUCK_LOSS = 0.3  # final-window mean loss at or above which a flat run is stuck (0.8 stuck vs <= 0.10 learnt)
FLAT = 0.1  # relative fall over the window before, below which the curve counts as flat
MIN_STEPS = 20
SHORT_RUN = 100  # fewer steps: a verdict adds that the run was short
FIT_CHECK_LOSS = 0.03  # final-window loss from which a run answers its own training rows (learnt runs: <= 0.018)
FIT_ROWS = 64  # training rows answered (greedy) for that check
LR_FAR = 30  # a learning rate this many times off the method's default is named in the verdict
STILL_FALLING = 0.25  # fall over the last three fifths from which a flat last fifth is a decayed rate, not a limit
FITS = 0.9  # training accuracy below which a run does not fit its task (word-problems-json: 0.78-0.83; the rest >= 0.94)


@dataclass(frozen=True)
class Diagnosis:
    kind: str  # "stuck" | "cannot-fit" | "unfinished"
    text: str

    TITLES = {"stuck": "Looks stuck.", "cannot-fit": "Cannot fit the task.", "unfinished": "Unfinished."}

    @property
    def title(self) -> str:
        return self.TITLES[self.kind]


def loss_windows(losses: list[float]) -> tuple[int, float, float, float] | None:
    """(window, mean of the first, of the one before last and of the last fifth) of a loss curve."""
    losses = [v for v in losses if v is not None]
    if len(losses) < MIN_STEPS:
        return None
    w = max(2, len(losses) // 5)
    return w, sum(losses[:w]) / w, sum(losses[-2 * w:-w]) / w, sum(losses[-w:]) / w


def _fall(before: float, tail: float) -> float:
    """How much the loss fell from `before` to `tail`, relative to `before` (0 when `before` is not positive)."""
    return (before - tail) / before if before > 0 else 0.0


def _flat(before: float, tail: float) -> bool:
    return before > 0 and _fall(before, tail) < FLAT


def _is_stuck(before: float, tail: float) -> bool:
    return tail >= STUCK_LOSS and _flat(before, tail)


def needs_fit_check(losses: list[float]) -> bool:
    """Whether the curve ends high enough that the run's answers on its own training rows are worth measuring
    (a flat, high curve too: a run that answers its rows is not stuck, whatever its loss)."""
    windows = loss_windows(losses)
    if windows is None:
        return False
    return windows[3] >= FIT_CHECK_LOSS


def diagnose(losses: list[float], *, paints: bool, starts: int = 1, train_accuracy: float | None = None,
             train_n: int = 0, lr: float | None = None, default_lr: float | None = None) -> Diagnosis | None:
    """What looks wrong with a finished run and what to try, or None when nothing does.

    `train_accuracy` is the run's accuracy on `train_n` of its own training rows (measured when
    `needs_fit_check`); without it only a stuck run is told. A learning rate `lr` far from the method's
    `default_lr` is named first in what to try.
    """
    verdict = _diagnose(losses, paints, starts, train_accuracy, train_n)
    if verdict is None or not lr or not default_lr:
        return verdict
    ratio = lr / default_lr
    if 1 / LR_FAR <= ratio <= LR_FAR:
        return verdict
    far = f"{1 / ratio:,.0f}× below" if ratio < 1 else f"{ratio:,.0f}× above"
    return Diagnosis(verdict.kind, f"{verdict.text} First, though: its learning rate {lr:g} is {far} the method's "
                                   f"default {default_lr:g}; try the default (leave out --lr).")


def _diagnose(losses, paints, starts, train_accuracy, train_n) -> Diagnosis | None:
    windows = loss_windows(losses)
    if windows is None:
        return None
    w, start, before, tail = windows
    # The rules were read off 300-step runs; on a short run a flat stretch may only be a slow start.
    values = [v for v in losses if v is not None]
    n = len(values)
    short = (f" This run had only {n} steps (the rules behind this verdict come from 300-step runs): try more "
             "--steps first." if n < SHORT_RUN else "")
    # On a short run two flat fifths may be a few noisy steps of a curve still falling: a 30-step LoRA run
    # from 10.9 to 5.6 was called stuck, and reached 94 % at 100 steps. There the plateau must span the
    # fifth before those two as well.
    third = values[-3 * w:-2 * w]
    earlier = sum(third) / len(third)
    still_learning = n < SHORT_RUN and not _flat(earlier, tail)
    if _is_stuck(before, tail):
        if train_accuracy is not None and train_accuracy >= FITS:
            # Its loss stayed high, but its greedy answers are right (a 30-step run on a task of one's own: loss
            # flat above 0.3, 90 % of its test rows): the loss counts tokens the answers do not turn on.
            return None
        if still_learning:
            return Diagnosis("unfinished", f"the loss fell from {start:.2f} to {tail:.2f} in only {n} steps, by "
                                           f"{_fall(earlier, tail):.0%} over its last three fifths, and is still "
                                           "high: the run is unfinished; more --steps should help.")
        return Diagnosis("stuck", _stuck_text(w, start, tail, paints, starts) + short)
    if train_accuracy is None or train_accuracy >= FITS:
        return None
    fits = f"the run answers {train_accuracy:.1%} of {train_n} of its own training rows"
    fell = _fall(earlier, tail)
    if not _flat(before, tail) or still_learning or fell >= STILL_FALLING:
        if not _flat(before, tail):
            how = f"its loss is still falling ({before:.3f} -> {tail:.3f} over the last two fifths of the run)"
        elif still_learning:
            how = f"its loss fell from {earlier:.3f} to {tail:.3f} over the last three fifths of only {n} steps"
        else:
            how = (f"its loss fell by {fell:.0%} over the last three fifths of the run ({earlier:.3f} -> {tail:.3f}), "
                   "flat only in its last fifth")
        return Diagnosis("unfinished", f"{fits} and {how}: it is unfinished; more --steps should help.")
    said = (f"{fits} and its loss stopped falling at {tail:.3f}: it cannot fit the task, which is not the same as "
            "fitting it and failing on new prompts.")
    if not paints:
        return Diagnosis("cannot-fit", f"{said} Try another learning rate (artstudio tune), more steps, or a method "
                                       "with more capacity (LoRA, or a larger rank)." + short)
    first = ""
    if starts <= 1:  # a poor start ends here too, below the stuck level
        first = ("A canvas from a poor start ends here too: try --starts 2 first (sub-answer with a 192 px canvas "
                 "from grey answered 22 % of its training rows, with two starts 98 % of its test rows). ")
    return Diagnosis("cannot-fit", f"{said} {first}A canvas steers skills the frozen model has and teaches new ones "
                                   "poorly: on studio-tiny's word-problems-json a canvas answers 78-83 % of its training "
                                   "rows, and neither a 288 px canvas, 600 steps, the after-text placement nor 30 tuning "
                                   "trials lifted it, where LoRA reaches 100 %. Try --method lora, or a larger model "
                                   "(README, limits)." + short)


PARTIAL_CREDIT_REWARDS = ("numeric", "json-tool-call")  # built-in rewards that credit near misses
GRPO_FLAT_GROUPS = 0.9  # mean frac_zero_std over the last half at or above which a GRPO run had (almost) no signal
GRPO_MIN_STEPS = 5


def grpo_flat_groups(history: list[dict]) -> tuple[int, float, float] | None:
    """(steps in the last half, their mean `frac_zero_std`, their mean reward) of a GRPO run, or None when it is
    too short to judge. `frac_zero_std` is the share of groups whose completions all got the same reward."""
    steps = [h for h in history if isinstance(h.get("frac_zero_std"), (int, float))]
    if len(steps) < GRPO_MIN_STEPS:
        return None
    half = steps[len(steps) // 2:]
    return (len(half), sum(h["frac_zero_std"] for h in half) / len(half),
            sum(float(h.get("reward_mean") or 0.0) for h in half) / len(half))


def needs_grpo_fit_check(history: list[dict]) -> bool:
    """Whether a GRPO run's groups were rewarded alike often enough that its answers on its own training rows
    must tell a stuck run (every completion wrong) from a solved one (every completion right)."""
    flat = grpo_flat_groups(history)
    return flat is not None and flat[1] >= GRPO_FLAT_GROUPS


def diagnose_grpo(history: list[dict], *, train_accuracy: float | None = None, reward: str = "") -> Diagnosis | None:
    """A GRPO run whose groups were rewarded alike, or None. Its loss says nothing here (with every advantage
    zero it is 0); `frac_zero_std` does: at 1 every advantage is zero and nothing trains (sub-answer from grey
    at 20 and 40 steps: frac_zero_std 1.000, reward 0.010, the canvas still uniform grey; LoRA from the base
    model at 30 steps: 0.925, reward 0.010, 0 %). Groups are alike as well when every completion is right: a run
    that answers `FITS` of its own training rows (`train_accuracy`) is solved, not stuck (a run from an SFT
    artwork at 100 % was told to start from an SFT artwork). `reward` is the reward the run trained on: the
    advice on partial credit depends on whether it already gives some."""
    flat_groups = grpo_flat_groups(history)
    if flat_groups is None or flat_groups[1] < GRPO_FLAT_GROUPS:
        return None
    if train_accuracy is not None and train_accuracy >= FITS:
        return None
    n, flat, mean_reward = flat_groups
    return Diagnosis("stuck", (
        f"in the last {n} steps {flat:.0%} of the groups gave every completion the same reward (mean reward "
        f"{mean_reward:.3f}), so their advantages were zero and the run learnt {'nothing' if flat >= 0.999 else 'little'}: "
        "GRPO learns only from differences in reward within a group. Start from a run that already answers some rows "
        "(SFT first, then --init RUN/artwork.png; docs/grpo.md), sample more or more varied completions "
        f"(--grpo-group-size, --grpo-temperature){_partial_credit_tip(reward, mean_reward)}."))


def _partial_credit_tip(reward: str, mean_reward: float) -> str:
    """The end of the GRPO advice: how to give partial credit, unless the run's reward already gives some (it
    told a run trained on "numeric*0.8+format*0.2" to try "numeric*0.8+format*0.2")."""
    spec = (reward or "").strip()
    if "+" in spec or spec in PARTIAL_CREDIT_REWARDS:
        if mean_reward < 0.05:
            return (f". The reward ({spec}) already gives partial credit and almost no completion earned any: "
                    "the run is far from the answers, so start from SFT")
        return f". The reward ({spec}) already gives partial credit, and it still rewarded a group's completions alike"
    if ":" in spec and not spec.startswith("format:"):  # the user's own function: it was told to write one
        return (f", or make your reward ({spec}) score near misses between 0 and 1 if it does not: a group rewarded "
                "alike teaches nothing")
    return (", or give partial credit: a reward of your own that scores near misses "
            "(--grpo-reward my_reward.py:function, values in [0, 1]; docs/grpo.md)")


def _stuck_text(w: int, start: float, tail: float, paints: bool, starts: int) -> str:
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
