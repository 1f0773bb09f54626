"""The Describe and Tune pages' back ends, as plain Python (`Studio`, no server, no browser).

Describe: a sentence becomes an artwork through the shipped Text-to-Canvas hypernetwork, loaded once
and kept; the artwork waits outside the gallery, the Playground answers with it, and saving it never
overwrites a gallery file. Empty descriptions and broken hypernetworks give clear messages.
Tune: a 2-trial study on studio-tiny runs in the job queue with one progress record per trial; its
best.json fills the Train form so that the form gives back best.json's TrainConfig; a stop ends the
study after the running trial with best.json written.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from artstudio.artwork import read_artwork
from artstudio.backbone import DEFAULT_MODEL
from artstudio.errors import ArtStudioError, ConfigError

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (Path(DEFAULT_MODEL) / "config.json").is_file(),
                                                   reason="needs the shipped studio-tiny")]

SUM = "The prompt is two digits separated by a space, with no instruction. Reply with their sum, written inside " \
      "square brackets, like [<value>]."
# Tiny studies: 2 steps per trial and per final run on a 5 % proxy, scored on 8 validation rows.
TINY = {"method": "art", "task": "max-bracket", "trials": 2, "sampler": "random", "trial_steps": 2, "steps": 2,
        "proxy": 0.05, "val_size": "8", "final": True}


def make_studio(root: Path, **settings):
    from artstudio.ui.settings import AppSettings
    from artstudio.ui.studio import Studio

    return Studio(AppSettings(runs_dir=str(root / "runs"), canvases_dir=str(root / "canvases"), **settings))


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    s = make_studio(tmp_path_factory.mktemp("ui-studio"))
    yield s
    s.close()


# --- Describe ------------------------------------------------------------------------------------

def test_describe_paints_an_artwork_the_playground_answers_with(studio):
    key = studio.describe(SUM)
    assert key == "describe/sum-inside-square-brackets.png"
    path = studio.artwork_path(key)
    assert path.parent == studio.runs / "describe"
    art = read_artwork(path)
    assert art.metadata.model_id == "studio-tiny" and art.image.size == (96, 96)
    assert art.metadata.extra["description"] == SUM
    details = studio.artwork_details(key)  # the Gallery said "objective t2c, steps 0" of it
    assert details["generated"] == "painted by the t2c hypernetwork from its description"
    assert "steps" not in details and "objective" not in details
    generator = studio.hyper_generator()
    assert studio.describe(SUM + " ") == "describe/sum-inside-square-brackets-2.png"  # a new file, never a rewrite
    assert studio.hyper_generator() is generator  # loaded once, on the app's own backbone
    assert generator.backbone is studio.backbone("studio-tiny")
    # The Playground lists it (the Gallery does not, until it is saved) and answers with it.
    assert key in [i.key for i in studio.playground_items()] and key not in [i.key for i in studio.gallery()]
    out = studio.ask("studio-tiny", key, "3 4", max_tokens=8)
    assert isinstance(out["with"]["answer"], str) and out["request"]["messages"]


def test_saving_a_described_artwork_never_overwrites(studio):
    key = studio.describe(SUM)
    first = studio.save_described(key)
    second = studio.save_described(key)
    assert (first, second) == ("canvases/sum-inside-square-brackets.png", "canvases/sum-inside-square-brackets-2.png")
    named = studio.save_described(key, "my sum")
    assert named == "canvases/my-sum.png"
    before = (studio.canvases / "my-sum.png").read_bytes()
    with pytest.raises(ConfigError, match="already has my-sum.png"):
        studio.save_described(studio.describe("Reply with the larger digit, in round brackets."), "my sum")
    assert (studio.canvases / "my-sum.png").read_bytes() == before
    details = studio.artwork_details(named)
    assert details["title"] == "my sum" and details["description"] == SUM and details["model"] == "studio-tiny"
    assert {first, second, named} <= {i.key for i in studio.gallery()}
    with pytest.raises(ConfigError, match="generate an artwork first"):
        studio.save_described("", "x")


@pytest.mark.parametrize("text", ["", "   ", None])
def test_an_empty_description_is_refused_with_an_example(studio, text):
    with pytest.raises(ConfigError, match="describe the task first.*e.g."):
        studio.describe(text)


def test_a_failing_generator_is_a_clear_message(studio, tmp_path, monkeypatch):
    import gradio as gr

    from artstudio.ui.widgets import friendly

    broken = tmp_path / "broken-hyper"
    broken.mkdir()
    (broken / "hyper.json").write_text("{not json")
    bad = make_studio(tmp_path, hyper=str(broken))
    try:
        with pytest.raises(ConfigError, match="not valid JSON"):
            bad.describe(SUM)
        with pytest.raises(gr.Error) as err:  # what the page shows: the message, no traceback, no server path
            friendly(bad.describe)(SUM)
        assert "hyper.json:1: not valid JSON" in err.value.message and str(tmp_path) not in err.value.message
        bad.settings.hyper = str(Path(DEFAULT_MODEL).parent / "hyper" / "t2l")
        with pytest.raises(ConfigError, match="needs a Text-to-Canvas"):
            bad.describe(SUM)
    finally:
        bad.close()
    # A generator that breaks at generation time (a bug): one line, the details in the server log.
    monkeypatch.setattr(type(studio.hyper_generator()), "generate", lambda *a, **k: 1 / 0)
    with pytest.raises(gr.Error) as err:
        friendly(studio.describe)(SUM)
    assert err.value.message.startswith("unexpected error (ZeroDivisionError") and "Traceback" not in err.value.message


def test_describe_needs_the_hypernetworks_model_on_the_menu(tmp_path, tiny_model_dir):
    other = make_studio(tmp_path, model=tiny_model_dir("qwen3_5"))
    try:
        with pytest.raises(ConfigError, match="paints artworks for studio-tiny, which this app does not serve"):
            other.describe(SUM)
    finally:
        other.close()


@pytest.mark.parametrize("key", ["describe/../x.png", "describe/", "runs/describe/artwork.png",
                                 "runs/tune/artwork.png", "describe/a/b.png"])
def test_reserved_folders_are_not_runs_and_keys_stay_inside(studio, key):
    with pytest.raises(ArtStudioError):
        studio.artwork_path(key)


@pytest.mark.parametrize("name", ["tune", "describe", "compare"])
def test_reserved_folders_are_not_run_names(studio, name):
    with pytest.raises(ConfigError, match="choose another run name"):
        studio.train_config({"run": name, "task": "add-json"}, preview=True)


# --- Tune ----------------------------------------------------------------------------------------

def test_a_tiny_study_runs_in_the_queue_and_fills_the_train_form(studio):
    from artstudio.training import TrainConfig
    from artstudio.ui.train_tab import ADVANCED

    job = studio.start_tune(TINY | {"name": "tiny"}, owner="me")
    assert job.kind == "tune" and job.total == 2 and job.run_dir == studio.runs / "tune" / "tiny"
    job = studio.jobs.wait(job.id, timeout=600)
    assert job.status == "done", job.message
    assert [h["trial"] for h in job.history] == [0, 1] and job.done == 2
    assert job.history[-1]["best"] == max(h["value"] for h in job.history)
    assert studio.jobs.latest_of("tune", "me") is job and job.result["final"]["best"]["eval_n"]
    assert studio.tune_folders() == ["tiny"]
    study = studio.load_tune("tiny")
    assert len(study["trials"]) == 2 and "## Final runs" in study["report"]

    values, lost = studio.tune_train_values("tiny")
    assert lost == [] and values["run"] == "tiny-best" and values["task"] == "max-bracket"
    assert values["model"] == "studio-tiny" and values["canvas_size"] == "96"
    # Only what the Train form shows goes back in, and it gives best.json's config exactly (its run folder aside).
    shown = ["model", "source", "task", "canvas_size", "run", "method", "objective", "steps", "batch_size", "lr",
             "seed", *ADVANCED]
    config, run = studio.train_config({k: values[k] for k in shown})
    best = TrainConfig.from_dict(json.loads((job.run_dir / "best.json").read_text()))
    assert run == "tiny-best" and config.out == str(studio.runs / "tiny-best")
    assert asdict(config) | {"out": ""} == asdict(best) | {"out": ""}


def test_a_stopped_study_keeps_its_finished_trials(studio):
    import time

    job = studio.start_tune(TINY | {"name": "stopped", "trials": 5}, owner="me")
    while job.status == "queued":
        time.sleep(0.05)
    studio.jobs.stop(job.id)  # asked during trial 0: the study ends when it finishes
    job = studio.jobs.wait(job.id, timeout=600)
    assert job.status == "stopped" and job.done == 1, job.message
    folder = studio.runs / "tune" / "stopped"
    assert (folder / "best.json").is_file() and (folder / "trials.csv").is_file()
    assert not (folder / "final.json").exists()  # no final runs after a stop
    assert "stopped" in studio.tune_folders()
    # Another study under the same name would replace this one's trials: refused before queueing.
    before = len(studio.jobs.jobs())
    with pytest.raises(ArtStudioError, match="holds another study .*; pass the same options to resume it, or "
                                             "choose another study name"):
        studio.start_tune(TINY | {"name": "stopped", "trials": 5, "method": "lora"})
    assert len(studio.jobs.jobs()) == before


@pytest.mark.parametrize("values, message", [
    ({"task": "no-such-task"}, "not a built-in task"),
    ({"task": ""}, "choose a task"),
    ({"method": "base"}, "trains nothing"),
    ({"trials": 0}, "--trials is 0; expected at least 1"),
    ({"trial_steps": -3}, "--trial-steps is -3; expected at least 1"),  # it said "steps and trial_steps"
    ({"proxy": 2}, "--proxy is 2.0; expected the fraction of training rows"),
    ({"val_size": "many"}, "val size is 'many'; expected a whole number"),
    ({"model": "elsewhere/model"}, "not one this app serves"),
])
def test_bad_study_options_are_refused_before_queueing(studio, values, message):
    before = len(studio.jobs.jobs())
    with pytest.raises(ArtStudioError, match=message):
        studio.start_tune(TINY | values)
    assert len(studio.jobs.jobs()) == before


def test_use_in_train_needs_a_finished_study(studio):
    with pytest.raises(ConfigError, match="choose a study first"):
        studio.tune_train_values("")
    with pytest.raises(ArtStudioError, match="no best.json yet"):
        studio.tune_train_values("never-ran")


def test_a_job_stopped_during_its_starts_does_not_claim_a_checkpoint():
    """The Jobs page said "the last checkpoint is kept" of a run stopped while it tried its starts, which kept none."""
    from ui.jobs import Job, stopped_phase

    during = Job(id=1, kind="train", title="t", work=lambda job: None,
                 result={"metrics": {"steps": 0, "stopped": True, "stopped_during_starts": True}})
    assert "no canvas is kept yet" in stopped_phase(during) and "checkpoint" not in stopped_phase(during)
    later = Job(id=2, kind="train", title="t", work=lambda job: None, result={"metrics": {"steps": 40, "stopped": True}})
    assert stopped_phase(later) == "stopped; the last checkpoint is kept"
    study = Job(id=3, kind="tune", title="t", work=lambda job: None, result={"trials": 2})
    assert stopped_phase(study) == "stopped; the finished trials are kept"  # a study has no checkpoint to keep


def test_a_trainings_time_left_counts_its_own_steps_not_its_starts(monkeypatch):
    """After 15 s of starts a 400-step run at 0.09 s a step said "step 10 / 400 · about 10 min left": the starts'
    time counted as the first steps' time."""
    import ui.jobs as jobs
    from ui.jobs import RUNNING, Job

    clock = [1000.0]
    monkeypatch.setattr(jobs.time, "time", lambda: clock[0])
    job = Job(id=1, kind="train", title="t", work=lambda job: None, status=RUNNING, total=400, started=1000.0)
    for step in range(1, 61):  # two starts of 30 steps, 15 s in all
        clock[0] += 0.25
        job.record({"phase": "start", "start": "gray", "index": 1 + step // 31, "starts": 2, "start_step": step,
                    "start_steps": 30})
    assert job.eta_seconds() is None
    for step in range(1, 11):
        clock[0] += 0.09
        job.record({"step": step, "loss": 1.0})
    assert job.eta_seconds() == pytest.approx(390 * 0.09)


def test_a_finished_trainings_row_still_names_the_start_it_chose(tmp_path):
    """docs/app.md: the Jobs tab names the start chosen, with the starts' validation scores; once the run finished
    its row said only "finished"."""
    from ui.jobs import JobQueue

    (tmp_path / "starts").mkdir()
    (tmp_path / "starts" / "choice.json").write_text(json.dumps(
        {"chosen": "t2c", "starts": [{"start": "gray", "val_accuracy": 0.6875}, {"start": "t2c", "val_accuracy": 0.90625}]}))

    def work(job):
        job.record({"phase": "start", "start": "gray", "index": 1, "starts": 2, "start_step": 3, "start_steps": 3})
        job.record({"step": 1, "loss": 0.5})
        return {}

    queue = JobQueue()
    try:
        job = queue.wait(queue.submit("train", "t", work, total=1, run_dir=tmp_path).id)
    finally:
        queue.close()
    assert job.phase == "finished from start t2c (validation: gray 69 %, t2c 91 %)"


def test_a_reported_time_left_counts_down_until_the_next_report(monkeypatch):
    """A study said "about 4 s left" for the whole of a long trial: the last report is counted down since."""
    import ui.jobs as jobs
    from ui.jobs import RUNNING, Job

    clock = [1000.0]
    monkeypatch.setattr(jobs.time, "time", lambda: clock[0])
    job = Job(id=1, kind="tune", title="t", work=lambda job: None, status=RUNNING)
    assert job.reported_eta_left() is None  # nothing reported yet
    job.heard_eta(30.0)
    clock[0] += 12
    assert job.reported_eta_left() == pytest.approx(18.0)
    clock[0] += 60
    assert job.reported_eta_left() == 0.0  # overdue: the page shows no time left rather than a negative one
    job.heard_eta(5.0)
    assert job.reported_eta_left() == pytest.approx(5.0) and job.result["eta_seconds"] == 5.0  # the API's view
    job.status = "done"
    assert job.reported_eta_left() is None


@pytest.mark.parametrize("name", ["", None, "  "])
def test_load_with_no_folder_chosen_says_choose_one(studio, name):
    """Compare's Load with the menu empty said "the results folder None is empty once unsafe characters are removed"."""
    with pytest.raises(ConfigError, match="choose a results folder first") as err:
        studio.load_results(name)
    assert "None" not in str(err.value)


def test_the_tune_line_names_the_pick_when_re_ranking_chose_another_trial():
    """The line said "best so far 14.0 % (trial 1)" over a report whose best configuration was trial 0 (13 %): the
    re-ranking at the full steps had picked the default."""
    from artstudio.ui.tune_tab import _stats

    rerank = {"chosen": 0, "runs": [{"trial": 1, "default": False, "val_accuracy": 0.88},
                                    {"trial": 0, "default": True, "val_accuracy": 0.9}]}
    line = _stats(2, 2, [(0, 0.13), (1, 0.14)], rerank)
    assert "best so far **14.0 %** (trial 1)" in line and "**picked: trial 0** (the default), 90.0 %" in line
    assert "picked" not in _stats(2, 2, [(0, 0.13), (1, 0.14)])  # --rerank 0: the best trial is the pick
