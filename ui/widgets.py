"""Pieces every page uses: friendly errors, forms generated from config dataclasses, the progress bar.

`friendly` turns an `ArtStudioError` into a `gr.Error` toast with the error's own message (what was
wrong and how to fix it) and any other exception into a one-line "unexpected error" with the
traceback in the server log only: a user never sees a stack trace.

`dataclass_form` builds one input per dataclass field from its type, default and `metadata["help"]`,
so the app offers exactly the options of the command line, with the same defaults and help texts.
"""

from __future__ import annotations

import functools
import html
import logging
import re
import threading
import typing
from collections import OrderedDict
from dataclasses import MISSING, fields
from typing import Any, Callable

import gradio as gr

from artstudio.errors import ArtStudioError
from artstudio.options import choices_of, default_of, field_type

log = logging.getLogger("artstudio.ui")

# Absolute folders and the names a page shows for them (the app's runs/ and canvases/, studio-tiny's
# folder): messages never show a machine's paths.
PATH_NAMES: dict[str, str] = {}
_ABSOLUTE = re.compile(r"(?<![\w.:/])/(?:[^\s'\"`:;,()]+/)*([^\s'\"`:;,()/]+)")


def register_path(path: str, name: str) -> None:
    PATH_NAMES[str(path)] = name


# The library's messages name command-line options; a page names the field that holds the same value.
_FLAG = re.compile(r"(?<![\w`'-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")
FIELD_OF_FLAG = {"out": "run name", "data": "task", "eval-data": "test data", "config": "form"}


# What a message says to Python callers ("(overwrite=True, out=... in Python)") and a flag's placeholder after it
# ("--eval-data FILE"): a page has neither.
_PYTHON_ASIDE = re.compile(r"\s*\(\w+=[^()]*\bin Python\)")
_PLACEHOLDER = re.compile(r"(--[a-z][a-z0-9-]*) (?:FILE|PATH|DIR|RUN)\b")


def form_words(text: str) -> str:
    """`text` with each `--option` outside code spans as the page's field, 'option' ("pass --seeds like '0,1,2'"
    asked for a flag the page does not have), without asides to Python callers: commands in backticks stay as
    they are."""
    parts = text.split("`")

    def words(part: str) -> str:
        part = _PLACEHOLDER.sub(r"\1", _PYTHON_ASIDE.sub("", part))
        return _FLAG.sub(lambda m: f"'{FIELD_OF_FLAG.get(m.group(1), m.group(1).replace('-', ' '))}'", part)

    return "`".join(part if i % 2 else words(part) for i, part in enumerate(parts))


def clean_message(text: str) -> str:
    """`text` as a page shows it: the app's folders as `runs/...`, `canvases/...`, any other absolute path as its
    last part, and command-line options as the page's fields (`form_words`)."""
    for path in sorted(PATH_NAMES, key=len, reverse=True):
        text = text.replace(path, PATH_NAMES[path])
    return form_words(_ABSOLUTE.sub(lambda m: m.group(1), text))


def markdown_text(text: str) -> str:
    """`text` for a Markdown output, shown as written: HTML escaped outside code spans only (inside one,
    Markdown shows `Answer: &lt;value&gt;` as it is written)."""
    parts = text.split("`")
    return "`".join(part if i % 2 else html.escape(part, quote=False) for i, part in enumerate(parts))


def friendly(fn: Callable) -> Callable:
    """Report user errors as a clear message (gr.Error), never a traceback nor a server path."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except ArtStudioError as err:
            raise gr.Error(clean_message(str(err)), title=_title(err), print_exception=False) from None
        except Exception as err:  # a bug: the log gets the traceback, the page one line
            log.exception("%s failed", fn.__name__)
            raise gr.Error(clean_message(f"unexpected error ({type(err).__name__}: {err}); the server log has the details"),
                           print_exception=False) from None
    return wrapper


def keep_page(fn: Callable, n_outputs: int, inline: int | None = None) -> Callable:
    """For the page's own events: an error becomes a toast and every output stays as it was (issue 19:
    a failed action must not blank its panels); `inline` is the index of an output that shows it too."""
    checked = friendly(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return checked(*args, **kwargs)
        except gr.Error as err:
            # The toast renders HTML and the inline message Markdown: "like [<value>]" lost its "<value>]" to both.
            gr.Warning(html.escape(err.message, quote=False), title=err.title, duration=12)
            out = [gr.skip()] * n_outputs
            if inline is not None:
                out[inline] = f"⚠ {markdown_text(err.message)}"
            return out[0] if n_outputs == 1 else tuple(out)
    return wrapper


def action(trigger: Callable, fn: Callable, inputs: Any, outputs: list, *, api_name: str,
           inline: int | None = None, **kwargs) -> None:
    """Wire `fn` to a page event that keeps the page on errors, and publish it as `api_name`, where a
    user error is an error the client sees (an invisible twin button carries the API endpoint)."""
    outputs = list(outputs)
    io = {"inputs_kwargs": inputs} if isinstance(inputs, dict) else {"inputs": inputs}
    twin = gr.Button(visible=False, render=True)
    twin.click(friendly(fn), outputs=outputs, api_name=api_name, **io, **{k: v for k, v in kwargs.items()
                                                                         if k != "show_progress"})
    trigger(keep_page(fn, len(outputs), inline), outputs=outputs, api_visibility="private",
            api_name=f"{api_name}_page", **io, **kwargs)


def _title(err: ArtStudioError) -> str:
    names = {"DataError": "Data problem", "ArtworkError": "Artwork problem", "ConfigError": "Option problem",
             "ModelLoadError": "Model problem", "CanvasSizeError": "Canvas size problem", "PathRefused": "Refused"}
    return names.get(type(err).__name__, "Cannot do that")


def field_input(cls: type, name: str, *, label: str | None = None, choices: list | None = None, value: Any = MISSING,
                **kwargs) -> gr.components.Component:
    """One Gradio input for field `name` of dataclass `cls`: its help as the info line, its default as
    the value, its `Literal` values as the choices (with "default" first when the field is optional)."""
    f = next(f for f in fields(cls) if f.name == name)
    default = default_of(f) if value is MISSING else value
    label = label or f.name.replace("_", " ")
    info = kwargs.pop("info", f.metadata.get("help", ""))
    tp, optional = field_type(cls, name)
    if choices is None and choices_of(cls, name) is not None:
        choices = ([("default", "")] if optional else []) + list(choices_of(cls, name))
    if choices is not None:
        return gr.Dropdown(choices=choices, value=default if default is not None else "", label=label, info=info, **kwargs)
    if tp is bool:
        return gr.Checkbox(value=bool(default), label=label, info=info, **kwargs)
    if tp in (int, float) and optional:
        # A Number box shows an empty value as 0; an optional number is text, empty meaning "the default".
        return gr.Textbox(value="" if default is None else str(default), label=label, info=info,
                          placeholder="default", **kwargs)
    if tp is int:
        # No `precision=0`: Gradio would round 1.5 to 2 silently; the form's checks refuse it by name instead.
        return gr.Number(value=default, label=label, info=info, step=1, **kwargs)
    if tp is float:
        return gr.Number(value=default, label=label, info=info, **kwargs)
    if tp is dict or typing.get_origin(tp) is dict:
        return gr.Textbox(value="" if not default else str(default), label=label, info=info,
                          placeholder='{"name": value}', **kwargs)
    if optional:  # an empty box means the default (a blank "device" read as a field left unfilled)
        kwargs.setdefault("placeholder", "default")
    return gr.Textbox(value=default or "", label=label, info=info, **kwargs)


def dataclass_form(cls: type, names: list[str], prefix: str, **overrides: dict) -> dict[str, gr.components.Component]:
    """Inputs for the fields `names` of dataclass `cls` (element ids `PREFIX-NAME`); `overrides[name]`
    are extra `field_input` arguments."""
    return {n: field_input(cls, n, **({"elem_id": f"{prefix}-{n}"} | overrides.get(n, {}))) for n in names}


def progress_html(fraction: float, label: str, detail: str = "", state: str = "running") -> str:
    """A progress bar with a label, in the page's colours; `state` picks the colour."""
    pct = max(0.0, min(1.0, fraction)) * 100
    return (f'<div class="as-progress as-{html.escape(state)}">'
            f'<div class="as-progress-top"><span class="as-progress-label">{html.escape(label)}</span>'
            f'<span class="as-progress-detail">{html.escape(detail)}</span></div>'
            f'<div class="as-progress-track"><div class="as-progress-fill" style="width:{pct:.1f}%"></div></div></div>')


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(max(0, seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def follow_line(line: str | None, jobs, job, name: str):
    """What the line under a Start button becomes on a timer tick: its job's line as the job is now when it is
    that job's start line ("Job 4 queued …" went on saying so after the job ended), "" when it was about the
    job (its start or its stop) and the job ended; gr.skip() when it says something else (a refused start)."""
    if not isinstance(line, str) or job is None:
        return gr.skip()
    if not line.strip() and job.active:  # a page reloaded while its job runs: the line comes back
        return jobs.line(job, name)
    start = re.match(rf"Job {job.id} (queued|starting|running)\b", line)
    about = start or re.search(rf"\b[Jj]ob {job.id}\b", line)
    if not about or (not start and job.active):
        return gr.skip()
    now = jobs.line(job, name)
    return gr.skip() if now == line else now



def job_controls(studio, kind: str, starter: Callable, form: dict, *, client, start, stop, message,
                 doc: str, none_running: str, stopping: str) -> Callable:
    """Wire a background job page's Start and Stop buttons (Compare, Tune): Start queues `starter(values,
    owner=…)` with the `form` values and is published as `start_{kind}` (`doc` is its API description);
    Stop stops the job this browser follows (`none_running` when none is active, `stopping` formatted
    with the job). Returns `restore`: after a reload, the form that browser's newest job was started with."""
    def start_job(**values) -> str:
        owner = str(values.pop("client", "") or "")
        job = starter(values, owner=owner)
        return studio.jobs.line(job, job.title)

    start_job.__doc__, start_job.__name__ = doc, f"start_{kind}"
    action(start.click, start_job, form | {"client": client}, [message], api_name=f"start_{kind}")

    def restore(client_id: str):
        job = studio.jobs.latest_of(kind, client_id)
        return tuple((job.form or {}).get(n, gr.skip()) if job else gr.skip() for n in form)

    def stop_job(client_id: str) -> str:
        job = studio.jobs.stop_latest(kind, client_id)
        if job is not None and not job.active:  # it was waiting: cancelled, with nothing run
            return f"Job {job.id} cancelled before it started."
        return none_running if job is None else stopping.format(job=job)

    # Gradio names an event after its function; "stop_job" is the Jobs tab's public endpoint.
    stop_job.__name__ = f"stop_{kind}"
    stop.click(keep_page(stop_job, 1), client, message, api_visibility="private")
    return restore


# Stamps an event with its page and the moment it was asked, in the browser, into the event's last input
# (a hidden Textbox). Events sent side by side travel on separate requests and may reach the server out of order.
STAMP_JS = """(...values) => {
  window.asPageId = window.asPageId || Math.random().toString(36).slice(2);
  const v = [...values];
  v[v.length - 1] = window.asPageId + ' ' + (performance.timeOrigin + performance.now());
  return v;
}"""


class NewestOnly:
    """Tells a stale redraw from a fresh one by the stamps `STAMP_JS` puts on events: a stamp older than one
    already drawn for the same page is stale. An event without a stamp (an API call, a page load) is fresh."""

    def __init__(self, pages: int = 1000):
        self.newest: OrderedDict[str, float] = OrderedDict()
        self.pages, self.lock = pages, threading.Lock()

    def stale(self, stamp: str | None) -> bool:
        page, _, when = (stamp or "").partition(" ")
        try:
            moment = float(when)
        except ValueError:
            return False
        with self.lock:
            if moment < self.newest.get(page, float("-inf")):
                return True
            self.newest[page] = moment
            self.newest.move_to_end(page)
            while len(self.newest) > self.pages:
                self.newest.popitem(last=False)
        return False
