"""The Compare page: methods × tasks × seeds through `artstudio compare`, in the background.

The form mirrors `CompareConfig` (the options of `artstudio compare`). A comparison runs as a job in
the same queue as trainings; its results folder lives in `RUNS/compare/NAME/` and holds the table
(`results.csv`, `results.md`) and the plots, which this page shows, for the running comparison once
it finishes and for any earlier folder picked from the list.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from artstudio.comparison import CompareConfig
from artstudio.methods import method_names
from artstudio.tasks import list_tasks

from .jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, STOPPED
from .studio import Studio
from .widgets import action, dataclass_form, duration, follow_line, friendly, job_controls, progress_html

MAIN = ["seeds", "steps", "batch_size", "objective"]
ADVANCED = ["lr_grid", "grid_seeds", "val_fraction", "ema", "eval_size", "method_options", "device", "dtype", "overwrite"]


@dataclass
class CompareTab:
    message: gr.Markdown
    refresh: object
    refresh_outputs: list
    folder: gr.Dropdown  # refilled whenever the page is opened: comparisons finish after the app starts
    stop: gr.Button
    form: list  # the inputs a reload restores, in the order `restore` returns them
    restore: object


def build_compare_tab(studio: Studio, client: gr.State) -> CompareTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320, elem_classes="as-panel"):
            methods = gr.CheckboxGroup(method_names(), value=["art", "lora", "base"], label="methods", elem_id="as-compare-methods",
                                       info="the methods to train and score on the same data, budget and seeds "
                                            "(base: the frozen model alone)")
            tasks = gr.Dropdown([c.name for c in list_tasks()], value=[c.name for c in list_tasks("heldout")][:1],
                                multiselect=True, label="tasks", elem_id="as-compare-tasks", info="built-in tasks (held-out ones test what a method teaches)")
            main = dataclass_form(CompareConfig, MAIN, "as-compare")
            model = gr.Dropdown(studio.model_choices(), value=studio.default_model, label="model",
                                info="the frozen model; the menu is fixed when the app starts")
            with gr.Accordion("All comparison options", open=False):
                adv = dataclass_form(CompareConfig, ADVANCED, "as-compare", dtype={"choices": [("automatic", ""), "bf16", "fp16", "fp32"]})
            name = gr.Textbox(label="results name", elem_id="as-compare-name", placeholder="automatic: compare-DATE",
                              info=f"folder inside {studio.runs.name}/compare/; re-using a name resumes it")
            with gr.Row():
                start = gr.Button("▶ Run comparison", variant="primary", elem_id="as-compare-start")
                stop = gr.Button("■ Stop", variant="stop", elem_id="as-compare-stop", interactive=False)
            message = gr.Markdown(elem_id="as-compare-message")
        with gr.Column(scale=4, min_width=480):
            progress = gr.HTML(progress_html(0, "No comparison running", "", "idle"), elem_id="as-compare-progress")
            with gr.Row():
                folder = gr.Dropdown(studio.results_folders(), label="results folder", allow_custom_value=True,
                                     scale=4, info="earlier comparisons")
                load = gr.Button("Load", scale=1)
            summary = gr.Markdown(elem_classes="as-results", elem_id="as-compare-summary")
            table = gr.Dataframe(label="every run (results.csv)", interactive=False, wrap=False, max_height=320,
                                 elem_id="as-compare-table", visible=False)
            # As tall as the plots: at a fixed 420 px a wide window cut off their lower part.
            plots = gr.Gallery(label="plots", columns=2, height="auto", object_fit="contain", elem_id="as-compare-plots")

    form = {"methods": methods, "tasks": tasks, "model": model, "name": name, **main, **adv}
    restore = job_controls(
        studio, "compare", studio.start_compare, form, client=client, start=start, stop=stop, message=message,
        doc="Queue a comparison (CompareConfig options); returns a message with the job number.",
        none_running="No comparison of yours is running (the Jobs tab lists every job).",
        stopping="Stopping job {job.id} after its current step; finished runs are kept and a re-run resumes.")

    @friendly
    def load_results(folder: str):
        """A results folder's summary (markdown), table and plots."""
        res = studio.load_results(folder)
        import pandas as pd

        frame = pd.DataFrame(res["rows"], columns=res["header"]) if res["header"] else pd.DataFrame()
        return res["markdown"], gr.Dataframe(value=frame, visible=True), [str(p) for p in res["plots"]]

    action(load.click, load_results, folder, [summary, table, plots], api_name="load_results")

    def refresh(seen: dict, client_id: str = "", line: str | None = None):
        *drawn, seen = _draw(seen, client_id)
        job = studio.jobs.latest_of("compare", client_id)
        return (*drawn, follow_line(line, studio.jobs, job, job.title if job else ""), seen)

    def _draw(seen: dict, client_id: str):
        job = studio.jobs.latest_of("compare", client_id)
        if job is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen
        eta = job.reported_eta_left()  # counted down between reports
        detail = f"{job.done} / {job.total} runs" + (f" · about {duration(eta)} left" if eta else "")
        states = {QUEUED: ("idle", "Waiting in the queue"), RUNNING: ("running", job.phase),
                  DONE: ("done", "Finished"), STOPPED: ("stopped", "Stopped; finished runs are kept" + job.stop_note),
                  CANCELLED: ("stopped", "Cancelled before it started" + job.stop_note),
                  FAILED: ("failed", f"Failed: {job.message}")}
        state, label = states.get(job.status, ("idle", job.status))
        bar = progress_html(job.fraction if job.status != DONE else 1.0, label, detail, state)
        if job.status == DONE and seen.get("compare_loaded") != job.id and job.run_dir is not None:
            seen = dict(seen) | {"compare_loaded": job.id}
            try:
                summary_md, frame, pictures = load_results(job.run_dir.name)
            except gr.Error:
                return bar, gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen
            return bar, summary_md, frame, pictures, gr.Dropdown(choices=studio.results_folders(), value=job.run_dir.name), seen
        return bar, gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen

    return CompareTab(message=message, refresh=refresh, refresh_outputs=[progress, summary, table, plots, folder, message],
                      folder=folder, stop=stop, form=list(form.values()), restore=restore)
