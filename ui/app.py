"""The ART Studio web app: Train, Describe, Gallery, Playground, Compare, Tune and Jobs pages in one Gradio Blocks app.

    artstudio app                                   # http://127.0.0.1:7860, studio-tiny
    artstudio app --model Qwen/Qwen3.5-0.8B --port 8080

    from artstudio.ui.app import build_app, launch, start
    launch(AppSettings(runs_dir="runs", canvases_dir="canvases"))   # blocking, like the command
    server = start(AppSettings(runs_dir=..., canvases_dir=...))   # in the background, on a free port
    print(server.url); server.close()

Safety (issue 7): it listens on 127.0.0.1 unless told otherwise, never opens a share link unless
asked, limits uploads (`max_upload_mb`), and reads and writes only inside `runs_dir` and
`canvases_dir` (see `files.py`). One timer redraws every page from the server's job queue, so a
reloaded page reconnects to a running job.
"""

from __future__ import annotations

import logging
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from artstudio.errors import ArtStudioError
from artstudio.words import count

from .compare_tab import build_compare_tab
from .describe_tab import build_describe_tab
from .gallery_tab import build_gallery_tab
from .jobs import FINISHED
from .playground_tab import build_playground_tab
from .settings import AppSettings
from .studio import Studio
from .train_tab import COMMAND_QUEUE, FOLLOW_LOG_JS, build_train_tab
from .tune_tab import build_tune_tab
from .widgets import STAMP_JS, friendly, keep_page

log = logging.getLogger("artstudio.ui")

# System fonts only: the app must look right with no network (and never fetch from font CDNs).
THEME = gr.themes.Soft(primary_hue="violet", secondary_hue="amber", neutral_hue="slate",
                       font=[gr.themes.Font(f) for f in ("Inter", "ui-sans-serif", "system-ui", "sans-serif")],
                       font_mono=[gr.themes.Font(f) for f in ("ui-monospace", "SFMono-Regular", "monospace")])

CSS = """
.as-hero {display:flex; align-items:center; gap:18px; padding:14px 20px; border-radius:14px; margin-bottom:6px;
  background: linear-gradient(120deg, #3b1d8f 0%, #7c3aed 45%, #f59e0b 100%); color: white;}
.as-hero h1 {margin:0; font-size:1.65rem; letter-spacing:.01em; color:white;}
.as-hero p {margin:2px 0 0; opacity:.92; font-size:.95rem; color:white;}
.as-hero .as-logo {width:46px; height:46px; border-radius:10px; flex:none;
  background: conic-gradient(from 45deg, #fde68a, #f472b6, #818cf8, #34d399, #fde68a);
  box-shadow: inset 0 0 0 3px rgba(255,255,255,.55);}
.as-step h3 {margin-top:.2rem !important;}
.as-note {font-size:.86rem; opacity:.85;}
.as-pad {padding: 6px 10px;}
.as-tune-pick {align-items: flex-end;}  /* Load / Use sit level with the study menu, not stretched to it */
.as-stage {border-radius:14px;}
#as-canvas img, #as-gallery-large img, #as-pg-preview img, #as-gallery img, #as-describe-image img {image-rendering: pixelated;}
/* Canvases are small (64-256 px): show them scaled up to the frame, pixels crisp. */
#as-canvas img, #as-gallery-large img, #as-pg-preview img, #as-describe-image img {width:100% !important;
  height:100% !important; object-fit:contain;}
/* As many thumbnails a row as fit (four fixed columns overflowed the column at 800 px, clipping the fourth). */
#as-gallery .grid-container {grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)) !important;}
#as-canvas {border-radius: 14px; background: repeating-conic-gradient(#f1f0f7 0% 25%, #ffffff 0% 50%) 50% / 24px 24px;}
.as-caption {text-align:center;}
.as-progress {padding:10px 14px; border-radius:12px; background: var(--block-background-fill);
  border:1px solid var(--block-border-color);}
.as-progress-top {display:flex; justify-content:space-between; gap:10px; font-size:.92rem; margin-bottom:6px;}
.as-progress-label {font-weight:600;}
.as-progress-detail {opacity:.8; font-variant-numeric: tabular-nums;}
.as-progress-track {height:10px; border-radius:6px; background: var(--neutral-200); overflow:hidden;}
.as-progress-fill {height:100%; border-radius:6px; transition: width .6s ease;
  background: linear-gradient(90deg, #7c3aed, #f59e0b);}
.as-done .as-progress-fill {background: linear-gradient(90deg, #10b981, #34d399);}
.as-failed .as-progress-fill {background: #ef4444;}
.as-stopped .as-progress-fill {background: #f59e0b;}
.as-idle .as-progress-fill {background: var(--neutral-300);}
.as-metrics .as-big {font-size:2.4rem; font-weight:700; line-height:1.1; color: var(--primary-600);}
.as-metrics .as-small {font-size:.85rem; opacity:.8;}
.as-meta h3 {margin:4px 0;}
.as-meta table {width:100%; border-collapse:collapse; margin:6px 0; font-size:.92rem;}
.as-meta th {text-align:left; font-weight:500; opacity:.7; padding:3px 8px 3px 0; width:34%;}
.as-meta td {padding:3px 0;}
/* Hairlines, not the prose table's black grid. */
.as-meta table, .as-meta tr, .as-meta th, .as-meta td {border:none !important; border-bottom:1px solid rgba(127,127,127,.18) !important;}
footer {display:none !important;}
.as-message {align-self:center;}
/* Buttons that stop or delete something look like it (issue 19: they looked like any other button). */
button.as-danger, #as-stop, #as-delete, #as-confirm-delete, #as-compare-stop {background:#dc2626 !important;
  color:white !important; border-color:#b91c1c !important;}
button.as-danger:hover, #as-stop:hover, #as-delete:hover, #as-confirm-delete:hover, #as-compare-stop:hover {background:#b91c1c !important;}
button.as-danger:disabled, #as-stop:disabled, #as-compare-stop:disabled {background:var(--neutral-200) !important;
  color:var(--neutral-500) !important; border-color:var(--neutral-300) !important; cursor:not-allowed;}
#as-confirm-box {border:2px solid #dc2626; border-radius:10px; padding:4px;}
#as-jobs tbody td:last-child, #as-jobs tbody td:last-child * {color:#dc2626 !important; font-weight:700; cursor:pointer;}
#as-compare-table th, #as-compare-table th span {word-break:keep-all !important; overflow-wrap:normal !important;
  white-space:nowrap !important;}
/* Result tables in markdown (Compare's summary and cost table, Tune's report): no word or number is broken
   inside a cell ("metho/d", "0.0/5" at 1400 px); a table wider than its column scrolls sideways instead. */
.as-results table {display:block; max-width:100%; overflow-x:auto;}
/* A scrollbar that shows without hovering: Chromium's overlay scrollbar hid that the cost table went on.
   (Chromium ignores these when the standard scrollbar-width or scrollbar-color is set.) */
.as-results table::-webkit-scrollbar {height:8px;}
.as-results table::-webkit-scrollbar-thumb {background: var(--neutral-400); border-radius:4px;}
/* The Jobs table's headers break at spaces only ("statu/s", "jo/b" at 800 px). */
#as-jobs th, #as-jobs th span {word-break:keep-all !important; overflow-wrap:normal !important;}
/* ... and so do its cells ("anothe/r browse/r", "cance/lled" at 800 px; the visible cells are .body-cell). */
#as-jobs .body-cell, #as-jobs .body-cell * {word-break:keep-all !important; overflow-wrap:normal !important; hyphens:none;}
#as-jobs th {padding-left:6px !important; padding-right:6px !important;}
/* Its headers' sort menu (⋮) took the width of a short header's last letters; a list of jobs needs no sorting. */
#as-jobs th .cell-menu-button {display:none !important;}
#as-jobs th .cell-wrap {padding-left:0 !important; padding-right:0 !important;}
.as-results th, .as-results td {word-break:keep-all !important; overflow-wrap:normal !important; hyphens:none;
  white-space:nowrap !important; padding:6px 10px !important;}
#as-train-log textarea {font-family: ui-monospace, SFMono-Regular, monospace; font-size:.8rem;}
/* The vLLM command wraps short of the copy and download buttons, which covered "--limit-mm-per-prompt"; */
#as-vllm-serve .cm-content {padding-right:72px !important;}
/* Two lines tall: Gradio sized the scroller some 300 px high when the accordion opened. */
#as-vllm-serve .cm-scroller {min-height:0 !important;}
"""

HERO = """<div class="as-hero"><div class="as-logo"></div><div>
<h1>ART Studio</h1>
<p>Teach a frozen vision-language model a new task by training one picture: the canvas is the only thing that
learns, and the finished artwork is an ordinary PNG that any serving engine takes.</p></div></div>"""


def build_app(settings: AppSettings | None = None, studio: Studio | None = None) -> gr.Blocks:
    """The Blocks app for `settings` (a `Studio` can be passed to share its job queue); `.studio` holds it."""
    studio = studio or Studio(settings)
    with gr.Blocks(title="ART Studio", fill_width=True) as demo:
        gr.HTML(HERO)
        # Which browser this is (kept in its localStorage): a page follows the jobs its browser started.
        client_state = gr.BrowserState("", storage_key="artstudio-client")
        client = gr.State("")
        with gr.Tabs(selected="train") as tabs:
            with gr.Tab("Train", id="train", elem_id="as-tab-train") as train_page:
                train = build_train_tab(studio, client)
            # Next to Train: the other way to make an artwork (from words instead of data, in a second).
            with gr.Tab("Describe", id="describe", elem_id="as-tab-describe"):
                describe = build_describe_tab(studio)
            with gr.Tab("Gallery", id="gallery", elem_id="as-tab-gallery") as gallery_page:
                gallery = build_gallery_tab(studio)
            with gr.Tab("Playground", id="playground", elem_id="as-tab-playground") as playground_page:
                playground = build_playground_tab(studio)
            with gr.Tab("Compare", id="compare", elem_id="as-tab-compare") as compare_page:
                compare = build_compare_tab(studio, client)
            with gr.Tab("Tune", id="tune", elem_id="as-tab-tune") as tune_page:
                tune = build_tune_tab(studio, client)
            with gr.Tab("Jobs", id="jobs", elem_id="as-tab-jobs"):
                jobs_outputs, jobs_refresh = _build_jobs_tab(studio, client)

        timer = gr.Timer(studio.settings.poll_seconds)
        train_seen, compare_seen, tune_seen, jobs_seen = gr.State({}), gr.State({}), gr.State({}), gr.State({})
        train_outputs = train.refresh_outputs + [train_seen]

        # A page's Stop button is on only while a job of that page's kind, started from this browser, waits or
        # runs (it was red and pressable with nothing to stop); the Jobs tab stops anyone's.
        stops, stops_seen = {"train": train.stop, "compare": compare.stop, "tune": tune.stop}, gr.State({})

        def stop_buttons(seen: dict, client_id: str):
            live = {kind: bool((job := studio.jobs.latest_of(kind, client_id)) and job.active) for kind in stops}
            return (*(gr.skip() if seen.get(k) == on else gr.Button(interactive=on) for k, on in live.items()), live)

        # Each page's timer also keeps the line under its Start button true ("Job 4 queued" until the job ends).
        # One tick event refreshes every panel: five events per tick (one per panel) cost an idle page about a
        # core of the browser's CPU at a 1 s period, where training in the same machine needs it.
        timer.tick(*_one_event([
            (train.refresh, [train_seen, client, train.message], train_outputs),
            (compare.refresh, [compare_seen, client, compare.message], compare.refresh_outputs + [compare_seen]),
            (tune.refresh, [tune_seen, client, tune.message], tune.refresh_outputs + [tune_seen]),
            (jobs_refresh, [jobs_seen, client], [*jobs_outputs, jobs_seen]),
            (stop_buttons, [stops_seen, client], [*stops.values(), stops_seen]),
        ]), show_progress="hidden", api_visibility="private")

        def init_client(saved: str | None):
            cid = saved if isinstance(saved, str) and saved else secrets.token_hex(8)
            return cid, cid

        demo.load(init_client, client_state, [client_state, client], api_visibility="private").then(
            train.restore, client, train.form, api_visibility="private").then(
            compare.restore, client, compare.form, api_visibility="private").then(
            tune.restore, client, tune.form, api_visibility="private").then(
            train.refresh, [train_seen, client], train_outputs, api_visibility="private")
        demo.load(train.preview, inputs_kwargs=train.preview_inputs, outputs=train.command, api_visibility="private",
                  js=STAMP_JS, **COMMAND_QUEUE)
        demo.load(gallery.refresh, None, gallery.refresh_outputs, api_visibility="private")
        demo.load(playground.choices, None, playground.artwork, api_visibility="private")

        gallery_page.select(gallery.refresh, None, gallery.refresh_outputs, api_visibility="private")
        playground_page.select(playground.choices, playground.artwork, playground.artwork, api_visibility="private")
        # The lists refill when their page opens; the value is left alone: a name typed while the refill was on its
        # way was put back to what the box held at the click (a Load then found no folder, on a busy machine).
        tune_page.select(lambda: gr.Dropdown(choices=studio.tune_folders()), None, tune.folder, api_visibility="private")
        compare_page.select(lambda: gr.Dropdown(choices=studio.results_folders()), None, compare.folder,
                            api_visibility="private")
        # A plot updated while its page was hidden is drawn at no width and stays empty ("2 / 2 trials done" over an
        # empty chart): opening a page forgets what its timer drew, so the next tick draws it again, visible.
        # The log follows its newest line, but a hidden page's log cannot scroll: back on Train it showed the lines
        # it had when the page was left (a run stopped from the Jobs tab hid its "stopped" line). Once the page is
        # shown, the log goes to its end again, unless the user had scrolled up.
        train_page.select(None, js=f"() => {{ setTimeout({FOLLOW_LOG_JS}, 150); }}", api_visibility="private",
                          show_progress="hidden")
        for page, seen in ((train_page, train_seen), (compare_page, compare_seen), (tune_page, tune_seen)):
            page.select(lambda: {}, None, seen, api_visibility="private")
        gallery.open_in_playground.click(
            lambda key: (gr.Tabs(selected="playground"), playground.choices(key)),
            gallery.selected, [tabs, playground.artwork], api_visibility="private")
        describe.to_playground.click(  # the gallery copy once saved, else the generated file
            lambda key, saved: (gr.Tabs(selected="playground"), playground.choices(saved or key)),
            [describe.key, describe.saved_key], [tabs, playground.artwork], api_visibility="private")

        def use_in_train(name: str):
            """The Train form filled with a study's best.json (what `artstudio train --config best.json` runs)."""
            values, lost = studio.tune_train_values(name)
            note = f"Filled in from **tune/{name}/best.json**, the study's best configuration: check the run name " \
                   "and press ▶ Start training."
            if lost:
                note += f" Not carried over (the form has no field for it): {', '.join(lost)}."
            return (gr.Tabs(selected="train"), *train.fill(values), note, f"Sent **{name}**'s best configuration to "
                    "the Train tab.")

        outputs = [tabs, *train.form, train.message, tune.message]
        tune.use_in_train.click(keep_page(use_in_train, len(outputs)), tune.folder, outputs, api_visibility="private")

        @friendly
        def job_status(job_id: int) -> dict:
            """A job's state: status, phase, done / total, message, run folder name and result."""
            return studio.jobs.get(int(job_id)).summary()

        gr.api(job_status, api_name="job_status")
    demo.studio = studio  # type: ignore[attr-defined]
    return demo


STOP_CELL = "■ Stop"
NO_JOBS = "No jobs yet: a training, a comparison or a study started from any page appears here."
STOP_HTML = f'<span style="color:#dc2626;font-weight:700;cursor:pointer">{STOP_CELL}</span>'


def _one_event(panels: list[tuple[Any, list, list]]) -> tuple[Any, list, list]:
    """(fn, inputs, outputs) of one event that runs each panel's (fn, inputs, outputs) in turn.

    The inputs are shared where panels share them (the client id); the outputs must be distinct."""
    inputs: list = []
    index: dict[int, int] = {}  # id(component) -> its place in inputs
    for _, ins, _ in panels:
        for c in ins:
            if id(c) not in index:
                index[id(c)] = len(inputs)
                inputs.append(c)
    where = [[index[id(c)] for c in ins] for _, ins, _ in panels]

    def run(*values):
        out: list = []
        for (fn, _, outs), idx in zip(panels, where):
            got = fn(*(values[i] for i in idx))
            got = got if isinstance(got, tuple) else (got,)
            if len(got) != len(outs):
                raise RuntimeError(f"{getattr(fn, '__name__', fn)} returned {len(got)} values for {len(outs)} outputs")
            out += got
        return tuple(out)

    return run, inputs, [c for _, _, outs in panels for c in outs]


def _build_jobs_tab(studio: Studio, client: gr.State):
    headers = ["job", "started by", "kind", "what", "status", "progress", "elapsed", "message", "stop"]
    gr.Markdown("Every job of this app, newest first; they run one at a time, in order. **■ Stop** on a row "
                "cancels a waiting job, or ends a running one after its current step (a training keeps its last "
                "checkpoint; resume it with the same run name and *resume* ticked) or, for a study, after its "
                "current trial (best.json keeps the finished ones). Anyone using the app can stop "
                "any job.", elem_classes="as-note")
    table = gr.Dataframe(headers=headers, value=[], interactive=False, wrap=True, elem_id="as-jobs",
                         datatype=["number", "str", "str", "str", "str", "str", "str", "str", "html"],
                         column_widths=["6%", "10%", "8%", "19%", "12%", "11%", "10%", "16%", "8%"])
    # An empty table alone reads like a page that did not load.
    empty = gr.Markdown(NO_JOBS, elem_id="as-jobs-empty", elem_classes="as-note")
    message = gr.Markdown(elem_id="as-jobs-message")

    def rows(client_id: str) -> list[list[Any]]:
        out = []
        for j in reversed(studio.jobs.jobs()):
            progress = f"{j.done} / {j.total}" if j.total else ""
            who = "this browser" if client_id and j.owner == client_id else ("another browser" if j.owner else "API")
            out.append([j.id, who, j.kind, j.title, j.status, progress, f"{j.elapsed():.0f} s", j.message or j.phase,
                        STOP_HTML if j.active else ""])
        return out

    def refresh(seen: dict, client_id: str = ""):
        current = rows(client_id)
        key = repr([r[:7] + r[8:] for r in current])
        if key == seen.get("key"):
            return gr.skip(), gr.skip(), seen
        return current, gr.Markdown(visible=not current), {"key": key}

    def stop_job(job_id: int) -> str:
        """Cancel a waiting job or stop a running one (any job: the Jobs tab lists them)."""
        return _stop_job(job_id)

    def _stop_job(job_id: int, by: str | None = None) -> str:
        text = str(job_id if job_id is not None else "").strip()
        if not text.isdigit():
            raise ArtStudioError(f"job {text!r} is not a job number; the Jobs tab lists them")
        j = studio.jobs.stop(int(text), by=by)
        return f"Job {j.id}: {'cancelled' if j.status in FINISHED else 'stopping after its current step'}."

    gr.api(friendly(stop_job), api_name="stop_job")

    def on_select(client_id: str, evt: gr.SelectData):
        row = evt.row_value or []
        if STOP_CELL not in str(evt.value or "") or not row:
            return gr.skip(), gr.skip()
        try:
            text = friendly(_stop_job)(row[0], client_id)
        except gr.Error as err:
            gr.Warning(err.message, title=err.title)
            return gr.skip(), gr.skip()
        return text, rows(client_id)

    table.select(on_select, client, [message, table], api_visibility="private", show_progress="hidden")
    return [table, empty], refresh


@dataclass
class RunningApp:
    """A started app: its URL and how to stop it (and its job worker)."""

    url: str
    blocks: gr.Blocks
    studio: Studio

    def close(self) -> None:
        self.studio.close()
        self.blocks.close()


def _launch_kwargs(studio: Studio, host: str, port: int, share: bool) -> dict:
    return {"server_name": host, "server_port": port, "share": share, "theme": THEME, "css": CSS,
            "auth": studio.settings.credentials(),
            "allowed_paths": [str(studio.runs), str(studio.canvases)],
            "max_file_size": int(studio.settings.max_upload_mb * 1024 * 1024), "footer_links": []}


def start(settings: AppSettings | None = None, port: int = 0) -> RunningApp:
    """Start the app in background threads on `port` (0: a free one) and return its URL."""
    settings = settings or AppSettings()
    settings.check()
    demo = build_app(settings)
    port = port or _free_port(settings.host)
    demo.queue(default_concurrency_limit=2)
    demo.launch(prevent_thread_lock=True, quiet=True, **_launch_kwargs(demo.studio, settings.host, port, settings.share))
    return RunningApp(url=demo.local_url, blocks=demo, studio=demo.studio)


def launch(settings: AppSettings | None = None) -> None:
    """Run the app until interrupted (what `artstudio app` and `make demo` call)."""
    settings = settings or AppSettings()
    settings.check()
    port = settings.port or _free_port(settings.host)  # Gradio itself would print ":0" and then fail
    gallery = Path(settings.canvases_dir)
    # Started outside the repository, the app makes an empty ./canvases and the shipped gallery seemed lost.
    where = ("a new, empty folder: --canvases-dir names an existing gallery" if not gallery.is_dir() else
             count(len(list(gallery.glob("*.png"))), "artwork"))
    demo = build_app(settings)
    demo.queue(default_concurrency_limit=2)
    try:
        # Quiet: Gradio's own lines tell a command-line user to "set share=True in launch()"; ours name --share.
        demo.launch(prevent_thread_lock=True, quiet=True, **_launch_kwargs(demo.studio, settings.host, port, settings.share))
        print(f"ART Studio is running on {demo.local_url}" + (f" and {demo.share_url}" if demo.share_url else ""))
        print(f"Gallery: {settings.canvases_dir} ({where}) · runs: {settings.runs_dir}")
        print("(--share makes a public link; Ctrl-C stops the app)" if not settings.share else "(Ctrl-C stops the app)",
              flush=True)
        demo.block_thread()
    finally:
        demo.studio.close()


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
