"""What `artstudio info` shows: an artwork's metadata, a model's canvas geometry, and whether the two fit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .artwork import check_compatible, read_artwork
from .errors import ArtStudioError, ArtworkError
from .methods import EXPORT_META_FILE


def export_info(folder: Path) -> dict[str, Any]:
    """An exported adapter folder's record: its method, model, size and the run's task and accuracy."""
    try:
        meta = json.loads((folder / EXPORT_META_FILE).read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise ArtworkError(f"{folder / EXPORT_META_FILE} cannot be read ({err}); re-export the run") from None
    if not isinstance(meta, dict):
        raise ArtworkError(f"{folder / EXPORT_META_FILE} is not a JSON object; re-export the run")
    return {"path": str(folder), **meta}


def gather_info(artwork: str | None, model: str | None) -> dict[str, Any]:
    """Metadata of `artwork` and/or the description of `model` (default without an artwork: studio-tiny)."""
    from .backbone import DEFAULT_MODEL, load_backbone

    info: dict[str, Any] = {}
    art = None
    if artwork is not None and (Path(artwork).expanduser() / EXPORT_META_FILE).is_file():
        info["export"] = export_info(Path(artwork).expanduser())
    elif artwork is not None and Path(artwork).is_file() and (Path(artwork).parent / EXPORT_META_FILE).is_file():
        # `info adapter/adapter_config.json` said "expected a complete PNG image"
        raise ArtworkError(f"{artwork} is a file of the exported adapter {Path(artwork).parent}; "
                           f"pass the folder: artstudio info {Path(artwork).parent}")
    elif artwork is not None:
        art = read_artwork(artwork)
        info["artwork"] = {"path": str(art.path), "width": art.image.width, "height": art.image.height,
                           "metadata": json.loads(art.metadata.to_json()) if art.metadata else None}
    if model is not None or artwork is None:
        backbone = load_backbone(model or DEFAULT_MODEL, device="cpu")
        desc = backbone.describe()
        desc["tokens_per_size"] = {str(s): backbone.geometry.tokens(s) for s in desc["valid_sizes"]}
        info["model"] = desc
        if art is not None:
            try:
                issues = check_compatible(art, backbone, allow_mismatch=True)
                info["compatible"] = {"ok": not issues, "mismatches": issues}
            except ArtStudioError as err:
                info["compatible"] = {"ok": False, "mismatches": [str(err)]}
    return info
