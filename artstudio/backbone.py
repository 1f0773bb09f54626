"""The frozen backbone: load any Qwen vision-language family, freeze it, and describe its geometry.

ART trains only the pixels of one image, so the model is loaded once, every parameter is frozen, and
the rest of the package talks to it through three things defined here:

- `Geometry`, the image layout the model expects (patch size, spatial merge, temporal patch, mean/std,
  pixel limits), read from the processor config and never from a table of families (DESIGN §3);
- `Backbone.encode_images`, which runs the vision tower with gradients w.r.t. the pixels, and
  `concat_image_outputs`, which joins encodings in sequence order; the same canvas encoding joined
  once per row serves a whole batch ("the shared canvas is encoded once per step");
- `Backbone.forward`, which hands those precomputed visual embeddings to the unmodified
  `...ForConditionalGeneration` forward through its `mm_encoder_outputs` argument.
"""

from __future__ import annotations

import inspect
import json

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from artstudio.data import MAX_ASPECT_RATIO
from artstudio.errors import CanvasSizeError, ConfigError, ModelLoadError
from artstudio.words import count

log = logging.getLogger(__name__)

DEFAULT_MODEL: str = str(Path(__file__).resolve().parent / "models" / "studio-tiny")
DEFAULT_NAME = "studio-tiny"  # how artworks and runs name the shipped model, whatever folder holds it

KNOWN_FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe")
# Patch size × spatial merge of the released configs: a canvas side is a multiple of one of these.
GRID_FACTORS = {28: "Qwen2-VL, Qwen2.5-VL", 32: "Qwen3-VL, Qwen3.5, studio-tiny"}


def fits_some_model(width: int, height: int) -> bool:
    """Whether a picture of this size could be a canvas of any released Qwen-VL family (`GRID_FACTORS`)."""
    return any(width % f == 0 and height % f == 0 for f in GRID_FACTORS)

_DTYPES = {
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
}


# ----------------------------------------------------------------------------- geometry

@dataclass(frozen=True)
class Geometry:
    """How a model cuts an image into visual tokens; everything comes from its image processor."""

    patch_size: int
    merge_size: int
    temporal_patch_size: int
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    min_pixels: int
    max_pixels: int

    @classmethod
    def from_processor(cls, processor: Any) -> "Geometry":
        """Read the geometry from a processor (or a bare image processor)."""
        ip = getattr(processor, "image_processor", processor)
        missing = [k for k in ("patch_size", "merge_size") if getattr(ip, k, None) is None]
        if missing:
            raise ModelLoadError(
                f"image processor {type(ip).__name__} has no {', '.join(missing)}; ART Studio needs a "
                "Qwen-style image processor (patch_size, merge_size, temporal_patch_size)"
            )
        min_pixels, max_pixels = _pixel_limits(ip)
        return cls(
            patch_size=int(ip.patch_size),
            merge_size=int(ip.merge_size),
            temporal_patch_size=int(getattr(ip, "temporal_patch_size", None) or 1),
            image_mean=tuple(float(v) for v in ip.image_mean),
            image_std=tuple(float(v) for v in ip.image_std),
            min_pixels=min_pixels,
            max_pixels=max_pixels,
        )

    @property
    def factor(self) -> int:
        """A canvas side must be a multiple of this for the processor's resize to be the identity."""
        return self.patch_size * self.merge_size

    def tokens(self, height: int, width: int | None = None) -> int:
        """Visual tokens the language model sees for an image of this size (square if no width)."""
        width = height if width is None else width
        return (height // self.patch_size) * (width // self.patch_size) // self.merge_size**2

    def resized(self, height: int, width: int) -> tuple[int, int]:
        """The size the image processor resizes a height × width picture to: each side rounded to a multiple
        of `factor`, then scaled, keeping the aspect ratio, into [min_pixels, max_pixels] (Qwen's smart resize)."""
        if height <= 0 or width <= 0:
            raise CanvasSizeError(f"a picture of {width}×{height} pixels has no area")
        if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
            raise CanvasSizeError(f"a picture of {width}×{height} pixels is more than {MAX_ASPECT_RATIO} times as long "
                                  "as it is wide, which Qwen's image processor refuses")
        f = self.factor
        h, w = round(height / f) * f, round(width / f) * f
        if h * w > self.max_pixels:
            beta = math.sqrt(height * width / self.max_pixels)
            h, w = max(f, math.floor(height / beta / f) * f), max(f, math.floor(width / beta / f) * f)
        elif h * w < self.min_pixels:
            beta = math.sqrt(self.min_pixels / (height * width))
            h, w = math.ceil(height * beta / f) * f, math.ceil(width * beta / f) * f
        return h, w

    def picture_tokens(self, height: int, width: int) -> int:
        """Visual tokens a row's own picture of this size takes, after the processor's resize."""
        return self.tokens(*self.resized(height, width))

    def fits(self, height: int, width: int | None = None) -> bool:
        width = height if width is None else width
        return (
            height > 0 and width > 0
            and height % self.factor == 0 and width % self.factor == 0
            and self.min_pixels <= height * width <= self.max_pixels
        )

    def valid_sizes(self, max_side: int | None = None) -> list[int]:
        """Square sides the model takes without resizing, smallest first."""
        top = math.isqrt(self.max_pixels)
        if max_side is not None:
            top = min(top, max_side)
        return [s for s in range(self.factor, top + 1, self.factor) if self.fits(s)]

    def nearest_valid(self, side: int) -> list[int]:
        """The valid square sides closest to `side`: the one below and the one above (or `side`)."""
        if self.fits(side):
            return [side]
        lo = math.isqrt(self.min_pixels)
        hi = math.isqrt(self.max_pixels)
        below = (min(max(side, 0), hi) // self.factor) * self.factor
        above = -(-max(side, lo) // self.factor) * self.factor
        while below > 0 and not self.fits(below):
            below -= self.factor
        while above <= hi and not self.fits(above):
            above += self.factor
        found = [s for s in (below, above) if s > 0 and self.fits(s)]
        return sorted(set(found))

    def check(self, height: int, width: int | None = None) -> None:
        """Raise `CanvasSizeError` (listing the nearest valid sizes) unless the size fits exactly."""
        width = height if width is None else width
        misfit = self.misfit(height, width)
        if misfit is not None:
            raise CanvasSizeError(f"canvas size {width}×{height} does not fit this model: {misfit}")

    def misfit(self, height: int, width: int) -> str | None:
        """Why a height × width picture does not fit, with the nearest valid sizes; None when it fits."""
        if self.fits(height, width):
            return None
        if height <= 0 or width <= 0:
            smallest = ", ".join(f"{s}×{s}" for s in self.valid_sizes()[:3]) or "none"
            return f"each side must be a positive number of pixels, a multiple of {self.factor}. Smallest valid sizes: {smallest}"
        problems = []
        if height % self.factor or width % self.factor:
            problems.append(
                f"each side must be a multiple of {self.factor} "
                f"(patch size {self.patch_size} × merge size {self.merge_size})"
            )
        if height * width < self.min_pixels:
            problems.append(f"it has {height * width} pixels, below the model's min_pixels {self.min_pixels}")
        elif height * width > self.max_pixels:
            problems.append(f"it has {height * width} pixels, above the model's max_pixels {self.max_pixels}")
        return f"{'; '.join(problems)}. Nearest valid sizes: {self._suggest(height, width)}"

    def _suggest(self, height: int, width: int) -> str:
        if height == width:
            shapes = [(s, s) for s in self.nearest_valid(height)]
        else:
            shapes = sorted(
                {(h, w) for h in self._near_multiples(height) for w in self._near_multiples(width)
                 if self.fits(h, w)},
                key=lambda hw: abs(hw[0] - height) + abs(hw[1] - width),
            )[:4]
            if not shapes:
                shapes = [(s, s) for s in self.nearest_valid(round(math.sqrt(max(height * width, 1))))]
        return ", ".join(f"{w}×{h} ({count(self.tokens(h, w), 'token')})" for h, w in shapes) or "none"

    def _near_multiples(self, side: int) -> list[int]:
        below = max(self.factor, (side // self.factor) * self.factor)
        return sorted({below, below + self.factor} if side % self.factor else {side})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_mean"], d["image_std"] = list(self.image_mean), list(self.image_std)
        d["factor"] = self.factor
        return d


def _pixel_limits(ip: Any) -> tuple[int, int]:
    """min/max pixels from `size={"shortest_edge", "longest_edge"}` or `min_pixels`/`max_pixels`."""
    size = getattr(ip, "size", None)
    get = (lambda k: size.get(k)) if isinstance(size, dict) else (lambda k: getattr(size, k, None))
    lo = get("shortest_edge") if size is not None else None
    hi = get("longest_edge") if size is not None else None
    lo = lo if lo is not None else getattr(ip, "min_pixels", None)
    hi = hi if hi is not None else getattr(ip, "max_pixels", None)
    if lo is None or hi is None:
        raise ModelLoadError(
            f"image processor {type(ip).__name__} states no pixel limits; expected "
            "size={'shortest_edge': MIN_PIXELS, 'longest_edge': MAX_PIXELS} or min_pixels/max_pixels "
            "in its preprocessor config"
        )
    return int(lo), int(hi)


# ----------------------------------------------------------------------------- backbone

def cache_of(output: Any) -> Any:
    """The KV cache a forward pass returned: `output.cache` in current transformers, `.past_key_values` in older 5.x."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


class Backbone:
    """A frozen Qwen vision-language model with its processor, tokenizer, geometry and token ids."""

    def __init__(self, model: Any, processor: Any, model_id: str) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.geometry = Geometry.from_processor(processor)
        self.model_id = model_id
        # A model folder may recommend a canvas size in `artstudio.json` (studio-tiny: 96, the size of
        # the cue pictures it was pretrained on); otherwise methods fall back to 256 px.
        self.recommended_canvas_size: int | None = _read_hint(getattr(model, "name_or_path", "") or model_id, "canvas_size")
        # transformers renamed the KV-cache argument `past_key_values` to `cache` (the old name warns
        # on every call and goes in 5.40); pass whichever this version's model takes.
        self._cache_kwarg: str = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        cfg = model.config
        self.family: str = cfg.model_type
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.image_token_id: int = cfg.image_token_id
        self.vision_start_token_id: int | None = getattr(cfg, "vision_start_token_id", None)
        self.vision_end_token_id: int | None = getattr(cfg, "vision_end_token_id", None)
        text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        self.eos_token_id: int | None = _first(
            self.tokenizer.eos_token_id, model.generation_config.eos_token_id, text_cfg.eos_token_id
        )
        self.pad_token_id: int | None = _first(
            self.tokenizer.pad_token_id, model.generation_config.pad_token_id, self.eos_token_id
        )

    @property
    def max_positions(self) -> int | None:
        """The language model's positions (`max_position_embeddings`): the longest row it reads."""
        cfg = self.model.config
        text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        return getattr(text_cfg, "max_position_embeddings", None)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def input_embeddings(self) -> torch.nn.Module:
        """The token embedding table (soft prompts and AdaLink work on its output)."""
        return self.model.get_input_embeddings()

    # -- vision ------------------------------------------------------------------------------

    def encode_images(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> Any:
        """Run the vision tower; the output keeps the autograd graph back to `pixel_values`."""
        pixel_values = pixel_values.to(self.device, self.dtype)
        return self.model.get_image_features(
            pixel_values, image_grid_thw.to(self.device), return_dict=True
        )

    def concat_image_outputs(self, outputs: Sequence[Any]) -> Any:
        """Join vision outputs in the order their images appear in the batch's token sequence.

        An output may appear several times (the canvas, once per row): its tensors are shared, not
        copied, so every row's gradient accumulates on the one encoding.
        """
        if not outputs:
            raise ValueError("concat_image_outputs needs at least one output")
        fields: dict[str, Any] = {"pooler_output": tuple(t for o in outputs for t in o.pooler_output)}
        deep = [getattr(o, "deepstack_features", None) for o in outputs]
        if any(d is not None for d in deep):
            if any(d is None or len(d) != len(deep[0]) for d in deep):
                raise ValueError("cannot join vision outputs with different deepstack layers")
            fields["deepstack_features"] = [
                tuple(t for d in deep for t in d[layer]) for layer in range(len(deep[0]))
            ]
        # Only the per-image fields the language model reads are carried over; the hidden states of
        # the vision tower belong to the original images and would be wrong for the joined set.
        return type(outputs[0])(**fields)

    # -- language model ----------------------------------------------------------------------

    def image_token_types(self, input_ids: torch.Tensor) -> torch.Tensor:
        """`mm_token_type_ids` as the processor makes them: 1 at image tokens, 0 elsewhere."""
        return (input_ids == self.image_token_id).to(torch.int32)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        mm_token_type_ids: torch.Tensor | None = None,
        image_outputs: Any = None,
        image_grid_thw: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values: Any = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool = False,
        labels: torch.Tensor | None = None,
        model: torch.nn.Module | None = None,
        logits_to_keep: torch.Tensor | int | None = None,
    ) -> Any:
        """The model's forward with precomputed visual embeddings (`image_outputs`) for the images.

        Passing `inputs_embeds` together with `input_ids` is allowed: the ids then only serve to
        compute the multimodal RoPE positions, and the image positions of `inputs_embeds` must still
        hold the image-token embedding (that is how the model finds where to put `image_outputs`).
        """
        if input_ids is not None:
            input_ids = input_ids.to(self.device)
            if mm_token_type_ids is None and image_grid_thw is not None:
                mm_token_type_ids = self.image_token_types(input_ids)
        if attention_mask is not None:
            attention_mask = attention_mask.to(self.device)
        if image_grid_thw is not None:
            image_grid_thw = image_grid_thw.to(self.device)
        if inputs_embeds is not None and input_ids is not None:
            if position_ids is None and image_grid_thw is not None and past_key_values is None:
                position_ids, _ = self.model.model.get_rope_index(
                    input_ids, mm_token_type_ids=mm_token_type_ids.to(self.device),
                    image_grid_thw=image_grid_thw, attention_mask=attention_mask,
                )
            input_ids = None
        kwargs: dict[str, Any] = {}
        if image_outputs is not None:
            kwargs["mm_encoder_outputs"] = {"image": image_outputs}
        if mm_token_type_ids is not None:
            kwargs["mm_token_type_ids"] = mm_token_type_ids.to(self.device)
        if logits_to_keep is not None:
            # Only these positions go through the language-model head (a bool (B, L) mask flattens them).
            kwargs["logits_to_keep"] = logits_to_keep.to(self.device) if torch.is_tensor(logits_to_keep) else logits_to_keep
        # A method may run a wrapped model (a PEFT adapter around the frozen one).
        kwargs[self._cache_kwarg] = past_key_values
        return (model or self.model)(
            input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
            image_grid_thw=image_grid_thw, position_ids=position_ids,
            use_cache=use_cache, labels=labels, **kwargs,
        )

    __call__ = forward

    def __repr__(self) -> str:
        return (f"Backbone({self.model_id!r}, family={self.family!r}, {self.num_parameters:,} parameters, "
                f"device={str(self.device)!r}, dtype={str(self.dtype).removeprefix('torch.')!r})")

    def describe(self) -> dict[str, Any]:
        """A summary for `artstudio info`."""
        return {
            "family": self.family,
            "model_id": self.model_id,
            "params": self.num_parameters,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "geometry": self.geometry.to_dict(),
            "valid_sizes": self.geometry.valid_sizes(512),
        }


def _read_hint(model_id: str, key: str) -> Any:
    path = Path(model_id).expanduser() / "artstudio.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(key)
    except (OSError, json.JSONDecodeError):
        return None


def _first(*values: Any) -> Any:
    for v in values:
        if isinstance(v, (list, tuple)):
            v = v[0] if v else None
        if v is not None:
            return v
    return None


# ----------------------------------------------------------------------------- loading

def resolve_dtype(dtype: str | torch.dtype | None, device: str) -> torch.dtype:
    """bf16 on CUDA and fp32 on CPU unless asked otherwise."""
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ConfigError(f"--dtype {dtype!r} is not a dtype; use bf16, fp16 or fp32 (or leave it out: bf16 on a GPU, fp32 on CPU)")
    return _DTYPES[key]


def dtype_name(dtype: torch.dtype) -> str:
    """The short name --dtype takes for `dtype` (torch.bfloat16 -> "bf16")."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}.get(dtype, str(dtype).removeprefix("torch."))


def check_device(device: str | None) -> None:
    """Refuse a device torch cannot name or this machine does not have, as a ConfigError naming --device."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"--device {device!r} is not a device; use cpu, cuda, cuda:1 or mps (or leave it out: "
                          "cuda when there is one, else cpu)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: this machine has no CUDA GPU that PyTorch can use; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: there are {torch.cuda.device_count()} CUDA GPU(s), numbered from 0")


def check_dtype(dtype: str | None) -> None:
    """Refuse a dtype name resolve_dtype would refuse, before anything is loaded or written."""
    if dtype is not None and not isinstance(dtype, torch.dtype):
        resolve_dtype(dtype, "cpu")


def _looks_local(model: str) -> bool:
    return Path(model).expanduser().exists() or model.startswith(("/", "./", "../", "~", "."))


def model_name(model: str) -> str:
    """How artworks, runs and requests name `model`: the shipped model by DEFAULT_NAME, whatever folder holds it."""
    model = str(model)
    if model == DEFAULT_NAME or (_looks_local(model) and Path(model).expanduser().resolve() == Path(DEFAULT_MODEL).resolve()):
        # The shipped model is named, not located: artworks made on one machine load on another.
        return DEFAULT_NAME
    if _looks_local(model) and not Path(model).expanduser().exists() and Path(model).parts[-3:] == Path(DEFAULT_MODEL).parts[-3:]:
        # The shipped model where an older install kept it (a run's config.json once recorded its folder): a run
        # moved to another machine or virtual environment resumes on this install's copy.
        return DEFAULT_NAME
    return model


def same_model(a: str, b: str) -> bool:
    """Whether two model names mean one model: the same name, or two paths to one folder."""
    a, b = model_name(str(a)), model_name(str(b))
    if a == b:
        return True
    return _looks_local(a) and _looks_local(b) and Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def named_model(record: dict) -> dict:
    """`record` (a run's options, as config.json, best.json or compare_config.json hold them) with its "model" as
    `model_name` names it: what every run record writes, and what a reader compares a record written by an
    earlier version (which recorded the shipped model's folder) against."""
    if isinstance(record.get("model"), str):
        return record | {"model": model_name(record["model"])}
    return record


def load_backbone(
    model: str = DEFAULT_MODEL,
    *,
    dtype: str | torch.dtype | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    local_files_only: bool | None = None,
) -> Backbone:
    """Load a Qwen vision-language model (Hub id or local folder), frozen, on `device`."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    source = DEFAULT_MODEL if model_name(model) == DEFAULT_NAME else str(model)
    model_id = model_name(source)
    if _looks_local(source):
        path = Path(source).expanduser()
        if not path.exists():
            raise ModelLoadError(
                f"model folder {model_id} does not exist; pass a Hugging Face id like "
                "Qwen/Qwen3.5-0.8B or a folder containing config.json"
            )
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{model_id} has no config.json, so it is not a saved model; pass a Hugging Face id "
                "like Qwen/Qwen3.5-0.8B or a folder written by save_pretrained"
            )
        source = str(path)
        local_files_only = True  # a local folder must never trigger a download
    elif not local_files_only:
        _check_hub_reachable(model_id)
    check_device(device)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype = resolve_dtype(dtype, device)
    hub_kw: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if local_files_only is not None:
        hub_kw["local_files_only"] = local_files_only

    try:
        config = AutoConfig.from_pretrained(source, **hub_kw)
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"cannot read the config of {model_id}: {e}") from e
    family = config.model_type
    _require_vision_language(config, model_id)
    try:
        processor = AutoProcessor.from_pretrained(source, **hub_kw)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"cannot load the processor of {model_id}: {e}") from e
    ip = getattr(processor, "image_processor", None)
    if family not in KNOWN_FAMILIES and (
        ip is None or getattr(ip, "patch_size", None) is None or getattr(ip, "merge_size", None) is None
    ):
        raise _not_qwen(family, model_id)
    try:
        net = AutoModelForImageTextToText.from_pretrained(source, dtype=torch_dtype, **hub_kw)
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"cannot load the weights of {model_id}: {e}") from e
    net.to(device)
    backbone = Backbone(net, processor, model_id)
    log.info(
        "loaded %s (%s): %.2fM parameters, frozen, on %s as %s",
        model_id, family, backbone.num_parameters / 1e6, device, str(torch_dtype).removeprefix("torch."),
    )
    return backbone


def _check_hub_reachable(model_id: str) -> None:
    """A Hub id that is not in the local cache, with no route to the Hub: one quick probe says so. Without it
    the Hub client retried for about 23 s, printing a line each time, before the same error."""
    import urllib.error
    import urllib.request

    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE:
        return  # the loaders fail at once, from the cache alone
    try:
        if isinstance(try_to_load_from_cache(model_id, "config.json"), str):
            return  # cached: the loaders may run from the cache
    except ValueError:  # not a repository id at all ("a/b/c"): the loaders name it
        return
    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=10)
    except urllib.error.HTTPError:
        return  # the Hub answered
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ModelLoadError(f"{model_id} is not a local folder and not in the Hugging Face cache, and the Hub "
                             f"({constants.ENDPOINT}) cannot be reached ({reason}); pass a local model folder (one "
                             "written by save_pretrained), or connect to download it") from None


def _require_vision_language(config: Any, model_id: str) -> None:
    if config.model_type in KNOWN_FAMILIES:
        return
    if getattr(config, "image_token_id", None) is None or getattr(config, "vision_config", None) is None:
        raise _not_qwen(config.model_type, model_id)


def _not_qwen(family: str, model_id: str) -> ModelLoadError:
    return ModelLoadError(
        f"{model_id} is a {family!r} model, not a Qwen vision-language model; ART Studio supports "
        f"{', '.join(KNOWN_FAMILIES)} (and newer models whose config has image_token_id and "
        "vision_config and whose image processor has patch_size and merge_size)"
    )
