"""What `artstudio info` shows: an artwork's metadata, a model's canvas geometry, and whether the two fit."""

from __future__ import annotations

import json
from typing import Any

from .artwork import check_compatible, read_artwork
from .errors import ArtStudioError


def gather_info(artwork: str | None, model: str | None) -> dict[str, Any]:
    """Metadata of `artwork` and/or the description of `model` (default without an artwork: studio-tiny)."""
    from .backbone import DEFAULT_MODEL, load_backbone

    info: dict[str, Any] = {}
    art = None
    if artwork is not None:
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
