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


def peft_info(folder: Path) -> dict[str, Any]:
    """A PEFT adapter folder that `artstudio export` did not write (no artstudio.json): what its
    adapter_config.json and weights say."""
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise ArtworkError(f"{folder / 'adapter_config.json'} cannot be read ({err}); expected PEFT's adapter config") \
            from None
    if not isinstance(config, dict):
        raise ArtworkError(f"{folder / 'adapter_config.json'} is not a JSON object; expected PEFT's adapter config")
    targets = config.get("target_modules")
    info: dict[str, Any] = {"path": str(folder), "peft_type": config.get("peft_type"),
                            "base_model": config.get("base_model_name_or_path"), "r": config.get("r"),
                            "alpha": config.get("lora_alpha"),
                            "target_modules": sorted(targets) if isinstance(targets, list) else targets}
    weights = folder / "adapter_model.safetensors"
    if weights.is_file():
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(weights), framework="pt") as f:
                info["parameters"] = sum(_numel(f.get_slice(k).get_shape()) for k in f.keys())  # header only
        except (SafetensorError, OSError) as err:
            info["weights_error"] = f"{weights.name} cannot be read ({err})"
    else:
        info["weights_error"] = f"no {weights.name} in the folder"
    return info


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def gather_info(artwork: str | None, model: str | None) -> dict[str, Any]:
    """Metadata of `artwork` and/or the description of `model` (default without an artwork: studio-tiny)."""
    from .backbone import DEFAULT_MODEL, load_backbone

    info: dict[str, Any] = {}
    art = None
    if artwork is not None and (Path(artwork).expanduser() / EXPORT_META_FILE).is_file():
        info["export"] = export_info(Path(artwork).expanduser())
    elif artwork is not None and (Path(artwork).expanduser() / "adapter_config.json").is_file():
        info["adapter"] = peft_info(Path(artwork).expanduser())  # a PEFT folder from elsewhere (the Hub, PEFT's save)
    elif artwork is not None and Path(artwork).is_file() and any(
            (Path(artwork).parent / name).is_file() for name in (EXPORT_META_FILE, "adapter_config.json")):
        # `info adapter/adapter_config.json` said "expected a complete PNG image"
        raise ArtworkError(f"{artwork} is a file of the adapter {Path(artwork).parent}; "
                           f"pass the folder: artstudio info {Path(artwork).parent}")
    elif artwork is not None:
        art = read_artwork(artwork)
        info["artwork"] = {"path": str(art.path), "width": art.image.width, "height": art.image.height,
                           "mode": art.mode, "metadata": json.loads(art.metadata.to_json()) if art.metadata else None}
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
