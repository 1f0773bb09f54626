"""The Train page: choose a model, data and method, start, and watch the canvas learn.

The form is generated from `TrainConfig` (the options, defaults and help texts of `artstudio train`).
While a run goes, a timer redraws the page from the job queue's state, not from anything kept in the
browser, so a reloaded page picks the running job up again: the progress bar, the loss (and reward)
curves, the newest canvas snapshot, large, and the evaluation accuracy when one was measured. A
finished ART run can be saved to the gallery with a name and a description.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from artstudio.methods import ArtConfig, get_method, method_names
from artstudio.objectives import get_objective, objective_names
from artstudio.tasks import TASKS, list_tasks
from artstudio.training import TrainConfig

from .jobs import DONE, FAILED, QUEUED, RUNNING, STOPPED, Job
from .studio import APP_SNAPSHOT_EVERY, Studio
from .widgets import dataclass_form, duration, field_input, friendly, progress_html

MAIN = ["method", "objective", "steps", "batch_size", "lr", "seed"]
ADVANCED = ["metric", "grad_accum", "weight_decay", "warmup", "schedule", "eval_every", "eval_size",
            "checkpoint_every", "snapshot_every", "resume", "max_new_tokens", "device", "dtype",
            "method_options", "grpo"]
DEFAULT_TASK = "add-json"
PLOT_COLUMNS = ["step", "value", "series"]


@dataclass
class TrainTab:
    run: gr.Textbox
    job: gr.Number
    header: gr.HTML
    canvas: gr.Image
    refresh_outputs: list
    refresh: Any


def _empty_plot() -> pd.DataFrame:
    return pd.DataFrame({"step": pd.Series(dtype="int"), "value": pd.Series(dtype="float"),
                         "series": pd.Series(dtype="str")})


def _task_text(name: str | None) -> str:
    card = TASKS.get(name or "")
    if card is None:
        return ""
    return f"**{card.name}** · {html.escape(card.description)}  \n<small>metric: {card.metric} · {card.n_train} training / {card.n_test} test prompts</small>"


def _method_text(method: str) -> str:
    """The chosen method's default learning rate and its own options (the `method options` JSON)."""
    lr, grpo = get_method(method).lr_for("sft"), get_method(method).lr_for("grpo")
    cls = get_method(method).config_class
    opts = [f.name for f in fields(cls)] if hasattr(cls, "__dataclass_fields__") else []
    return (f"default lr for **{method}**: {lr:g} (SFT), {grpo:g} (GRPO)" + (f" · its options (JSON under *All training options*): "
                                                       f"{', '.join(opts)}" if opts else ""))


def build_train_tab(studio: Studio) -> TrainTab:
    with gr.Row(equal_height=False, elem_classes="as-train"):
        with gr.Column(scale=4, min_width=320, elem_classes="as-panel"):
            gr.Markdown("### What to teach", elem_classes="as-step")
            model = field_input(TrainConfig, "model", choices=studio.model_choices(), value=studio.default_model,
                                allow_custom_value=True)
            source = gr.Radio([("Built-in task", "task"), ("Upload a JSONL file", "upload")], value="task",
                              label="data", info="a built-in task, or your own prompts and answers")
            task = gr.Dropdown([(c.name, c.name) for c in list_tasks()], label="task",
                               value=DEFAULT_TASK if DEFAULT_TASK in TASKS else next(iter(TASKS)))
            task_info = gr.Markdown(_task_text(DEFAULT_TASK), elem_classes="as-note")
            with gr.Group(visible=False) as upload_box:
                train_file = gr.File(label="training data (JSONL)", file_types=[".jsonl", ".json", ".txt"], type="filepath")
                eval_file = gr.File(label="test data (JSONL, optional)", file_types=[".jsonl", ".json", ".txt"],
                                    type="filepath")
            data_check = gr.Markdown(elem_classes="as-note")

            gr.Markdown("### How", elem_classes="as-step")
            main = dataclass_form(TrainConfig, MAIN, "as-train", method={"choices": method_names()},
                                  objective={"choices": [(get_objective(n).label, n) for n in objective_names()]})
            method_info = gr.Markdown(_method_text("art"), elem_classes="as-note")
            canvas_size = gr.Textbox(value="", placeholder="default", label="canvas size (ART)", elem_id="as-train-canvas_size",
                                    info=next(f for f in fields(ArtConfig) if f.name == "canvas_size").metadata["help"])
            with gr.Accordion("All training options", open=False):
                adv = dataclass_form(TrainConfig, ADVANCED, "as-train",
                                     dtype={"choices": [("automatic", ""), "bf16", "fp16", "fp32"]},
                                     snapshot_every={"value": APP_SNAPSHOT_EVERY})
            run_name = gr.Textbox(label="run name", elem_id="as-train-run", placeholder="automatic: TASK-METHOD-DATE",
                                  info=f"the run's folder inside {studio.runs.name}/")
            with gr.Row():
                start = gr.Button("Start training", variant="primary", elem_id="as-start")
                stop = gr.Button("Stop", variant="stop", elem_id="as-stop")
            message = gr.Markdown(elem_id="as-train-message")

        with gr.Column(scale=5, min_width=360, elem_classes="as-stage"):
            header = gr.HTML(progress_html(0, "Ready", "press Start to train a canvas", "idle"), elem_id="as-train-progress")
            canvas = gr.Image(value=None, type="filepath", label="the canvas", height=460, interactive=False,
                              elem_id="as-canvas", buttons=["download", "fullscreen"],
                              placeholder="The canvas appears here as it learns.")
            caption = gr.Markdown(elem_classes="as-caption", elem_id="as-canvas-caption")

        with gr.Column(scale=4, min_width=320, elem_classes="as-panel"):
            loss_plot = gr.LinePlot(_empty_plot(), x="step", y="value", title="Training loss",
                                    height=250, x_title="step", y_title="loss", elem_id="as-loss-plot")
            reward_plot = gr.LinePlot(_empty_plot(), x="step", y="value", color="series", title="Reward and accuracy",
                                      color_map={"reward": "#f59e0b", "eval accuracy": "#10b981"},
                                      height=220, x_title="step", y_title="", y_lim=[0, 1], visible=False,
                                      elem_id="as-reward-plot")
            metrics = gr.Markdown(elem_id="as-metrics", elem_classes="as-metrics")
            with gr.Group(visible=False, elem_id="as-save-box") as save_box:
                gr.Markdown("#### Save this artwork to the gallery", elem_classes="as-pad")
                save_name = gr.Textbox(label="name", placeholder="e.g. json-adder", elem_id="as-save-name")
                save_desc = gr.Textbox(label="description", lines=2, placeholder="what it teaches the model")
                save = gr.Button("Save to gallery", variant="primary", elem_id="as-save")
            save_msg = gr.Markdown(elem_id="as-save-message")

    run = gr.Textbox(visible=False, label="run")
    job_id = gr.Number(visible=False, precision=0, label="job")

    source.change(lambda s: (gr.Dropdown(visible=s == "task"), gr.Markdown(visible=s == "task"), gr.Group(visible=s == "upload")),
                  source, [task, task_info, upload_box], api_visibility="private")
    task.change(_task_text, task, task_info, api_visibility="private")
    main["method"].change(lambda m: (_method_text(m), gr.Textbox(visible=get_method(m).takes_canvas_size())),
                          main["method"], [method_info, canvas_size], api_visibility="private")

    @friendly
    def check_jsonl(upload: str | None) -> str:
        """Validate an uploaded JSONL file; a bad row is reported with its line number."""
        from .files import validate_jsonl

        if not upload:
            return ""
        rows = validate_jsonl(upload, studio.settings.max_upload_mb, Path(upload).name)
        return f"✓ {Path(upload).name}: {len(rows)} rows"

    train_file.upload(check_jsonl, train_file, data_check, api_name="check_jsonl")
    eval_file.upload(check_jsonl, eval_file, data_check, api_visibility="private")

    @friendly
    def start_training(**values) -> tuple[str, str, int]:
        """Queue a training run from the form (TrainConfig options); returns (message, run, job id)."""
        train_path, eval_path = values.pop("train_file", None), values.pop("eval_file", None)
        job = studio.start_training(values, train_path, eval_path)
        where = studio.jobs.position(job)
        text = f"Job {job.id} started: **{job.run_dir.name}**" if where <= 1 and not _others_running(studio, job) \
            else f"Job {job.id} queued (position {where}): **{job.run_dir.name}**"
        return text, job.run_dir.name, job.id

    inputs = {"model": model, "source": source, "task": task, "train_file": train_file, "eval_file": eval_file,
              "canvas_size": canvas_size, "run": run_name, **main, **adv}
    start.click(start_training, inputs_kwargs=inputs, outputs=[message, run, job_id], api_name="start_training",
                show_progress="hidden")

    @friendly
    def stop_training() -> str:
        """Stop the training shown on the page (it keeps its last checkpoint)."""
        job = studio.jobs.stop_latest("train")
        if job is None:
            return "Nothing is training."
        return f"Stopping job {job.id} after its current step; the checkpoint is kept."

    stop.click(stop_training, None, message, api_name="stop_training")

    def refresh(seen: dict):
        return _refresh(studio, seen)

    outputs = [header, canvas, caption, loss_plot, reward_plot, metrics, save_box, run, job_id]

    @friendly
    def save_to_gallery(run: str, name: str, description: str) -> str:
        """Save a finished ART run's artwork to the gallery under a name; returns a message."""
        key = studio.save_run(run, name, description)
        gr.Info(f"Saved to the gallery as {key}")
        return f"Saved as **{key}**: find it in the Gallery."

    save.click(save_to_gallery, [run, save_name, save_desc], save_msg, api_name="save_to_gallery", show_progress="hidden")
    return TrainTab(run=run, job=job_id, header=header, canvas=canvas, refresh_outputs=outputs, refresh=refresh)


def _others_running(studio: Studio, job: Job) -> bool:
    return any(j.status == RUNNING and j is not job for j in studio.jobs.jobs())


def _plots(history: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    loss = [(h["step"], h["loss"], "loss") for h in history if isinstance(h.get("loss"), (int, float))]
    other = [(h["step"], h["reward_mean"], "reward") for h in history if isinstance(h.get("reward_mean"), (int, float))]
    other += [(h["step"], h["eval_accuracy"], "eval accuracy") for h in history
              if isinstance(h.get("eval_accuracy"), (int, float))]
    frame = lambda rows: pd.DataFrame(rows, columns=PLOT_COLUMNS) if rows else _empty_plot()  # noqa: E731
    return frame(loss), frame(other)


def _header(studio: Studio, job: Job) -> str:
    steps = f"step {job.done} / {job.total}"
    if job.status == QUEUED:
        return progress_html(0, f"Job {job.id} is waiting", f"position {studio.jobs.position(job)} in the queue", "idle")
    if job.status == RUNNING:
        if job.done >= job.total and job.total:
            return progress_html(1, "Evaluating the trained canvas", steps, "running")
        eta = job.eta_seconds()
        detail = f"{steps}" + (f" · about {duration(eta)} left" if eta is not None else "")
        label = "Training" if job.done else job.phase.capitalize()
        return progress_html(job.fraction, label, detail, "running")
    if job.status == DONE:
        return progress_html(1, "Finished", f"{steps} in {duration(job.elapsed())}", "done")
    if job.status == STOPPED:
        return progress_html(job.fraction, "Stopped, checkpoint kept", steps, "stopped")
    if job.status == FAILED:
        return progress_html(job.fraction, "Failed", job.message[:160], "failed")
    return progress_html(0, job.status.capitalize(), job.message, "idle")


def _metrics_text(job: Job) -> str:
    last = next((h for h in reversed(job.history) if h.get("loss") is not None), None)
    evals = [h for h in job.history if h.get("eval_accuracy") is not None]
    parts = []
    if evals:
        e = evals[-1]
        label = "final accuracy" if e.get("final") else f"accuracy at step {e['step']}"
        parts.append(f'<div class="as-big">{100 * e["eval_accuracy"]:.1f}%</div><div class="as-small">{label} '
                     f'on {e.get("eval_n", "?")} test prompts</div>')
    if last is not None:
        parts.append(f"last loss **{last['loss']:.4f}** · lr {last['lr']:.2g} · {last['seconds_per_step']:.2f} s/step")
    if job.status == FAILED:
        parts.append(f"**Error:** {job.message}")
    return "\n\n".join(parts)


def _refresh(studio: Studio, seen: dict):
    """One timer tick: redraw only what changed since this page last drew it."""
    job = studio.jobs.latest("train")
    if job is None:
        return (gr.skip(),) * 9 + (seen,)
    snap = studio.snapshot(job)
    state = {"job": job.id, "snap": str(snap) if snap else None, "n": len(job.history), "status": job.status}
    first = seen.get("job") != job.id
    canvas = gr.skip()
    if first or state["snap"] != seen.get("snap"):
        canvas = str(snap) if snap else None
    caption = _caption(job, snap)
    loss, other = (gr.skip(), gr.skip())
    if first or state["n"] != seen.get("n"):
        lf, of = _plots(list(job.history))
        loss, other = lf, gr.LinePlot(value=of, visible=len(of) > 1)  # one final point is no curve
    artwork = job.run_dir is not None and (job.run_dir / "artwork.png").is_file() and not job.active
    return (_header(studio, job), canvas, caption, loss, other, _metrics_text(job), gr.Group(visible=artwork),
            job.run_dir.name if job.run_dir else "", job.id, state)


def _caption(job: Job, snap: Path | None) -> str:
    if snap is None:
        return f"<small>{job.title}</small>"
    if snap.name == "artwork.png":
        return f"**The trained artwork** · {job.title}"
    step = snap.stem.split("-")[-1].lstrip("0") or "0"
    return f"**Canvas at step {step}** · {job.title}"
