"""The background worker: trainings and comparisons run one at a time, in order, in a visible queue.

A job is a function of the `Job` it runs as. It reports progress by setting `job.done` / `job.total`
/ `job.phase` and appending metric records to `job.history`, and it polls `job.stop_requested()`
between steps. The queue lives in the server process, not in a browser session, so a page that is
reloaded (or a second browser) simply reads the same jobs again: that is how the app reconnects to a
running training. Stop on a queued job cancels it; on a running one it asks the job to finish its
current step, and the training loop then writes its last checkpoint before returning.

Errors a user caused (`ArtStudioError`) end the job with their message; anything else is a bug, so
its traceback goes to the server log and the job shows a one-line summary.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from artstudio.errors import ArtStudioError

log = logging.getLogger("artstudio.ui.jobs")

QUEUED, RUNNING, DONE, STOPPED, FAILED, CANCELLED = "queued", "running", "done", "stopped", "failed", "cancelled"
FINISHED = (DONE, STOPPED, FAILED, CANCELLED)


@dataclass
class Job:
    """One unit of background work and everything the pages show about it."""

    id: int
    kind: str  # "train" | "compare" | "tune"
    title: str
    work: Callable[["Job"], dict | None] = field(repr=False)
    run_dir: Path | None = None
    total: int = 0
    done: int = 0
    phase: str = "waiting"
    status: str = QUEUED
    message: str = ""
    history: list[dict] = field(default_factory=list, repr=False)
    result: dict = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    owner: str = ""  # the browser that started it (its client id), "" for API callers that gave none
    form: dict = field(default_factory=dict, repr=False)  # the form values it was started with
    warnings: list[str] = field(default_factory=list, repr=False)  # what the library warned while it ran, once each
    resumed_at: int = 0  # a resumed training's step when this job began it (its pace counts the steps after)
    starts: dict = field(default_factory=dict, repr=False)  # a run's starts by number: the last step heard of each
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    stop_note: str = ""  # who stopped it, when not its own browser
    _eta_heard: float = field(default=0.0, repr=False)  # when the library last said how long was left
    _pace_from: tuple[float, int] | None = field(default=None, repr=False)  # (time, step) of the run's first own step

    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def record(self, entry: dict) -> None:
        """A training callback: keep the metric record and advance the progress (a start's step only names
        the phase: the run's own steps follow)."""
        if entry.get("phase") == "start":
            self.phase = (f"trying start {entry['start']} ({entry['index']} of {entry['starts']}): step "
                          f"{entry['start_step']} / {entry['start_steps']}")
            self.starts[entry["index"]] = dict(entry)
            return
        self.history.append(dict(entry))
        if isinstance(entry.get("step"), int):
            self.done = max(self.done, entry["step"])
            if self._pace_from is None:  # the pace counts the run's own steps: not the loading, not the starts
                self._pace_from = (time.time(), entry["step"])
        if self.phase.startswith("trying start"):
            # The run's own steps have begun: the Jobs row said "trying start t2c (2 of 2): step 45 / 45" beside
            # 202 / 300 steps done, and no page said which start won.
            self.phase = "training" + self._chosen_start()

    def _chosen_start(self) -> str:
        from artstudio.starts import CHOICE_FILE, STARTS_FOLDER

        try:
            choice = json.loads((self.run_dir / STARTS_FOLDER / CHOICE_FILE).read_text(encoding="utf-8"))
            return f" from start {choice['chosen']} (validation: " + ", ".join(
                f"{r['start']} {100 * r['val_accuracy']:.0f} %" for r in choice["starts"]) + ")"
        except (OSError, ValueError, KeyError, TypeError):
            return ""

    @property
    def active(self) -> bool:
        return self.status in (QUEUED, RUNNING)

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    def eta_seconds(self) -> float | None:
        """Time left from the pace of the run's own steps so far, once there is one (the starts before them
        took 15 s of a 35 s run, and counted as steps' time they made it "about 10 min left")."""
        if self.status != RUNNING or self._pace_from is None or not self.total or self.done >= self.total:
            return None
        since, first = self._pace_from
        ran = self.done - first
        if ran <= 0:
            return None
        return (time.time() - since) / ran * (self.total - self.done)

    def heard_eta(self, seconds: float | None) -> None:
        """What a comparison or a study reported it had left, when it reported it (once per run or trial)."""
        self.result["eta_seconds"] = seconds
        self._eta_heard = time.time()

    def reported_eta_left(self) -> float | None:
        """The reported time left, counted down since (a page showed "about 4 s left" for a whole trial)."""
        eta = self.result.get("eta_seconds")
        if self.status != RUNNING or eta is None:
            return None
        return max(0.0, eta - (time.time() - self._eta_heard))

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly snapshot (the API's and the Jobs table's view of a job)."""
        return {"id": self.id, "kind": self.kind, "title": self.title, "status": self.status,
                "phase": self.phase, "done": self.done, "total": self.total, "message": self.message,
                "run": self.run_dir.name if self.run_dir else None, "elapsed_s": round(self.elapsed(), 1),
                "result": self.result}


class JobQueue:
    """A FIFO of jobs served by one daemon thread (one job at a time: they share the CPU or GPU)."""

    def __init__(self) -> None:
        self._jobs: list[Job] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="artstudio-jobs", daemon=True)
        self._thread.start()

    def submit(self, kind: str, title: str, work: Callable[[Job], dict | None], *,
               total: int = 0, run_dir: Path | None = None, owner: str = "", form: dict | None = None) -> Job:
        with self._lock:
            if self._closed:
                raise ArtStudioError("the app is shutting down; no new jobs are accepted")
            job = Job(id=len(self._jobs) + 1, kind=kind, title=title, work=work, total=total, run_dir=run_dir,
                      owner=owner, form=dict(form or {}))
            self._jobs.append(job)
            self._wake.notify_all()
        return job

    def stop(self, job_id: int, by: str | None = None) -> Job:
        """Cancel a queued job, or ask a running one to stop after its current step. `by` is the browser that
        asks (the Jobs page's Stop): a job stopped by another browser than its own says so to its owner."""
        job = self.get(job_id)
        with self._lock:
            if by and job.owner and by != job.owner:
                job.stop_note = " (from another browser's Jobs page)"
            if job.status == QUEUED:
                job.status, job.phase, job.finished = CANCELLED, "cancelled" + job.stop_note, time.time()
                job.message = "cancelled before it started" + job.stop_note
            elif job.status == RUNNING:
                job._stop.set()
                job.phase = "stopping after the current step" + job.stop_note
            else:
                raise ArtStudioError(f"job {job_id} is already {job.status}; nothing to stop")
        return job

    def get(self, job_id: int) -> Job:
        with self._lock:
            for job in self._jobs:
                if job.id == job_id:
                    return job
        raise ArtStudioError(f"there is no job {job_id}; the Jobs tab lists them")

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs)

    def position(self, job: Job) -> int:
        """1 for the next job to run, 0 when the job is not waiting."""
        if job.status != QUEUED:
            return 0
        waiting = [j for j in self.jobs() if j.status == QUEUED]
        return waiting.index(job) + 1

    def line(self, job: Job, name: str) -> str:
        """The line under a Start button about `job`, as the job is now: queued (where), starting, running,
        or "" once it ended (the page's progress bar says how it ended)."""
        if job.status == QUEUED:
            where = self.position(job)
            if where == 1 and not any(j.status == RUNNING for j in self.jobs()):
                return f"Job {job.id} starting: **{name}**"
            return f"Job {job.id} queued (position {where}): **{name}**"
        if job.status == RUNNING:
            return f"Job {job.id} running: **{name}**"
        return ""

    def latest(self, kind: str) -> Job | None:
        """The running job of `kind`, else the newest one (what a page shows when it (re)connects)."""
        jobs = [j for j in self.jobs() if j.kind == kind]
        running = [j for j in jobs if j.status == RUNNING]
        return (running or jobs or [None])[-1]

    def latest_of(self, kind: str, owner: str) -> Job | None:
        """The newest job of `kind` that the browser `owner` started (what its page follows)."""
        if not owner:
            return None
        mine = [j for j in self.jobs() if j.kind == kind and j.owner == owner]
        # The newest still queued or running, else the newest that ran (a cancelled job never did): the job the
        # page started last, so Stop acts on it. Following the running one first stopped an older job still
        # finishing its step, while the one just started ran to its end.
        for pick in ([j for j in mine if j.active], [j for j in mine if j.status != CANCELLED], mine):
            if pick:
                return pick[-1]
        return None

    def stop_latest(self, kind: str, owner: str) -> Job | None:
        """Stop the job of `kind` that browser `owner`'s page follows (`latest_of`) if it is still
        active; None if there is nothing to stop."""
        job = self.latest_of(kind, owner)
        if job is None or not job.active:
            return None
        return self.stop(job.id)

    def busy_with(self, run_dir: Path) -> bool:
        return any(j.active and j.run_dir == run_dir for j in self.jobs())

    def close(self, timeout: float = 30.0) -> None:
        """Cancel waiting jobs, stop the running one and wait for the worker to finish."""
        with self._lock:
            self._closed = True
            for job in self._jobs:
                if job.status == QUEUED:
                    job.status, job.phase, job.finished = CANCELLED, "cancelled", time.time()
                elif job.status == RUNNING:
                    job._stop.set()
            self._wake.notify_all()
        self._thread.join(timeout)

    def wait(self, job_id: int, timeout: float = 60.0) -> Job:
        """Block until a job has finished (tests and scripts)."""
        deadline = time.time() + timeout
        job = self.get(job_id)
        while job.active and time.time() < deadline:
            time.sleep(0.05)
        return job

    # --- the worker ----------------------------------------------------------------------------
    def _next(self) -> Job | None:
        with self._lock:
            while True:
                for job in self._jobs:
                    if job.status == QUEUED:
                        job.status, job.started, job.phase = RUNNING, time.time(), "starting"
                        return job
                if self._closed:
                    return None
                self._wake.wait()

    def _serve(self) -> None:
        while (job := self._next()) is not None:
            self._run(job)

    @staticmethod
    def _run(job: Job) -> None:
        from .widgets import clean_message  # a failed job's message is shown on the pages: no machine paths

        heard = _JobWarnings(job)
        library = logging.getLogger("artstudio")
        library.addHandler(heard)
        try:
            result = job.work(job)
            job.result = result if isinstance(result, dict) else {}
            # The work says whether it stopped early where it knows (a Stop during a run's last step stopped nothing)
            job.status = STOPPED if job.result.get("stopped", job.stop_requested()) else DONE
            # a finished training keeps naming the start it chose (the Jobs row said only "finished")
            job.phase = stopped_phase(job) + job.stop_note if job.status == STOPPED else \
                "finished" + (job._chosen_start() if job.kind == "train" and job.starts else "")
        except ArtStudioError as err:
            job.status, job.phase, job.message = FAILED, "failed", clean_message(str(err))
        except Exception as err:  # a bug: keep the worker alive, put the details in the log
            log.exception("job %d (%s) crashed", job.id, job.title)
            job.status, job.phase = FAILED, "failed"
            job.message = clean_message(f"unexpected error ({type(err).__name__}: {err}); the server log has the details")
        finally:
            library.removeHandler(heard)
            job.finished = time.time()


class _JobWarnings(logging.Handler):
    """The library's warnings while a job runs, kept on the job for its page: "batch size 1e12 is larger than
    the 1000 training rows" went only to the server console. Only the job's own thread is heard."""

    def __init__(self, job: Job) -> None:
        super().__init__(level=logging.WARNING)
        self.job, self.thread = job, threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread or record.name.startswith("artstudio.ui"):
            return
        from .widgets import clean_message

        text = clean_message(record.getMessage())
        if text not in self.job.warnings:
            self.job.warnings.append(text)


def stopped_during_starts(job: Job) -> bool:
    """Whether a training was stopped while it tried its starts, before one was chosen (no canvas kept)."""
    return bool(((job.result or {}).get("metrics") or {}).get("stopped_during_starts"))


def stopped_phase(job: Job) -> str:
    """What a stopped job kept: a run stopped while it tried its starts has no canvas yet (it used to say a
    checkpoint was kept, and keep an untrained grey one)."""
    if stopped_during_starts(job):
        return "stopped while trying its starts: no canvas is kept yet; resuming keeps the starts that finished"
    # A study or a comparison keeps what finished (the Jobs page said "the last checkpoint is kept" for a study).
    return {"tune": "stopped; the finished trials are kept", "compare": "stopped; the finished runs are kept, and "
            "starting it again resumes"}.get(job.kind, "stopped; the last checkpoint is kept")
