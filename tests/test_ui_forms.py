"""What the pages say when a form is wrong or a result is incomplete, as plain Python (`Studio` and
the page functions, no server, no browser, no model loaded).

Start refuses out-of-range numbers at once (and the command panel shows why), before an upload is
copied into the run folder; a second Start on a running run says it is running; names that look like
paths are refused, not rewritten; an uploaded file trained without a test file says why it has no
accuracy; a refused save replaces the "Saved as …" under the button; an empty upload says what a file
should hold; a study's sampled learning rate fills the Train form rounded; the Jobs page says when
there are no jobs; result tables keep their words whole.
"""

from __future__ import annotations

import html
import json
import threading
from pathlib import Path

import pytest

from artstudio.errors import ArtStudioError, ConfigError

ROWS = "".join(json.dumps({"prompt": f"{i} {i + 1}", "answer": str(2 * i + 1)}) + "\n" for i in range(6))


def form(**values) -> dict:
    """The Train form's values as the page sends them (built-in task add-json, ART)."""
    return {"model": "studio-tiny", "source": "task", "task": "add-json", "method": "art", "objective": "sft",
            "steps": 10, "batch_size": 4, "lr": "", "seed": 0, "canvas_size": "", "run": "r"} | values


@pytest.fixture()
def studio(tmp_path):
    from artstudio.ui.settings import AppSettings
    from artstudio.ui.studio import Studio

    s = Studio(AppSettings(runs_dir=str(tmp_path / "runs"), canvases_dir=str(tmp_path / "canvases")))
    yield s
    s.close()


@pytest.fixture()
def upload(tmp_path) -> Path:
    path = tmp_path / "mytask.jsonl"
    path.write_text(ROWS)
    return path


# --- 1. out-of-range numbers ---------------------------------------------------------------------

@pytest.mark.parametrize("values, flag", [({"steps": -5}, "--steps is -5"), ({"batch_size": 0}, "--batch-size is 0"),
                                          ({"lr": "-1"}, "--lr is -1.0"), ({"steps": 0}, "--steps is 0")])
def test_bad_numbers_are_refused_at_start_and_in_the_command_panel(studio, upload, values, flag):
    with pytest.raises(ConfigError, match=flag):
        studio.start_training(form(source="upload", run="bad", **values), str(upload))
    # Nothing was queued, and the refused upload was not copied: the run folder does not exist.
    assert studio.jobs.jobs() == [] and not (studio.runs / "bad").exists()
    with pytest.raises(ConfigError, match=flag):
        studio.train_config(form(**values), preview=True)


def test_a_canvas_size_the_model_cannot_take_is_refused_at_start(studio):
    """Canvas size 95 was queued, and failed as a job."""
    from artstudio.errors import CanvasSizeError

    with pytest.raises(CanvasSizeError, match=r"multiple of 32.*Nearest valid sizes: 64×64 .*96×96"):
        studio.start_training(form(run="odd", canvas_size="95"))
    assert studio.jobs.jobs() == [] and not (studio.runs / "odd").exists()


@pytest.mark.parametrize("start, values, message", [
    ("start_training", form(run="in-options", method_options='{"canvas_size": 100}'), "multiple of 32"),
    ("start_training", form(run="never-ran", resume=True), "there is no run named 'never-ran' to resume; untick"),
    ("start_training", form(run="long", steps=10**12), r"steps 1,000,000,000,000 is more than this app allows "
                                                        r"\(1,000,000\).*artstudio app --max-steps"),
    ("start_compare", {"methods": "art", "tasks": "add-json", "seeds": "0", "eval_size": 0}, "--eval-size is 0"),
    ("start_compare", {"methods": "art", "tasks": "add-json", "seeds": "0", "lr_grid": "fast please"}, "has no '='"),
    ("start_compare", {"methods": "art", "tasks": "add-json", "seeds": "0", "lr_grid": "auto", "grid_seeds": 2},
     "--grid-seeds is 2 but --seeds names 1 seed"),
    ("start_compare", {"methods": "art", "tasks": "add-json", "seeds": "0", "method_options": '{"art": 5}'},
     "maps each method to an object"),
    ("start_compare", {"methods": "art", "tasks": "add-json", "seeds": "0", "steps": 10**12}, "more than this app allows"),
    ("start_tune", {"method": "art", "task": "add-json", "val_size": -1}, "--val-size is -1"),
    ("start_tune", {"method": "art", "task": "add-json", "trials": 10**12}, r"trials .* is more than this app allows "
                                                                           r"\(1,000\).*--max-trials"),
])
def test_what_would_fail_as_a_job_is_refused_before_it_is_queued(studio, start, values, message):
    """These were queued and then failed as jobs (or, for 1e12 steps, ran with an estimate of millions of hours),
    the line beside Start still saying "Job 19 started"."""
    with pytest.raises(ArtStudioError, match=message):
        getattr(studio, start)(values)
    assert studio.jobs.jobs() == []


def test_the_command_panel_refuses_a_resume_of_a_run_that_does_not_exist(studio):
    """With 'resume' ticked for a name that never ran, Start refused but the panel showed a runnable --resume line."""
    with pytest.raises(ConfigError, match="there is no run named 'never-ran' to resume"):
        studio.train_config(form(run="never-ran", resume=True), preview=True)
    assert not (studio.runs / "never-ran").exists()


def test_whole_number_fields_refuse_a_fraction_instead_of_rounding_it(studio):
    """Gradio's precision=0 turned seed 1.5 into --seed 2 without a word."""
    import gradio as gr

    from artstudio.ui.widgets import field_input
    from artstudio.training import TrainConfig

    with gr.Blocks():
        seed = field_input(TrainConfig, "seed")
    assert isinstance(seed, gr.Number) and seed.precision is None and seed.step == 1
    with pytest.raises(ConfigError, match="1.5"):
        studio.train_config(form(seed=1.5), preview=True)
    assert studio.train_config(form(seed=2.0), preview=True)[0].seed == 2


def test_the_command_panel_shows_the_refusal_instead_of_a_command(studio):
    import gradio as gr

    from artstudio.ui.train_tab import build_train_tab

    with gr.Blocks():
        tab = build_train_tab(studio, gr.State(""))
    assert tab.preview(**form(steps=-5)).startswith("# 'steps' is -5; expected at least 1")
    assert tab.preview(**form()).startswith("artstudio train")
    # A canvas size the model cannot take: Start refused it while the panel showed `--canvas-size 100` to run.
    assert tab.preview(**form(canvas_size="100")).startswith("# canvas size 100×100 does not fit")
    assert "--canvas-size 96" in tab.preview(**form(canvas_size="96"))


def test_the_command_panel_redraws_one_at_a_time_in_order(studio):
    """Every field's change event redraws the panel; run side by side, an earlier redraw could finish last and
    leave the panel showing the form before the last edit. They share one queue that runs one at a time."""
    from artstudio.ui.app import build_app

    demo = build_app(studio=studio)
    redraws = [f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "preview" and f.api_name != "train_command"]
    assert len(redraws) > 10  # a change event per field, the panel opening, the page load
    assert {(f.concurrency_id, f.concurrency_limit) for f in redraws} == {("as-train-command", 1)}


def test_a_reload_restores_a_form_ready_for_the_next_thing_to_do(studio):
    """A reload restored 'resume' ticked from a failed run beside an emptied run name, so the next new run was
    sent with --resume and refused; a stopped run came back without its name, though the Jobs page says to
    resume it with the same name."""
    import gradio as gr

    from artstudio.ui.jobs import DONE, FAILED, STOPPED, Job
    from artstudio.ui.train_tab import build_train_tab

    with gr.Blocks():
        tab = build_train_tab(studio, gr.State(""))
    ids = [getattr(c, "elem_id", None) for c in tab.form]

    def restored(status: str) -> dict:
        studio.jobs._jobs[:] = [Job(id=1, kind="train", title="t", work=lambda job: None, status=status, owner="me",
                                    form=form(run="mine", resume=True, steps=40))]
        values = tab.restore("me")
        return {i.removeprefix("as-train-"): v for i, v in zip(ids, values) if i and i.startswith("as-train-")}

    assert restored(STOPPED)["run"] == "mine" and restored(STOPPED)["resume"] is True
    for status in (DONE, FAILED):
        assert restored(status)["run"] == "" and restored(status)["resume"] is False
    assert restored(DONE)["steps"] == 40


def test_a_reload_restores_the_upload_the_run_trains_on(studio, upload):
    """A reload during a training on an uploaded file restored every field but the upload boxes, which came back
    empty: Start then refused for want of a training file. They now show the run's copies, under the upload's name."""
    import gradio as gr

    from artstudio.ui.jobs import RUNNING, Job
    from artstudio.ui.train_tab import build_train_tab

    with gr.Blocks():
        tab = build_train_tab(studio, gr.State(""))
    values = form(source="upload", run="mine")
    studio.train_config(values, str(upload), str(upload))  # copies the upload into runs/mine/data/
    studio.jobs._jobs[:] = [Job(id=7, kind="train", title="t", work=lambda job: None, status=RUNNING, owner="me",
                                form=values, run_dir=studio.runs / "mine")]
    # Every answer sets every output (a reload with no job returned two values too few: Gradio's error in the log).
    assert len(tab.restore("nobody")) == len(tab.fill({"steps": 3})) == len(tab.form)
    assert len(tab.restore("me")) == len(tab.form)
    restored = dict(zip(tab.form, tab.restore("me")))
    train_box, eval_box = tab.form[-3], tab.form[-2]
    assert Path(restored[train_box]).name == "mytask.jsonl" and Path(restored[train_box]).read_text() == ROWS
    assert Path(restored[eval_box]).read_text() == ROWS
    # Start again with what the page shows: the same rows, under the same task name.
    config, _ = studio.train_config(form(source="upload", run="again"), restored[train_box], restored[eval_box])
    assert (studio.runs / "again" / "data" / "train.jsonl").read_text() == ROWS
    assert json.loads((studio.runs / "again" / "data" / "card.json").read_text())["name"] == "mytask"
    # A run on a built-in task leaves the boxes as they are.
    studio.jobs._jobs[0].form = form(run="mine")
    restored = tab.restore("me")
    assert restored[-3] == restored[-2] == gr.skip()


def test_good_numbers_still_start_and_copy_the_upload(studio, upload):
    config, run = studio.train_config(form(source="upload", run="good"), str(upload))
    assert run == "good" and config.steps == 10 and config.data == str(studio.runs / "good" / "data")
    assert (studio.runs / "good" / "data" / "train.jsonl").read_text() == ROWS


# --- 2. a second Start while the run is running ---------------------------------------------------

def test_a_second_start_of_a_running_run_says_it_is_running(studio):
    release = threading.Event()
    run_dir = studio.runs / "two-a"

    def work(job):  # what a running training leaves in its folder, until it is released
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text("{}")
        release.wait(30)

    job = studio.jobs.submit("train", "two-a", work, total=10, run_dir=run_dir)
    try:
        while not (run_dir / "config.json").exists():
            threading.Event().wait(0.02)
        with pytest.raises(ConfigError, match="'two-a' is already queued or running") as err:
            studio.train_config(form(run="two-a"))
        assert "resume" not in str(err.value)
    finally:
        release.set()
        studio.jobs.wait(job.id, timeout=30)
    # Once it has finished, the folder is an existing run: choose another name, or resume it.
    with pytest.raises(ConfigError, match="exists already.*resume"):
        studio.train_config(form(run="two-a"))


def test_a_resume_with_other_options_is_refused_at_start_and_writes_nothing_into_the_run(studio):
    """A fresh page's Start with 'resume' ticked and the form's default task (add-json) for a stopped max-bracket
    run was queued, failed as a job, and left runs/<run>/task/add-json inside the run."""
    from artstudio.training import TrainConfig, train

    run_dir = studio.runs / "stopped-run"
    steps = iter(range(100))
    result = train(TrainConfig(out=str(run_dir), data="max-bracket", method="art-single", steps=3, batch_size=2),
                   should_stop=lambda: next(steps) >= 1, progress=False)
    assert result.metrics["stopped"]
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    with pytest.raises(ConfigError, match="these differ: --data add-json"):
        studio.train_config(form(run="stopped-run", resume=True, method="art-single", steps=3, batch_size=2))
    assert not any(j.kind == "train" for j in studio.jobs.jobs())
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
    # The command line refuses it the same way, and takes out the task folder the refused resume made.
    with pytest.raises(ConfigError, match="these differ: --data add-json"):
        train(TrainConfig(out=str(run_dir), data="add-json", method="art-single", steps=3, batch_size=2, resume=True),
              progress=False)
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
    config, _ = studio.train_config(form(run="stopped-run", resume=True, task="max-bracket", method="art-single",
                                         steps=3, batch_size=2))  # the run's own options: accepted
    assert config.resume


def test_a_mistyped_init_is_refused_at_start_and_a_failed_upload_does_not_block_the_name(studio, upload):
    """`{"init": "nonsense"}` was queued, copied the upload into runs/NAME/data/ and failed there; the name was then
    refused both as a run that "exists already" and as "no run to resume"."""
    values = form(run="upl", source="upload", method_options='{"init": "nonsense"}')
    with pytest.raises(ConfigError, match="unknown canvas init 'nonsense'"):
        studio.train_config(values, str(upload))
    assert not (studio.runs / "upl").exists()  # refused before the upload was written
    (studio.runs / "upl" / "data").mkdir(parents=True)  # what a job that failed before it began leaves
    config, run = studio.train_config(form(run="upl", source="upload"), str(upload))
    assert run == "upl" and (studio.runs / "upl" / "data" / "train.jsonl").is_file()
    # No description made of the file's name: the Text-to-Canvas start painted from "uploaded mytask.jsonl" was
    # trained and raced for nothing.
    assert "description" not in json.loads((studio.runs / "upl" / "data" / "card.json").read_text())
    # One typed with the upload goes into its card (the painted start is made from it); a wall of text is refused.
    described = "The prompt is a word. Reply with it in capitals."
    studio.train_config(form(run="upl2", source="upload", description=f"  {described}\n"), str(upload))
    assert json.loads((studio.runs / "upl2" / "data" / "card.json").read_text())["description"] == described
    with pytest.raises(ConfigError, match="task description has 2,001 characters"):
        studio.train_config(form(run="upl3", source="upload", description="x" * 2001), str(upload))
    assert not (studio.runs / "upl3").exists()
    with pytest.raises(ConfigError, match="no run named 'upl' to resume"):
        studio.train_config(form(run="upl", source="upload", resume=True), str(upload))


# --- 5. no test file, no accuracy, and the page says why ------------------------------------------

def _finished_job(run_dir: Path, source: str):
    from artstudio.ui.jobs import DONE, Job

    job = Job(id=1, kind="train", title="art · mytask.jsonl · up", work=lambda j: None, run_dir=run_dir, total=5,
              done=5, status=DONE, form={"source": source})
    job.history = [{"step": 5, "loss": 5.0775, "lr": 0.005, "seconds_per_step": 0.07}]
    return job


def test_an_upload_without_a_test_file_says_why_there_is_no_accuracy(tmp_path):
    from artstudio.ui.train_tab import _metrics_text

    run_dir = tmp_path / "up"
    (run_dir / "data").mkdir(parents=True)
    (run_dir / "data" / "train.jsonl").write_text(ROWS)
    text = _metrics_text(_finished_job(run_dir, "upload"))
    assert "last loss **5.0775**" in text
    assert "no test rows were given" in text and "accuracy was not measured" in text and "test data" in text
    # With a test file (or a built-in task, which has its test split) there is nothing to explain.
    (run_dir / "data" / "test.jsonl").write_text(ROWS)
    assert "no test rows" not in _metrics_text(_finished_job(run_dir, "upload"))
    assert "no test rows" not in _metrics_text(_finished_job(tmp_path / "task-run", "task"))


# --- 6. a refused save replaces the message under the button ---------------------------------------

def test_a_refused_save_replaces_the_saved_as_message(studio, monkeypatch):
    import gradio as gr

    from artstudio.ui.app import build_app

    demo = build_app(studio=studio)
    page = next(f for f in demo.fns.values() if f.api_name == "save_to_gallery_page")
    monkeypatch.setattr(gr, "Warning", lambda *a, **k: None)  # the toast: no request to show it in here
    def taken(run, name, description=""):  # the second save under the same name
        raise ConfigError("the gallery already has adder.png; choose another name or delete the old one first")

    monkeypatch.setattr(studio, "save_run", taken)
    out = page.fn("run-1", "adder", "")
    assert out.startswith("⚠") and "already has adder.png" in out and "Saved as" not in out


# --- 7. names that look like paths are refused -----------------------------------------------------

@pytest.mark.parametrize("name", ["../../etc", "a/b", "..", "runs\\x", "x/../y"])
def test_names_that_look_like_paths_are_refused_not_rewritten(studio, name):
    from artstudio.ui.files import PathRefused, safe_name

    with pytest.raises(PathRefused, match="looks like a path"):
        safe_name(name, "run name")
    with pytest.raises(PathRefused, match="run name .* looks like a path"):
        studio.train_config(form(run=name))
    with pytest.raises(PathRefused, match="looks like a path"):
        studio.start_compare({"name": name, "methods": "art", "tasks": "add-json"})
    assert studio.jobs.jobs() == [] and list(studio.runs.iterdir()) == []


def test_a_typed_name_too_long_is_refused_not_cut():
    """A 300-character artwork name was saved cut to 80 characters without a word."""
    from artstudio.errors import ArtStudioError
    from artstudio.ui.files import safe_name

    assert safe_name("x" * 80, "artwork name") == "x" * 80
    with pytest.raises(ArtStudioError, match="the artwork name is 300 characters long; keep it to 80"):
        safe_name("x" * 300, "artwork name")
    assert len(safe_name("y" * 300, "file name", derived=True)) == 80  # a name the app derives is only cleaned


def test_harmless_names_are_still_tidied(studio):
    from artstudio.ui.files import safe_name

    assert safe_name("  My run 1! ") == "My-run-1"
    assert safe_name("v1.2_final") == "v1.2_final"
    assert studio.train_config(form(run="my first run"), preview=True)[1] == "my-first-run"
    # Names the app derives itself (an uploaded file's name) are only tidied.
    assert safe_name("..hidden", derived=True) == "hidden"


# --- 8. smaller things ------------------------------------------------------------------------------

def test_an_empty_upload_says_what_a_file_should_hold(tmp_path):
    from artstudio.ui.files import validate_jsonl, validate_png

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ArtStudioError, match=r'empty.jsonl is empty .*one JSON object a line, like \{"prompt"'):
        validate_jsonl(empty, 1)
    png = tmp_path / "empty.png"
    png.write_bytes(b"")
    with pytest.raises(ArtStudioError, match="empty.png is empty .*choose a PNG picture"):
        validate_png(png, 1)


def test_a_studys_learning_rate_fills_the_form_exactly(studio):
    """It was rounded to 4 significant digits for the eye, and the rounded rate trained another run than best.json's."""
    from artstudio.training import TrainConfig

    folder = studio.runs / "tune" / "study"
    folder.mkdir(parents=True)
    best = TrainConfig(data="add-json", method="art", steps=20, lr=0.06260326907499733, warmup=0.0712345678,
                       method_options={"canvas_size": 96})
    (folder / "best.json").write_text(best.to_json())
    values, lost = studio.tune_train_values("study")
    assert values["lr"] == "0.06260326907499733"
    assert values["warmup"] == 0.0712345678 and values["steps"] == 20 and lost == []
    config, _ = studio.train_config(values, preview=True)
    assert config.lr == best.lr and config.warmup == best.warmup and config.steps == 20


def test_the_jobs_page_says_when_there_are_no_jobs(studio):
    import gradio as gr

    from artstudio.ui.app import NO_JOBS, _build_jobs_tab

    with gr.Blocks():
        (table, empty), refresh = _build_jobs_tab(studio, gr.State(""))
    assert empty.value == NO_JOBS and "No jobs yet" in NO_JOBS
    rows, note, seen = refresh({}, "")
    assert rows == [] and note.visible is True
    studio.jobs.submit("train", "a job", lambda job: None, total=1)
    rows, note, seen = refresh(seen, "")
    assert len(rows) == 1 and note.visible is False


def test_result_tables_keep_their_words_whole():
    from artstudio.ui.app import CSS

    rules = CSS[CSS.index(".as-results th, .as-results td {"):]
    rules = rules[:rules.index("}")]
    assert "white-space:nowrap" in rules and "word-break:keep-all" in rules and "overflow-wrap:normal" in rules
    assert ".as-results table {display:block; max-width:100%; overflow-x:auto;" in CSS  # too wide: it scrolls
    # ... with a scrollbar drawn, also where the system's scrollbars overlay the page and show only while scrolling.
    assert ".as-results table::-webkit-scrollbar {height:8px;}" in CSS
    # The Jobs table's headers neither break inside a word ("jo/b") nor lose letters to the sort menu's button.
    assert "#as-jobs th, #as-jobs th span {word-break:keep-all !important; overflow-wrap:normal !important;}" in CSS
    assert "#as-jobs th .cell-menu-button {display:none !important;}" in CSS


@pytest.mark.parametrize("steps", ["-1", "0"])
def test_a_comparison_with_bad_numbers_is_refused_before_it_is_queued(studio, steps):
    """The Compare tab queued steps -1, which then failed as a job ("queued" and "Failed" at once)."""
    with pytest.raises(ConfigError, match=f"--steps is {steps}; expected at least 1"):
        studio.start_compare({"methods": "art", "tasks": "add-json", "steps": steps, "seeds": "0"})
    assert studio.jobs.jobs() == []


def test_a_grpo_box_that_is_not_json_shows_a_grpo_example(studio):
    """The GRPO box's error showed a method option ({"canvas_size": 96}) as its example."""
    with pytest.raises(ConfigError, match=r'GRPO options are not valid JSON .*\{"reward": "numeric", "group_size": 4\}'):
        studio.train_config(form(objective="grpo", grpo="not json"))
    with pytest.raises(ConfigError, match=r'method options are not valid JSON .*\{"canvas_size": 96\}'):
        studio.train_config(form(method_options="not json"))


def test_a_failed_job_says_why_without_the_machine_s_paths(studio):
    """A job's failure (a refused resume) showed `/home/me/app/runs/sa-stop` on the pages, where every other
    message shows `runs/sa-stop`."""
    from artstudio.errors import ConfigError

    def work(job):
        raise ConfigError(f"--resume continues the run in {studio.runs / 'sa-stop'}; these differ: --data")

    job = studio.jobs.wait(studio.jobs.submit("train", "t", work).id)
    # ... and names the page's fields, not the command line's options.
    assert job.status == "failed" and job.message == "'resume' continues the run in runs/sa-stop; these differ: 'task'"
    # Nor what the library says to Python callers, nor a flag's placeholder ("pass 'test data' FILE").
    from artstudio.ui.widgets import clean_message

    assert clean_message("x exists; pass --overwrite to replace it (overwrite=True, out=... in Python), or "
                         "--eval-data FILE") == "x exists; pass 'overwrite' to replace it, or 'test data'"
    assert clean_message("run `artstudio train --eval-data FILE`") == "run `artstudio train --eval-data FILE`"


def test_an_error_shown_on_the_page_keeps_its_angle_brackets(monkeypatch):
    """Describe's empty-box message ended at "like [": the toast (HTML) and the inline message (Markdown) both
    swallowed "<value>]" as a tag."""
    from artstudio.errors import ConfigError
    from artstudio.ui import widgets

    toasts = []
    monkeypatch.setattr(widgets.gr, "Warning", lambda message, **kw: toasts.append(message))

    def refuse(_):
        raise ConfigError("describe the task first, e.g. 'Reply with their sum, like [<value>].' (`Answer: <n>`)")

    out = widgets.keep_page(refuse, 2, inline=1)("")
    assert toasts == ["describe the task first, e.g. 'Reply with their sum, like [&lt;value&gt;].' (`Answer: &lt;n&gt;`)"]
    assert out[1] == "⚠ describe the task first, e.g. 'Reply with their sum, like [&lt;value&gt;].' (`Answer: <n>`)"


def test_a_run_that_failed_before_training_shows_no_canvas_and_no_save(studio):
    """A refused resume showed the run folder's earlier canvas as its "trained artwork" and offered to save it."""
    import shutil

    from artstudio.errors import ConfigError
    from artstudio.ui.train_tab import _refresh

    run_dir = studio.runs / "sa-stop"
    run_dir.mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parents[1] / "canvases" / "add-json.png", run_dir / "artwork.png")

    def work(job):
        raise ConfigError("--resume continues the run in runs/sa-stop with the options it started with; these differ")

    job = studio.jobs.wait(studio.jobs.submit("train", "art · max-bracket · sa-stop", work, run_dir=run_dir,
                                              owner="me").id)
    header, canvas, caption, *_, save_box, run, job_id, log, state = _refresh(studio, {}, "me")
    assert job.status == "failed" and canvas is None and "trained artwork" not in caption
    assert save_box.visible is False and "failed" in header


def test_a_page_follows_and_stops_the_job_it_started_last(studio):
    """A page that started job 7 while its job 6 was still finishing its step stopped job 6 again, and job 7 ran to
    its end; of two queued jobs it followed the older one."""
    go = threading.Event()
    older = studio.jobs.submit("train", "older", lambda job: go.wait(30), total=1, owner="me")
    while older.status == "queued":
        go.wait(0.01)
    newer = studio.jobs.submit("train", "newer", lambda job: None, total=1, owner="me")
    newest = studio.jobs.submit("train", "newest", lambda job: None, total=1, owner="me")
    assert studio.jobs.latest_of("train", "me") is newest
    assert studio.jobs.stop_latest("train", "me") is newest and newest.status == "cancelled"
    assert studio.jobs.latest_of("train", "me") is newer  # then the one before it, still to run
    studio.jobs.stop_latest("train", "me")
    assert studio.jobs.latest_of("train", "me") is older  # then the running one
    go.set()
    assert studio.jobs.wait(older.id).status == "done" and studio.jobs.latest_of("train", "me") is older


def test_a_stop_that_found_nothing_left_to_stop_is_a_finished_job(studio):
    """Stop pressed during a run's last step labelled a run that trained all its steps "stopped" and advised
    resuming it; the work says whether it stopped early."""
    started = threading.Event()

    def work(stopped):
        def run(job):
            started.set()
            while not job.stop_requested():
                started.wait(0.01)
            return {"stopped": stopped}
        return run

    for stopped, status in ((False, "done"), (True, "stopped")):
        started.clear()
        job = studio.jobs.submit("train", "t", work(stopped), total=1, owner="me")
        started.wait(30)
        studio.jobs.stop(job.id)
        assert studio.jobs.wait(job.id).status == status


def test_the_line_under_start_follows_its_job_and_clears_when_it_ends(studio):
    """"Job 4 queued: …" stayed under the Start button after the job had run and finished."""
    import gradio as gr

    from artstudio.ui.widgets import follow_line

    go = threading.Event()
    first = studio.jobs.submit("compare", "first", lambda job: go.wait(30), total=1)
    second = studio.jobs.submit("compare", "second", lambda job: None, total=1)
    while first.status == "queued":
        go.wait(0.01)
    line = studio.jobs.line(second, second.title)
    assert line == "Job 2 queued (position 1): **second**"
    assert follow_line(line, studio.jobs, second, "second") == gr.skip()  # unchanged: nothing to redraw
    running = studio.jobs.line(first, "first")
    assert running == "Job 1 running: **first**"
    # A stop message stays while the job finishes its step; another page message is never touched.
    stopping = "Stopping job 1 after its current step; finished runs are kept and a re-run resumes."
    assert follow_line(stopping, studio.jobs, first, "first") == gr.skip()
    assert follow_line("⚠ steps must be at least 1", studio.jobs, first, "first") == gr.skip()
    assert follow_line("", studio.jobs, first, "first") == running  # a page reloaded mid-job: the line comes back
    go.set()
    studio.jobs.wait(second.id)
    assert studio.jobs.wait(first.id).status == "done"
    assert follow_line(line, studio.jobs, second, "second") == ""
    assert follow_line(stopping, studio.jobs, first, "first") == ""
    assert follow_line(running, studio.jobs, first, "first") == ""
    assert follow_line("Job 12 running: **x**", studio.jobs, first, "first") == gr.skip()
    assert follow_line("", studio.jobs, first, "first") == gr.skip()  # ended: nothing comes back


def test_a_job_shows_the_library_s_warnings_on_its_page(studio):
    """"batch size 1e12 is larger than the 1000 training rows" reached only the server console."""
    import logging

    from artstudio.ui.train_tab import _log_text

    def work(job):
        logging.getLogger("artstudio.train").warning("batch size %d (--batch-size) is larger than the %d training rows",
                                                     64, 40)
        logging.getLogger("artstudio.train").warning("batch size %d (--batch-size) is larger than the %d training rows",
                                                     64, 40)
        other = threading.Thread(target=lambda: logging.getLogger("artstudio.train").warning("another job's words"))
        other.start()
        other.join()

    job = studio.jobs.wait(studio.jobs.submit("train", "t", work).id)
    assert job.warnings == ["batch size 64 ('batch size') is larger than the 40 training rows"]
    assert "warning: batch size 64 ('batch size') is larger than the 40 training rows" in _log_text(job)


def test_a_run_trying_its_starts_moves_its_bar_and_logs_each_start_after_the_set_up_warnings(studio):
    """The bar stayed at "step 0 / 400" while the run tried its starts, the log named only the start of the moment,
    and the set-up warnings were printed after the last step."""
    from artstudio.ui.jobs import Job
    from artstudio.ui.train_tab import _header, _log_text

    job = Job(id=1, kind="train", title="t", work=lambda job: None, total=400, status="running")
    job.warnings.append("batch size 16 ('batch size') is larger than the 3 training rows")
    for index, name in ((1, "gray"), (2, "t2c")):
        for step in (30, 60):
            job.record({"phase": "start", "start": name, "index": index, "starts": 2, "start_step": step,
                        "start_steps": 60})
    job.record({"phase": "start", "start": "t2c", "index": 2, "starts": 2, "start_step": 15, "start_steps": 60})
    assert "width:25.0%" in _header(studio, job) and "then 400 steps from the best start" in _header(studio, job)
    log = _log_text(job).splitlines()
    assert log[1:4] == ["warning: batch size 16 ('batch size') is larger than the 3 training rows",
                        "start 1 of 2 (gray): step 60/60", "start 2 of 2 (t2c): step 15/60"]
    job.record({"step": 1, "loss": 0.5, "lr": 0.05})
    assert "step 1 / 400" in _header(studio, job) and _log_text(job).splitlines()[4].startswith("step 1/400")
    # A stop says how to go on: 'resume' sits under Advanced options, which the stop leaves shut.
    job.run_dir, job.status = studio.runs / "r", "stopped"
    assert "to go on: run name 'r', tick 'resume' (Advanced options), press Start" in html.unescape(_header(studio, job))


def test_the_gallery_marks_a_stopped_run_and_an_upload_is_added_once(studio):
    """A run stopped at step 0 was listed as a finished artwork; each upload of one PNG added another copy."""
    import shutil

    shipped = Path(__file__).resolve().parents[1] / "canvases" / "add-json.png"
    for name, result in (("done-run", {"steps": 40}), ("cut-run", {"steps": 3, "stopped": True})):
        (studio.runs / name).mkdir(parents=True)
        shutil.copy(shipped, studio.runs / name / "artwork.png")
        (studio.runs / name / "result.json").write_text(json.dumps(result))
    labels = {item.key: item.label for item in studio.gallery()}
    assert labels["runs/cut-run/artwork.png"] == "cut-run · run (stopped at step 3)"
    assert labels["runs/done-run/artwork.png"] == "done-run · run"  # the name first: a thumbnail's label is cut at its end
    (studio.runs / "cut-run" / "config.json").write_text(json.dumps({"steps": 300}))
    shipped_steps = studio.artwork_details("runs/done-run/artwork.png")["steps"]
    assert studio.artwork_details("runs/cut-run/artwork.png")["steps"] == f"{shipped_steps} (stopped; it was to train 300)"
    assert studio.add_upload(str(shipped), "green.png") == "canvases/green.png"
    assert studio.add_upload(str(shipped), "green.png") == "canvases/green.png"
    assert sorted(p.name for p in studio.canvases.glob("*.png")) == ["green.png"]


def test_a_stopped_runs_artwork_is_not_called_the_trained_one(tmp_path):
    """Stopped at step 30 of 60, the Train page said "The trained artwork" beside Save, as for a finished run."""
    from artstudio.ui.jobs import DONE, STOPPED, Job
    from artstudio.ui.train_tab import _caption

    art = tmp_path / "artwork.png"
    stopped = Job(id=1, kind="train", title="t", work=lambda job: None, total=60, done=30, status=STOPPED)
    assert _caption(stopped, art).startswith("**The artwork at step 30** (stopped; it was to train 60)")
    done = Job(id=2, kind="train", title="t", work=lambda job: None, total=60, done=60, status=DONE)
    assert _caption(done, art).startswith("**The trained artwork**")


def test_a_stop_during_the_starts_is_said_once_at_the_end_of_the_log():
    """The library's warning of it came first, above the starts' lines, and the closing line said it again."""
    from artstudio.ui.jobs import STOPPED, Job
    from artstudio.ui.train_tab import _log_text

    job = Job(id=1, kind="train", title="t", work=lambda j: None, total=60, status=STOPPED,
              result={"metrics": {"stopped_during_starts": True}},
              warnings=["runs/r stopped during its starts, before one was chosen: no canvas is kept"],
              starts={1: {"starts": 2, "start": "gray", "start_step": 8, "start_steps": 9}})
    lines = _log_text(job).splitlines()
    assert not any("warning" in line for line in lines)
    assert lines[-1].startswith("stopped while trying its starts") and lines[-2].startswith("start 1 of 2")


def test_a_job_stopped_from_another_browsers_jobs_page_tells_its_owner(studio):
    """Anyone may stop any job on the Jobs page; the browser that started it was not told it was not its own Stop."""
    go = threading.Event()
    running = studio.jobs.submit("compare", "running", lambda job: go.wait(30) and None, total=1, owner="ana")
    waiting = studio.jobs.submit("compare", "waiting", lambda job: None, total=1, owner="ana")
    own = studio.jobs.submit("compare", "own", lambda job: None, total=1, owner="ana")
    while running.status == "queued":
        go.wait(0.01)
    studio.jobs.stop(waiting.id, by="ben")
    assert waiting.status == "cancelled" and waiting.message == ("cancelled before it started (from another "
                                                                 "browser's Jobs page)")
    studio.jobs.stop(own.id, by="ana")
    assert own.message == "cancelled before it started"  # its own browser: nothing to add
    studio.jobs.stop(running.id, by="ben")
    assert running.phase == "stopping after the current step (from another browser's Jobs page)"
    go.set()
    assert studio.jobs.wait(running.id).status == "stopped"
    assert running.phase == "stopped; the finished runs are kept, and starting it again resumes (from another browser's Jobs page)"


def test_a_command_redraw_that_reaches_the_server_after_a_later_one_is_dropped():
    """The Train tab's command panel redraws once per edit; on a loaded machine an earlier redraw reached the
    server last and the panel showed the form as it was two edits before. Redraws carry a stamp (page, time)."""
    from ui.widgets import NewestOnly

    newest = NewestOnly(pages=2)
    assert not newest.stale("p1 100.5") and not newest.stale("p1 200.25")
    assert newest.stale("p1 150.0"), "asked before the one already drawn"
    assert not newest.stale("p1 200.25") and not newest.stale("p2 50.0"), "the same moment, or another page"
    assert not newest.stale(None) and not newest.stale("") and not newest.stale("p1 nonsense"), "no stamp: drawn"
    assert not newest.stale("p3 1.0") and not newest.stale("p1 10.0"), "the oldest page is forgotten past `pages`"
