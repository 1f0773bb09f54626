"""Serving an artwork from an unmodified engine: the OpenAI-compatible chat request vLLM accepts.

An artwork is an ordinary picture, so serving it needs no adapter support: every request carries the
canvas as a base64 PNG data URL in the one user turn, first (placement "first", so the engine's prefix
cache holds it once for all requests; start vLLM with `--enable-prefix-caching`) or after the text
(placement "after-text"), exactly where training put it (`artstudio.prompts.conversation`). Greedy
decoding is `"temperature": 0`. `artstudio infer --print-request` and the web app print these requests.

The server renders the model's own chat template. Qwen3-VL / Qwen3.5 templates add nothing before the
user turn, as in training; Qwen2-VL / Qwen2.5-VL templates insert a default system prompt that ART
training leaves out, so for those families pass the rendered prompt (`render_prompt`) to a completion
endpoint, or accept that small difference.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shlex
from pathlib import Path
from typing import Any, Union

from PIL import Image

from artstudio.errors import ArtworkError, ConfigError

ImageSource = Union[str, os.PathLike, Image.Image]
DEFAULT_URL = "http://localhost:8000/v1/chat/completions"
_PLACEMENTS = ("first", "after-text")


def png_data_url(image: ImageSource) -> str:
    """`data:image/png;base64,...` of the picture as lossless uint8 RGB (what the model sees)."""
    picture = _picture(image)
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def decode_data_url(url: str) -> Image.Image:
    """The picture inside a base64 data URL (the inverse of `png_data_url`)."""
    head, _, payload = url.partition(",")
    if not head.startswith("data:image/") or not head.endswith(";base64"):
        raise ArtworkError(f"{url[:40]}...: not a base64 image data URL; expected data:image/png;base64,...")
    with Image.open(io.BytesIO(base64.b64decode(payload))) as img:
        return img.convert("RGB")


def artwork_placement(artwork: ImageSource | None) -> str:
    """Where the artwork's metadata puts the canvas; "first" for a plain PNG or an in-memory image."""
    if artwork is None or isinstance(artwork, Image.Image):
        return "first"
    from artstudio.artwork import read_artwork

    meta = read_artwork(artwork).metadata
    return meta.placement if meta is not None else "first"


def chat_content(prompt: str, canvas: ImageSource | None, placement: str = "first",
                 image: ImageSource | None = None) -> list[dict[str, Any]]:
    """The user turn's content items in training order: canvas, extra image, text (or text first)."""
    if placement not in _PLACEMENTS:
        raise ConfigError(f"placement {placement!r} is not one of {', '.join(_PLACEMENTS)}")
    pictures = [{"type": "image_url", "image_url": {"url": png_data_url(p)}} for p in (canvas, image) if p is not None]
    text = {"type": "text", "text": prompt}
    if canvas is not None and placement == "after-text":
        return [text, *pictures]
    return [*pictures, text]


def vllm_request(artwork: ImageSource | None, prompt: str, model_name: str, placement: str | None = None,
                 max_tokens: int = 64, temperature: float = 0.0, *, image: ImageSource | None = None,
                 seed: int | None = None) -> dict[str, Any]:
    """An OpenAI-compatible `/v1/chat/completions` body for `prompt` with the artwork as the canvas.

    `artwork` is a PNG path or a PIL image (None: the base model, text only); `placement` defaults to
    the artwork's metadata; `image` is an extra picture shown right after the canvas, as in the data
    format's `"image"` field. `temperature` 0 is greedy decoding, as in evaluation; above 0, `seed` makes the
    samples reproducible (vLLM and `artstudio serve` take it).
    """
    if not isinstance(prompt, str):
        raise ConfigError(f"prompt is {prompt!r} ({type(prompt).__name__}); expected the text to send")
    if max_tokens < 1:
        raise ConfigError(f"max_tokens is {max_tokens}; expected at least 1")
    if temperature < 0:
        raise ConfigError(f"temperature is {temperature}; expected 0 (greedy) or more")
    where = placement or artwork_placement(artwork)
    body = {
        "model": model_name,
        "messages": [{"role": "user", "content": chat_content(prompt, artwork, where, image)}],
        "temperature": temperature,
        "max_tokens": int(max_tokens),
    }
    if seed is not None and temperature > 0:
        body["seed"] = int(seed)
    return body


def curl_command(request: dict[str, Any], url: str = DEFAULT_URL) -> str:
    """A shell command that sends `request` to a running server (`vllm serve MODEL`)."""
    body = json.dumps(request, ensure_ascii=False)
    if url.rstrip("/").endswith("/v1"):  # the base URL a server prints (`artstudio serve`, vLLM): its endpoint
        url = url.rstrip("/") + "/chat/completions"
    return f"curl -s {shlex.quote(url)} -H 'Content-Type: application/json' -d {shlex.quote(body)}"


def serve_command(model: str, images_per_prompt: int = 2) -> str:
    """The vLLM command that serves `model` for artworks: prefix caching on, room for canvas + image."""
    limit = json.dumps({"image": images_per_prompt}, separators=(",", ":"))
    return f"vllm serve {shlex.quote(model)} --enable-prefix-caching --limit-mm-per-prompt {shlex.quote(limit)}"


def _picture(image: ImageSource) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if not isinstance(image, (str, os.PathLike)):
        raise ConfigError(f"expected a PNG path or a PIL image, got {type(image).__name__}")
    path = Path(image)
    if path.suffix.lower() == ".png":
        from artstudio.artwork import read_artwork

        return read_artwork(path).image  # validates the PNG and its metadata
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise ArtworkError(f"{path}: no such file; expected an image file") from None
    except OSError as err:
        raise ArtworkError(f"{path}: cannot be decoded as an image ({err})") from None
