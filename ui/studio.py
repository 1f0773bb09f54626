"""What the web app does, without the web: settings, models, runs, the gallery, the playground, comparisons,
artworks from a description (Text-to-Canvas) and hyper-parameter studies.

The Gradio pages (`artstudio.ui.app`) only turn widgets into calls of `Studio` and results into
widgets, so everything here is plain Python that raises `ArtStudioError` with a readable message for
every user mistake. Every path a request can name is confined to the configured folders through
`files.inside`; the models the app may load are the menu fixed at launch (`models.py`).

Gallery keys name artworks without exposing server paths: `canvases/NAME.png` for the gallery
folder, `runs/RUN/artwork.png` for a finished run that was not saved to the gallery and
`describe/NAME.png` for an artwork the Describe page generated and nobody saved yet (kept in
`runs/describe/`, the newest few only; the Playground lists them, the Gallery does not). Nothing else
is an artwork: a delete removes exactly one gallery PNG or one run folder, and only with a
confirmation token that `delete_request` issued for that very key (the page and the API alike).
"""

from __future__ import annotations

import csv
import json
import secrets
import threading
import time
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from artstudio.atomic import read_json_object
from artstudio.errors import ArtStudioError, ArtworkError, ConfigError
from artstudio.methods import get_method
from artstudio.options import coerce_numbers, parse_number

from .files import (PathRefused, copy_into, inside, png_header_size, safe_name, unique_path, validate_jsonl,
                    validate_png)
from .jobs import Job, JobQueue
from .models import Models, header_metadata
from .settings import AppSettings
from .widgets import register_path

DEFAULT_MODEL_NAME = "studio-tiny"
# The app saves the canvas more often than the command line (50): the picture forming is the show.
APP_SNAPSHOT_EVERY = 5
CONFIRM_SECONDS = 300
# Folders inside runs/ that hold other things than runs, and what they hold.
RESERVED_RUN_NAMES = {"compare": "comparisons", "tune": "hyper-parameter studies", "describe": "generated artworks"}
# A task description typed with an upload (what the Text-to-Canvas start is painted from): a sentence or two.
MAX_DESCRIPTION = 2000
# Generated artworks not saved to the gallery: enough to go back to a few, bounded however many clicks.
KEEP_DESCRIBED = 20


@dataclass
class GalleryItem:
    key: str
    path: Path
    label: str


def _newest(folder: Path, pattern: str) -> list[Path]:
    """The paths under `folder` matching `pattern`, newest first (none when the folder does not exist; a
    file deleted while the list is made is left out, not an error)."""
    stamped = []
    for path in folder.glob(pattern):
        try:
            stamped.append((path.stat().st_mtime, path))
        except OSError:
            continue
    return [path for _, path in sorted(stamped, key=lambda item: item[0], reverse=True)]


def _stopped_note(run_dir: Path) -> str:
    """' (stopped at step N)' for a run stopped before its steps were done: the gallery listed it as a finished
    artwork."""
    result = read_json_object(run_dir / "result.json")
    if result.get("stopped"):
        return f" (stopped at step {result.get('steps', '?')})"
    return ""


class Studio:
    """The app's state: folders, the job queue, loaded models and artworks."""

    def __init__(self, settings: AppSettings | None = None):
        self.settings = settings or AppSettings()
        self.runs = Path(self.settings.runs_dir).resolve()
        self.canvases = Path(self.settings.canvases_dir).resolve()
        self.runs.mkdir(parents=True, exist_ok=True)
        self.canvases.mkdir(parents=True, exist_ok=True)
        register_path(str(self.runs), self.runs.name)
        register_path(str(self.canvases), self.canvases.name)
        from artstudio.backbone import DEFAULT_MODEL

        register_path(str(Path(DEFAULT_MODEL).resolve()), DEFAULT_MODEL_NAME)
        self.models = Models(self.settings, self.canvases)
        self.jobs = JobQueue()
        self._artworks: dict[tuple, Any] = {}
        self._artworks_lock = threading.Lock()
        self._confirmations: dict[str, tuple[str, float]] = {}
        self._hyper = None  # the Text-to-Canvas generator, loaded on the first description
        self._hyper_lock = threading.Lock()
        self._save_lock = threading.Lock()  # two saves never pick the same free gallery name

    def close(self) -> None:
        self.jobs.close()

    # --- models --------------------------------------------------------------------------------
    @property
    def default_model(self) -> str:
        return self.models.default

    def model_choices(self) -> list[str]:
        return self.models.choices()

    def check_model(self, model: str | None) -> str:
        """The menu name of `model`; anything the app does not serve is refused at once."""
        return self.models.resolve(model)[0]

    def model_source(self, model: str | None) -> str:
        """What a run's config names: studio-tiny, a hub id, or a model folder under a root."""
        return self.models.resolve(model)[1]

    def backbone(self, model: str | None = None):
        """The shared frozen backbone of `model`, loaded once (one lock per model)."""
        return self.models.backbone(model, device=self.settings.device)

    # --- training ------------------------------------------------------------------------------
    def within_limits(self, **asked: int | None) -> None:
        """Refuse steps or trials above the app's limits (`--max-steps`, `--max-trials`): jobs run one at a time, and
        steps 1e12 was queued with an estimate of millions of hours, holding everyone's queue."""
        for name, value in asked.items():
            limit, option = (self.settings.max_trials, "--max-trials") if name == "trials" else \
                (self.settings.max_steps, "--max-steps")
            if value is not None and value > limit:
                raise ConfigError(f"{name.replace('_', ' ')} {value:,} is more than this app allows ({limit:,}); "
                                  f"ask for fewer (whoever starts the app sets the limit: `artstudio app {option}`)")

    def train_config(self, values: dict[str, Any], train_file: str | None = None,
                     eval_file: str | None = None, *, preview: bool = False) -> tuple[Any, str]:
        """A checked TrainConfig from form values (TrainConfig field names plus run, source, task, canvas_size).

        Its options are checked as `artstudio train` checks them (`TrainConfig.check`) before anything
        is written; `preview` (the command line panel) stops there: it neither looks at the run folder
        nor copies an upload."""
        from artstudio.training import TrainConfig

        values = dict(values)
        run = safe_name(values.pop("run", "") or _default_run_name(values), "run name")
        if run in RESERVED_RUN_NAMES:
            raise ConfigError(f"{run!r} is the app's folder of {RESERVED_RUN_NAMES[run]}; choose another run name")
        run_dir = inside(self.runs, run)
        known = {f.name for f in fields(TrainConfig)}
        config: dict[str, Any] = {k: v for k, v in values.items() if k in known}
        config["out"] = str(run_dir)
        config["model"] = self.model_source(values.get("model"))
        config["method_options"] = _json_dict(values.get("method_options"), "method options")
        config["grpo"] = _json_dict(values.get("grpo"), "GRPO options", '{"reward": "numeric", "group_size": 4}')
        canvas = parse_number(values.get("canvas_size"), "canvas size", int)
        if canvas is not None and get_method(config.get("method") or "art").takes_canvas_size():
            config["method_options"].setdefault("canvas_size", canvas)
        for name in ("device", "dtype", "metric"):
            config[name] = config.get(name) or None
        config.update(self._train_data(values, run_dir))
        train_config = TrainConfig.from_dict(coerce_numbers(TrainConfig, config))
        # Out-of-range numbers (steps -5, batch size 0, lr -1) are refused here, as `artstudio train`
        # refuses them, not in the queue; and before anything is written into the run folder.
        train_config.check()
        self.within_limits(steps=train_config.steps)
        size = train_config.method_options.get("canvas_size") if canvas is None else canvas
        checks_size = isinstance(size, int) and not isinstance(size, bool) and \
            get_method(train_config.method).takes_canvas_size()
        # A run is there once training began (its config, a checkpoint, its starts). A folder holding only the
        # upload of a job that failed before it began is not one: its name was refused both ways, as a run that
        # "exists already" and as "no run to resume".
        began = any((run_dir / name).exists() for name in ("config.json", "checkpoint", "starts"))
        if values.get("resume") and not began:
            # It was queued, then failed with the command line's advice ("leave out --resume ... --out"); the command
            # panel showed a runnable `--resume` line for it
            raise ConfigError(f"there is no run named {run!r} to resume; untick 'resume' to start it, or enter the "
                              "name of a stopped run")
        if preview:
            # The command panel showed `--canvas-size 100` as a runnable command that Start then refused: the
            # model's processor files (no weights read) say so here too, where they are on this machine.
            geometry = self.models.geometry(self.models.name_of(train_config.model)) if checks_size else None
            if geometry is not None:
                geometry.check(size, size)
            return train_config, run
        if checks_size:
            # A size the model cannot take (95, in the field or in the method options) was queued and failed as a
            # job; the model the job would load anyway says so here, with the nearest valid sizes.
            self.backbone(train_config.model).geometry.check(size, size)
        # A double-click on Start: the run is there because it is running, and 'resume' is no advice for that.
        if self.jobs.busy_with(run_dir):
            raise ConfigError(f"run {run!r} is already queued or running; pick another name")
        if began and not values.get("resume"):
            raise ConfigError(f"a run named {run!r} exists already; choose another run name, or tick "
                              "'resume' to continue it from its last checkpoint")
        if values.get("resume"):
            # Other options than the run's were queued, failed as a job and left the form's task inside the run.
            from artstudio.training import check_resume_before_queueing

            check_resume_before_queueing(train_config, advice="Set those fields to the run's own values, or untick "
                                                              "'resume' and choose another run name")
        if values.get("source", "task") != "task":
            self._copy_upload(values, run_dir, train_file, eval_file)
        return train_config, run

    def _train_data(self, values: dict, run_dir: Path) -> dict:
        """The config's data: a built-in task, or the run's `data/` folder an upload is copied into."""
        from artstudio.tasks import TASKS

        if values.get("source", "task") == "task":
            task = values.get("task") or values.get("data")
            if task not in TASKS:
                raise ConfigError(f"{task!r} is not a built-in task; choose one of {', '.join(TASKS)}")
            return {"data": task, "eval_data": None}
        return {"data": str(run_dir / "data"), "eval_data": None}

    def _copy_upload(self, values: dict, run_dir: Path, train_file: str | None, eval_file: str | None) -> None:
        """Check the uploaded files, then make them a task folder inside the run (`RUN/data/`)."""
        if not train_file:
            raise ConfigError("upload a training file (JSONL, one {\"prompt\": ..., \"answer\": ...} per line) "
                              "or pick a built-in task")
        if len(str(values.get("description") or "")) > MAX_DESCRIPTION:
            raise ConfigError(f"the task description has {len(str(values['description'])):,} characters; a sentence or "
                              f"two is what it is for (at most {MAX_DESCRIPTION:,})")
        name_of = lambda f: Path(f).name  # noqa: E731
        validate_jsonl(train_file, self.settings.max_upload_mb, name_of(train_file))
        if eval_file:
            validate_jsonl(eval_file, self.settings.max_upload_mb, name_of(eval_file))
        # The upload becomes a task folder inside the run: the run stays self-contained and the
        # artwork's metadata names the task after the uploaded file.
        folder = run_dir / "data"
        copy_into(train_file, folder, "train.jsonl")
        if eval_file:
            copy_into(eval_file, folder, "test.jsonl")
        # The description the user wrote, or none: one made of the file's name ("uploaded good.jsonl") had the shipped
        # Text-to-Canvas paint a start from it, a start that says nothing about the task, trained and raced for nothing.
        card = {"name": Path(train_file).stem, "metric": values.get("metric") or "exact"}
        description = " ".join(str(values.get("description") or "").split())
        if description:
            card["description"] = description
        (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")

    def start_training(self, values: dict[str, Any], train_file: str | None = None, eval_file: str | None = None,
                       owner: str = "") -> Job:
        from artstudio.methods import get_method
        from artstudio.training import train

        form = {k: v for k, v in values.items() if k != "client"}
        config, run = self.train_config(values, train_file, eval_file)
        # A method that wraps model layers trains on a backbone of its own: the Playground's never sees it.
        shared = not get_method(config.method).own_backbone

        def work(job: Job) -> dict:
            if config.resume:  # the curve and the log go on from the run's earlier steps (they showed only the new ones)
                from artstudio.checkpoint import checkpoint_step, read_history

                try:  # the records the resume keeps: those up to its checkpoint
                    earlier = read_history(Path(config.out), upto=checkpoint_step(Path(config.out) / "checkpoint"))
                except (OSError, ValueError):
                    earlier = []  # unreadable: the training itself says so
                for record in earlier:
                    job.record(record)
                job.resumed_at = job.done
            job.phase = f"loading {config.model}"
            backbone = self.backbone(config.model) if shared else None
            job.phase = "training"
            result = train(config, backbone=backbone, callbacks=[job.record], should_stop=job.stop_requested,
                           progress=False)
            # "stopped" is what the run did: a Stop pressed during its last step found nothing left to stop
            return {"metrics": result.metrics, "artwork": bool(result.artwork),
                    "stopped": bool(result.metrics.get("stopped"))}

        data = Path(train_file).name if values.get("source") == "upload" and train_file else config.data
        title = f"{config.method} · {data} · {run}"
        return self.jobs.submit("train", title, work, total=config.steps, run_dir=inside(self.runs, run),
                                owner=owner, form=form)

    def snapshot(self, job: Job) -> Path | None:
        """The newest canvas picture of a training job (its final artwork once there is one)."""
        if job.run_dir is None:
            return None
        artwork = job.run_dir / "artwork.png"
        if not job.active and artwork.is_file():
            return artwork
        shots = sorted((job.run_dir / "snapshots").glob("step-*.png"))
        return shots[-1] if shots else None

    # --- gallery -------------------------------------------------------------------------------
    def gallery(self) -> list[GalleryItem]:
        """Saved artworks (newest first), then finished runs' artworks that are not saved yet."""
        saved = _newest(self.canvases, "*.png")
        items = [GalleryItem(f"canvases/{p.name}", p, p.stem) for p in saved]
        saved_runs = {_run_of(p) for p in saved}
        runs = _newest(self.runs, "*/artwork.png")
        items += [GalleryItem(f"runs/{p.parent.name}/artwork.png", p, f"{p.parent.name} · run{_stopped_note(p.parent)}")
                  for p in runs if p.parent.name not in saved_runs and not self.jobs.busy_with(p.parent)]
        return items

    def playground_items(self) -> list[GalleryItem]:
        """What the Playground offers: the gallery, then the generated artworks nobody saved (newest first)."""
        return self.gallery() + self.described()

    def artwork_path(self, key: str) -> Path:
        """The file behind a gallery key; any other name is refused."""
        key = (key or "").strip()
        parts = key.split("/")
        wrong = PathRefused(f"{key!r} is not an artwork of this app; expected canvases/NAME.png, runs/RUN/artwork.png "
                            "or describe/NAME.png (the Gallery and the Playground list them)")
        if len(parts) == 2 and parts[0] == "canvases" and parts[1] not in ("", ".", ".."):
            path = inside(self.canvases, parts[1])
            if path.parent != self.canvases:
                raise wrong
        elif len(parts) == 3 and parts[0] == "runs" and parts[2] == "artwork.png" and \
                parts[1] not in ("", ".", "..", *RESERVED_RUN_NAMES):
            path = inside(self.runs, f"{parts[1]}/artwork.png")
            if path.parent.parent != self.runs:
                raise wrong
        elif len(parts) == 2 and parts[0] == "describe" and parts[1] not in ("", ".", ".."):
            path = inside(self.describe_root, parts[1])
            if path.parent != self.describe_root:
                raise wrong
        else:
            raise wrong
        if path.suffix.lower() != ".png":
            raise PathRefused(f"{key!r} is not a PNG artwork")
        if not path.is_file():
            raise ArtworkError(f"{key} does not exist (was it deleted?); the Gallery lists the artworks")
        return path

    def artwork_details(self, key: str) -> dict[str, Any]:
        """What the Gallery shows of one artwork: its metadata in plain words."""
        from artstudio.artwork import read_artwork

        art = read_artwork(self.artwork_path(key))
        meta = art.metadata
        info: dict[str, Any] = {"key": key, "size": f"{art.image.width}×{art.image.height}",
                                "deletes": self.delete_scope(key)}
        if meta is None:
            return info | {"title": Path(key).stem, "note": "a plain PNG without ArtStudio metadata"}
        task = meta.task or {}
        accuracy = meta.metrics.get("accuracy")
        steps: Any = meta.steps
        path = self.artwork_path(key)
        if key.startswith("runs/") and _stopped_note(path.parent):  # "steps 85" read as a finished run's
            asked = read_json_object(path.parent / "config.json").get("steps")
            steps = f"{meta.steps} (stopped" + (f"; it was to train {asked})" if asked else ")")
        return info | {
            "title": meta.extra.get("title") or task.get("name") or Path(key).stem,
            "description": meta.extra.get("description") or task.get("description", ""),
            "model": self.models.name_of(meta.model_id), "family": meta.family, "task": task.get("name", ""),
            "accuracy": None if accuracy is None else round(float(accuracy), 4),
            "eval_n": meta.metrics.get("eval_n"), **self._made_by(meta, steps),
            "placement": meta.placement, "date": _date(meta.created), "artstudio": meta.artstudio_version,
            "run": meta.extra.get("run"),
        }

    @staticmethod
    def _made_by(meta, steps) -> dict[str, Any]:
        """How an artwork was made: trained (its steps and objective), or painted by a hypernetwork from its
        description ("objective t2c, steps 0" read like a run that failed to train)."""
        hyper = meta.extra.get("hypernetwork")
        if isinstance(hyper, dict):
            return {"generated": f"painted by the {hyper.get('kind', '')} hypernetwork from its description"}
        return {"steps": steps, "objective": meta.objective}

    def save_run(self, run: str, name: str, description: str = "") -> str:
        """Copy a finished ART run's artwork into the gallery under `name`; returns its gallery key."""
        from artstudio.artwork import export_artwork, read_artwork

        run_dir = inside(self.runs, safe_name(run, "run name"))
        source = run_dir / "artwork.png"
        if self.jobs.busy_with(run_dir):
            raise ArtStudioError(f"run {run_dir.name!r} is still running; save it when it has finished")
        if not source.is_file():
            raise ArtworkError(f"run {run_dir.name!r} has no artwork.png; only ART runs that ran at least one step make one")
        if not (name or "").strip():
            raise ConfigError("give the artwork a name before saving it to the gallery")
        dest = inside(self.canvases, safe_name(name, "artwork name") + ".png")
        if dest.exists():
            raise ConfigError(f"the gallery already has {dest.name}; choose another name or delete the old one first")
        art = read_artwork(source)
        meta = replace(art.metadata, extra=dict(art.metadata.extra) | {"title": name.strip(), "description": description.strip(),
                                                                       "run": run_dir.name})
        export_artwork(art.image, dest, meta)
        return f"canvases/{dest.name}"

    def add_upload(self, upload: str, display: str | None = None) -> str:
        """Check an uploaded PNG against the models the app serves, then add it to the gallery.

        Its header's width and height are read first: a picture over `max_artwork_pixels` (a "pixel
        bomb": a small file that decodes to gigabytes) is refused without being decoded."""
        display = display or Path(upload).name
        self.check_import(upload, display)
        art = validate_png(upload, self.settings.max_upload_mb, display)
        stem = safe_name(Path(display).stem, "file name", derived=True)
        data = Path(art.path).read_bytes()
        for same in sorted(self.canvases.glob(f"{stem}*.png")):  # the same file again: one copy (it added -2, -3, ...)
            if same.stat().st_size == len(data) and same.read_bytes() == data:
                return f"canvases/{same.name}"
        dest = unique_path(self.canvases, stem, ".png")
        copy_into(art.path, self.canvases, dest.name)
        return f"canvases/{dest.name}"

    def check_import(self, upload: str, display: str) -> None:
        """Refuse a PNG no served model can use: too many pixels (from the header), a model the app does
        not serve, or a size that fits none of the served models' patch grids."""
        from .files import EMPTY_PNG, check_size

        check_size(upload, self.settings.max_upload_mb, display, EMPTY_PNG)
        width, height = png_header_size(upload, display)
        cap = self.settings.max_artwork_pixels
        if width * height > cap:
            raise ArtworkError(f"{display} is {width}×{height} pixels, more than this app decodes ({cap:,} pixels); "
                               "an artwork is a canvas of a few hundred pixels a side: upload the PNG a training exported")
        model = header_metadata(Path(upload)).get("model_id")
        served = self.model_choices()
        if isinstance(model, str):
            name = self.models.name_of(model)
            if name not in served:
                raise ArtworkError(f"{display} was made for {name}, which this app does not serve ({', '.join(served)}); "
                                   "ask whoever runs the app to add it with --models")
            candidates = [name]
        else:
            candidates = served
        checked = [(m, g) for m in candidates if (g := self.models.geometry(m)) is not None]
        if checked and not any(g.fits(height, width) for _, g in checked):
            m, g = checked[0]
            raise ArtworkError(f"{display} is {width}×{height} pixels, a size {m} cannot take: {g.misfit(height, width)}")

    def delete_scope(self, key: str) -> str:
        """What deleting `key` removes, in words (the confirmation says it)."""
        if key.startswith("runs/"):
            return f"the run folder {self.runs.name}/{key.split('/')[1]}/ (its checkpoint, snapshots and data)"
        return f"the file {key}"

    def delete_request(self, key: str) -> tuple[str, str]:
        """Step one of a delete: (what will be removed, a token that confirms it for 5 minutes)."""
        path = self.artwork_path(key)
        if key.startswith("runs/"):
            if not (path.parent / "config.json").is_file():
                raise PathRefused(f"{key!r} is not in a run folder (no config.json); only runs and gallery artworks can be deleted")
            if self.jobs.busy_with(path.parent):
                raise ArtStudioError(f"run {path.parent.name!r} is still running; stop it first (Jobs tab)")
        now = time.time()
        self._confirmations = {t: v for t, v in self._confirmations.items() if v[1] > now}
        token = secrets.token_urlsafe(12)
        self._confirmations[token] = (key, now + CONFIRM_SECONDS)
        return f"Delete {self.delete_scope(key)}? This cannot be undone.", token

    def delete(self, key: str, token: str | None = None) -> str:
        """Step two: delete exactly the artwork (or unsaved run folder) that `token` confirmed."""
        import shutil

        key = (key or "").strip()
        confirmed = self._confirmations.get(token or "")
        if confirmed is None or confirmed[0] != key or confirmed[1] < time.time():
            raise ConfigError(f"deleting {key!r} needs a confirmation: ask for it first (the Delete… button, or the "
                              "request_delete endpoint, which returns the token to pass here)")
        path = self.artwork_path(key)
        del self._confirmations[token]
        if key.startswith("runs/"):
            run_dir = path.parent
            if self.jobs.busy_with(run_dir):
                raise ArtStudioError(f"run {run_dir.name!r} is still running; stop it first (Jobs tab)")
            shutil.rmtree(run_dir)
            return f"deleted run {run_dir.name}"
        path.unlink()
        with self._artworks_lock:
            self._artworks = {k: v for k, v in self._artworks.items() if k[1] != str(path)}
        return f"deleted {path.name}"

    # --- describe a task: Text-to-Canvas ---------------------------------------------------------
    @property
    def describe_root(self) -> Path:
        return self.runs / "describe"

    def hyper_generator(self):
        """The Text-to-Canvas generator, loaded once on first use and shared by every request.

        It runs on the app's own backbone of the model the hypernetwork was made for, which must be on
        the model menu (studio-tiny for the shipped one): the Playground then serves its artworks as is."""
        from artstudio.hyper import DEFAULT_HYPER, HyperGenerator, Hypernetwork
        from artstudio.hyper.generate import resolve_hyper_folder

        with self._hyper_lock:
            if self._hyper is None:
                folder = resolve_hyper_folder(self.settings.hyper or DEFAULT_HYPER)
                meta = Hypernetwork.read_meta(folder)
                if meta.get("kind") != "t2c":
                    raise ConfigError(f"the hypernetwork {folder.name} is a {meta.get('kind')} one, which writes an adapter; "
                                      "the Describe page needs a Text-to-Canvas (t2c) one, which paints an artwork")
                target = str(meta["target"].get("model_id") or "")
                try:
                    model = self.check_model(target)
                except PathRefused:
                    raise ConfigError(f"the Text-to-Canvas hypernetwork paints artworks for {self.models.name_of(target)}, "
                                      f"which this app does not serve ({', '.join(self.model_choices())}); restart the "
                                      f"app with --models {self.models.name_of(target)}") from None
                self._hyper = HyperGenerator(folder, backbone=self.backbone(model))
            return self._hyper

    def describe(self, description: str) -> str:
        """Paint an artwork for a task described in words (no training); returns its key, `describe/NAME.png`.

        The artwork waits in `runs/describe/` (the newest few are kept) until `save_described` copies it
        to the gallery; the Playground can use it at once."""
        from artstudio.hyper.encoder import check_descriptions

        description = (description or "").strip()
        if not description:
            raise ConfigError("describe the task first, in a sentence or two: what the prompt is and what the reply "
                              "should be, e.g. 'The prompt is two digits separated by a space, with no instruction. "
                              "Reply with their sum, written inside square brackets, like [<value>].'")
        check_descriptions(description)
        generator = self.hyper_generator()
        slug = _slug(description)
        self.describe_root.mkdir(parents=True, exist_ok=True)
        with self._hyper_lock:  # one generation at a time: a dozen milliseconds of one small network
            dest = unique_path(self.describe_root, slug, ".png")
            generator.generate(description, dest, name=slug)
        for old in self.described()[KEEP_DESCRIBED:]:
            old.path.unlink(missing_ok=True)
        return f"describe/{dest.name}"

    def described(self) -> list[GalleryItem]:
        """Generated artworks not saved to the gallery, newest first."""
        if not self.describe_root.is_dir():
            return []
        found = _newest(self.describe_root, "*.png")
        return [GalleryItem(f"describe/{p.name}", p, f"described · {p.stem}") for p in found]

    def save_described(self, key: str, name: str = "") -> str:
        """Copy a generated artwork into the gallery; returns its gallery key.

        With no name, the description's first words name it, made unique (`-2`, `-3`, ...); a name the
        gallery already has is refused: nothing is ever overwritten."""
        from artstudio.artwork import export_artwork, read_artwork

        if not (key or "").startswith("describe/"):
            raise ConfigError("generate an artwork first (Describe a task, then Generate), then save it")
        source = self.artwork_path(key)
        art = read_artwork(source)
        if art.metadata is None:
            raise ArtworkError(f"{key} has no artwork metadata; generate it again")
        description = art.metadata.extra.get("description", "")
        stem = safe_name(str((art.metadata.task or {}).get("name") or Path(key).stem), "artwork name", derived=True)
        with self._save_lock:
            if (name or "").strip():
                dest = inside(self.canvases, safe_name(name, "artwork name") + ".png")
                if dest.exists():
                    raise ConfigError(f"the gallery already has {dest.name}; choose another name, or leave the name "
                                      "empty to get a free one")
            else:
                dest = unique_path(self.canvases, stem, ".png")
            title = (name or "").strip() or dest.stem
            meta = replace(art.metadata, extra=dict(art.metadata.extra) | {"title": title, "description": description})
            export_artwork(art.image, dest, meta)
        return f"canvases/{dest.name}"

    # --- playground ----------------------------------------------------------------------------
    def art_method(self, model: str, key: str, allow_mismatch: bool = False):
        from artstudio.methods import load_artwork

        path = self.artwork_path(key)
        model = self.check_model(model)
        width, height = png_header_size(path, key)
        if width * height > self.settings.max_artwork_pixels:
            raise ArtworkError(f"{key} is {width}×{height} pixels, more than this app decodes; delete it from the gallery")
        cache_key = (model, str(path), path.stat().st_mtime_ns, bool(allow_mismatch))
        with self._artworks_lock:
            if cache_key in self._artworks:
                return self._artworks[cache_key]
        backbone = self.backbone(model)
        try:
            method = load_artwork(path, backbone, allow_mismatch=allow_mismatch)
        except ArtworkError as err:
            raise ArtworkError(str(err).replace(str(path), key)) from None
        with self._artworks_lock:
            if len(self._artworks) >= 8:  # a few recent artworks stay ready; the rest reload on demand
                self._artworks.pop(next(iter(self._artworks)))
            self._artworks[cache_key] = method
        return method

    def ask(self, model: str, key: str | None, prompt: str, *, greedy: bool = True, temperature: float = 0.7,
            max_tokens: int = 64, allow_mismatch: bool = False, seed: int = 0) -> dict[str, Any]:
        """The answer with the artwork and without it (base model), with latencies and the vLLM request."""
        from artstudio.data import Example
        from artstudio.inference import answer
        from artstudio.methods import build_method
        from artstudio.serving import serve_command, vllm_request

        prompt = (prompt or "").strip()
        if not prompt:
            raise ConfigError("type a prompt first")
        if not key:
            raise ConfigError("choose an artwork (or upload one) to compare the answers with and without it")
        if int(max_tokens) < 1 or int(max_tokens) > 1024:
            raise ConfigError(f"max tokens is {max_tokens}; expected 1 to 1024")
        if not greedy and not float(temperature) > 0:
            raise ConfigError("sampling needs a temperature above 0 (or tick greedy)")
        model = self.check_model(model)
        method = self.art_method(model, key, allow_mismatch)
        base = build_method("base", self.backbone(model))
        out: dict[str, Any] = {}
        for name, m in (("with", method), ("without", base)):
            start = time.perf_counter()
            text = answer(m, [Example(prompt=prompt)], max_new_tokens=int(max_tokens),
                          temperature=0.0 if greedy else float(temperature), seed=seed)[0]
            out[name] = {"answer": text, "latency_ms": round(1000 * (time.perf_counter() - start), 1)}
        out["request"] = vllm_request(self.artwork_path(key), prompt, model, max_tokens=int(max_tokens),
                                      temperature=0.0 if greedy else float(temperature))
        out["serve"] = self.serve_command(model, serve_command)
        return out

    def serve_command(self, model: str, serve_command=None) -> str:
        """A vLLM command that runs as shown: studio-tiny is served from its installed folder under its name."""
        import shlex

        from artstudio.serving import serve_command as vllm_serve

        command = (serve_command or vllm_serve)(model)
        source = self.model_source(model)
        if model == DEFAULT_MODEL_NAME:
            where = '"$(python -c \'import artstudio.backbone as b; print(b.DEFAULT_MODEL)\')"'
            command = command.replace(f"vllm serve {shlex.quote(model)}", f"vllm serve {where}", 1)
            command += f" --served-model-name {DEFAULT_MODEL_NAME}"
        elif source != model:  # a local folder: vLLM needs its path (shown relative to the app's folder when it can)
            try:
                shown = str(Path(source).relative_to(Path.cwd()))
            except ValueError:
                shown = source
            command = command.replace(f"vllm serve {shlex.quote(model)}", f"vllm serve {shlex.quote(shown)}", 1)
            command += f" --served-model-name {shlex.quote(model)}"
        return command

    # --- comparisons ---------------------------------------------------------------------------
    @property
    def compare_root(self) -> Path:
        return self.runs / "compare"

    def start_compare(self, values: dict[str, Any], owner: str = "") -> Job:
        from artstudio.comparison import CompareConfig, compare, parse_list, parse_seeds
        from artstudio.tasks import TASKS

        values = dict(values)
        name = safe_name(values.pop("name", "") or f"compare-{datetime.now():%Y%m%d-%H%M%S}", "results name")
        out = inside(self.compare_root, name)
        methods = parse_list(values.get("methods"))
        tasks = parse_list(values.get("tasks"))
        if not methods:
            raise ConfigError("choose at least one method to compare")
        if not tasks:
            raise ConfigError("choose at least one task")
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ConfigError(f"{', '.join(unknown)}: not built-in tasks; choose from {', '.join(TASKS)}")
        known = {f.name for f in fields(CompareConfig)}
        config = {k: v for k, v in values.items() if k in known}
        config |= {"methods": ",".join(methods), "tasks": ",".join(tasks), "out": str(out),
                   "model": self.model_source(values.get("model")),
                   "method_options": _json_dict(values.get("method_options"), "method options")}
        for k in ("lr_grid", "device", "dtype"):
            config[k] = config.get(k) or None
        compare_config = CompareConfig(**coerce_numbers(CompareConfig, config))
        from artstudio.comparison.config import check_config

        check_config(compare_config, methods)  # steps -1 was queued, then failed (Train refuses before queuing)
        self.within_limits(steps=compare_config.steps)
        seeds = parse_seeds(compare_config.seeds)
        if self.jobs.busy_with(out):
            raise ConfigError(f"a comparison named {name!r} is already queued or running")
        from artstudio.comparison.harness import check_same_comparison

        try:  # refused here, not queued to fail ("holds a comparison with another recipe")
            check_same_comparison(out / "compare_config.json", compare_config)
        except ConfigError as err:
            raise ConfigError(str(err).replace("--out", "results name")) from None

        def work(job: Job) -> dict:
            job.phase = "preparing tasks"

            def progress(event: dict) -> None:
                job.total, job.done = event.get("total", job.total), event.get("done", job.done)
                if event.get("phase") == "step":
                    job.phase = f"{event['method']} · {event['task']} · seed {event['seed']} · step {event['step']}/{event['steps']}"
                elif event.get("message"):
                    job.phase = event["message"]
                if "eta_seconds" in event:  # the estimate and each finished run say it; a step does not
                    job.heard_eta(event["eta_seconds"])

            table = compare(compare_config, progress=progress, should_stop=job.stop_requested)
            return {"rows": len(table), "folder": name}

        from artstudio.words import count  # "1 tasks × 1 seeds"

        title = f"compare · {count(len(methods), 'method')} × {count(len(tasks), 'task')} × {count(len(seeds), 'seed')} · {name}"
        return self.jobs.submit("compare", title, work, total=len(methods) * len(tasks) * len(seeds), run_dir=out,
                                owner=owner, form=values | {"name": name})  # a reload shows the name it ran under

    def results_folders(self) -> list[str]:
        if not self.compare_root.is_dir():
            return []
        found = _newest(self.compare_root, "*/results.csv")
        return [p.parent.name for p in found]

    def load_results(self, name: str) -> dict[str, Any]:
        """A results folder's table (rows of results.csv), its markdown summary and its plots."""
        if not (name or "").strip():  # Load with nothing chosen said "the results folder None is empty once ..."
            raise ConfigError("choose a results folder first (the list beside Load); a comparison appears there "
                              "once it has started")
        folder = inside(self.compare_root, safe_name(name, "results folder"))
        table = folder / "results.csv"
        if not table.is_file():
            raise ArtStudioError(f"{folder.name} has no results.csv yet; a comparison writes it when its first runs finish")
        with open(table, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        summary = folder / "results.md"
        plots = [p for p in (folder / n for n in ("accuracy.png", "accuracy_vs_params.png", "loss_curves.png", "cost.png"))
                 if p.is_file()]
        return {"name": folder.name, "header": rows[0] if rows else [], "rows": rows[1:],
                "markdown": summary.read_text(encoding="utf-8") if summary.is_file() else "", "plots": plots}


    # --- hyper-parameter studies -----------------------------------------------------------------
    @property
    def tune_root(self) -> Path:
        return self.runs / "tune"

    def tune_config(self, values: dict[str, Any]):
        """A checked TuneConfig from form values (TuneConfig field names plus name and task) and its folder name.

        The data is a built-in task and the study lives in `RUNS/tune/NAME/` (its SQLite storage too):
        the page takes no file paths, so a study reads and writes only inside the app's folders."""
        from artstudio.tasks import TASKS
        from artstudio.tune import TuneConfig
        from artstudio.tune.space import load_space
        from artstudio.tune.study import check_config, claim_out

        values = dict(values)
        name = safe_name(values.pop("name", "") or f"tune-{datetime.now():%Y%m%d-%H%M%S}", "study name")
        task = values.pop("task", None) or values.get("data")
        if not task:
            raise ConfigError("choose a task to tune on")
        if task not in TASKS:
            raise ConfigError(f"{task!r} is not a built-in task; choose one of {', '.join(TASKS)}")
        paths = ("data", "eval_data", "space", "storage", "encoder", "out", "model")
        known = {f.name for f in fields(TuneConfig)} - set(paths)
        config = {k: v for k, v in values.items() if k in known}
        config |= {"data": task, "out": str(inside(self.tune_root, name)), "model": self.model_source(values.get("model"))}
        for k in ("device", "dtype", "study_name"):
            config[k] = config.get(k) or None
        tune_config = check_config(TuneConfig(**coerce_numbers(TuneConfig, config)))
        self.within_limits(steps=tune_config.steps, trial_steps=tune_config.trial_steps, trials=tune_config.trials)
        load_space(tune_config.method, None)  # a method with nothing to tune is refused now, not in the queue
        claim_out(tune_config, Path(tune_config.out), write=False, elsewhere="another study name")  # so is another study under a used name
        return tune_config, name

    def start_tune(self, values: dict[str, Any], owner: str = "") -> Job:
        """Queue a study (`artstudio tune`); the job's history holds one record per finished trial."""
        from artstudio.tune import tune

        config, name = self.tune_config(values)
        out = Path(config.out)
        if self.jobs.busy_with(out):
            raise ConfigError(f"a study named {name!r} is already queued or running")

        def work(job: Job) -> dict:
            job.phase = "preparing the data, loading the model, running the first trial"

            def progress(event: dict) -> None:
                if event.get("phase") == "trial":
                    job.total, job.done = event["total"], event["done"]
                    job.history.append({"trial": event["trial"], "value": event["value"], "best": event["best"]})
                    job.heard_eta(event.get("eta_seconds"))
                    job.phase = "trials" if job.done < job.total else "trials finished"
                elif event.get("phase") == "final":
                    job.phase = f"final run: the {event['run']} configuration on all training rows, scored on test"
                elif event.get("phase") == "rerank":
                    job.phase = f"{event['run']}: the full steps on the non-validation rows, scored on validation"

            result = tune(config, progress=progress, should_stop=job.stop_requested)
            unfinished = result.n_complete < config.trials or (config.final and result.final is None)
            return {"folder": name, "best_value": result.best_value, "trials": result.n_complete,
                    "final": result.final, "stopped": job.stop_requested() and unfinished}

        title = f"tune · {config.method} · {config.data} · {config.trials} trials · {name}"
        return self.jobs.submit("tune", title, work, total=config.trials, run_dir=out, owner=owner,
                                form=dict(values) | {"name": name})  # a reload shows the name it ran under

    def tune_folders(self) -> list[str]:
        """Studies with results (a best.json), newest first."""
        if not self.tune_root.is_dir():
            return []
        found = _newest(self.tune_root, "*/best.json")
        return [p.parent.name for p in found]

    def load_tune(self, name: str) -> dict[str, Any]:
        """A study's trials (rows of trials.csv), its report (markdown) and its best configuration."""
        if not (name or "").strip():
            raise ConfigError("choose a study first (the list under the plot); a running study appears there when "
                              "its trials have finished")
        folder = inside(self.tune_root, safe_name(name, "study folder"))
        best = folder / "best.json"
        if not best.is_file():
            raise ArtStudioError(f"{folder.name} has no best.json yet; a study writes it when its trials finish")
        trials = folder / "trials.csv"
        rows = []
        if trials.is_file():
            with open(trials, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
        report = folder / "report.md"
        try:  # the re-ranking at the full steps, which picks best.json among the best trials and the default
            rerank = json.loads((folder / "rerank.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            rerank = None
        return {"name": folder.name, "trials": rows, "best": json.loads(best.read_text(encoding="utf-8")),
                "report": report.read_text(encoding="utf-8") if report.is_file() else "",
                "rerank": rerank if isinstance(rerank, dict) else None}

    def tune_train_values(self, name: str) -> tuple[dict[str, Any], list[str]]:
        """The Train form's values for a study's best.json, and the options the form cannot show.

        `train_config` turns the values back into best.json's TrainConfig, with the run folder (its
        `out`) renamed: by default `NAME-best`, or automatic when that run exists already. Numbers are kept
        exactly: a sampled learning rate rounded for the eye (0.18 for 0.18000455964558035) trained another run
        (0 % against the study's 99 % at 20 steps), not the one best.json describes."""
        from artstudio.options import default_of, field_type
        from artstudio.tasks import TASKS
        from artstudio.training import TrainConfig

        study = self.load_tune(name)
        folder, config = study["name"], TrainConfig.from_dict(study["best"])
        if config.data not in TASKS:
            raise ConfigError(f"{folder}/best.json trains on {config.data!r}, not a built-in task; run it from a terminal: "
                              f"artstudio train --config {self.runs.name}/tune/{folder}/best.json")
        values: dict[str, Any] = {}
        for f in fields(TrainConfig):
            value = getattr(config, f.name)
            if isinstance(value, dict):
                value = json.dumps(value) if value else ""
            elif field_type(TrainConfig, f.name)[1]:  # optional: a text box, empty for "the default"
                value = "" if value is None else str(value)
            values[f.name] = value
        options = dict(config.method_options or {})
        canvas = options.pop("canvas_size", None) if get_method(config.method).takes_canvas_size() else None
        values["method_options"] = json.dumps(options) if options else ""
        run = f"{folder}-best"
        values |= {"model": self.models.name_of(config.model), "source": "task", "task": config.data,
                   "canvas_size": "" if canvas is None else str(canvas),
                   "run": run if not inside(self.runs, run).exists() else ""}
        self.check_model(values["model"])
        hidden = ("gradient_checkpointing", "overwrite", "keep_default_system", "eval_data")
        lost = [f.name for f in fields(TrainConfig) if f.name in hidden and getattr(config, f.name) != default_of(f)]
        return values, lost


def _json_dict(value: Any, what: str, example: str = '{"canvas_size": 96}') -> dict:
    if isinstance(value, dict):
        return dict(value)
    text = (value or "").strip()
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{what} are not valid JSON ({err.msg} at column {err.colno}); "
                          f"expected an object like {example}") from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"{what} must be a JSON object like {example}, not a {type(parsed).__name__}")
    return parsed


_FILLER = set("a an the is are be of by with to in into on as and or it its their them this that no any each like "
              "form line prompt reply replies written write separated instruction value given then".split())


def _slug(description: str, words: int = 6) -> str:
    """A file name from what a description asks: the content words of its last sentence, where task
    descriptions say what the reply is ('... Reply with their sum, written inside square brackets.' ->
    'sum-inside-square-brackets'), else of the whole text."""
    import re

    def content(text: str) -> list[str]:
        return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _FILLER]

    sentences = [s for s in re.split(r"[.!?](?:\s|$)", description) if content(s)]
    picked = content(sentences[-1]) if sentences and len(content(sentences[-1])) >= 2 else content(description)
    return "-".join(picked[:words])[:60].strip("-") or "described"


def _default_run_name(values: dict) -> str:
    what = values.get("task") if values.get("source", "task") == "task" else "upload"
    return f"{what}-{values.get('method', 'art')}-{datetime.now():%Y%m%d-%H%M%S}"


def _run_of(png: Path) -> str | None:
    """The run a gallery PNG was saved from (kept in its metadata), so the run is not listed twice."""
    try:
        from PIL import Image

        with Image.open(png) as img:
            text = dict(getattr(img, "text", {}) or {})
        return json.loads(text.get("artstudio", "{}")).get("extra", {}).get("run")
    except (OSError, ValueError, AttributeError):
        return None


def _date(created: str) -> str:
    try:
        return datetime.fromisoformat(created).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return created

