"""Artworks: trained canvases as lossless PNG files that carry their own metadata.

As image-generation UIs do (DESIGN §5), the metadata is JSON in a PNG text chunk (`iTXt`, key
`artstudio`): which model and chat template the canvas was trained for, its geometry, where it goes
in the prompt, the task, the objective, steps and metrics. Any PNG viewer shows the picture; any
serving engine takes it as an ordinary image; `read_artwork` + `check_compatible` refuse to use it
with a model it was not made for, unless the user explicitly allows it.

This module is the file format only; `artstudio.methods.load_artwork` turns a PNG into a method.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from artstudio.atomic import atomic_path
from artstudio.errors import ArtworkError

FORMAT_VERSION = 1
METADATA_KEY = "artstudio"
MISMATCH_HINT = "pass --allow-model-mismatch to use it anyway"
_PLACEMENTS = ("first", "after-text")
_log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def artstudio_version() -> str:
    """The installed package version, else the module's `__version__`, else "0+unknown"."""
    from importlib import metadata

    try:
        return metadata.version("artstudio")
    except metadata.PackageNotFoundError:
        import artstudio

        return str(getattr(artstudio, "__version__", "0+unknown"))


@dataclass
class ArtworkMetadata:
    """Everything needed to use an artwork again: what model it fits and how it was made."""

    model_id: str
    family: str
    canvas_size: tuple[int, int]
    geometry: dict
    placement: str
    chat_template_sha256: str
    task: dict | None = None
    objective: str = "sft"
    steps: int = 0
    metrics: dict = field(default_factory=dict)
    created: str = field(default_factory=_now)
    artstudio_version: str = field(default_factory=artstudio_version)
    extra: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        """Compact JSON; `canvas_size` as [H, W]."""
        data = asdict(self)
        data["canvas_size"] = list(self.canvas_size)
        try:
            return json.dumps(data, ensure_ascii=False)
        except TypeError as err:
            raise ArtworkError(f"artwork metadata is not JSON-serialisable ({err}); expected plain numbers, strings, lists and dicts") from None

    @classmethod
    def from_json(cls, text: str) -> "ArtworkMetadata":
        """Parse and validate; a malformed document raises `ArtworkError` naming the field."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ArtworkError(f"metadata is not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(data, dict):
            raise ArtworkError(f"metadata is a JSON {type(data).__name__}; expected an object")
        return cls(**_validated(data))


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "format_version": int, "model_id": str, "family": str, "canvas_size": list, "geometry": dict,
    "placement": str, "chat_template_sha256": str,
}
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "task": (dict, type(None)), "objective": str, "steps": int, "metrics": dict, "created": str,
    "artstudio_version": str, "extra": dict,
}


def _validated(data: dict) -> dict:
    for name in _REQUIRED:
        if name not in data:
            raise ArtworkError(f'metadata has no "{name}" field; expected an artwork exported by ArtStudio')
    for name, kind in {**_REQUIRED, **_OPTIONAL}.items():
        if name in data and (not isinstance(data[name], kind) or isinstance(data[name], bool)):
            raise ArtworkError(f'metadata field "{name}" has the wrong type ({type(data[name]).__name__}); expected {_kind_name(kind)}')
    if data["format_version"] > FORMAT_VERSION:
        raise ArtworkError(
            f'metadata field "format_version" is {data["format_version"]}, newer than this ArtStudio '
            f"understands ({FORMAT_VERSION}); upgrade artstudio"
        )
    size = data["canvas_size"]
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ArtworkError(f'metadata field "canvas_size" is {size!r}; expected [height, width] in pixels')
    if data["placement"] not in _PLACEMENTS:
        raise ArtworkError(f'metadata field "placement" is {data["placement"]!r}; expected one of {_PLACEMENTS}')
    known = {k: v for k, v in data.items() if k in _REQUIRED or k in _OPTIONAL}
    known["canvas_size"] = (size[0], size[1])
    return known


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", str: "a string", list: "a list", dict: "an object", type(None): "null"}
    return " or ".join(names[k] for k in kinds)


@dataclass
class Artwork:
    """A decoded artwork: the RGB picture, its metadata (None for a plain PNG) and where it came from."""

    image: Image.Image
    metadata: ArtworkMetadata | None
    path: Path
    mode: str = "RGB"  # the PNG's own colour mode, before the conversion to RGB


def chat_template_sha256(processor) -> str:
    """SHA-256 of the processor's chat template (the canvas was trained inside exactly that text)."""
    template = getattr(processor, "chat_template", None)
    if template is None and getattr(processor, "tokenizer", None) is not None:
        template = getattr(processor.tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = json.dumps(template, sort_keys=True)
    return hashlib.sha256((template or "").encode("utf-8")).hexdigest()


def metadata_for(
    backbone,
    *,
    canvas_size: tuple[int, int],
    placement: str,
    task=None,
    objective: str = "sft",
    steps: int = 0,
    metrics: dict | None = None,
    extra: dict | None = None,
) -> ArtworkMetadata:
    """Metadata for a canvas trained on `backbone` (anything with model_id, family, geometry, processor).

    `task` may be None, a dict with name/description, or an object with those attributes.
    """
    return ArtworkMetadata(
        model_id=str(backbone.model_id),
        family=str(backbone.family),
        canvas_size=(int(canvas_size[0]), int(canvas_size[1])),
        geometry=_plain(backbone.geometry.to_dict()),
        placement=placement,
        chat_template_sha256=chat_template_sha256(backbone.processor),
        task=_task_dict(task),
        objective=objective,
        steps=int(steps),
        metrics=dict(metrics or {}),
        extra=dict(extra or {}),
    )


def export_artwork(image: Image.Image, path: str | os.PathLike, metadata: ArtworkMetadata) -> Path:
    """Write `image` as a lossless uint8 RGB PNG with `metadata` embedded, atomically; return the path."""
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ArtworkError(f"{out}: artworks are PNG files; expected a path ending in .png")
    rgb = image.convert("RGB")
    if tuple(metadata.canvas_size) != (rgb.height, rgb.width):
        raise ArtworkError(
            f"{out}: metadata canvas_size {list(metadata.canvas_size)} ({_as_picture(metadata.canvas_size)}) differs "
            f"from the image's {rgb.width}×{rgb.height}; expected the size of the exported canvas"
        )
    info = PngImagePlugin.PngInfo()
    info.add_itxt(METADATA_KEY, metadata.to_json())
    with atomic_path(out) as tmp:
        rgb.save(tmp, format="PNG", pnginfo=info)
    return out


def read_artwork(path: str | os.PathLike) -> Artwork:
    """Decode a PNG and its metadata; any problem raises `ArtworkError` naming the file."""
    src = Path(path)
    if src.is_dir():
        raise ArtworkError(folder_hint(src) or f"{src} is a folder; expected a PNG artwork file")
    if not src.is_file():
        raise ArtworkError(f"{src}: no such file; expected a PNG artwork")
    try:
        with Image.open(src) as img:
            if img.format != "PNG":
                raise ArtworkError(
                    f"{src}: is a {img.format} image, not a PNG; expected a lossless PNG (a lossy format "
                    "changes the trained pixels)"
                )
            img.load()
            text = dict(getattr(img, "text", {}) or {})
            mode = img.mode
            image = img.convert("RGB")
    except ArtworkError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ArtworkError(f"{src}: cannot be decoded as a PNG ({err}); expected a complete PNG image") from None
    metadata = None
    if METADATA_KEY in text:
        try:
            metadata = ArtworkMetadata.from_json(text[METADATA_KEY])
        except ArtworkError as err:
            raise ArtworkError(f"{src}: {err}") from None
        if tuple(metadata.canvas_size) != (image.height, image.width):
            raise ArtworkError(
                f'{src}: metadata field "canvas_size" is {list(metadata.canvas_size)} ({_as_picture(metadata.canvas_size)}) '
                f"but the picture is {image.width}×{image.height}; expected the two to agree (was the file resized?)"
            )
    return Artwork(image=image, metadata=metadata, path=src, mode=mode)


def _as_picture(canvas_size) -> str:
    """A [height, width] canvas_size as users see picture sizes: width×height."""
    height, width = canvas_size
    return f"height, width: a {width}×{height} picture"


def folder_hint(folder: Path) -> str | None:
    """Why a folder is not an artwork, and what to pass instead (None: a folder of nothing we know)."""
    if (folder / "adapter_config.json").is_file():
        return (f"{folder} is a PEFT adapter folder (a lora/vera/t2l export), not an artwork; this takes an artwork "
                f"PNG file. eval and infer take it as --adapter {folder}; serve does not load adapters: serve it with "
                "an engine's LoRA support, or load it with PEFT (PeftModel.from_pretrained(model, folder))")
    if (folder / "artwork.png").is_file():
        return f"{folder} is a folder; expected a PNG artwork file such as {folder / 'artwork.png'}"
    if (folder / "method.json").is_file() and folder.name == "final":  # a run's trained weights
        run = folder.parent
        return (f"{folder} holds a run's trained weights, not an artwork; `artstudio export {run}` writes the run's "
                "artwork PNG (an art run) or an adapter folder (lora, vera)")
    if (folder / "config.json").is_file() and (folder / "final").is_dir():
        method = _run_method(folder)
        if method is not None and not _paints(method):
            return (f"{folder} is a {method} run, which has no artwork; `artstudio export {folder} -o {folder}-adapter/` "
                    f"writes its adapter folder, which eval and infer take as --adapter {folder}-adapter")
        return f"{folder} is a run folder without an artwork; expected a PNG artwork file (`artstudio export {folder}` writes one for an art run)"
    return None


def _paints(method: str) -> bool:
    from .methods import get_method  # methods imports this module

    try:
        return get_method(method).paints()
    except Exception:  # noqa: BLE001 - an unknown name in a hand-edited config: say what is known
        return True


def _run_method(folder: Path) -> str | None:
    """The method a run folder's config.json names (art when it names none), None when unreadable."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(config.get("method") or "art") if isinstance(config, dict) else None


def check_compatible(artwork: Artwork, backbone, *, allow_mismatch: bool = False) -> list[str]:
    """Refuse an artwork made for another model; return the mismatches that `allow_mismatch` let through.

    The picture's size must always fit the backbone's geometry: no flag makes a misfit canvas usable.
    """
    height, width = artwork.image.height, artwork.image.width
    misfit = backbone.geometry.misfit(height, width)
    if misfit is not None:
        raise ArtworkError(
            f"{artwork.path}: the canvas size {width}×{height} does not fit {backbone.model_id}: {misfit}; "
            "expected an artwork made for this model's patch grid (pick the model it was trained for)"
        )
    if artwork.mode not in ("RGB", "RGBA"):  # an artwork is written in RGB; another mode is a re-saved copy
        lost = {"L": "grayscale: its colours are gone", "LA": "grayscale: its colours are gone",
                "1": "black and white: its colours are gone",
                "P": "a palette of at most 256 colours: colours may have been merged"}.get(artwork.mode, "converted")
        _log.warning("%s is a PNG in mode %s (%s); ArtStudio writes artworks in RGB, so %s, the canvas the model "
                     "sees is not the trained one and scores can drop to nothing. Use the artwork as it was exported",
                     artwork.path, artwork.mode, lost, "this is a copy another program re-saved" if artwork.metadata
                     else "if this is an artwork another program re-saved (its metadata is gone too)")
    if artwork.metadata is None:
        return []
    mismatches = _mismatches(artwork.metadata, backbone)
    if mismatches and not allow_mismatch:
        raise ArtworkError(
            f"{artwork.path}: this artwork was made for another model: " + "; ".join(mismatches) + f"; {MISMATCH_HINT}"
        )
    for line in mismatches:
        _log.warning("%s: using the artwork despite a mismatch: %s", artwork.path, line)
    return mismatches


def _mismatches(meta: ArtworkMetadata, backbone) -> list[str]:
    pairs = [
        ("family", meta.family, str(backbone.family)),
        ("model_id", meta.model_id, str(backbone.model_id)),
        ("chat_template_sha256", meta.chat_template_sha256, chat_template_sha256(backbone.processor)),
        ("geometry", _plain(meta.geometry), _plain(backbone.geometry.to_dict())),
    ]
    return [
        f"{name} is {ours!r} in the artwork but {theirs!r} for the loaded model"
        for name, ours, theirs in pairs if ours != theirs
    ]


def _task_dict(task) -> dict | None:
    if task is None:
        return None
    if isinstance(task, dict):
        return {"name": str(task.get("name", "")), "description": str(task.get("description", ""))}
    return {"name": str(getattr(task, "name", "")), "description": str(getattr(task, "description", ""))}


def _plain(value):
    """JSON-normalised copy (tuples -> lists), so stored and live geometries compare equal."""
    return json.loads(json.dumps(value))
