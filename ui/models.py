"""Which models the app may load, how the pages name them, and loading them without blocking each other.

The menu is fixed at launch (issue 19): the default model, `--models`, and the models named by the
gallery's artworks when the app starts, plus model folders (holding `config.json`) directly under the
configured `--model-roots`, named `ROOT/FOLDER`. A request naming anything else is refused at once,
before any lock is taken or any file is read; `--allow-any-model` lets any Hugging Face hub id through
(single-user use: then a request can make the server download a model).

Pages show names, never a machine's paths: the shipped model is `studio-tiny` wherever its folder is,
a launch-time folder is its folder name, a folder under a root is `ROOT/FOLDER`.

Each model has its own lock, so a slow load (or download) of one model never makes a request for
another model wait; the menu itself needs no lock.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from artstudio.backbone import DEFAULT_MODEL, DEFAULT_NAME

from .files import PathRefused
from .settings import AppSettings

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _is_hub_id(name: str) -> bool:
    return bool(HUB_ID.match(name)) and ".." not in name


def _is_default_folder(path: Path) -> bool:
    try:
        return path.resolve() == Path(DEFAULT_MODEL).resolve()
    except OSError:
        return False


class Models:
    """The model menu of one app, and its loaded backbones (one lock per model)."""

    def __init__(self, settings: AppSettings, canvases: Path):
        self.settings = settings
        self._sources: dict[str, str] = {}  # shown name -> what load_backbone gets
        self._names: dict[str, str] = {}  # resolved local path or id -> shown name
        self.default = self._add(settings.model or DEFAULT_NAME)
        for model in settings.models:
            self._add(model)
        for model in gallery_models(canvases):
            self._add(model)
        self.roots = [Path(r).expanduser().resolve() for r in settings.model_roots]
        self._loaded: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._geometry: dict[str, Any] = {}

    def _add(self, model: str) -> str:
        model = str(model).strip()
        path = Path(model).expanduser()
        if model == DEFAULT_NAME or _is_default_folder(path):
            name, source = DEFAULT_NAME, DEFAULT_NAME
        elif path.is_dir():
            name, source = path.resolve().name, str(path.resolve())
        elif _is_hub_id(model):
            name, source = model, model
        else:
            raise PathRefused(f"model {model!r} given at launch is neither a folder nor a Hugging Face hub id "
                              "like Qwen/Qwen3.5-0.8B")
        if name in self._sources and self._sources[name] != source:
            name = f"{name} ({len(self._sources)})"
        self._sources.setdefault(name, source)
        self._names[source] = name
        return name

    # --- the menu ----------------------------------------------------------------------------------
    def choices(self) -> list[str]:
        """Names the model menus offer: the launch list, then folders under the model roots."""
        return list(dict.fromkeys([self.default, *self._sources, *self._root_folders()]))

    def _root_folders(self) -> list[str]:
        found = []
        for root in self.roots:
            if root.is_dir():
                found += [f"{root.name}/{p.name}" for p in sorted(root.iterdir()) if (p / "config.json").is_file()]
        return found

    def name_of(self, source: str) -> str:
        """The shown name of a model as a run or an artwork records it (a path becomes its name)."""
        if source in self._names:
            return self._names[source]
        if _is_default_folder(Path(source)):
            return DEFAULT_NAME
        return Path(source).name if Path(source).is_absolute() else source

    def resolve(self, model: str | None) -> tuple[str, str]:
        """(shown name, what to load) for a name a request gives; anything not on the menu is refused."""
        model = (model or "").strip() or self.default
        if model in self._sources:
            return model, self._sources[model]
        for source, name in self._names.items():  # a launch-time path given again in full
            if model == source:
                return name, source
        if _is_default_folder(Path(model)) if Path(model).is_absolute() else False:
            return DEFAULT_NAME, DEFAULT_NAME
        top, _, rest = model.partition("/")
        for root in self.roots:
            if top == root.name and rest and "/" not in rest and rest not in (".", ".."):
                folder = root / rest
                if (folder / "config.json").is_file() and folder.resolve().is_relative_to(root):
                    return model, str(folder.resolve())
        if self.settings.allow_any_model and _is_hub_id(model):
            return model, model
        roots = f"; folders under {', '.join(r.name + '/' for r in self.roots)} too" if self.roots else ""
        raise PathRefused(f"model {model!r} is not one this app serves; choose one of {', '.join(self.choices())}"
                          f"{roots}. To offer another, restart the app with --models NAME (or --model-roots FOLDER)")

    # --- loading -------------------------------------------------------------------------------------
    def backbone(self, model: str | None, device: str | None = None):
        """The shared frozen backbone of `model`, loaded once; only requests for the same model wait."""
        from artstudio.backbone import load_backbone

        name, source = self.resolve(model)
        with self._guard:
            lock = self._locks.setdefault(source, threading.Lock())
        with lock:
            if source not in self._loaded:
                self._loaded[source] = load_backbone(source, device=device)
            return self._loaded[source]

    def geometry(self, name: str):
        """The patch geometry of a menu model from its processor files (no weights read), or None when
        they are not on this machine (a hub model not downloaded yet)."""
        if name in self._geometry:
            return self._geometry[name]
        _, source = self.resolve(name)
        geometry = None
        loaded = self._loaded.get(source)
        if loaded is not None:
            geometry = loaded.geometry
        else:
            try:
                from transformers import AutoImageProcessor

                from artstudio.backbone import Geometry

                where = DEFAULT_MODEL if source == DEFAULT_NAME else source
                geometry = Geometry.from_processor(AutoImageProcessor.from_pretrained(where, local_files_only=True))
            except Exception:  # noqa: BLE001 - unknown geometry: the check happens when the model loads
                geometry = None
        self._geometry[name] = geometry
        return geometry


def gallery_models(canvases: Path) -> list[str]:
    """Models named by the artworks in the gallery folder (hub ids and studio-tiny; never a path)."""
    found = []
    for png in sorted(Path(canvases).glob("*.png")):
        model = header_metadata(png).get("model_id")
        if isinstance(model, str) and (model == DEFAULT_NAME or _is_hub_id(model)):
            found.append(model)
    return found


def header_metadata(png: Path) -> dict:
    """The ArtStudio metadata of a PNG from its text chunks, without decoding the pixels ({} if none)."""
    from PIL import Image

    from artstudio.artwork import METADATA_KEY

    try:
        with Image.open(png) as img:
            raw = img.info.get(METADATA_KEY)
        return json.loads(raw) if isinstance(raw, str) else {}
    except (OSError, ValueError, SyntaxError):
        return {}
