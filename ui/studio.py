"""What the web app does, without the web: settings, models, runs, the gallery, the playground, comparisons.

The Gradio pages (`artstudio.ui.app`) only turn widgets into calls of `Studio` and results into
widgets, so everything here is plain Python that raises `ArtStudioError` with a readable message for
every user mistake. Every path a request can name is confined to the configured folders through
`files.inside`; the models the app may load are the configured ones or Hugging Face hub ids, never a
folder a request names.

Gallery keys name artworks without exposing server paths: `canvases/NAME.png` for the gallery
folder and `runs/RUN/artwork.png` for a finished run that was not saved to the gallery.
"""

from __future__ import annotations

import csv
import json
import re
import threading
import time
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from artstudio.errors import ArtStudioError, ArtworkError, ConfigError
from artstudio.methods import get_method
from artstudio.options import coerce_numbers, parse_number

from .files import PathRefused, copy_into, inside, safe_name, unique_path, validate_jsonl, validate_png
from .jobs import Job, JobQueue
from .settings import AppSettings

DEFAULT_MODEL_NAME = "studio-tiny"
# The app saves the canvas more often than the command line (50): the picture forming is the show.
APP_SNAPSHOT_EVERY = 5
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class GalleryItem:
    key: str
    path: Path
    label: str


class Studio:
    """The app's state: folders, the job queue, loaded models and artworks."""

    def __init__(self, settings: AppSettings | None = None):
        self.settings = settings or AppSettings()
        self.runs = Path(self.settings.runs_dir).resolve()
        self.canvases = Path(self.settings.canvases_dir).resolve()
        self.runs.mkdir(parents=True, exist_ok=True)
        self.canvases.mkdir(parents=True, exist_ok=True)
        self.jobs = JobQueue()
        self._backbones: dict[str, Any] = {}
        self._artworks: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.jobs.close()

    # --- models --------------------------------------------------------------------------------
    @property
    def default_model(self) -> str:
        return self.settings.model or DEFAULT_MODEL_NAME

    def model_choices(self) -> list[str]:
        return list(dict.fromkeys([self.default_model, *self.settings.models]))

    def check_model(self, model: str | None) -> str:
        """A configured model, or a hub id that is not also a local path; anything else is refused."""
        model = (model or "").strip() or self.default_model
        if model in self.model_choices():
            return model
        if _HUB_ID.match(model) and ".." not in model and not Path(model).exists():
            return model
        raise PathRefused(f"model {model!r} is not one the app was started with ({', '.join(self.model_choices())}) "
                          "nor a Hugging Face hub id like Qwen/Qwen3.5-0.8B; start the app with --model FOLDER to use a local folder")

    def backbone(self, model: str | None = None):
        """The shared frozen backbone of `model`, loaded once."""
        from artstudio.backbone import load_backbone

        model = self.check_model(model)
        with self._lock:
            if model not in self._backbones:
                self._backbones[model] = load_backbone(model, device=self.settings.device)
            return self._backbones[model]

    # --- training ------------------------------------------------------------------------------
    def train_config(self, values: dict[str, Any], train_file: str | None = None,
                     eval_file: str | None = None) -> tuple[Any, str]:
        """A TrainConfig from form values (TrainConfig field names plus run, source, task, canvas_size)."""
        from artstudio.training import TrainConfig

        values = dict(values)
        run = safe_name(values.pop("run", "") or _default_run_name(values), "run name")
        run_dir = inside(self.runs, run)
        resume = bool(values.get("resume"))
        if run_dir.exists() and any(run_dir.iterdir()) and not resume:
            raise ConfigError(f"a run named {run!r} exists already; choose another run name, or tick "
                              "'resume' to continue it from its last checkpoint")
        if self.jobs.busy_with(run_dir):
            raise ConfigError(f"run {run!r} is already queued or running; pick another name")
        known = {f.name for f in fields(TrainConfig)}
        config: dict[str, Any] = {k: v for k, v in values.items() if k in known}
        config["out"] = str(run_dir)
        config["model"] = self.check_model(values.get("model"))
        config["method_options"] = _json_dict(values.get("method_options"), "method options")
        config["grpo"] = _json_dict(values.get("grpo"), "GRPO options")
        canvas = parse_number(values.get("canvas_size"), "canvas size", int)
        if canvas is not None and get_method(config.get("method") or "art").takes_canvas_size():
            config["method_options"].setdefault("canvas_size", canvas)
        for name in ("device", "dtype", "metric"):
            config[name] = config.get(name) or None
        config.update(self._train_data(values, run_dir, train_file, eval_file))
        return TrainConfig.from_dict(coerce_numbers(TrainConfig, config)), run

    def _train_data(self, values: dict, run_dir: Path, train_file: str | None, eval_file: str | None) -> dict:
        from artstudio.tasks import TASKS

        if values.get("source", "task") == "task":
            task = values.get("task") or values.get("data")
            if task not in TASKS:
                raise ConfigError(f"{task!r} is not a built-in task; choose one of {', '.join(TASKS)}")
            return {"data": task, "eval_data": None}
        if not train_file:
            raise ConfigError("upload a training file (JSONL, one {\"prompt\": ..., \"answer\": ...} per line) "
                              "or pick a built-in task")
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
        card = {"name": Path(train_file).stem, "description": f"uploaded {Path(train_file).name}",
                "metric": values.get("metric") or "exact"}
        (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        return {"data": str(folder), "eval_data": None}

    def start_training(self, values: dict[str, Any], train_file: str | None = None, eval_file: str | None = None) -> Job:
        from artstudio.methods import get_method
        from artstudio.training import train

        config, run = self.train_config(values, train_file, eval_file)
        # A method that wraps model layers trains on a backbone of its own: the Playground's never sees it.
        shared = not get_method(config.method).own_backbone

        def work(job: Job) -> dict:
            job.phase = f"loading {config.model}"
            backbone = self.backbone(config.model) if shared else None
            job.phase = "training"
            result = train(config, backbone=backbone, callbacks=[job.record], should_stop=job.stop_requested,
                           progress=False)
            return {"metrics": result.metrics, "artwork": bool(result.artwork)}

        data = Path(train_file).name if values.get("source") == "upload" and train_file else config.data
        title = f"{config.method} · {data} · {run}"
        return self.jobs.submit("train", title, work, total=config.steps, run_dir=inside(self.runs, run))

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
        saved = sorted(self.canvases.glob("*.png"), key=lambda p: p.stat().st_mtime, reverse=True)
        items = [GalleryItem(f"canvases/{p.name}", p, p.stem) for p in saved]
        saved_runs = {_run_of(p) for p in saved}
        runs = sorted(self.runs.glob("*/artwork.png"), key=lambda p: p.stat().st_mtime, reverse=True)
        items += [GalleryItem(f"runs/{p.parent.name}/artwork.png", p, f"run · {p.parent.name}")
                  for p in runs if p.parent.name not in saved_runs and not self.jobs.busy_with(p.parent)]
        return items

    def artwork_path(self, key: str) -> Path:
        """The file behind a gallery key; any other name is refused."""
        key = (key or "").strip()
        top, _, rest = key.partition("/")
        if top == "canvases" and rest:
            path = inside(self.canvases, rest)
        elif top == "runs" and rest:
            path = inside(self.runs, rest)
        else:
            raise PathRefused(f"{key!r} is not an artwork of this app; expected canvases/NAME.png or runs/RUN/artwork.png "
                              "(the Gallery lists them)")
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
        info: dict[str, Any] = {"key": key, "size": f"{art.image.width}×{art.image.height}"}
        if meta is None:
            return info | {"title": Path(key).stem, "note": "a plain PNG without ArtStudio metadata"}
        task = meta.task or {}
        accuracy = meta.metrics.get("accuracy")
        return info | {
            "title": meta.extra.get("title") or task.get("name") or Path(key).stem,
            "description": meta.extra.get("description") or task.get("description", ""),
            "model": meta.model_id, "family": meta.family, "task": task.get("name", ""),
            "accuracy": None if accuracy is None else round(float(accuracy), 4),
            "eval_n": meta.metrics.get("eval_n"), "steps": meta.steps, "objective": meta.objective,
            "placement": meta.placement, "date": _date(meta.created), "artstudio": meta.artstudio_version,
            "run": meta.extra.get("run"),
        }

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
        """Validate an uploaded PNG (decodes; metadata well formed) and add it to the gallery."""
        display = display or Path(upload).name
        art = validate_png(upload, self.settings.max_upload_mb, display)
        stem = safe_name(Path(display).stem, "file name")
        dest = unique_path(self.canvases, stem, ".png")
        copy_into(art.path, self.canvases, dest.name)
        return f"canvases/{dest.name}"

    def delete(self, key: str) -> str:
        """Delete a gallery artwork, or the whole folder of an unsaved run."""
        import shutil

        path = self.artwork_path(key)
        if key.startswith("runs/"):
            if self.jobs.busy_with(path.parent):
                raise ArtStudioError(f"run {path.parent.name!r} is still running; stop it first")
            shutil.rmtree(path.parent)
            return f"deleted run {path.parent.name}"
        path.unlink()
        self._artworks = {k: v for k, v in self._artworks.items() if k[1] != str(path)}
        return f"deleted {path.name}"

    # --- playground ----------------------------------------------------------------------------
    def art_method(self, model: str, key: str, allow_mismatch: bool = False):
        from artstudio.methods import load_artwork

        path = self.artwork_path(key)
        model = self.check_model(model)
        cache_key = (model, str(path), path.stat().st_mtime_ns, bool(allow_mismatch))
        if cache_key not in self._artworks:
            if len(self._artworks) >= 8:  # a few recent artworks stay ready; the rest reload on demand
                self._artworks.pop(next(iter(self._artworks)))
            self._artworks[cache_key] = load_artwork(path, self.backbone(model), allow_mismatch=allow_mismatch)
        return self._artworks[cache_key]

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
        out["serve"] = serve_command(model)
        return out

    # --- comparisons ---------------------------------------------------------------------------
    @property
    def compare_root(self) -> Path:
        return self.runs / "compare"

    def start_compare(self, values: dict[str, Any]) -> Job:
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
                   "model": self.check_model(values.get("model")),
                   "method_options": _json_dict(values.get("method_options"), "method options")}
        for k in ("lr_grid", "device", "dtype"):
            config[k] = config.get(k) or None
        compare_config = CompareConfig(**coerce_numbers(CompareConfig, config))
        seeds = parse_seeds(compare_config.seeds)
        if self.jobs.busy_with(out):
            raise ConfigError(f"a comparison named {name!r} is already queued or running")

        def work(job: Job) -> dict:
            job.phase = "preparing tasks"

            def progress(event: dict) -> None:
                job.total, job.done = event.get("total", job.total), event.get("done", job.done)
                if event.get("phase") == "step":
                    job.phase = f"{event['method']} · {event['task']} · seed {event['seed']} · step {event['step']}/{event['steps']}"
                elif event.get("message"):
                    job.phase = event["message"]
                job.result["eta_seconds"] = event.get("eta_seconds")

            table = compare(compare_config, progress=progress, should_stop=job.stop_requested)
            return {"rows": len(table), "folder": name}

        title = f"compare · {len(methods)} methods × {len(tasks)} tasks × {len(seeds)} seeds · {name}"
        return self.jobs.submit("compare", title, work, total=len(methods) * len(tasks) * len(seeds), run_dir=out)

    def results_folders(self) -> list[str]:
        if not self.compare_root.is_dir():
            return []
        found = sorted(self.compare_root.glob("*/results.csv"), key=lambda p: p.stat().st_mtime, reverse=True)
        return [p.parent.name for p in found]

    def load_results(self, name: str) -> dict[str, Any]:
        """A results folder's table (rows of results.csv), its markdown summary and its plots."""
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


def _json_dict(value: Any, what: str) -> dict:
    if isinstance(value, dict):
        return dict(value)
    text = (value or "").strip()
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{what} are not valid JSON ({err.msg} at column {err.colno}); "
                          'expected an object like {"canvas_size": 96}') from None
    if not isinstance(parsed, dict):
        raise ConfigError(f'{what} must be a JSON object like {{"canvas_size": 96}}, not a {type(parsed).__name__}')
    return parsed


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

