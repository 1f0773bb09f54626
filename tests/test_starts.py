"""Several starts (`artstudio.starts`) and the run diagnosis (`artstudio.diagnosis`): stuck, cannot fit, unfinished."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from artstudio.backbone import load_backbone
from artstudio.cli import train_summary
from artstudio.data import Example, load_jsonl, write_jsonl
from artstudio.diagnosis import FIT_ROWS, diagnose, diagnose_grpo, needs_fit_check
from artstudio.errors import ConfigError
from artstudio.training import TrainConfig, train

ROWS = [Example(prompt=f"{a} {b}", answer=str(a + b), id=str(i))
        for i, (a, b) in enumerate((a, b) for a in range(8) for b in range(5))]


@pytest.fixture()
def task(tmp_path):
    folder = tmp_path / "task"
    write_jsonl(folder / "train.jsonl", ROWS)
    write_jsonl(folder / "test.jsonl", ROWS[:6])
    (folder / "card.json").write_text(json.dumps({"name": "sum", "description": "add two digits", "metric": "exact"}))
    return folder


def _config(task, out, **kw):
    return TrainConfig(out=str(out), data=str(task), steps=10, batch_size=4, checkpoint_every=5, snapshot_every=0,
                       method_options={"canvas_size": 64, "starts": 2, "start_steps": 0.2} | kw.pop("opts", {}), **kw)


def test_a_launcher_that_started_one_process_is_said_once_not_once_per_start(qwen35, task, tmp_path, monkeypatch,
                                                                            caplog):
    """`accelerate launch --num_processes 2` without GPUs: its warning came three times (the run, each start)."""
    from artstudio import training

    monkeypatch.setattr(training, "launcher_asked_for_more", lambda: 2)
    with caplog.at_level("WARNING", logger="artstudio.train"):
        train(_config(task, tmp_path / "run"), backbone=qwen35, progress=False)
    assert caplog.text.count("accelerate launch --num_processes 2 started one process") == 1


def test_starts_train_briefly_pick_on_validation_and_the_run_trains_from_the_winner(qwen35, task, tmp_path):
    res = train(_config(task, tmp_path / "run"), backbone=qwen35, progress=False)
    folder = tmp_path / "run" / "starts"
    choice = json.loads((folder / "choice.json").read_text())
    # No Text-to-Canvas fits a random tiny model: the own init, then noise.
    assert [s["start"] for s in choice["starts"]] == ["gray", "noise"]
    assert all(s["steps"] == 2 for s in choice["starts"])
    best = max(choice["starts"], key=lambda s: (s["val_accuracy"], -s["final_loss"]))
    assert choice["chosen"] == best["start"]
    # The validation split is carved from the training rows, disjoint from what the starts trained on.
    val, rest = load_jsonl(folder / "data" / "test.jsonl"), load_jsonl(folder / "data" / "train.jsonl")
    assert len(val) == 16 and len(rest) == len(ROWS) - 16 and not {e.id for e in val} & {e.id for e in rest}
    # The run starts from the winner's artwork and counts the starts' time as its own.
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["resolved"]["init"] == str(folder / f"{choice['starts'].index(best)}-{best['start']}" / "artwork.png")
    assert "init" not in cfg["method_options"]  # config.json keeps what was asked for, so it reruns as given
    assert cfg["resolved"]["starts"]["chosen"] == choice["chosen"]
    m = res.metrics
    assert m["start"] == choice["chosen"] and m["train_seconds"] >= m["starts_seconds"] > 0
    assert "start " in train_summary(res) and "on 2 starts" in train_summary(res)
    tied = len({s["val_accuracy"] for s in choice["starts"]}) == 1  # the summary says how a tie was broken
    assert ("a tie, so the lower final training loss chose" in train_summary(res)) == tied
    # ... and where the losses tie too (GRPO's surrogate loss is often 0), that nothing chose
    both = replace(res, metrics=m | {"start_val_accuracy": {"gray": 0.0, "t2c": 0.0},
                                                 "start_final_loss": {"gray": 0.0, "t2c": 0.0}})
    assert "a tie, so the first start was kept (their final training losses tie too)" in train_summary(both)

    # A resumed run reuses the finished starts instead of training them again (here a run killed after its
    # last checkpoint, before it wrote its result; a finished run is not resumed).
    stamp = (folder / "0-gray" / "result.json").stat().st_mtime_ns
    (tmp_path / "run" / "result.json").unlink()
    train(_config(task, tmp_path / "run", resume=True), backbone=qwen35, progress=False)
    assert (folder / "0-gray" / "result.json").stat().st_mtime_ns == stamp

    # --overwrite removes the starts with the rest of the run.
    (folder / "0-gray" / "marker").write_text("old")
    train(_config(task, tmp_path / "run", overwrite=True), backbone=qwen35, progress=False)
    assert not (folder / "0-gray" / "marker").exists()


def test_a_resume_with_other_options_trains_its_starts_again(qwen35, task, tmp_path):
    """A run stopped during its starts (only starts/ is there) and resumed with another --lr once picked from
    starts trained with the old rate; the same options reuse them."""
    run = tmp_path / "run"
    train(_config(task, run), backbone=qwen35, progress=False)

    def stop_during_starts():  # what a run stopped during its starts leaves: the starts only
        for name in ("config.json", "metrics.jsonl", "result.json", "artwork.png", "final", "eval", "checkpoint"):
            target = run / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    stop_during_starts()
    gray = run / "starts" / "0-gray" / "result.json"
    stamp = gray.stat().st_mtime_ns
    train(_config(task, run, resume=True), backbone=qwen35, progress=False)
    assert gray.stat().st_mtime_ns == stamp  # the same options: the finished starts are kept
    stop_during_starts()
    train(_config(task, run, resume=True, lr=0.2), backbone=qwen35, progress=False)
    assert gray.stat().st_mtime_ns != stamp
    assert json.loads((gray.parent / "config.json").read_text())["lr"] == 0.2


@pytest.mark.parametrize("opts, said", [({"tv_weight": -1.0}, r"canvas option tv_weight \(--tv-weight\) is -1.0; expected 0 \(off\) or a positive"),
                                        ({"l2_weight": -0.5}, r"l2_weight \(--l2-weight\) is -0.5; expected 0"),
                                        ({"starts": 0}, r"canvas option starts \(--starts\) is 0; expected 1 or more"),
                                        ({"tv_weight": float("nan")}, "tv_weight is nan; expected a number"),
                                        ({"l2_weight": float("inf")}, r"\(--l2-weight\) is inf; expected 0"),
                                        ({"texture": float("inf")}, r"\(--texture\) is inf; expected 0"),
                                        ({"seed": 10**20}, "ArtConfig option seed is 100000000000000000000; "
                                                           "expected a whole number from 0 to 4294967295"),
                                        ({"seed": -1}, "seed is -1; expected a whole number from 0")])
def test_a_negative_weight_or_no_start_is_refused(qwen35, task, tmp_path, opts, said):
    """--tv-weight -1 trained, rewarding the roughness the penalty is there to remove; NaN or inf weights made every
    step's loss NaN (each step skipped, a normal summary); a huge seed was an OverflowError traceback."""
    with pytest.raises(ConfigError, match=said):
        train(_config(task, tmp_path / "a", opts=opts), backbone=qwen35, progress=False)
    assert not (tmp_path / "a").exists()


def test_bad_starts_are_refused_before_training(qwen35, task, tmp_path):
    with pytest.raises(ConfigError, match="starts"):
        train(_config(task, tmp_path / "a", opts={"starts": 0}), backbone=qwen35, progress=False)
    with pytest.raises(ConfigError, match=r"\(--start-steps\) is 1.5; expected the fraction"):
        train(_config(task, tmp_path / "b", opts={"start_steps": 1.5}), backbone=qwen35, progress=False)


def test_a_batch_larger_than_the_rows_is_warned_about_once_with_the_run_s_row_count(qwen35, task, tmp_path, caplog):
    with caplog.at_level("WARNING"):
        train(replace(_config(task, tmp_path / "run"), batch_size=64, steps=4), backbone=qwen35, progress=False)
    said = [r.getMessage() for r in caplog.records if "(--batch-size)" in r.getMessage()]
    assert said == [f"batch size 64 (--batch-size) is larger than the {len(ROWS)} training rows: each batch holds "
                    "every row once"]


def test_too_few_rows_for_a_validation_split_run_one_start(qwen35, tmp_path):
    folder = tmp_path / "small"
    write_jsonl(folder / "train.jsonl", ROWS[:20])
    write_jsonl(folder / "test.jsonl", ROWS[:4])
    res = train(TrainConfig(out=str(tmp_path / "run"), data=str(folder), steps=2, batch_size=4, checkpoint_every=0,
                            method_options={"canvas_size": 64, "starts": 2}), backbone=qwen35, progress=False)
    assert "start" not in res.metrics and not (tmp_path / "run" / "starts").exists()


def test_a_grpo_run_whose_groups_were_rewarded_alike_is_called_stuck():
    """sub-answer from grey under GRPO: frac_zero_std 1.000 and reward 0.010 at every step, the canvas still grey,
    and `train` said nothing (its loss, 0 with zero advantages, never looks stuck)."""
    flat = [{"step": i, "loss": 0.0, "reward_mean": 0.01, "frac_zero_std": 1.0} for i in range(1, 21)]
    said = diagnose_grpo(flat)
    assert said.kind == "stuck" and "100% of the groups" in said.text and "learnt nothing" in said.text
    assert "--init RUN/artwork.png" in said.text and "--grpo-group-size" in said.text
    learning = [dict(h, frac_zero_std=1.0 if h["step"] < 10 else 0.5) for h in flat]  # groups began to differ
    assert diagnose_grpo(learning) is None
    assert diagnose_grpo(flat[:4]) is None  # too few steps to tell
    # Groups are alike when every completion is right too: a run from an SFT artwork at 100 % was called stuck.
    solved = [dict(h, reward_mean=0.998, frac_zero_std=0.98) for h in flat]
    assert diagnose_grpo(solved, train_accuracy=1.0) is None
    assert diagnose_grpo(flat, train_accuracy=0.0).kind == "stuck"
    # LoRA from the base model at 30 steps: 92.5 % of the groups alike (0 and 0.01 rewards mixed), 0 %.
    lora = [dict(h, frac_zero_std=0.925) for h in flat]
    assert diagnose_grpo(lora, train_accuracy=0.0).kind == "stuck"
    assert diagnose_grpo([{"step": 1, "loss": 0.5}] * 30) is None  # an SFT history


def test_the_grpo_advice_offers_partial_credit_only_to_a_reward_without_it():
    """A run trained on "numeric*0.8+format*0.2" was told to try --grpo-reward "numeric*0.8+format*0.2"."""
    flat = [{"step": i, "loss": 0.0, "reward_mean": 0.01, "frac_zero_std": 1.0} for i in range(1, 21)]
    for reward in ("numeric*0.8+format*0.2", "numeric", "json-tool-call"):
        said = diagnose_grpo(flat, reward=reward).text
        assert f"The reward ({reward}) already gives partial credit" in said and "start from SFT" in said
        assert "--grpo-reward" not in said
    alike_at_half = [dict(h, reward_mean=0.4) for h in flat]
    said = diagnose_grpo(alike_at_half, reward="numeric").text
    assert "already gives partial credit" in said and "start from SFT" not in said
    for reward in ("exact", "regex", "format", "format:^\\[", ""):
        said = diagnose_grpo(flat, reward=reward).text
        assert "give partial credit" in said and "--grpo-reward my_reward.py:function" in said
    # A reward of the user's own was told to write a reward of one's own.
    said = diagnose_grpo(flat, reward="/home/me/myrew.py:bracket").text
    assert "make your reward (/home/me/myrew.py:bracket) score near misses" in said and "my_reward.py" not in said


def test_a_flat_high_loss_is_called_stuck_and_a_falling_or_low_one_is_not():
    stuck = [2.0] * 10 + [0.81, 0.80, 0.82, 0.80] * 15  # sub-answer's curve: 0.8 and flat
    said = diagnose(stuck, paints=True)
    assert said.kind == "stuck" and said.title == "Looks stuck."
    assert "plateaued at 0.81" in said.text and "--starts 2" in said.text
    assert "All 2 starts" in diagnose(stuck, paints=True, starts=2).text
    # a flat high loss whose run answers its own training rows is not stuck (it said so beside 90 % on test)
    assert needs_fit_check(stuck) and diagnose(stuck, paints=True, train_accuracy=0.92, train_n=64) is None
    assert diagnose(stuck, paints=True, train_accuracy=0.2, train_n=64).kind == "stuck"
    assert "--starts" not in diagnose(stuck, paints=False).text
    assert diagnose([2.0 * 0.97 ** i for i in range(70)], paints=True) is None  # still falling
    assert diagnose([1.0] * 10 + [0.05] * 60, paints=True) is None  # flat but learnt
    assert diagnose([0.9] * 10, paints=True) is None  # too short to tell
    # the rules come from 300-step runs: a short run is told so, a long one is not
    assert "This run had only 70 steps" in said.text and "try more --steps first" in said.text
    assert "only" not in diagnose([2.0] * 20 + [0.8] * 280, paints=True).text
    # a short run whose last two fifths are flat but the fifth before them was higher is still learning: a
    # 30-step LoRA run from 10.9 to 5.6 was called stuck and reached 94 % at 100 steps
    short = [11.59, 10.53, 11.16, 10.55, 10.16, 11.25, 10.7, 10.18, 9.08, 9.9, 9.66, 8.66, 7.84, 7.67, 8.01, 8.14, 6.99,
             6.34, 6.46, 5.9, 5.39, 5.71, 6.75, 5.55, 5.87, 5.19, 6.45, 5.8, 4.31, 6.08]  # that run's curve
    said = diagnose(short, paints=False)
    assert said.kind == "unfinished" and "in only 30 steps" in said.text and "more --steps" in said.text
    # a learning rate far from the default is named first in what to try
    flat_at_start = [8.70, 8.72, 8.71, 8.70] * 25
    said = diagnose(flat_at_start, paints=True, lr=1e-6, default_lr=0.05)
    assert said.kind == "stuck" and "its learning rate 1e-06 is 50,000× below the method's default 0.05" in said.text
    assert "learning rate" not in diagnose(flat_at_start, paints=True, lr=0.1, default_lr=0.05).text


def test_a_run_that_cannot_fit_its_own_training_rows_is_told_from_an_unfinished_one_and_a_fitting_one():
    """word-problems-json's shape: flat at 0.07 and 83 % of its training rows (docs/robust.md)."""
    flat = [2.0] * 10 + [0.08, 0.06, 0.07, 0.07] * 15
    assert needs_fit_check(flat) and not needs_fit_check([2.0] * 10 + [0.01] * 60) and not needs_fit_check([0.5] * 5)
    said = diagnose(flat, paints=True, train_accuracy=0.83, train_n=64)
    assert said.kind == "cannot-fit" and said.title == "Cannot fit the task."
    assert "answers 83.0% of 64 of its own training rows" in said.text and "--method lora" in said.text
    assert "--method lora" not in diagnose(flat, paints=False, train_accuracy=0.83, train_n=64).text
    # one start: a poor start also ends below the stuck level, so --starts 2 comes first; after two, LoRA
    assert "try --starts 2 first" in said.text
    assert "--starts 2" not in diagnose(flat, paints=True, starts=2, train_accuracy=0.83, train_n=64).text
    assert diagnose(flat, paints=True, train_accuracy=0.95, train_n=64) is None  # it fits: nothing to say here
    assert diagnose(flat, paints=True) is None  # not measured
    falling = [2.0 * 0.97 ** i for i in range(80)]  # ends at 0.18, still falling
    said = diagnose(falling, paints=True, train_accuracy=0.5, train_n=64)
    assert said.kind == "unfinished" and "more --steps" in said.text


def _fifths(means: list[float], steps: int = 200) -> list[float]:
    """A loss curve whose five fifths have these means (a comparison cell's, rounded)."""
    w = steps // 5
    return [m for m in means for _ in range(w)]


def test_a_loss_that_fell_until_its_last_fifth_is_unfinished_not_a_limit():
    """first-json at 200 steps × batch 8 (2026-12-06): the loss fell 37 % over the last three fifths, flat only in
    the last one (the cosine rate at a tenth of its peak); it answered 80 % of its training rows and was called
    unable to fit, with "try --method lora". With more steps it fits. word-problems-json, which cannot fit at any
    length measured, fell 17 % there."""
    first_json = _fifths([0.2688, 0.1458, 0.0977, 0.0626, 0.0614])
    said = diagnose(first_json, paints=True, starts=2, train_accuracy=0.797, train_n=64)
    assert said.kind == "unfinished" and "fell by 37% over the last three fifths" in said.text
    assert "more --steps should help" in said.text and "--method lora" not in said.text
    word_problems = _fifths([0.1841, 0.1005, 0.0976, 0.0868, 0.0809])
    said = diagnose(word_problems, paints=True, starts=2, train_accuracy=0.72, train_n=64)
    assert said.kind == "cannot-fit" and "--method lora" in said.text


def test_a_flat_loss_that_is_not_stuck_makes_the_run_answer_its_training_rows_and_say_it_cannot_fit(
        qwen35, task, tmp_path, monkeypatch):
    """The check's wiring: a loss flat below the stuck level (here: the stuck level raised above it)."""
    monkeypatch.setattr("artstudio.diagnosis.STUCK_LOSS", 100.0)
    res = train(TrainConfig(out=str(tmp_path / "run"), data=str(task), steps=20, batch_size=2, lr=1e-9,
                            checkpoint_every=0, snapshot_every=0, method_options={"canvas_size": 64}),
                backbone=qwen35, progress=False)
    n = min(len(ROWS), FIT_ROWS)
    assert res.metrics["train_eval_n"] == n and res.metrics["train_accuracy"] < 0.9
    assert res.metrics["diagnosis_kind"] == "cannot-fit"
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["diagnosis_kind"] == "cannot-fit" and saved["train_eval_n"] == n
    assert f"on train   {res.metrics['train_accuracy']:.1%} (n={n} of its own training rows)" in train_summary(res)
    assert f"warning: the run answers {res.metrics['train_accuracy']:.1%} of {n} of its own training rows" in train_summary(res)


def test_a_run_whose_loss_stays_flat_and_high_says_so(qwen35, task, tmp_path):
    """A learning rate too small to move the canvas: the loss stays where it started (about 4.6)."""
    res = train(TrainConfig(out=str(tmp_path / "run"), data=str(task), steps=20, batch_size=2, lr=1e-9,
                            checkpoint_every=0, snapshot_every=0, method_options={"canvas_size": 64}),
                backbone=qwen35, progress=False)
    assert "looks stuck" in res.metrics["diagnosis"] and res.metrics["diagnosis_kind"] == "stuck"
    assert res.metrics["train_accuracy"] < 0.9  # measured: a flat loss over rows it answers is not stuck
    assert json.loads((tmp_path / "run" / "result.json").read_text())["diagnosis"] == res.metrics["diagnosis"]
    records = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("diagnosis") for r in records)
    assert "warning: the loss plateaued" in train_summary(res)


def test_the_app_shows_the_diagnosis_beside_the_accuracy():
    from ui.jobs import DONE, Job
    from ui.train_tab import _log_text, _metrics_text

    job = Job(id=1, kind="train", title="art on sub-answer", work=lambda j: None, total=60, status=DONE)
    for step in range(1, 61):
        job.record({"step": step, "loss": 0.8, "lr": 0.05, "seconds_per_step": 0.2})
    job.record({"step": 60, "diagnosis": "the loss plateaued at 0.80 over the last 12 steps (...)",
                "diagnosis_kind": "stuck"})
    job.record({"step": 60, "eval_accuracy": 0.22, "eval_n": 200, "final": True})
    shown = _metrics_text(job)
    assert "22.0%" in shown and "**Looks stuck.** the loss plateaued at 0.80" in shown
    assert "warning: the loss plateaued" in _log_text(job)
    job.record({"step": 60, "diagnosis": "the run answers 83% of 64 of its own training rows (...)",
                "diagnosis_kind": "cannot-fit"})
    assert "**Cannot fit the task.** the run answers 83%" in _metrics_text(job)
    # The page names its fields, not flags; an unfinished run is told how to train on from this page.
    job.record({"step": 60, "diagnosis": "the run answers 80% of 64 of its own training rows and its loss fell by 37% "
                "(...): it is unfinished; more --steps should help.", "diagnosis_kind": "unfinished"})
    shown = _metrics_text(job)
    assert "**Unfinished.** the run answers 80%" in shown and "more 'steps' should help" in shown
    assert "tick 'resume', raise 'steps', press Start" in shown and "--" not in shown
    job.run_dir = Path("runs/first-json-art")
    assert "To train on from its last step: run name 'first-json-art', tick 'resume'" in _metrics_text(job)


def test_a_stop_during_the_starts_stops_the_run_and_a_resume_redoes_that_start(qwen35, task, tmp_path, caplog):
    asked = iter([False] * 1 + [True] * 1000)  # stop inside the first start
    res = train(_config(task, tmp_path / "run"), backbone=qwen35, progress=False, should_stop=lambda: next(asked))
    assert res.metrics["stopped"] and res.metrics["steps"] == 0 and "start" not in res.metrics
    assert json.loads((tmp_path / "run" / "starts" / "0-gray" / "result.json").read_text())["stopped"]
    # No canvas was chosen, so none is kept: it used to keep the untrained grey one as a step-0 checkpoint
    # and artwork, and a resume loaded that checkpoint over the start it then chose.
    assert res.metrics["stopped_during_starts"]
    kept = sorted(p.name for p in (tmp_path / "run").iterdir() if not p.name.startswith("."))
    assert kept == ["config.json", "starts", "task"] or kept == ["config.json", "starts"], kept
    # A resume with other --steps trains the starts for them (none was chosen): 20 % of 15 steps is 3, not 2.
    with caplog.at_level("WARNING", logger="artstudio.train"):
        again = train(replace(_config(task, tmp_path / "run", resume=True), steps=15), backbone=qwen35, progress=False)
    assert again.metrics["steps"] == 15 and "start" in again.metrics
    # It said it "keeps the start it chose", as if one had been chosen before the stop.
    assert "was stopped during its starts; this resume trained the ones left unfinished" in caplog.text
    assert "keeps the start it chose" not in caplog.text
    assert json.loads((tmp_path / "run" / "starts" / "0-gray" / "result.json").read_text())["steps"] == 3
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["resolved"]["init"].endswith("artwork.png")  # the run went on from the start it chose
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history if "loss" in h] == list(range(1, 16))


def test_a_resume_without_a_checkpoint_after_its_starts_says_it_keeps_the_chosen_start(qwen35, task, tmp_path, caplog):
    """It said "holds no checkpoint; the run starts at step 0" after the starts had finished and one was chosen,
    which read as if the starts were lost too."""
    import shutil

    train(_config(task, tmp_path / "run"), backbone=qwen35, progress=False)
    shutil.rmtree(tmp_path / "run" / "checkpoint")
    with caplog.at_level("WARNING", logger="artstudio.train"):
        train(replace(_config(task, tmp_path / "run", resume=True), steps=12), backbone=qwen35, progress=False)
    assert "holds no checkpoint of the run after its starts; it keeps the start it chose" in caplog.text


def test_several_noise_starts_each_keep_their_own_score(qwen35, task, tmp_path):
    res = train(_config(task, tmp_path / "run", opts={"starts": 3}), backbone=qwen35, progress=False)
    assert list(res.metrics["start_val_accuracy"]) == ["gray", "noise-1", "noise-2"]
    assert "noise-1" in train_summary(res) and "noise-2" in train_summary(res)


def test_callers_hear_the_starts_steps_and_the_app_names_the_phase(qwen35, task, tmp_path):
    """The app showed "Training · step 0 / N" while the starts trained (minutes on a long run)."""
    from artstudio.ui.jobs import Job

    heard: list[dict] = []
    train(_config(task, tmp_path / "run"), backbone=qwen35, progress=False, callbacks=[heard.append])
    starts = [r for r in heard if r.get("phase") == "start"]
    assert [(r["start"], r["index"], r["start_step"]) for r in starts] == [
        ("gray", 1, 1), ("gray", 1, 2), ("noise", 2, 1), ("noise", 2, 2)]
    assert all(r["starts"] == 2 and r["start_steps"] == 2 for r in starts)
    assert [r["step"] for r in heard if "loss" in r] == list(range(1, 11))  # the run's own steps, after them
    job = Job(id=1, kind="train", title="t", work=lambda job: None, total=10, run_dir=tmp_path / "run")
    job.record(starts[2])
    assert job.phase == "trying start noise (2 of 2): step 1 / 2" and job.done == 0 and job.history == []
    # Once the run's own steps come, the phase says so and names the start chosen (the Jobs row kept "trying
    # start t2c (2 of 2): step 45 / 45" beside 202 / 300 steps).
    job.record(next(r for r in heard if "loss" in r))
    choice = json.loads((tmp_path / "run" / "starts" / "choice.json").read_text())
    assert job.phase.startswith(f"training from start {choice['chosen']} (validation: gray ") and job.done == 1


def test_a_named_init_is_the_run_s_one_start(qwen35, task, tmp_path):
    """`--init runs/sft/artwork.png` (docs/grpo.md's SFT-then-GRPO chain) was raced against another start and lost."""
    from artstudio.starts import starts_of

    picture = str(tmp_path / "sft" / "artwork.png")
    assert starts_of(TrainConfig(data=str(task), method_options={"init": picture}))[0] == 1
    assert starts_of(TrainConfig(data=str(task), method_options={"init": f"icon+texture:{picture}"}))[0] == 1
    assert starts_of(TrainConfig(data=str(task), method_options={"init": picture, "starts": 2}))[0] == 2
    assert starts_of(TrainConfig(data=str(task)))[0] is None  # the default decides by whether T2C fits
    # A made-up start (a tuned configuration's best.json names gray or noise) is the run's own first start: it
    # used to train alone where the same run without it raced two, so tune measured a one-start tuned run
    # against a two-start default.
    for init in ("gray", " Grey", "noise", "red"):
        assert starts_of(TrainConfig(data=str(task), method_options={"init": init}))[0] is None, init


def test_ctrl_c_during_the_starts_records_the_run_s_options_so_a_resume_checks_them(qwen35, task, tmp_path):
    """Ctrl-C during the starts left no config.json: `--resume --out RUN` could not find the options, and a
    resume with another --lr or --seed retrained both starts as a new run without a word."""
    calls = iter(range(10_000))

    def ctrl_c():  # as Ctrl-C in the first start's step loop
        if next(calls) == 1:
            raise KeyboardInterrupt
        return False

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(_config(task, run), backbone=qwen35, progress=False, should_stop=ctrl_c)
    saved = json.loads((run / "config.json").read_text())
    assert saved["steps"] == 10 and saved["method_options"]["starts"] == 2 and not (run / "artwork.png").exists()
    with pytest.raises(ConfigError, match=r"these differ: --lr 0.2"):
        train(_config(task, run, resume=True, lr=0.2), backbone=qwen35, progress=False)
    done = train(_config(task, run, resume=True), backbone=qwen35, progress=False)
    assert done.metrics["steps"] == 10 and "start" in done.metrics
    # An --overwrite run stopped during its starts has not begun: it writes nothing over the run it replaces.
    calls = iter(range(10_000))
    with pytest.raises(KeyboardInterrupt):
        train(_config(task, run, overwrite=True, seed=3), backbone=qwen35, progress=False, should_stop=ctrl_c)
    assert json.loads((run / "config.json").read_text())["seed"] == 0 and (run / "artwork.png").is_file()


def test_a_task_without_a_description_says_why_it_trains_one_start_on_studio_tiny(tmp_path, caplog):
    """On studio-tiny the default is two starts, one painted from the task's description; a card without one
    trained from grey alone without a word (sub-answer: 19-24 % from grey, 100 % from the painted start)."""
    from artstudio.starts import choose_start

    studio = load_backbone()
    config = TrainConfig(out=str(tmp_path / "run"), data=str(tmp_path), steps=10, batch_size=4)
    assert choose_start(config, tmp_path / "run", studio, ROWS, {"name": "sum"}, progress=False) == (config, None)
    assert "task sum has no description" in caplog.text and "--starts 1 trains the one start without this warning" in caplog.text
    caplog.clear()
    one = replace(config, method_options={"starts": 1})
    assert choose_start(one, tmp_path / "run", studio, ROWS, {"name": "sum"}, progress=False) == (one, None)
    assert "description" not in caplog.text
    # A resume trains no starts: the advice, given when the run began, is not repeated.
    resumed = replace(config, resume=True)
    assert choose_start(resumed, tmp_path / "run", studio, ROWS, {"name": "sum"}, progress=False) == (resumed, None)
    assert "description" not in caplog.text
    # A mistyped --init is refused before any advice (the advice came first, then "unknown canvas init"), and
    # before the run folder is made.
    with pytest.raises(ConfigError, match="unknown canvas init 'noize'"):
        train(replace(config, method_options={"init": "noize"}), backbone=studio, progress=False)
    assert "description" not in caplog.text and not (tmp_path / "run").exists()
