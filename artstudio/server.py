"""`artstudio serve`: an OpenAI-compatible HTTP server for artworks on the transformers backend.

    artstudio serve --artwork max-bracket=canvases/max-bracket.png
    curl -s localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \\
      -d '{"model": "studio-tiny+max-bracket", "messages": [{"role": "user", "content": "3 1"}]}'

For users without vLLM (a CPU, a laptop, a model vLLM does not support yet). Endpoints:

- `GET /v1/models`: the base model (`studio-tiny`) and every registered artwork as `studio-tiny+NAME`;
- `POST /v1/chat/completions`: non-streaming, or `"stream": true` server-sent events in OpenAI's chunk
  format ending with `data: [DONE]`;
- `GET /health`.

A request naming an artwork model gets the artwork prepended exactly as training saw it: the artwork's
own method (`methods.load_artwork`) renders the prompt, so placement and prompt format come from its
metadata. A request to the base model whose first picture is an artwork (the body `artstudio infer
--print-request` makes: the canvas as a PNG data URL) works too: the picture is matched to a registered
artwork by its pixels, else served as a one-off canvas after `check_compatible`.

Answers go through `generation.generate`, the decoder behind `inference.answer`, so greedy answers
equal `artstudio infer`'s. One worker thread owns the model: concurrent requests for the same model
and sampling settings wait up to `batch_wait_ms` for each other and are answered by one `generate` call
(which runs the shared prefix, the chat opening and the canvas, once for the batch), and each
artwork's vision encoding is computed once per process and passed to every call as its `slot`.
`/health` reports how many slot encodings and batches the process has run.

Streaming sends each token's text as soon as it is chosen: batches holding a streaming request are
decoded by `generation.generate` with its per-token hook (`on_token`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import hashlib
import hmac
import io
import json
import logging
import os
import re
import secrets
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fastapi import Request  # a module-level name: FastAPI resolves the routes' string annotations here

from .artwork import MISMATCH_HINT
from .errors import ArtStudioError, ConfigError
from .data import json_type, lone_surrogate
from .logfilters import rewording
from .network import check_port, is_loopback
from .options import DEVICE_HELP, DTYPE_HELP, check_kinds
from .forward import row_room
from .prompts import RowRoom

log = logging.getLogger("artstudio.server")

API_KEY_ENV = "ARTSTUDIO_API_KEY"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAX_IMAGE_BYTES = 20 * 1024 * 1024
_MAX_PROMPT_CHARS = 100_000
_MAX_BODY_BYTES = 64 * 1024 * 1024
_ONE_OFF_CACHE = 8  # unregistered canvases kept encoded (LRU)
_MAX_IMAGE_PIXELS = 25_000_000  # a picture's decoded size (a 700 KB PNG of 13000 x 13000 took 2.8 GB and 19 s)
_MAX_BATCH_WAIT_MS = 10_000


@dataclass
class ServeConfig:
    """Serve a model and its artworks behind an OpenAI-compatible API (chat completions, streaming)."""

    model: str = field(default="studio-tiny", metadata={"help": "Hugging Face id or local folder of the base model"})
    artwork: list[str] = field(default_factory=list, metadata={"help": "artworks to serve: NAME=PNG, NAME=RUN_FOLDER (its artwork.png), a PNG (named by its stem) or a folder (every PNG in it); listed as MODEL+NAME"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to bind; anything but loopback should go with --api-key"})
    port: int = field(default=8000, metadata={"help": "TCP port (0: any free port)"})
    api_key: str | None = field(default=None, metadata={"help": f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV} if set, else no key)"})
    max_queue: int = field(default=64, metadata={"help": "requests waiting or running at once; more are answered 429"})
    max_batch: int = field(default=16, metadata={"help": "requests answered by one generate call"})
    batch_wait_ms: float = field(default=5.0, metadata={"help": "how long a request waits for others to batch with"})
    max_new_tokens: int = field(default=256, metadata={"help": "cap on a request's max_tokens, also used when it gives none"})
    allow_model_mismatch: bool = field(default=False, metadata={"help": "serve artworks made for another model anyway"})
    device: str | None = field(default=None, metadata={"help": DEVICE_HELP})
    dtype: str | None = field(default=None, metadata={"help": DTYPE_HELP})

    def check(self) -> None:
        if isinstance(self.artwork, str):  # ServeConfig(artwork="mb=art.png") was read letter by letter
            self.artwork = [self.artwork]
        check_kinds(ServeConfig, {f.name: getattr(self, f.name) for f in fields(self)}, what="serve")
        for name in ("max_queue", "max_batch", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} is {getattr(self, name)}; expected at least 1")
        if not 0 <= self.batch_wait_ms <= _MAX_BATCH_WAIT_MS:  # 1e9 held a lone request for ever
            raise ConfigError(f"--batch-wait-ms is {self.batch_wait_ms}; expected 0 to {_MAX_BATCH_WAIT_MS:g} "
                              "(milliseconds a request waits for others to batch with)")
        check_port(self.port)
        if self.api_key is not None and not self.api_key.strip():  # `--api-key "$KEY"` with $KEY unset served with no key
            raise ConfigError(f"--api-key is empty (an unset shell variable?); give the key, or leave --api-key out "
                              f"(then ${API_KEY_ENV} is used if set, else the server takes no key)")
        artwork_specs(self.artwork)  # names and paths, before the model loads


# --- errors --------------------------------------------------------------------------------------
class APIError(Exception):
    """An error answered as OpenAI's `{"error": {"message", "type", "code"}}` with an HTTP status."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _bad(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def _shutting_down() -> APIError:
    return APIError(503, "the server is shutting down; retry once it is back", type="server_error",
                    code="shutting_down")


# --- served models -------------------------------------------------------------------------------
@dataclass
class Served:
    """A method the server answers with, and its canvas encoding once computed (shared by every request)."""

    name: str  # the model name clients use
    method: Any
    pixel_hash: str | None = None  # of the canvas, for recognising it inside a request
    path: str | None = None
    slot: Any = None
    encoded: bool = False
    _room: Any = None

    @property
    def room(self) -> RowRoom:
        """The positions a request's text may take beside this method's template and slot."""
        if self._room is None:
            self._room = row_room(self.method)
        return self._room


def pixel_hash(image) -> str:
    """Identity of a picture by its RGB pixels (metadata and PNG encoding ignored)."""
    rgb = image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def artwork_specs(entries: list[str]) -> list[tuple[str, Path, bool]]:
    """(name, png, explicit) for each `NAME=PNG`, `PNG` or folder entry; names checked and unique."""
    out: list[tuple[str, Path, bool]] = []
    for entry in entries:
        if not entry.strip():  # Path("") is the working folder: every PNG in it was served
            raise ConfigError("--artwork is empty; give NAME=PNG, a PNG or a folder of PNGs")
        name, sep, rest = entry.partition("=")
        if sep and "/" not in name and not rest.strip():
            raise ConfigError(f"--artwork {entry}: nothing after '='; expected NAME=PNG, e.g. add=art.png")
        # A missing path with '=' before any '/' is meant as NAME=PNG, so a bad name is what to report.
        if sep and "/" not in name and os.sep not in name and not Path(entry).exists():
            if not _NAME.match(name):
                raise ConfigError(f"--artwork {entry}: the name {name!r} before '=' must start with a letter or digit "
                                  "and hold only letters, digits, '.', '_' or '-'; expected NAME=PNG, e.g. add=art.png")
            path, explicit = Path(rest).expanduser(), True
        else:
            name, path, explicit = "", Path(entry).expanduser(), not Path(entry).is_dir()
        if path.is_dir():
            pngs = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png" and p.is_file())
            if not pngs:
                from .artwork import folder_hint

                raise ConfigError(f"--artwork {entry}: " + (folder_hint(path) or "the folder has no PNG files; expected "
                                                                                  "artworks exported by ArtStudio"))
            if name and len(pngs) > 1:
                raise ConfigError(f"--artwork {entry}: NAME=FOLDER names one artwork, and {path} holds {len(pngs)} PNGs "
                                  f"({', '.join(p.name for p in pngs[:3])}{', ...' if len(pngs) > 3 else ''}); pass "
                                  f"NAME={pngs[0]} for one, or the folder alone to serve each by its file name")
            # NAME=RUN_FOLDER (its artwork.png) is served as NAME; it was served as "artwork", its file's stem.
            # A run folder given alone is served by the folder's name (two runs were both "artwork").
            if not name and (path / "config.json").is_file() and (path / "artwork.png") in pngs:
                out.append((path.name, path / "artwork.png", False))
            else:
                out += [(name, pngs[0], True)] if name else [(p.stem, p, False) for p in pngs]
        elif path.is_file():
            out.append((name or path.stem, path, explicit))
        else:
            raise ConfigError(f"--artwork {entry}: {path} is neither a PNG file nor a folder; expected NAME=PNG, a PNG or a folder")
    seen: dict[str, Path] = {}
    for name, path, explicit in list(out):
        if not _NAME.match(name) and not explicit:  # one of a folder's PNGs: the others are still served
            log.warning("skipped %s: its name %r is not a model name (letters, digits, '.', '_' or '-'); serve it "
                        "as NAME=%s", path, name, path)
            out.remove((name, path, explicit))
    for name, path, _ in out:
        if not _NAME.match(name):
            raise ConfigError(f"artwork name {name!r} (from {path}) must be letters, digits, '.', '_' or '-'; "
                              "name it explicitly with NAME=PNG")
        if name in seen:
            raise ConfigError(f"two artworks are named {name!r} ({seen[name]} and {path}); name one explicitly with NAME=PNG")
        seen[name] = path
    return out


class Models:
    """The backbone, the base method and the artworks by name; one-off canvases from requests (LRU)."""

    def __init__(self, config: ServeConfig, backbone=None):
        from .backbone import DEFAULT_NAME, load_backbone
        from .methods import build_method, load_artwork

        self.backbone = backbone or load_backbone(config.model, device=config.device, dtype=config.dtype)
        model_id = str(self.backbone.model_id)
        # Named as vLLM names it (the hub id); a local folder by its name, never a machine's absolute path.
        self.base_name = Path(model_id).expanduser().name if model_id != DEFAULT_NAME and Path(model_id).expanduser().exists() \
            else model_id
        self.aliases = {self.base_name, str(self.backbone.model_id), str(config.model)}
        self.base = Served(self.base_name, build_method("base", self.backbone))
        self.template_markers = special_tokens(self.backbone.tokenizer)
        self.allow_mismatch = config.allow_model_mismatch
        self.artworks: dict[str, Served] = {}
        for name, path, explicit in artwork_specs(config.artwork):
            try:
                method = load_artwork(path, self.backbone, allow_mismatch=config.allow_model_mismatch)
            except ArtStudioError as err:
                if explicit:
                    raise
                log.warning("skipping %s: %s", path, err)
                continue
            if method.artwork.metadata is None:  # (infer refuses one unless --model names the model)
                log.warning("%s has no ArtStudio metadata to say which model it was trained for: served as a canvas "
                            "for %s (--model), placed first, as %s+%s", path, self.base_name, self.base_name, name)
            self.artworks[name] = Served(f"{self.base_name}+{name}", method, pixel_hash(method.artwork.image), str(path))
        self.by_hash: dict[str, list[Served]] = {}
        for served in self.artworks.values():
            self.by_hash.setdefault(served.pixel_hash, []).append(served)
        self.one_off: OrderedDict[tuple, Served] = OrderedDict()
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="artstudio-serve-")
        self.tmp = Path(self._tmp.name)

    def lookup(self, model: str) -> Served:
        if model in self.aliases:
            return self.base
        for alias in self.aliases:
            if model.startswith(alias + "+") and model[len(alias) + 1:] in self.artworks:
                return self.artworks[model[len(alias) + 1:]]
        raise APIError(404, f"the model {model!r} does not exist; this server has {', '.join(self.names())} "
                            "(GET /v1/models)", code="model_not_found", param="model")

    def names(self) -> list[str]:
        return [self.base_name] + [s.name for s in self.artworks.values()]

    def canvas_from_request(self, picture: "_Picture", placement: str) -> Served | None:
        """The artwork a base-model request carries as its first picture, or None for an ordinary picture."""
        from .methods import load_artwork

        known = self.by_hash.get(picture.hash, [])
        if known:  # the same pixels registered twice: the one whose placement is where the request put it
            return next((s for s in known if s.method.placement == placement), known[0])
        if not picture.has_metadata:
            if picture.format != "PNG":
                return None  # a photo (JPEG, WEBP): an ordinary picture, never a canvas
            try:
                self.backbone.geometry.check(picture.image.height, picture.image.width)
            except ArtStudioError:
                return None  # not canvas-shaped: an ordinary picture through the stock processor
        key = (picture.hash, placement if not picture.has_metadata else None)
        with self._lock:
            if key in self.one_off:
                self.one_off.move_to_end(key)
                return self.one_off[key]
        path = self.tmp / f"canvas-{uuid.uuid4().hex}.png"  # one file per request: no two writers share one
        path.write_bytes(picture.raw)
        try:  # its warnings (a grayscale copy, a mismatch let through) name the request's picture, not the temp file
            with rewording(["artstudio.artwork"], replace={str(path): "the request's first picture"}):
                method = load_artwork(path, self.backbone, allow_mismatch=self.allow_mismatch)
        except ArtStudioError as err:
            # The CLI's way out (a start-up option) is not the client's: say who can take it.
            why = _without_path(err, path).replace(MISMATCH_HINT, "the server was started without "
                                                  "--allow-model-mismatch, which would serve it anyway")
            raise _bad(f"the request's first picture is an artwork this model cannot serve: {why}",
                       "messages", "image_not_compatible") from None
        finally:
            path.unlink(missing_ok=True)  # the method holds the pixels
        if not picture.has_metadata:
            method.placement = method.config.placement = placement  # where the request put it
        served = Served(f"{self.base_name}", method, picture.hash)
        with self._lock:
            self.one_off[key] = served
            while len(self.one_off) > _ONE_OFF_CACHE:
                self.one_off.popitem(last=False)
        return served

    def close(self) -> None:
        self._tmp.cleanup()


def _json(value: Any) -> str:
    """A request's value as the client wrote it (JSON: true, null, "text"), not Python's repr (True, None)."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _without_path(err: Exception, path: Path) -> str:
    return str(err).replace(f"{path}: ", "").replace(str(path), "the picture")


# --- requests ------------------------------------------------------------------------------------
@dataclass
class _Picture:
    image: Any  # RGB PIL image
    raw: bytes
    hash: str
    has_metadata: bool
    format: str = "PNG"  # what the bytes were: only a PNG can be an artwork (a lossy format changes the pixels)


@dataclass
class Job:
    """One chat request, parsed: what to run and how to decode."""

    served: Served
    example: Any
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: list[str]
    stream: bool
    include_usage: bool
    model: str
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    stream_to: Any = None  # (event loop, asyncio.Queue) of a streaming request: text pieces, then None

    @property
    def key(self) -> tuple:
        """Requests with the same key can share one `generate` call."""
        sampling = (self.temperature, self.top_p, self.seed) if self.temperature > 0 else None
        return (id(self.served), sampling)

    def push(self, piece: str | None) -> None:
        if self.stream_to is not None:
            loop, queue = self.stream_to
            loop.call_soon_threadsafe(queue.put_nowait, piece)

    def cleanup(self) -> None:
        """Remove the request's picture file, if it has one."""
        if self.example.image is not None:
            Path(self.example.image).unlink(missing_ok=True)


def _decode_picture(url: Any, where: str) -> _Picture:
    from PIL import Image, UnidentifiedImageError

    if isinstance(url, dict):
        url = url.get("url")
    if not isinstance(url, str):
        raise _bad(f"{where}: image_url has no url string; expected {{\"url\": \"data:image/png;base64,...\"}}", "messages")
    head, sep, payload = url.partition(",")
    if not head.startswith("data:"):
        raise _bad(f"{where}: only base64 data URLs are accepted (data:image/png;base64,...); "
                   "this server fetches nothing from the network", "messages", "unsupported_image_url")
    if not sep or not head.startswith("data:image/") or not head.endswith(";base64"):
        raise _bad(f"{where}: {head[:40]!r} is not a base64 image data URL; expected data:image/png;base64,...", "messages")
    if len(payload) > _MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise _bad(f"{where}: the image is larger than {_MAX_IMAGE_BYTES // 2**20} MiB", "messages")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"{where}: the data URL is not valid base64", "messages") from None
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.width * img.height > _MAX_IMAGE_PIXELS:  # before decoding: the header says the size
                raise _bad(f"{where}: the picture is {img.width}×{img.height}; at most {_MAX_IMAGE_PIXELS:,} pixels "
                           "are accepted", "messages", "image_too_large")
            img.load()
            meta = "artstudio" in (getattr(img, "text", None) or {}) and img.format == "PNG"
            rgb, kind = img.convert("RGB"), str(img.format or "")
    except UnidentifiedImageError:
        raise _bad(f"{where}: the data URL's bytes are not a picture (PNG, JPEG, WEBP, ...)", "messages") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise _bad(f"{where}: the data URL cannot be decoded as an image ({err})", "messages") from None
    return _Picture(rgb, raw, pixel_hash(rgb), meta, kind)


def _user_content(messages: Any) -> list:
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty list of chat messages", "messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):  # ["hi"] was told "messages have the roles [null]"
            raise _bad(f"message {i} is {json_type(m)}; expected a chat message object such as "
                       '{"role": "user", "content": "..."}', "messages")
    roles = [m.get("role") for m in messages]
    if roles != ["user"]:
        raise _bad(f"messages have the roles {_json(roles)}; this server answers one user turn, as the artwork was "
                   "trained (no system, assistant or earlier turns)", "messages", "unsupported_messages")
    content = messages[0].get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if content is not None and not isinstance(content, list):
        raise _bad(f"the user message's content is {json_type(content)}; expected a string or a list of text "
                   "and image_url parts", "messages")
    if not content:
        raise _bad("the user message has no content; expected a string or a list of text and image_url parts", "messages")
    return content


def parse_request(body: Any, models: Models, cap: int) -> Job:
    """Validate a chat-completions body and resolve its model, canvas, prompt and decoding settings."""
    from .data import Example

    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        said = "missing" if model in (None, "") else f"{_json(model)}, not a name"
        raise _bad(f"model is {said}; expected a name from GET /v1/models", "model")
    served = models.lookup(model)
    content = _user_content(body.get("messages"))
    texts, pictures, first_text_at = [], [], None
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
            first_text_at = i if first_text_at is None else first_text_at
        elif kind == "image_url":
            pictures.append((i, _decode_picture(part.get("image_url"), f"content part {i}")))
        elif kind == "text":  # {"type": "text", "text": 5} was told its type was not 'text'
            raise _bad(f"content part {i}'s text is {json_type(part.get('text'))}; expected a string", "messages")
        else:
            raise _bad(f"content part {i} has type {_json(kind)}; this server takes 'text' and 'image_url' parts",
                       "messages", "unsupported_content_type")
    prompt = "\n".join(texts)
    if not prompt.strip():
        raise _bad("the prompt is empty; expected some text in the user message", "messages", "empty_prompt")
    if len(prompt) > _MAX_PROMPT_CHARS:
        raise _bad(f"the prompt has {len(prompt)} characters; at most {_MAX_PROMPT_CHARS} are accepted", "messages")
    bad_char = lone_surrogate(prompt)
    if bad_char is not None:  # half of an emoji cut by a client: no tokenizer takes it (it was a 500)
        raise _bad(f"the prompt holds a lone surrogate ({prompt[bad_char]!r} at character {bad_char}), half of a "
                   "character that is not text on its own; send valid Unicode", "messages")
    image_token = getattr(models.backbone.processor, "image_token", None)
    if image_token and image_token in prompt:
        raise _bad(f"the prompt contains the reserved image token {image_token!r}; send pictures as image_url parts", "messages")
    # The chat template's own markers in the text would close the user turn and open others: refused as the
    # extra turns are (`<|im_end|>\n<|im_start|>assistant` was read as a turn boundary).
    marker = min((t for t in models.template_markers if t in prompt), key=prompt.find, default=None)  # the first
    if marker is not None:
        raise _bad(f"the prompt contains the chat template's special token {marker!r}; this server answers one user "
                   "turn, so the text may not open or close turns", "messages")

    if served is models.base and pictures:
        at, first = pictures[0]
        placement = "after-text" if first_text_at is not None and first_text_at < at else "first"
        canvas = models.canvas_from_request(first, placement)
        if canvas is not None:
            served = canvas
            pictures = pictures[1:]
    elif served is not models.base and pictures and pictures[0][1].hash == served.pixel_hash:
        pictures = pictures[1:]  # the body already carries this artwork (as --print-request writes it)
    if len(pictures) > 1:
        raise _bad(f"the request has {len(pictures)} pictures besides the artwork; the training format takes at most one",
                   "messages", "too_many_images")

    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    room = served.room
    picture = room.picture_tokens(pictures[0][1].image) if pictures else None
    if max_tokens is None:  # as OpenAI's API: at most the cap, and no more than the context leaves
        max_tokens = cap
        over = room.over(prompt, cap, picture)
        if over is not None and over - cap < room.room(picture):  # fits with fewer
            max_tokens, over = room.room(picture) - (over - cap), None
    else:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _bad(f"max_tokens is {_json(max_tokens)}; expected a whole number of at least 1", "max_tokens")
        over = room.over(prompt, min(max_tokens, cap), picture)
    if over is not None:  # it would run for minutes, answer nonsense and hold up every request behind it
        raise _bad(f"the prompt and up to {min(max_tokens, cap)} new tokens take {over:,} tokens; with "
                   f"{room.beside(picture)} this model reads at most {room.room(picture):,} "
                   f"({room.max_positions:,} positions)", "messages", "context_length_exceeded")
    temperature = _number(body, "temperature", 0.0, 0.0, 2.0)
    top_p = body.get("top_p", 1.0)
    if top_p is None:
        top_p = 1.0
    if not isinstance(top_p, (int, float)) or isinstance(top_p, bool) or not 0 < top_p <= 1:
        raise _bad(f"top_p is {_json(top_p)}; expected a number in (0, 1]", "top_p")
    top_p = float(top_p)
    # What this server would not honour is refused, not ignored (a JSON mode or a penalty the answer never had).
    # top_k, min_p and repetition_penalty are vLLM's extras; -1 and 0 both mean no top-k there.
    for name, neutral in (("presence_penalty", 0), ("frequency_penalty", 0), ("logit_bias", None),
                          ("top_logprobs", None), ("tool_choice", None), ("functions", None), ("top_k", -1),
                          ("min_p", 0), ("repetition_penalty", 1)):
        if body.get(name) not in (None, neutral, {}, []) and not (name == "top_k" and body.get(name) == 0):
            raise _bad(f"{name} is not supported by this server (it decodes greedily or by temperature and top_p)",
                       name)
    response_format = body.get("response_format")
    if response_format not in (None, {"type": "text"}):
        raise _bad(f"response_format {_json(response_format)} is not supported; this server returns plain text "
                   "(a task's own format comes from its artwork)", "response_format")
    n = body.get("n")
    if n not in (None, 1):
        raise _bad(f"n is {_json(n)}; this server returns one choice per request (send n requests)", "n")
    if body.get("logprobs"):
        raise _bad("logprobs are not supported by this server", "logprobs")
    if body.get("tools"):
        raise _bad("tools are not supported by this server", "tools")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63):
        raise _bad(f"seed is {_json(seed)}; expected a whole number from 0 to 2**63 - 1", "seed")
    stop = body.get("stop")
    stop = [] if stop is None else [stop] if isinstance(stop, str) else stop  # "" is refused, as [""] is
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise _bad("stop must be a string or a list of at most 4 non-empty strings", "stop")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad(f"stream is {_json(stream)}; expected true or false", "stream")
    options = body.get("stream_options") or {}
    include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
    image_path = _extra_image(pictures[0][1], models) if pictures else None  # last: nothing below can refuse it
    return Job(served, Example(prompt=prompt, image=image_path), min(max_tokens, cap), temperature, top_p, seed,
               stop, stream, include_usage, model)


def _number(body: dict, name: str, default: float, lo: float, hi: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
        raise _bad(f"{name} is {_json(value)}; expected a number from {lo:g} to {hi:g}", name)
    return float(value)


def _extra_image(picture: _Picture, models: Models) -> str:
    """The picture as a file (the data format's `image` is a path), checked by the stock image processor."""
    try:
        models.backbone.processor.image_processor(images=[picture.image], return_tensors="pt")
    except Exception as err:  # noqa: BLE001 - any processor complaint means the picture does not fit
        raise _bad(f"the picture ({picture.image.width}×{picture.image.height}) does not fit the model's image "
                   f"processor: {err}", "messages", "image_not_compatible") from None
    # One file per request, removed when the request is answered (`Job.cleanup`).
    path = models.tmp / f"image-{uuid.uuid4().hex}.png"
    picture.image.save(path, format="PNG")
    return str(path)


# --- the worker: batching and decoding -----------------------------------------------------------
class _ShuttingDown(Exception):
    """Raised inside a batch's decoding once the server is asked to stop: its requests are answered 503."""


class QueueFull(Exception):
    pass


@dataclass
class Result:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class Worker:
    """One thread owns the model; requests for the same model and settings are answered together."""

    def __init__(self, models: Models, *, max_queue: int, max_batch: int, batch_wait_s: float):
        self.models = models
        self.max_queue, self.max_batch, self.batch_wait_s = max_queue, max_batch, batch_wait_s
        self._jobs: deque[Job] = deque()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._closed = False
        self._stopping = False  # set by a signal: queued requests are answered 503, the running batch stops
        self._paused = False
        self.cache_slots = True  # False: every generate call encodes the canvas again (benchmarks measure the saving)
        self.stats = {"requests": 0, "batches": 0, "batched_requests": 0, "slot_encodings": 0, "rejected": 0}
        self._stop_ids = _stop_ids(models.backbone)
        self._thread = threading.Thread(target=self._loop, name="artstudio-serve-worker", daemon=True)
        self._thread.start()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def submit(self, job: Job) -> concurrent.futures.Future:
        with self._cond:
            if self._closed:
                raise APIError(503, "the server is shutting down", type="server_error")
            if self._in_flight >= self.max_queue:
                self.stats["rejected"] += 1
                raise QueueFull
            self._in_flight += 1
            self.stats["requests"] += 1
            self._jobs.append(job)
            self._cond.notify_all()
        job.future.add_done_callback(lambda _f: self._done(job))
        return job.future

    def _done(self, job: Job) -> None:
        job.push(None)  # after every piece: the stream ends, and reads the result or the error
        job.cleanup()
        with self._cond:
            self._in_flight -= 1

    @contextlib.contextmanager
    def paused(self):
        """Hold the worker (tests fill the queue with it); requests still queue up."""
        with self._cond:
            self._paused = True
        try:
            yield self
        finally:
            with self._cond:
                self._paused = False
                self._cond.notify_all()

    def begin_shutdown(self) -> None:
        """Ctrl-C or SIGTERM: every request not yet answered gets a JSON 503 now, the running batch stops at its
        next token, and new ones are refused. Before, the HTTP server's 5-second grace ran out first and cancelled
        them: plain-text 500s and a traceback for each."""
        with self._cond:
            self._closed = self._stopping = True
            queued, self._jobs = list(self._jobs), deque()
            self._cond.notify_all()
        for job in queued:
            if not job.future.done() and job.future.set_running_or_notify_cancel():
                job.future.set_exception(_shutting_down())

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=30)
        for job in list(self._jobs):
            if not job.future.done():
                job.future.set_exception(APIError(503, "the server shut down before answering", type="server_error"))

    def _take(self) -> list[Job] | None:
        with self._cond:
            while (not self._jobs or self._paused) and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            first = self._jobs.popleft()
            batch = [first]
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < self.max_batch:
                for job in [j for j in self._jobs if j.key == first.key][: self.max_batch - len(batch)]:
                    self._jobs.remove(job)
                    batch.append(job)
                left = deadline - time.monotonic()
                if len(batch) >= self.max_batch or left <= 0 or self._closed:
                    break
                self._cond.wait(left)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            batch = [j for j in batch if j.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                results = self._answer(batch)
            except _ShuttingDown:
                for job in batch:
                    job.future.set_exception(_shutting_down())
            except ArtStudioError as err:
                for job in batch:
                    job.future.set_exception(_bad(str(err)))
            except Exception as err:  # noqa: BLE001 - logged here; the client gets a 500 without internals
                log.exception("generation failed for a batch of %d request(s)", len(batch))
                for job in batch:
                    job.future.set_exception(err)
            else:
                for job, result in zip(batch, results):
                    job.future.set_result(result)

    def encode_slot(self, served: Served) -> Any:
        """The served canvas's vision encoding, computed once per process."""
        import torch

        if not served.encoded:
            with torch.no_grad():
                served.slot = served.method.slot_outputs()
            served.encoded = True
            self.stats["slot_encodings"] += served.slot is not None
        return served.slot

    def _answer(self, batch: list[Job]) -> list[Result]:
        from .generation import GenerationConfig

        first = batch[0]
        sample = first.temperature > 0
        config = GenerationConfig(max_new_tokens=max(j.max_tokens for j in batch), do_sample=sample,
                                  temperature=first.temperature if sample else 1.0, top_p=first.top_p if sample else 1.0,
                                  batch_size=max(self.max_batch, 1))
        seed = first.seed if first.seed is not None else (secrets.randbelow(2**31) if sample else 0)
        if self.cache_slots:
            slot = self.encode_slot(first.served)
        else:  # the canvas through the vision tower again, as without any cache
            slot = None
            first.served.method.forget_encoding()
        examples = [j.example for j in batch]
        tok = self.models.backbone.tokenizer
        streamers = [_Streamer(j, tok) if j.stream else None for j in batch]

        def on_token(row: int, token_id: int) -> None:
            if self._stopping:
                raise _ShuttingDown
            if streamers[row] is not None:
                streamers[row].token(token_id)

        if any(j.stream for j in batch) and slot is None and first.served.method.slot_tokens is not None:
            slot = first.served.method.slot_outputs()
        rows = generate_streaming(first.served.method, examples, config, seed=seed, slot=slot, on_token=on_token)
        self.stats["batches"] += 1
        self.stats["batched_requests"] += len(batch)
        results = [self._result(job, ids, n) for job, (ids, n) in zip(batch, rows)]
        for streamer, result in zip(streamers, results):
            if streamer is not None:
                streamer.finish(result.text)
        return results

    def _result(self, job: Job, ids: list[int], prompt_tokens: int) -> Result:
        tok = self.models.backbone.tokenizer
        ids = ids[: job.max_tokens]
        finish = "stop" if ids and ids[-1] in self._stop_ids else "length"
        text = tok.decode(ids, skip_special_tokens=True).strip()
        if job.stop:
            cut = min((text.find(s) for s in job.stop if s in text), default=-1)
            if cut >= 0:
                text, finish = text[:cut], "stop"
                # the tokens up to the one that completed the stop string, as vLLM counts them (it counted all)
                ids = ids[:next(k for k in range(1, len(ids) + 1)
                                if any(s in tok.decode(ids[:k], skip_special_tokens=True) for s in job.stop))]
        return Result(text, finish, prompt_tokens, len(ids))


def generate_streaming(method, examples, config, *, seed: int, slot, on_token) -> list[tuple[list[int], int]]:
    """`generation.generate` calling `on_token(row, token_id)` as each token is chosen; (token ids, prompt
    length) per row."""
    from .generation import generate

    gen = generate(method, examples, config, seed=seed, slot=slot, on_token=on_token)
    return [(ids[0], len(prompt)) for ids, prompt in zip(gen.token_ids, gen.prompt_ids)]


class _Streamer:
    """Turns one request's tokens into text pieces as they come, for its event stream."""

    def __init__(self, job: "Job", tok):
        self.job, self.tok, self.ids, self.emitted = job, tok, [], ""

    def token(self, token_id: int) -> None:
        if len(self.ids) >= self.job.max_tokens:
            return
        self.ids.append(token_id)
        if self.job.stop:
            return  # a stop string may still cut what is decoded so far: sent whole at the end
        text = self.tok.decode(self.ids, skip_special_tokens=True).strip()
        if text.endswith("\ufffd") or not text.startswith(self.emitted) or len(text) == len(self.emitted):
            return  # half a character, or whitespace that strip() hides until more text follows
        self.job.push(text[len(self.emitted):])
        self.emitted = text

    def finish(self, text: str) -> None:
        if text.startswith(self.emitted) and len(text) > len(self.emitted):
            self.job.push(text[len(self.emitted):])


# --- the HTTP app --------------------------------------------------------------------------------
def _error_response(err: APIError):
    from fastapi.responses import JSONResponse

    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else {}
    return JSONResponse(err.body(), status_code=err.status, headers=headers | err.headers or None)


def build_app(models: Models, worker: Worker, config: ServeConfig, api_key: str | None):
    """The FastAPI application: routes, authentication and OpenAI-style errors."""
    from fastapi import FastAPI
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect

    app = FastAPI(title="ART Studio", docs_url=None, redoc_url=None, openapi_url=None)
    created = int(time.time())

    @app.exception_handler(APIError)
    async def _api_error(_request, err: APIError):
        return _error_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, err: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code)
        message = str(err.detail)
        if err.status_code in (404, 405):  # an OpenAI client's /v1/completions or /v1/embeddings: say what is here
            message = (f"{message}: {_request.method} {_request.url.path}; this server answers POST /v1/chat/completions, "
                       "GET /v1/models, GET /v1/models/NAME and GET /health")
        return _error_response(APIError(err.status_code, message, code=code))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request, err):
        return _error_response(_bad(f"invalid request: {err.errors()[:3]}"))

    @app.exception_handler(Exception)
    async def _internal(_request, err):
        log.error("internal error: %r", err, exc_info=err)
        return JSONResponse({"error": {"message": "internal server error; the server log has the details",
                                       "type": "server_error", "param": None, "code": None}}, status_code=500)

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise APIError(401, "missing or wrong API key; send 'Authorization: Bearer KEY'", code="invalid_api_key")

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": models.base_name, "artworks": sorted(models.artworks),
                "in_flight": worker.in_flight, **worker.stats}

    def record(name: str | None, served: Served | None) -> dict:
        if served is None or name is None:
            return {"id": models.base_name, "object": "model", "created": created, "owned_by": "artstudio"}
        meta = served.method.artwork.metadata
        return {"id": served.name, "object": "model", "created": created, "owned_by": "artstudio",
                "root": models.base_name, "parent": models.base_name,
                # the file's name: a client is not told where the server's files lie
                "artwork": {"name": name, "file": Path(served.path).name, "placement": served.method.placement,
                            "task": meta.task if meta is not None else None}}

    @app.get("/v1/models")
    async def list_models(request: Request):
        authorize(request)
        return {"object": "list", "data": [record(None, None)] + [record(n, s) for n, s in models.artworks.items()]}

    @app.get("/v1/models/{model:path}")
    async def get_model(model: str, request: Request):
        authorize(request)
        served = models.lookup(model)
        name = next((n for n, s in models.artworks.items() if s is served), None)
        return record(name, served)  # what the list says of it

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        authorize(request)
        length = request.headers.get("content-length", "")
        too_large = APIError(413, f"the request body is larger than {_MAX_BODY_BYTES // 2**20} MiB, the most accepted",
                             code="request_too_large")
        if length.isdigit() and int(length) > _MAX_BODY_BYTES:
            raise too_large
        raw = bytearray()
        try:
            async for piece in request.stream():  # a chunked body names no length: counted as it comes
                raw += piece
                if len(raw) > _MAX_BODY_BYTES:
                    raise too_large
        except ClientDisconnect:  # the client hung up mid-body: nothing went wrong here, and nobody reads an answer
            log.info("a client closed its connection before its request body arrived (%d bytes read)", len(raw))
            return Response(status_code=400)
        body = _decode_body(bytes(raw))
        job = await run_in_threadpool(parse_request, body, models, config.max_new_tokens)
        pieces: asyncio.Queue = asyncio.Queue()
        if job.stream:
            job.stream_to = (asyncio.get_running_loop(), pieces)
        try:
            future = worker.submit(job)
        except BaseException as err:
            job.cleanup()
            if not isinstance(err, QueueFull):
                raise
            raise APIError(429, f"the server is busy ({config.max_queue} requests in flight); retry shortly",
                           type="rate_limit_error", code="queue_full", headers={"Retry-After": "1"}) from None
        rid, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not job.stream:
            result: Result = await asyncio.wrap_future(future)
            return {"id": rid, "object": "chat.completion", "created": now, "model": job.model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                                 "logprobs": None, "finish_reason": result.finish_reason}],
                    "usage": _usage(result)}
        return StreamingResponse(_stream(job, future, pieces, rid, now), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


def special_tokens(tokenizer) -> tuple[str, ...]:
    """The tokenizer's special tokens (`<|im_start|>`, `<|im_end|>`, `<|vision_start|>`, ...): a prompt's text
    holding one would be read as that token, not as its characters."""
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    found = set(getattr(tokenizer, "all_special_tokens", None) or [])
    found |= {str(t.content) for t in added.values() if getattr(t, "special", False)}
    return tuple(sorted((t for t in found if t), key=len, reverse=True))


def _decode_body(raw: bytes) -> Any:
    """The request's JSON; anything Python's decoder cannot read is the client's error (400), never a 500: a body
    nested 200,000 deep raised RecursionError and a 5,000-digit number ValueError, both answered 500."""
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _bad(f"the request body is not valid JSON ({err})") from None
    except RecursionError:
        raise _bad("the request body is not valid JSON for this server: it is nested too deeply") from None
    except ValueError as err:  # int() of a number with more digits than Python converts
        raise _bad(f"the request body is not valid JSON for this server ({err})") from None


def _usage(result: Result) -> dict:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens}


async def _stream(job: Job, future, pieces: asyncio.Queue, rid: str, created: int):
    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": job.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    while (piece := await pieces.get()) is not None:
        yield chunk({"content": piece})
    try:
        result: Result = await asyncio.wrap_future(future)
    except APIError as err:
        yield f"data: {json.dumps(err.body())}\n\n"
    except Exception:  # noqa: BLE001 - logged by the worker
        yield 'data: {"error": {"message": "internal server error; the server log has the details", "type": "server_error"}}\n\n'
    else:
        yield chunk({}, result.finish_reason)
        if job.include_usage:
            body = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": job.model,
                    "choices": [], "usage": _usage(result)}
            yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"


# --- starting and stopping -----------------------------------------------------------------------
def exposure_warning(host: str, port: int, api_key: str | None) -> str | None:
    """The warning printed when the server is reachable from other machines without an API key."""
    if is_loopback(host) or api_key:
        return None
    return (f"WARNING: serving on {host}:{port}, reachable from other machines, WITHOUT an API key: anyone who can "
            f"reach it can use this model. Pass --api-key KEY (or set ${API_KEY_ENV}), or bind --host 127.0.0.1.")


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise ConfigError(f"--host {host}: cannot resolve it ({err}); expected an address like 127.0.0.1") from None
    family, _, _, _, address = infos[0]
    try:
        return socket.create_server(address, family=family, backlog=256)
    except OSError as err:
        import errno

        if err.errno == errno.EADDRNOTAVAIL:  # an address this machine does not have
            raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror}): {host} is not an address of this "
                              "machine; give one it has (127.0.0.1, or 0.0.0.0 for every interface)") from None
        raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror}); pick another --port") from None


@dataclass
class ServerHandle:
    """A running server (`start_server`): its base URL (`url`, ending in /v1) and `close()`."""

    url: str
    host: str
    port: int
    models: Models
    worker: Worker
    api_key: str | None
    _server: Any
    _thread: threading.Thread

    def close(self) -> None:
        self.worker.begin_shutdown()
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self.worker.close()
        self.models.close()

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _prepare(config: ServeConfig, backbone=None):
    config.check()
    api_key = config.api_key or os.environ.get(API_KEY_ENV) or None
    sock = _bind(config.host, config.port)
    # After binding, so `--port 0` is shown as the port the system picked.
    warning = exposure_warning(config.host, sock.getsockname()[1], api_key)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    try:
        models = Models(config, backbone)
        # every request that left out max_tokens was refused: the cap must leave room in the widest layout served
        widest = max((s.room for s in (models.base, *models.artworks.values())), key=lambda r: r.overhead())
        room = widest.room()
        if room and config.max_new_tokens > room:
            raise ConfigError(f"--max-new-tokens {config.max_new_tokens}: {models.base_name} reads at most "
                              f"{room:,} tokens beside {widest.beside()} "
                              f"({widest.max_positions:,} positions); give at most {room:,}")
    except BaseException:
        sock.close()
        raise
    worker = Worker(models, max_queue=config.max_queue, max_batch=config.max_batch,
                    batch_wait_s=config.batch_wait_ms / 1000)
    for served in models.artworks.values():  # before the first request: none of them pays for it
        worker.encode_slot(served)
    app = build_app(models, worker, config, api_key)
    return api_key, sock, models, worker, app


def _uvicorn(app, log_level: str, worker: "Worker | None" = None):
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:  # Ctrl-C / SIGTERM: answer what waits before the grace ends
            if worker is not None:
                threading.Thread(target=worker.begin_shutdown, name="artstudio-serve-stop", daemon=True).start()
            super().handle_exit(sig, frame)

    return Server(uvicorn.Config(app, log_level=log_level, lifespan="off", timeout_graceful_shutdown=5))


def _url(sock: socket.socket) -> tuple[str, int, str]:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return host, port, f"http://{shown}:{port}/v1"


def start_server(config: ServeConfig, *, backbone=None, log_level: str = "warning") -> ServerHandle:
    """Start the server in a background thread (tests, benchmarks); `port=0` picks a free port."""
    api_key, sock, models, worker, app = _prepare(config, backbone)
    server = _uvicorn(app, log_level, worker)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="artstudio-serve-http", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            worker.close()
            models.close()
            raise ConfigError("the HTTP server did not start; see the log above")
        time.sleep(0.01)
    host, port, url = _url(sock)
    return ServerHandle(url, host, port, models, worker, api_key, server, thread)


def serve(config: ServeConfig) -> None:
    """Run the server until interrupted (the `artstudio serve` verb)."""
    api_key, sock, models, worker, app = _prepare(config)
    host, port, url = _url(sock)
    if host in ("0.0.0.0", "::"):  # every address: not one to paste into a client
        url += f" (every address of this machine; from this one: http://{'127.0.0.1' if host == '0.0.0.0' else '[::1]'}:{port}/v1)"
    print(f"serving {', '.join(models.names())} at {url}" + (" (API key required)" if api_key else ""), flush=True)
    try:
        _uvicorn(app, "info", worker).run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn shut down cleanly and re-raised the Ctrl-C: stopping is what the user asked for
    finally:
        worker.close()
        models.close()


def _stop_ids(backbone) -> set[int]:
    from .generation import stop_ids

    return stop_ids(backbone)
