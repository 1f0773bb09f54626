"""Several starts, the best continues: a canvas run that does not hang on its first minimum.

    artstudio train --data sub-answer --starts 2 --out runs/sub-answer     # ART's `starts` option

A canvas can fall into a poor minimum and stay there: on studio-tiny, sub-answer from a grey canvas
ends at 19-24 % in every seed (its loss plateaus near 0.8), while the same run started from the
Text-to-Canvas artwork of its description reaches 100 %; first-json is the other way round. With
`starts = K > 1` the run first trains K canvases from different starts for a short while
(`start_steps`, a fraction of the run's steps) on the training rows minus a validation split carved
from them, scores each on that split, and then runs the ordinary training from the best one:

1. the method's own initialisation (grey by default);
2. the artwork the shipped Text-to-Canvas hypernetwork paints from the task's description, where one
   fits the backbone (studio-tiny) and the task has a description;
3. noise, with a different seed per further start.

Each start is an ordinary run of the one training loop in `RUN/starts/<k>-<start>/` (its metrics,
artwork and validation predictions stay there to look at); `RUN/starts/choice.json` says which won
and why. The pick is the best validation accuracy, then the lowest final training loss. A resumed
run reuses the starts that finished. The cost is K × start_steps + 1 times a single run.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from pathlib import Path

from .atomic import atomic_write_text
from .backbone import named_model
from .canvas import init_names_a_picture
from .checkpoint import read_history
from .data import split_validation, write_jsonl
from .logfilters import rewording
from .errors import ConfigError

log = logging.getLogger("artstudio.starts")


class StartsStopped(Exception):
    """`should_stop` asked a run to stop while it trained its starts: none was chosen to go on from."""


STARTS_FOLDER = "starts"
CHOICE_FILE = "choice.json"  # in STARTS_FOLDER: which start won, and every start's validation score
VAL_MIN, VAL_MAX = 16, 64  # rows of the validation split (a tenth of the training rows within these)


def starts_of(config) -> tuple[int | None, float]:
    """(starts, start_steps) of a run: the method's options, or its config's defaults (None: decide by
    whether a Text-to-Canvas start fits)."""
    from .methods import get_method
    from .options import field_names

    method = get_method(config.method)
    cls = method.config_class
    if not method.trains or "starts" not in field_names(cls):
        return 1, 0.0
    defaults = cls()
    opts = config.method_options or {}
    k = opts.get("starts", defaults.starts)
    if k is None and init_names_a_picture(opts.get("init", defaults.init)):
        # The user named a picture to start from (`--init runs/sft/artwork.png`): train from it, try no others.
        # A made-up start (gray, noise, a colour; a tuned configuration names one) is the run's own start and
        # keeps the default starts: with one, tune compared a one-start tuned run against a two-start default.
        k = 1
    return (None if k is None else int(k)), float(opts.get("start_steps", defaults.start_steps))


def candidate_starts(config, backbone, card: dict, k: int) -> list[str]:
    """The K starts, in order: the method's own init, the T2C artwork where one applies, then noise."""
    own = str((config.method_options or {}).get("init", "gray"))
    starts = [own]
    if len(starts) < k and _t2c_fits(config, backbone, card):
        starts.append("t2c")
    while len(starts) < k:
        starts.append("noise")
    return starts


_FITS: list = [None, None]  # [the backbone last asked about, the shipped T2C's canvas size for it or None]


def _t2c_fits(config, backbone, card: dict) -> bool:
    """Whether the shipped T2C paints for this backbone and a task with a description."""
    if not str(card.get("description") or "").strip():
        return False
    if _FITS[0] is not backbone:
        from .hyper.base import Hypernetwork
        from .hyper.generate import DEFAULT_HYPER, resolve_hyper_folder

        try:
            folder = resolve_hyper_folder(DEFAULT_HYPER)
            side = int(Hypernetwork.read_meta(folder)["target"]["canvas_size"])
            Hypernetwork.from_pretrained(folder, backbone)  # refuses a backbone it was not trained for
        except (ConfigError, OSError, KeyError, ValueError) as err:
            log.info("no Text-to-Canvas start: %s", err)
            side = None
        _FITS[:] = [backbone, side]  # one slot: never keeps an old backbone alive
    # Any canvas size: t2c+art starts another size from the painting resized (sub-answer at 192 px: 99.0 %
    # from it against 12.0 % from grey; baselines/t2c.py, docs/robust.md).
    return _FITS[1] is not None


def _finished(folder: Path, steps: int, sub=None, digest: str | None = None) -> dict | None:
    """The metrics of a start run that trained all its `steps` and exported its artwork, else None.

    With `sub` (the start's config now) and `digest` (its training rows'), a start trained with other
    options or rows counts as unfinished: a run interrupted during its starts and resumed with another
    --lr or --data once picked from starts of the old options."""
    result = folder / "result.json"
    if not (result.is_file() and (folder / "artwork.png").is_file()):
        return None
    try:
        metrics = json.loads(result.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if metrics.get("stopped") or metrics.get("steps") != steps:
        return None
    if sub is not None and _trained_as(folder) != _as_trained(sub, digest):
        return None
    return metrics


_NOT_TRAINING = ("out", "resume", "overwrite", "device")


def _as_trained(sub, digest: str | None) -> dict:
    """What decides a start's canvas: its options (JSON as config.json holds them) and its rows' digest."""
    from .atomic import json_default
    from .training import config_record

    return _training_part(json.loads(json.dumps(config_record(sub), default=json_default)), digest)


def _trained_as(folder: Path) -> dict | None:
    """The same for the start trained in `folder`, from its config.json (None: none readable)."""
    try:
        saved = json.loads((folder / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(saved, dict):
        return None
    saved = named_model(saved)
    return _training_part(saved, (saved.pop("resolved", None) or {}).get("train_digest"))


def _training_part(config: dict, digest: str | None) -> dict:
    return {k: v for k, v in config.items() if k not in _NOT_TRAINING} | {"train_digest": digest}


def choose_start(config, out: Path, backbone, rows: list, card: dict, progress: bool = True, should_stop=None,
                 on_start=None):
    """Train the run's starts briefly and pick the best on a validation split. Returns the config that
    trains from it (its `init` the winner's artwork) and the choice, or `(config, None)` for one start.
    `on_start(event)` hears each start's steps: `{"start", "index", "starts", "start_step", "start_steps"}`."""
    from .distributed import Processes
    from .training import rows_digest, train

    k, fraction = starts_of(config)
    if k is None:  # the default: two starts where the T2C start (measured to pay on studio-tiny) fits
        k = 2 if _t2c_fits(config, backbone, card) else 1
        if k == 1 and not config.resume and _t2c_fits(config, backbone, {"description": "any"}):
            # (a resume trains no starts: said when the run began, the advice would only repeat)
            log.warning("task %s has no description (card.json's \"description\"), so the run trains from its one "
                        "start; with a description it also tries the artwork the shipped Text-to-Canvas paints from "
                        "it (on studio-tiny's sub-answer: 100 %% from it, 19-24 %% from grey; docs/robust.md). --starts 2 tries a "
                        "noise start instead; --starts 1 trains the one start without this warning",
                        card.get("name") or config.data)
    if k <= 1:
        if "start_steps" in (config.method_options or {}):
            log.warning("start_steps applies to several starts (--starts 2 or more); this run trains one start")
        return config, None
    if not (0 < fraction < 1):
        raise ConfigError(f"--start-steps {fraction}: expected the fraction of the run's steps each start trains, "
                          "between 0 and 1")
    if len(rows) < 2 * VAL_MIN:
        log.warning("%d training rows are too few to carve a validation split for %d starts; one start runs", len(rows), k)
        return config, None
    folder = out / STARTS_FOLDER
    n_val = max(VAL_MIN, min(VAL_MAX, round(0.1 * len(rows))))
    train_rows, val_rows = split_validation(rows, n_val / len(rows), seed=config.seed)
    write_jsonl(folder / "data" / "train.jsonl", train_rows)
    write_jsonl(folder / "data" / "test.jsonl", val_rows)
    atomic_write_text(folder / "data" / "card.json", json.dumps(card, indent=2) + "\n")
    steps = max(1, math.ceil(fraction * config.steps))
    results = []
    candidates = candidate_starts(config, backbone, card, k)
    digest = rows_digest(train_rows)
    for i, start in enumerate(candidates):
        sub_out = folder / f"{i}-{start}"
        name = start if candidates.count(start) == 1 else f"{start}-{i}"  # three noise starts: noise-2, noise-3, noise-4
        options = {key: v for key, v in (config.method_options or {}).items() if key not in ("starts", "start_steps")}
        method = config.method
        if start == "t2c":
            method = "t2c+art"
            options.pop("init", None)
        else:
            options["init"] = start
            options["seed"] = config.seed + i  # noise starts differ
        sub = replace(config, out=str(sub_out), data=str(folder / "data"), eval_data=str(folder / "data" / "test.jsonl"),
                      steps=steps, method=method, method_options=options | {"starts": 1}, eval_every=0,
                      eval_size=None, checkpoint_every=0, snapshot_every=0, resume=False, overwrite=True,
                      diagnose=False)  # a start is short by design: its verdict would say nothing
        if _finished(sub_out, steps, sub, digest) is None:
            heard = [] if on_start is None else [
                lambda r, name=name, i=i: r.get("loss") is not None and on_start(
                    {"start": name, "index": i + 1, "starts": len(candidates), "start_step": r["step"],
                     "start_steps": steps})]
            try:
                # the run printed these once (the --batch-size warning with its full row count, a launcher
                # that started one process); each start said them again
                with rewording(["artstudio.train"], drop=["batch size %d (", "accelerate launch --num_processes"]):
                    res = train(sub, backbone=backbone, progress=progress, should_stop=should_stop, callbacks=heard)
            except KeyboardInterrupt:
                # (an --overwrite run stopped here has not begun: the run it replaces is put back, nothing to resume)
                log.warning("interrupted during start %d of %d (%s) of %s%s", i + 1, len(candidates), name, out,
                            "" if config.overwrite else f"; `artstudio train --resume --out {out}` keeps the starts "
                            "that finished and trains this one again")
                raise
            Processes.from_env().barrier()  # in a multi-process run the main process writes the results
            if res.metrics.get("stopped"):
                raise StartsStopped  # asked to stop: no start is chosen; a resume keeps the finished ones
        metrics = _finished(sub_out, steps)
        history = read_history(sub_out)
        losses = [h["loss"] for h in history if h.get("loss") is not None]
        tail = losses[-max(1, len(losses) // 5):]
        results.append({"start": name, "folder": str(sub_out), "val_accuracy": metrics.get("accuracy"),
                        "final_loss": sum(tail) / len(tail) if tail else None, "steps": steps,
                        "train_seconds": metrics.get("train_seconds")})
    best = max(results, key=lambda r: (r["val_accuracy"] or 0.0, -(r["final_loss"] if r["final_loss"] is not None else math.inf)))
    choice = {"chosen": best["start"], "by": "validation accuracy, then final training loss", "val_rows": len(val_rows),
              "starts": results}
    atomic_write_text(folder / CHOICE_FILE, json.dumps(choice, indent=2) + "\n")
    log.info("start %s chosen (validation accuracy %s)", best["start"], best["val_accuracy"])
    options = dict(config.method_options or {}) | {"init": str(Path(best["folder"]) / "artwork.png")}
    return replace(config, method_options=options), choice
