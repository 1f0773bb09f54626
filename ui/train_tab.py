"""The Train page: choose a model, data and method, start, and watch the canvas learn.

The form is generated from `TrainConfig` (the options, defaults and help texts of `artstudio train`).
While a run goes, a timer redraws the page from the job queue's state, not from anything kept in the
browser, so a reloaded page picks the running job up again: the progress bar, the loss (and reward)
curves, the newest canvas snapshot, large, and the evaluation accuracy when one was measured. A
finished ART run can be saved to the gallery with a name and a description.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from artstudio.averaging import averaged_over
from artstudio.diagnosis import Diagnosis
from artstudio.errors import ArtStudioError
from artstudio.methods import ArtConfig, get_method, method_names
from artstudio.objectives import get_objective, objective_names
from artstudio.tasks import TASKS, list_tasks
from artstudio.training import TrainConfig

from .command import train_command
from .files import copy_into, safe_name
from .jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, STOPPED, Job, stopped_during_starts, stopped_phase
from .studio import APP_SNAPSHOT_EVERY, Studio
from .widgets import (STAMP_JS, NewestOnly, action, dataclass_form, duration, field_input, follow_line, form_words, friendly, keep_page,
                      markdown_text, progress_html)

# Three columns side by side (scoring, optimisation, the run itself), then the JSON options full width:
# in one column the section was some 2,000 px long.
ADVANCED_COLUMNS = [["metric", "eval_every", "eval_size", "max_new_tokens"],
                    ["grad_accum", "weight_decay", "warmup", "schedule", "ema"],
                    ["checkpoint_every", "snapshot_every", "resume", "device", "dtype"]]
ADVANCED_WIDE = ["method_options", "grpo"]
ADVANCED = [name for column in ADVANCED_COLUMNS for name in column] + ADVANCED_WIDE
DEFAULT_TASK = "add-json"
PLOT_COLUMNS = ["step", "value", "series"]
# The live log follows its newest line ("finished", the final evaluation): Gradio's own autoscroll does
# not fire when a timer replaces the text. A reader who scrolls up to read keeps their place; back at
# the end, the log follows again. Runs in the browser on every change of the log's text.
FOLLOW_LOG_JS = """() => {
  const box = document.querySelector('#as-train-log textarea');
  if (!box) return;
  const end = () => { box.scrollTop = box.scrollHeight; };
  if (!box.dataset.asFollow) {
    box.dataset.asFollow = 'yes';
    const mark = () => { box.dataset.asFollow = box.scrollTop + box.clientHeight >= box.scrollHeight - 24 ? 'yes' : 'no'; };
    for (const e of ['wheel', 'touchend', 'keyup', 'mouseup']) box.addEventListener(e, () => setTimeout(mark, 200));
  }
  if (box.dataset.asFollow === 'yes') { end(); requestAnimationFrame(end); }
}"""

# The command panel's redraws (one per field's change, the panel opening, the page load) share one queue that
# runs one at a time: side by side, an earlier redraw could finish last and leave the panel showing the form as
# it was before the last edit (seen on a loaded machine). The queue runs them in the order they reach the
# server, which need not be the order they were asked in, so each also carries a stamp (STAMP_JS).
COMMAND_QUEUE = {"concurrency_id": "as-train-command", "concurrency_limit": 1}


@dataclass
class TrainTab:
    run: gr.Textbox
    job: gr.Number
    header: gr.HTML
    message: gr.Markdown
    canvas: gr.Image
    refresh_outputs: list
    refresh: Any
    stop: gr.Button
    form: list
    restore: Any
    fill: Any
    preview: Any
    preview_inputs: dict
    command: Any


def _empty_plot() -> pd.DataFrame:
    return pd.DataFrame({"step": pd.Series(dtype="int"), "value": pd.Series(dtype="float"),
                         "series": pd.Series(dtype="str")})


def _task_text(name: str | None) -> str:
    card = TASKS.get(name or "")
    if card is None:  # typed into the box: kept (the box used to fall back to the last task without a word)
        return f"⚠ **{markdown_text(name)}** is not a built-in task: choose one from the list, or upload a JSONL file" \
            if (name or "").strip() else ""
    return f"**{card.name}** · {markdown_text(card.description)}  \n<small>metric: {card.metric} · {card.n_train} training / {card.n_test} test prompts</small>"


def _method_text(method: str) -> str:
    """The chosen method's default learning rate and its own options (the `method options` JSON)."""
    lr, grpo = get_method(method).lr_for("sft"), get_method(method).lr_for("grpo")
    cls = get_method(method).config_class
    opts = [f.name for f in fields(cls)] if hasattr(cls, "__dataclass_fields__") else []
    return (f"default lr for **{method}**: {lr:g} (SFT), {grpo:g} (GRPO)" + (f" · its options (JSON under *Advanced options*): "
                                                       f"{', '.join(opts)}" if opts else ""))


def build_train_tab(studio: Studio, client: gr.State) -> TrainTab:
    # LLaMA-Factory's order: the main choices and Start on top, the rest folded, then the run itself.
    with gr.Row(equal_height=False, elem_classes="as-train-top"):
        model = field_input(TrainConfig, "model", choices=studio.model_choices(), value=studio.default_model,
                            info="the frozen model; the menu is fixed when the app starts", elem_id="as-train-model")
        source = gr.Radio([("Built-in task", "task"), ("Upload a JSONL file", "upload")], value="task",
                          label="data", info="a built-in task, or your own prompts and answers", elem_id="as-train-source")
        task = gr.Dropdown([(c.name, c.name) for c in list_tasks()], label="task", elem_id="as-train-task",
                           value=DEFAULT_TASK if DEFAULT_TASK in TASKS else next(iter(TASKS)), allow_custom_value=True)
        main = dataclass_form(TrainConfig, ["method", "objective"], "as-train", method={"choices": method_names()},
                              objective={"choices": [(get_objective(n).label, n) for n in objective_names()]})
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=300):
            task_info = gr.Markdown(_task_text(DEFAULT_TASK), elem_classes="as-note")
            with gr.Group(visible=False) as upload_box:
                with gr.Row():  # side by side where both fit; one above the other in a narrow window (800 px
                    # squeezed each to 200 px: the label over "Drop File Here", the file's name cut to ".json")
                    train_file = gr.File(label="training data (JSONL)", file_types=[".jsonl", ".json", ".txt"],
                                         type="filepath", height=120, min_width=300, elem_id="as-train-file")
                    eval_file = gr.File(label="test data (JSONL, optional)", file_types=[".jsonl", ".json", ".txt"],
                                        type="filepath", height=120, min_width=300)
                description = gr.Textbox("", label="task description (optional)", lines=1, max_lines=3,
                                         elem_id="as-train-description",
                                         info="what the model should do with a prompt, in a sentence or two; on "
                                              "studio-tiny a second start is painted from it (Text-to-Canvas) and the "
                                              "better start is kept")
            data_check = gr.Markdown(elem_classes="as-note", elem_id="as-data-check")
        with gr.Column(scale=2, min_width=260):
            method_info = gr.Markdown(_method_text("art"), elem_classes="as-note")
    with gr.Row(equal_height=False):
        numbers = dataclass_form(TrainConfig, ["steps", "batch_size", "lr", "seed"], "as-train")
        canvas_size = gr.Textbox(value="", placeholder="default", label="canvas size (ART)", elem_id="as-train-canvas_size",
                                 info=next(f for f in fields(ArtConfig) if f.name == "canvas_size").metadata["help"])
        run_name = gr.Textbox(label="run name", elem_id="as-train-run", placeholder="automatic: TASK-METHOD-DATE",
                              info=f"the run's folder inside {studio.runs.name}/")
    main |= numbers
    with gr.Row(equal_height=True):
        start = gr.Button("▶ Start training", variant="primary", elem_id="as-start", scale=2)
        stop = gr.Button("■ Stop", variant="stop", elem_id="as-stop", scale=1, elem_classes="as-danger",
                         interactive=False)  # on while this page's training waits or runs (app.py's timer)
        message = gr.Markdown(elem_id="as-train-message", elem_classes="as-message")
    with gr.Accordion("Advanced options", open=False, elem_id="as-train-advanced"):
        overrides = {"dtype": {"choices": [("automatic", ""), "bf16", "fp16", "fp32"]},
                     "snapshot_every": {"value": APP_SNAPSHOT_EVERY}}
        adv = {}
        with gr.Row(equal_height=False):
            for names in ADVANCED_COLUMNS:
                with gr.Column(min_width=260):
                    adv |= dataclass_form(TrainConfig, names, "as-train", **overrides)
        adv |= dataclass_form(TrainConfig, ADVANCED_WIDE, "as-train", **overrides)
    # The command names the app's runs folder as `runs/…`, as every page does (no server paths on the pages): where
    # that folder is not the app's working folder's own, the label says where the command runs.
    here = (Path.cwd() / studio.runs.name).resolve() == studio.runs.resolve()
    with gr.Accordion("Command line: the same training from a terminal" +
                      ("" if here else f", run in the folder that holds the app's {studio.runs.name}/"), open=False,
                      elem_id="as-train-command-box") as command_box:
        command = gr.Code(language="shell", show_label=False, interactive=False, elem_id="as-train-command",
                          lines=2, max_lines=8)
        stamp = gr.Textbox(visible=False)  # STAMP_JS writes each redraw's page and time here

    with gr.Row(equal_height=False, elem_classes="as-train"):
        with gr.Column(scale=4, min_width=320, elem_classes="as-stage"):
            header = gr.HTML(progress_html(0, "Ready", "press Start to train a canvas", "idle"), elem_id="as-train-progress")
            canvas = gr.Image(value=None, type="filepath", label="the canvas", height=420, interactive=False,
                              elem_id="as-canvas", buttons=["download", "fullscreen"],
                              placeholder="The canvas appears here as it learns.")
            caption = gr.Markdown(elem_classes="as-caption", elem_id="as-canvas-caption")
        with gr.Column(scale=7, min_width=480, elem_classes="as-panel"):
            with gr.Row(equal_height=True):
                log_box = gr.Textbox(label="log", lines=14, max_lines=14, interactive=False, autoscroll=True,
                                     elem_id="as-train-log", placeholder="Each step's loss, as it happens.")
                loss_plot = gr.LinePlot(_empty_plot(), x="step", y="value", title="Training loss",
                                        height=300, x_title="step", y_title="loss", elem_id="as-loss-plot")
            reward_plot = gr.LinePlot(_empty_plot(), x="step", y="value", color="series", title="Reward and accuracy",
                                      color_map={"reward": "#f59e0b", "eval accuracy": "#10b981"},
                                      height=220, x_title="step", y_title="", y_lim=[0, 1], visible=False,
                                      elem_id="as-reward-plot")
            metrics = gr.Markdown(elem_id="as-metrics", elem_classes="as-metrics")
            with gr.Group(visible=False, elem_id="as-save-box") as save_box:
                gr.Markdown("#### Save this artwork to the gallery", elem_classes="as-pad")
                with gr.Row():
                    save_name = gr.Textbox(label="name", placeholder="e.g. json-adder", elem_id="as-save-name")
                    save_desc = gr.Textbox(label="description", placeholder="what it teaches the model",
                                           elem_id="as-save-desc")
                save = gr.Button("Save to gallery", variant="primary", elem_id="as-save")
            save_msg = gr.Markdown(elem_id="as-save-message")

    run = gr.Textbox(visible=False, label="run")
    job_id = gr.Number(visible=False, precision=0, label="job")

    log_box.change(None, js=FOLLOW_LOG_JS, api_visibility="private", show_progress="hidden")

    # The upload's inline check belongs to the upload: it goes with it when a built-in task is chosen.
    source.change(lambda s: (gr.Dropdown(visible=s == "task"), gr.Markdown(visible=s == "task"), gr.Group(visible=s == "upload"),
                             gr.Markdown(visible=s == "upload")),
                  source, [task, task_info, upload_box, data_check], api_visibility="private")
    task.change(_task_text, task, task_info, api_visibility="private")
    main["method"].change(lambda m: (_method_text(m), gr.Textbox(visible=get_method(m).takes_canvas_size())),
                          main["method"], [method_info, canvas_size], api_visibility="private")

    def check_jsonl(upload: str | None) -> str:
        """Validate an uploaded JSONL file; a bad row is reported with its line number."""
        from .files import validate_jsonl

        if not upload:
            return ""
        rows = validate_jsonl(upload, studio.settings.max_upload_mb, Path(upload).name)
        return f"✓ {Path(upload).name}: {len(rows)} rows"

    # The inline check says what the toast says (issue 19: it stayed empty).
    action(train_file.upload, check_jsonl, train_file, [data_check], api_name="check_jsonl", inline=0)
    eval_file.upload(keep_page(check_jsonl, 1, inline=0), eval_file, data_check, api_visibility="private")

    def start_training(**values) -> tuple[str, str, int]:
        """Queue a training run from the form (TrainConfig options); returns (message, run, job id)."""
        train_path, eval_path = values.pop("train_file", None), values.pop("eval_file", None)
        owner = str(values.pop("client", "") or "")
        job = studio.start_training(values, train_path, eval_path, owner=owner)
        return studio.jobs.line(job, job.run_dir.name), job.run_dir.name, job.id

    form = {"model": model, "source": source, "task": task, "description": description, "canvas_size": canvas_size,
            "run": run_name, **main, **adv}
    inputs = {**form, "train_file": train_file, "eval_file": eval_file, "client": client}
    action(start.click, start_training, inputs, [message, run, job_id], api_name="start_training", show_progress="hidden")

    newest = NewestOnly()

    def preview(**values) -> str:
        """The `artstudio train …` command equivalent to the form as filled in."""
        if newest.stale(values.pop("stamp", None)):  # a redraw asked before one already drawn: it would undo it
            return gr.skip()
        values = {k: v for k, v in values.items() if k not in ("train_file", "eval_file", "client")}
        try:
            config, _ = studio.train_config(values, preview=True)
        except Exception as err:  # noqa: BLE001 - the panel says what to fix instead of a command
            from .widgets import clean_message

            return f"# {clean_message(str(err))}"
        return train_command(config, {str(studio.runs): studio.runs.name})

    form_inputs = {**form, "stamp": stamp}  # the stamp last: STAMP_JS fills the last input
    # Every redraw of the panel goes through COMMAND_QUEUE, stamped: one that reaches the server after a later one
    # is dropped (seen on a loaded machine: the panel showed the form as it was two edits before).
    for component in form.values():
        component.change(preview, inputs_kwargs=form_inputs, outputs=command, api_visibility="private", js=STAMP_JS,
                         show_progress="hidden", trigger_mode="always_last", **COMMAND_QUEUE)
    # Opening the panel redraws it too, so it shows the form as it is now whatever events are pending.
    command_box.expand(preview, inputs_kwargs=form_inputs, outputs=command, api_visibility="private", js=STAMP_JS,
                       show_progress="hidden", **COMMAND_QUEUE)
    twin = gr.Button(visible=False)
    twin.click(friendly(preview), inputs_kwargs=form, outputs=command, api_name="train_command")

    def stop_training(job: float | None) -> str:
        """Stop the training this page shows (it keeps its last checkpoint)."""
        if not job:
            return "Nothing is training."
        j = studio.jobs.get(int(job))
        if not j.active:
            return "Nothing is training."
        if studio.jobs.stop(j.id).status == CANCELLED:
            return f"Job {j.id} cancelled before it started; nothing was trained."
        return f"Stopping job {j.id} after its current step; the checkpoint is kept."

    action(stop.click, stop_training, [job_id], [message], api_name="stop_training")

    def refresh(seen: dict, client_id: str, line: str | None = None):
        *drawn, state = _refresh(studio, seen, client_id)
        job = studio.jobs.latest_of("train", client_id)
        name = job.run_dir.name if job is not None and job.run_dir is not None else ""
        return (*drawn, follow_line(line, studio.jobs, job, name), state)

    outputs = [header, canvas, caption, loss_plot, reward_plot, metrics, save_box, run, job_id, log_box, message]

    def save_to_gallery(run: str, name: str, description: str) -> str:
        """Save a finished ART run's artwork to the gallery under a name; returns a message."""
        key = studio.save_run(run, name, description)
        gr.Info(f"Saved to the gallery as {key}")
        return f"Saved as **{key}**: find it in the Gallery."

    # Another job on this page (a new run started, or a reload that finds the newest): the last run's save
    # message ("⚠ the gallery already has ...") and its name and description stayed under every later run.
    job_id.change(lambda: ("", "", ""), None, [save_msg, save_name, save_desc], api_visibility="private",
                  show_progress="hidden")
    # A refused save replaces the message under the button: an earlier "Saved as …" would contradict the toast.
    action(save.click, save_to_gallery, [run, save_name, save_desc], [save_msg], api_name="save_to_gallery",
           show_progress="hidden", inline=0)

    form_names = list(form)
    tab_outputs = [form[n] for n in form_names] + [train_file, eval_file, command]  # what restore and fill set

    def restore(client_id: str):
        """After a reload: the form the page's own newest training was started with (issue 19)."""
        job = studio.jobs.latest_of("train", client_id)
        if job is None or not job.form:
            return (gr.skip(),) * len(tab_outputs)
        form = dict(job.form)
        if job.status == STOPPED:  # the next thing to do is to go on: its name, with resume ticked
            form["resume"] = True
        elif not job.active:  # a finished or failed run's name is taken; the next one is a new run
            form |= {"run": "", "resume": False}
        values = [form.get(n, gr.skip()) for n in form_names]
        return (*values, *_restored_upload(job), preview(**{n: form.get(n) for n in form_names if n in form}))

    def fill(values: dict):
        """The form (`form` outputs) set to `values`, by field name, and the command line it makes."""
        return (*[values.get(n, gr.skip()) for n in form_names], gr.skip(), gr.skip(),
                preview(**{n: values[n] for n in form_names if n in values}))

    return TrainTab(run=run, job=job_id, header=header, message=message, canvas=canvas, refresh_outputs=outputs,
                    refresh=refresh, stop=stop, form=tab_outputs,
                    restore=restore, fill=fill,
                    preview=preview, preview_inputs=form_inputs, command=command)


def _plots(history: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    loss = [(h["step"], h["loss"], "loss") for h in history if isinstance(h.get("loss"), (int, float))]
    other = [(h["step"], h["reward_mean"], "reward") for h in history if isinstance(h.get("reward_mean"), (int, float))]
    other += [(h["step"], h["eval_accuracy"], "eval accuracy") for h in history
              if isinstance(h.get("eval_accuracy"), (int, float))]
    frame = lambda rows: pd.DataFrame(rows, columns=PLOT_COLUMNS) if rows else _empty_plot()  # noqa: E731
    # One point is no curve, and its axis ticks would read like 2.168070: draw from the second step on.
    return frame(loss if len(loss) > 1 else []), frame(other)


def _header(studio: Studio, job: Job) -> str:
    steps = f"step {job.done} / {job.total}"
    if job.status == QUEUED:
        return progress_html(0, f"Job {job.id} is waiting", f"position {studio.jobs.position(job)} in the queue", "idle")
    if job.status == RUNNING:
        if job.done >= job.total and job.total:
            return progress_html(1, "Evaluating the trained canvas", steps, "running")
        if not job.done and job.starts:  # trying its starts: that start's own steps move the bar
            now = job.starts[max(job.starts)]
            return progress_html(now["start_step"] / max(1, now["start_steps"]), job.phase.capitalize(),
                                 f"then {job.total} steps from the best start", "running")
        eta = job.eta_seconds()
        detail = f"{steps}" + (f" · about {duration(eta)} left" if eta is not None else "")
        label = "Training" if job.done else job.phase.capitalize()
        return progress_html(job.fraction, label, detail, "running")
    if job.status == DONE:
        resumed = f", resumed at step {job.resumed_at}" if job.resumed_at else ""  # the time is this job's part
        return progress_html(1, "Finished", f"{steps} in {duration(job.elapsed())}{resumed}", "done")
    if job.status == STOPPED:
        kept = "no canvas kept yet" if stopped_during_starts(job) else "checkpoint kept"
        # How to go on, said where the stop is seen ('resume' sits under Advanced options, which a stop leaves shut).
        name = f"run name '{job.run_dir.name}'" if job.run_dir is not None else "its run name"
        return progress_html(job.fraction, f"Stopped, {kept}{job.stop_note}",
                             f"{steps} · to go on: {name}, tick 'resume' (Advanced options), press Start", "stopped")
    if job.status == FAILED:
        return progress_html(job.fraction, "Failed", job.message, "failed")  # whole: a cut one ended "96×96 (9 to"
    if job.status == CANCELLED:
        return progress_html(0, f"Job {job.id} cancelled{job.stop_note}", "it was stopped before it started", "stopped")
    return progress_html(0, job.status.capitalize(), job.message, "idle")


def _metrics_text(job: Job) -> str:
    last = next((h for h in reversed(job.history) if h.get("loss") is not None), None)
    evals = [h for h in job.history if h.get("eval_accuracy") is not None]
    parts = []
    if evals:
        e = evals[-1]
        label = "final accuracy" if e.get("final") else f"accuracy at step {e['step']}"
        if e.get("ema"):  # the run scores (and exports) its average, not the last step's parameters
            label += f" of the {_trained_what(job)} {averaged_over(e['ema'])}"
        parts.append(f'<div class="as-big">{100 * e["eval_accuracy"]:.1f}%</div><div class="as-small">{label} '
                     f'on {e.get("eval_n", "?")} test prompts</div>')
    if last is not None:
        # The schedule's rate at the last step (a tenth of the peak at the end of a cosine run) read as the run's
        # setting: 0.005 under a run of lr 0.05. Both are said.
        peak = max((h["lr"] for h in job.history if isinstance(h.get("lr"), (int, float))), default=last["lr"])
        rate = f"lr {last['lr']:.2g}" + (f" (peak {peak:.2g})" if peak != last["lr"] else "")
        parts.append(f"last loss **{last['loss']:.4f}** · {rate} · {last['seconds_per_step']:.2f} s/step")
    if job.status == DONE and not evals and _untested_upload(job):
        parts.append("**No accuracy:** no test rows were given (the upload had no test file), so accuracy was not "
                     "measured. To get one, upload a JSONL file of held-out prompts and answers as *test data "
                     "(optional)* and train again.")
    said = next((h for h in reversed(job.history) if h.get("diagnosis")), None)
    if said:
        title = Diagnosis.TITLES.get(said.get("diagnosis_kind", "stuck"), "Warning.")
        said_here = form_words(said["diagnosis"])  # the page's fields, not command-line flags
        if said.get("diagnosis_kind") == "unfinished":
            name = f"run name '{job.run_dir.name}'" if job.run_dir is not None else "its run name"
            said_here += f" To train on from its last step: {name}, tick 'resume', raise 'steps', press Start."
        parts.append(f"**{title}** {said_here}")
    if job.status == FAILED:
        parts.append(f"**Error:** {job.message}")
    return "\n\n".join(parts)


def _trained_what(job: Job) -> str:
    method = (job.form or {}).get("method")
    return "canvas" if method in method_names() and get_method(method).paints() else "trained parameters"


def _restored_upload(job: Job) -> tuple:
    """The files a reloaded page shows in the upload boxes: the run's copies of what was uploaded (`RUN/data/`),
    under the uploaded file's name (its card's), so Start again trains on the same data under the same task name.
    A reload during training showed every field of the form but these two, empty."""
    folder = job.run_dir / "data" if job.run_dir is not None else None
    if (job.form or {}).get("source") != "upload" or folder is None or not (folder / "train.jsonl").is_file():
        return gr.skip(), gr.skip()
    try:
        name = json.loads((folder / "card.json").read_text(encoding="utf-8")).get("name") or "train"
    except (OSError, ValueError, AttributeError):
        name = "train"
    shown = Path(tempfile.gettempdir()) / "artstudio-restored" / f"job-{job.id}"
    shown.mkdir(parents=True, exist_ok=True)
    try:
        stem = safe_name(str(name), derived=True)
    except ArtStudioError:
        stem = "train"
    train_copy = copy_into(folder / "train.jsonl", shown, f"{stem}.jsonl")
    test = folder / "test.jsonl"
    return str(train_copy), str(copy_into(test, shown, "test.jsonl")) if test.is_file() else None


def _untested_upload(job: Job) -> bool:
    """A run on an uploaded file that came with no test file (`RUN/data/test.jsonl`): nothing scored it."""
    return (job.form or {}).get("source") == "upload" and job.run_dir is not None and \
        (job.run_dir / "data" / "train.jsonl").is_file() and not (job.run_dir / "data" / "test.jsonl").is_file()


def _refresh(studio: Studio, seen: dict, client_id: str):
    """One timer tick: redraw only what changed since this page last drew it. A page follows the
    newest training its own browser started, never another user's."""
    job = studio.jobs.latest_of("train", client_id)
    if job is None:
        return (gr.skip(),) * 10 + (seen,)
    # A job that failed before its first step (a refused resume) trained nothing: the folder's canvas, an
    # earlier run's, was shown as its "trained artwork" under its own task, with Save offered.
    snap = None if job.status in (FAILED, CANCELLED) and not job.history else studio.snapshot(job)
    state = {"job": job.id, "snap": str(snap) if snap else None, "n": len(job.history), "status": job.status,
             "phase": job.phase, "warnings": len(job.warnings)}
    first = seen.get("job") != job.id
    canvas = gr.skip()
    if first or state["snap"] != seen.get("snap"):
        canvas = str(snap) if snap else None
    caption = _caption(job, snap)
    loss, other = (gr.skip(), gr.skip())
    if first or state["n"] != seen.get("n"):
        lf, of = _plots(list(job.history))
        loss, other = lf, gr.LinePlot(value=of, visible=len(of) > 1)  # one final point is no curve
    artwork = job.run_dir is not None and (job.run_dir / "artwork.png").is_file() and job.status in (DONE, STOPPED)
    changed = first or any(state[k] != seen.get(k) for k in ("n", "status", "phase", "warnings"))
    log = _log_text(job) if changed else gr.skip()
    return (_header(studio, job), canvas, caption, loss, other, _metrics_text(job), gr.Group(visible=artwork),
            job.run_dir.name if job.run_dir else "", job.id, log, state)


def _log_text(job: Job) -> str:
    """The live log beside the loss curve: one line a step, evaluations, the end."""
    lines = [f"job {job.id} · {job.title}"]
    # What the library warned (mostly of the set-up: rows, batch size, test split) before the steps it preceded.
    # (A stop during the starts is said by the closing line: the library's own warning of it came first, above the
    # starts' lines, and then again at the end.)
    lines += [f"warning: {w}" for w in job.warnings if not any(w in str(h.get("diagnosis") or "") for h in job.history)
              and not (stopped_during_starts(job) and "stopped during its starts" in w)]
    for i, start in sorted(job.starts.items()):
        lines.append(f"start {i} of {start['starts']} ({start['start']}): step {start['start_step']}/{start['start_steps']}")
    for h in job.history[-400:]:
        if h.get("eval_accuracy") is not None:
            lines.append(f"eval  step {h.get('step')}: accuracy {100 * h['eval_accuracy']:.1f}% on {h.get('eval_n', '?')} prompts")
        elif h.get("loss") is not None:
            extra = f" · reward {h['reward_mean']:.3f}" if isinstance(h.get("reward_mean"), (int, float)) else ""
            lr = f" · lr {h['lr']:.2e}" if isinstance(h.get("lr"), (int, float)) else ""
            lines.append(f"step {h.get('step')}/{job.total} · loss {h['loss']:.4f}{extra}{lr}")
        elif h.get("diagnosis"):
            lines.append(f"warning: {h['diagnosis']}")
        elif h.get("skipped"):
            lines.append(f"step {h.get('step')}: skipped ({h.get('skipped')})")
    if job.status == QUEUED:
        lines.append("waiting for the running job to finish")
    elif job.status == RUNNING and not job.done:
        lines.append(job.phase)
    elif job.status in (DONE, STOPPED, FAILED, CANCELLED):
        lines.append({DONE: "finished", STOPPED: stopped_phase(job) + job.stop_note,
                      FAILED: f"failed: {job.message}", CANCELLED: job.message or "cancelled before it started"}[job.status])
    return "\n".join(lines)


def _caption(job: Job, snap: Path | None) -> str:
    if snap is None:
        return f"<small>{job.title}</small>"
    if snap.name == "artwork.png":
        if job.status == STOPPED and job.done < job.total:  # it read as the finished run's, beside Save
            return f"**The artwork at step {job.done}** (stopped; it was to train {job.total}) · {job.title}"
        return f"**The trained artwork** · {job.title}"
    step = snap.stem.split("-")[-1].lstrip("0") or "0"
    return f"**Canvas at step {step}** · {job.title}"
