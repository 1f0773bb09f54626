"""The Tune page: a hyper-parameter study (`artstudio tune`) in the background, watched trial by trial.

The form mirrors `TuneConfig` (the options of `artstudio tune`) on a built-in task; the study and
everything it writes live in `RUNS/tune/NAME/` (SQLite storage included, so re-using a name resumes
it and only the missing trials run). While it runs, the page shows the trials done, the best
validation score so far and the best-so-far curve, from the job's trial records; once it has
finished (or for an earlier study picked from the list) the curve comes from `trials.csv` and the
report from `report.md`. "Use in Train tab" fills the Train form with the study's `best.json`, the
configuration `artstudio train --config best.json` would run.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pandas as pd

from artstudio.errors import ArtStudioError
from artstudio.methods import get_method, method_names
from artstudio.tasks import list_tasks
from artstudio.tune import TuneConfig
from artstudio.tune.report import best_so_far

from .jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, STOPPED
from .studio import Studio
from .widgets import action, clean_message, dataclass_form, duration, follow_line, friendly, job_controls, progress_html

MAIN = ["trials", "sampler", "trial_steps", "steps", "proxy"]  # two a row
ADVANCED = ["val_fraction", "val_size", "budget", "objective", "seed", "startup", "candidates", "rerank", "final", "timeout",
            "device", "dtype"]
COLUMNS = ["trial", "accuracy", "series"]


@dataclass
class TuneTab:
    folder: gr.Dropdown
    use_in_train: gr.Button
    message: gr.Markdown
    refresh: object
    refresh_outputs: list
    stop: gr.Button
    form: list  # the inputs a reload restores, in the order `restore` returns them
    restore: object


def tunable_methods() -> list[str]:
    return [m for m in method_names() if get_method(m).trains and getattr(get_method(m), "search_space", None)]


def curve(points: list[tuple[int, float | None]]) -> gr.LinePlot:
    """Each finished trial's validation accuracy and the best so far, by trial number (a failed trial: no point).

    Trial numbers are labels in their own order, not a number axis: a short study's would read 0.05, 0.10, ..."""
    points = sorted(points)
    best = best_so_far([v for _, v in points])
    rows = [(str(n), v, "each trial") for n, v in points if v is not None]
    rows += [(str(n), b, "best so far") for (n, _), b in zip(points, best) if b is not None]
    return gr.LinePlot(value=pd.DataFrame(rows, columns=COLUMNS) if rows else None, sort=[str(n) for n, _ in points])


def _csv_points(rows: list[dict]) -> list[tuple[int, float | None]]:
    out = []
    for r in rows:
        if r.get("state") in ("COMPLETE", "FAIL"):
            out.append((int(r["number"]), float(r["value"]) if r.get("value") not in (None, "") else None))
    return out


def _stats(done: int, total: int, points: list[tuple[int, float | None]], rerank: dict | None = None) -> str:
    scored = [(n, v) for n, v in points if v is not None]
    if not scored:
        return f"**{done} / {total}** trials done · no score yet"
    n, v = max(scored, key=lambda p: (p[1], -p[0]))
    last = points[-1][1]
    line = (f"**{done} / {total}** trials done · best so far **{100 * v:.1f} %** (trial {n}) · last trial "
            + ("failed" if last is None else f"{100 * last:.1f} %") + " · validation accuracy after proxy training")
    # The report below names the study's pick, which the re-ranking at the full steps may have taken from another
    # trial: this line said "best 14.0 % (trial 1)" over a report whose best configuration was trial 0 at 13 %.
    rerank = rerank or {}
    pick = next((r for r in rerank.get("runs", []) if r.get("trial") == rerank.get("chosen")), None)
    if pick is not None and pick.get("val_accuracy") is not None:
        line += (f" · **picked: trial {pick['trial']}**" + (" (the default)" if pick.get("default") else "")
                 + f", {100 * pick['val_accuracy']:.1f} % on validation after the full steps (re-ranking)")
    return line


def build_tune_tab(studio: Studio, client: gr.State) -> TuneTab:
    gr.Markdown("Search a method's hyper-parameters on a task, as `artstudio tune`: each trial trains on a small "
                "proxy of the training rows and is scored on a validation split carved from them; at the end the "
                "best and the default configuration are retrained on all rows and scored on the test split.",
                elem_classes="as-note")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320, elem_classes="as-panel"):
            methods = tunable_methods()
            with gr.Row():
                method = gr.Dropdown(methods, value="art" if "art" in methods else methods[0], label="method",
                                     elem_id="as-tune-method", info="its search space comes with it")
                task = gr.Dropdown([c.name for c in list_tasks()], value=[c.name for c in list_tasks("heldout")][0],
                                   label="task", elem_id="as-tune-task", info="a built-in task")
            model = gr.Dropdown(studio.model_choices(), value=studio.default_model, label="model",
                                info="the frozen model; the menu is fixed when the app starts")
            main = {}
            for pair in (MAIN[:2], MAIN[2:4], MAIN[4:]):
                with gr.Row():
                    main |= dataclass_form(TuneConfig, pair, "as-tune")
            with gr.Accordion("All tuning options", open=False):
                adv = dataclass_form(TuneConfig, ADVANCED, "as-tune",
                                     dtype={"choices": [("automatic", ""), "bf16", "fp16", "fp32"]})
            name = gr.Textbox(label="study name", elem_id="as-tune-name", placeholder="automatic: tune-DATE",
                              info=f"folder inside {studio.runs.name}/tune/; re-using a name resumes the study")
            with gr.Row():
                start = gr.Button("▶ Start study", variant="primary", elem_id="as-tune-start")
                stop = gr.Button("■ Stop", variant="stop", elem_id="as-tune-stop", elem_classes="as-danger",
                                 interactive=False)
            message = gr.Markdown(elem_id="as-tune-message")
        with gr.Column(scale=4, min_width=480):
            progress = gr.HTML(progress_html(0, "No study running", "", "idle"), elem_id="as-tune-progress")
            stats = gr.Markdown(elem_id="as-tune-stats")
            # No value at first: a plot started from an empty table never draws the data it gets later.
            plot = gr.LinePlot(None, x="trial", y="accuracy", color="series", title="Best so far, trial by trial",
                               color_map={"best so far": "#7c3aed", "each trial": "#f59e0b"}, height=300, y_lim=[0, 1],
                               x_title="trial (0: the default configuration)", y_title="validation accuracy",
                               elem_id="as-tune-plot")
            with gr.Row(equal_height=False, elem_classes="as-tune-pick"):
                folder = gr.Dropdown(studio.tune_folders(), value=None, label="study", allow_custom_value=True, scale=4,
                                     info="a finished study (the running one appears when it ends)",
                                     elem_id="as-tune-folder")
                load = gr.Button("Load", scale=1, elem_id="as-tune-load")
                use = gr.Button("Use in Train tab", variant="primary", scale=2, elem_id="as-tune-use")
            report = gr.Markdown(elem_id="as-tune-report", elem_classes="as-results")

    form = {"method": method, "task": task, "model": model, "name": name, **main, **adv}
    restore = job_controls(
        studio, "tune", studio.start_tune, form, client=client, start=start, stop=stop, message=message,
        doc="Queue a study (TuneConfig options on a built-in task); returns a message with the job number.",
        none_running="No study of yours is running (the Jobs tab lists every job).",
        stopping="Stopping job {job.id} after its current trial; best.json and the report keep the finished trials.")

    @friendly
    def load_study(name: str):
        """A finished study: its best-so-far curve, its trials done and best score, and its report."""
        res = studio.load_tune(name)
        points = _csv_points(res["trials"])
        done = sum(1 for r in res["trials"] if r.get("state") == "COMPLETE")
        return curve(points), _stats(done, len(res["trials"]), points, res.get("rerank")), clean_message(res["report"])

    action(load.click, load_study, folder, [plot, stats, report], api_name="load_study")

    def refresh(seen: dict, client_id: str = "", line: str | None = None):
        *drawn, seen = _draw(seen, client_id)
        job = studio.jobs.latest_of("tune", client_id)
        return (*drawn, follow_line(line, studio.jobs, job, job.title if job else ""), seen)

    def _draw(seen: dict, client_id: str):
        job = studio.jobs.latest_of("tune", client_id)
        skip = (gr.skip(),) * 5
        if job is None:
            return (*skip, seen)
        points = [(h["trial"], h["value"]) for h in job.history]
        eta = job.reported_eta_left()  # counted down between reports
        if job.status == RUNNING and job.done < job.total:
            label = f"Trial {job.done + 1} of {job.total} running" if job.done or job.history else job.phase.capitalize()
        else:
            label = job.phase[:1].upper() + job.phase[1:]
        states = {QUEUED: ("idle", "Waiting in the queue"), RUNNING: ("running", label), DONE: ("done", "Finished"),
                  STOPPED: ("stopped", "Stopped; the finished trials are kept" + job.stop_note),
                  CANCELLED: ("stopped", "Cancelled before it started" + job.stop_note), FAILED: ("failed", f"Failed: {job.message}")}
        state, label = states.get(job.status, ("idle", job.status))
        detail = f"{job.done} / {job.total} trials" + (f" · about {duration(eta)} left" if eta else "")
        bar = progress_html(job.fraction if job.status != DONE else 1.0, label, detail, state)
        key = (job.id, len(job.history), job.status)
        if key == seen.get("tune_drawn"):
            return bar, *skip[1:], seen
        name = job.run_dir.name if job.run_dir is not None else ""
        if job.status == DONE or (job.status == STOPPED and name in studio.tune_folders()):
            # A finished study's report is drawn once it reads; until then the next tick tries again (the
            # first tick that saw it finished used to be the only try, and a failed read left no report).
            tries = seen.get("tune_tries", 0) + 1
            try:
                frame, text, md = load_study(name)
            except (gr.Error, ArtStudioError):
                if tries < 10:
                    return bar, *skip[1:], dict(seen) | {"tune_tries": tries}
                return bar, *skip[1:], dict(seen) | {"tune_drawn": key, "tune_tries": 0}
            seen = dict(seen) | {"tune_drawn": key, "tune_tries": 0}
            return bar, text, frame, md, gr.Dropdown(choices=studio.tune_folders(), value=name), seen
        seen = dict(seen) | {"tune_drawn": key}
        return bar, _stats(job.done, job.total, points), curve(points), gr.skip(), gr.skip(), seen

    return TuneTab(folder=folder, use_in_train=use, message=message, refresh=refresh,
                   refresh_outputs=[progress, stats, plot, report, folder, message], stop=stop,
                   form=list(form.values()), restore=restore)
