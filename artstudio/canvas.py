"""The Canvas: the one trainable thing in ART, an RGB image of H × W pixels.

Read top to bottom:
1. two straight-through functions (uint8 quantisation, and a clamp for the `pixels` parametrisation);
2. how an initial image is made from an init option ("gray", "noise", a colour, an image file, or an
   icon plus high-frequency texture, which is how the paper's artworks start);
3. the `Canvas` module: parameter -> image in [0, 1] -> (optionally) rounded to k/255.

Quantising in the forward pass with a straight-through gradient is what makes "what you train is what
you serve" hold (DESIGN §3): the loss is computed on exactly the uint8 picture that is exported as a
PNG, while the gradient of the rounding is taken as the identity (Bengio et al., 2013).
"""

from __future__ import annotations

import logging

from pathlib import Path
from typing import Union

import torch
from PIL import Image, ImageColor, ImageOps, UnidentifiedImageError

from artstudio.errors import ConfigError
from artstudio.vision import image_to_tensor, tensor_to_image

InitSpec = Union[str, Path, Image.Image, torch.Tensor]

# The sigmoid parametrisation cannot represent exactly 0 or 1; 1e-3 still rounds to 0 and 255.
EPS = 1e-3
PARAMETRIZATIONS = ("sigmoid", "pixels")
TEXTURE_PREFIX = "icon+texture:"


# ----------------------------------------------------------------------------- straight-through

def quantize_st(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest k/255; the backward pass treats the rounding as the identity."""
    return x + (torch.round(x * 255.0) / 255.0 - x).detach()


class _InwardClamp(torch.autograd.Function):
    """clamp(x, 0, 1) whose gradient passes wherever a descent step would move x towards [0, 1].

    A plain clamp gives clamped pixels zero gradient, so a pixel pushed past 0 or 1 stays dead for the
    rest of training. Passing every gradient (a plain straight-through) revives them, but lets the
    parameter drift without bound outside the range, where steps change nothing visible. Passing only
    the inward-pointing gradients keeps both: saturated pixels can come back, and never run away.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        # A descent step moves x by -grad: above 1 that is inward when grad > 0, below 0 when grad < 0.
        keep = ((x >= 0) & (x <= 1)) | ((x > 1) & (grad > 0)) | ((x < 0) & (grad < 0))
        return grad * keep


def inward_clamp(x: torch.Tensor) -> torch.Tensor:
    return _InwardClamp.apply(x)


# ----------------------------------------------------------------------------- initial images

def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
        raise ConfigError(f"canvas size must be a positive int or (height, width), got {size!r}")
    return height, width


def _generator(seed: int | None) -> torch.Generator:
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen


def _fit(image: Image.Image, height: int, width: int) -> Image.Image:
    """Scale to cover (height, width) with bicubic resampling, then crop the centre."""
    image = image.convert("RGB")
    if image.size == (width, height):
        return image
    # infer, eval and serve refuse a picture of another size; a start is fitted, and says so
    logging.getLogger("artstudio.canvas").warning(
        "init picture %d×%d scaled and centre-cropped to the %d×%d canvas", *image.size, width, height)
    return ImageOps.fit(image, (width, height), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))


def _open_image(path: str | Path) -> Image.Image:
    if not str(path).strip():  # "icon+texture:" read the current folder ("Is a directory: '.'")
        raise ConfigError(f"canvas init names no picture after '{TEXTURE_PREFIX}'; give a picture file's path, "
                          f"e.g. {TEXTURE_PREFIX}logo.png")
    if Path(path).expanduser().is_dir():
        raise ConfigError(f"canvas init image {path} is a folder; give a picture file (PNG, JPEG, ...)")
    try:
        with Image.open(Path(path).expanduser()) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError as e:
        raise ConfigError(f"canvas init image {path} does not exist; pass an existing image file") from e
    except (UnidentifiedImageError, OSError) as e:
        raise ConfigError(f"canvas init image {path} is not a readable image (PNG, JPEG, ...): {e}") from e


def _add_texture(image: torch.Tensor, amount: float, gen: torch.Generator) -> torch.Tensor:
    """Seeded per-pixel noise in [-amount, amount]: the high-frequency texture of the paper's artworks."""
    noise = torch.rand(image.shape, generator=gen) * 2.0 - 1.0
    return (image + amount * noise).clamp(0.0, 1.0)


def _colour(spec: str, height: int, width: int) -> torch.Tensor | None:
    try:
        rgb = ImageColor.getrgb(spec)[:3]
    except ValueError:
        return None
    return torch.tensor(rgb, dtype=torch.float32).div(255.0).view(3, 1, 1).expand(3, height, width).clone()


def initial_image(
    init: InitSpec, height: int, width: int, *, seed: int | None = None, texture: float = 0.1
) -> torch.Tensor:
    """The starting picture, (3, H, W) float in [0, 1], already rounded to k/255."""
    gen = _generator(seed)
    if isinstance(init, torch.Tensor):
        image = _tensor_init(init, height, width)
    elif isinstance(init, Image.Image):
        image = image_to_tensor(_fit(init, height, width))
        if texture > 0:
            image = _add_texture(image, texture, gen)
    elif isinstance(init, Path):
        image = image_to_tensor(_fit(_open_image(init), height, width))
    elif isinstance(init, str):
        image = _string_init(init, height, width, gen, texture)
    else:
        raise ConfigError(f"canvas init must be a string, a PIL image or a tensor, got {type(init).__name__}")
    return torch.round(image.float() * 255.0) / 255.0


def _tensor_init(init: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if init.dim() != 3 or init.shape[0] != 3:
        raise ConfigError(f"a tensor canvas init must have shape (3, H, W), got {tuple(init.shape)}")
    image = init.detach().float().cpu().clamp(0.0, 1.0)
    if tuple(image.shape[1:]) != (height, width):
        image = image_to_tensor(_fit(tensor_to_image(image), height, width))
    return image


def _string_init(spec: str, height: int, width: int, gen: torch.Generator, texture: float) -> torch.Tensor:
    name = spec.strip()
    if name.lower() in ("gray", "grey"):
        return torch.full((3, height, width), 0.5)
    if name.lower() == "noise":
        return torch.rand((3, height, width), generator=gen)
    if name.startswith(TEXTURE_PREFIX):
        icon = image_to_tensor(_fit(_open_image(name[len(TEXTURE_PREFIX):]), height, width))
        return _add_texture(icon, texture, gen)
    if Path(name).expanduser().is_file():
        return image_to_tensor(_fit(_open_image(name), height, width))
    if Path(name).expanduser().is_dir():  # a run folder: it said "unknown canvas init" or "Is a directory"
        picture = Path(name).expanduser() / "artwork.png"
        raise ConfigError(f"canvas init {spec!r} is a folder; pass a picture file"
                          + (f", such as its artwork: {picture}" if picture.is_file() else " (PNG, JPEG, ...)"))
    colour = _colour(name, height, width)
    if colour is not None:
        return colour
    if _names_a_file(name):
        return image_to_tensor(_fit(_open_image(name), height, width))  # raises "does not exist"
    raise ConfigError(
        f"unknown canvas init {spec!r}; use 'gray', 'noise', a colour ('#rrggbb' or a name like 'red'), "
        f"an image file path, or '{TEXTURE_PREFIX}PATH'"
    )


def init_file_missing(spec: str) -> bool:
    """Whether an init option names an image file (or a texture of one) that is not there: a path
    (`_names_a_file`), not a name like 'gray' or a colour."""
    name = spec.strip()
    if name.startswith(TEXTURE_PREFIX):
        name = name[len(TEXTURE_PREFIX):]
    elif name.lower() in ("gray", "grey", "noise") or _colour(name, 1, 1) is not None:
        return False
    elif not _names_a_file(name):
        return False
    return not Path(name).expanduser().is_file()


def init_names_a_picture(spec) -> bool:
    """Whether an init option names a picture (an image file, or a texture of one), not a made-up start
    (gray, noise, a colour)."""
    name = str(spec).strip()
    return name.startswith(TEXTURE_PREFIX) or _names_a_file(name)


def _names_a_file(name: str) -> bool:
    """An init option that is not a name or a colour names an image file when it has a slash or a suffix."""
    return "/" in name or "\\" in name or bool(Path(name).suffix)


# ----------------------------------------------------------------------------- the module

class Canvas(torch.nn.Module):
    """A trainable H × W RGB image. `forward()` returns it as a (3, H, W) tensor in [0, 1]."""

    def __init__(
        self,
        size: int | tuple[int, int],
        *,
        init: InitSpec = "gray",
        parametrization: str = "pixels",
        quantize: bool = True,
        seed: int | None = None,
        texture: float = 0.1,
    ) -> None:
        super().__init__()
        if parametrization not in PARAMETRIZATIONS:
            raise ConfigError(
                f"unknown canvas parametrization {parametrization!r}; use one of {', '.join(PARAMETRIZATIONS)}"
            )
        if texture < 0:
            raise ConfigError(f"canvas texture must be >= 0, got {texture}")
        height, width = _size(size)
        self.parametrization = parametrization
        self.quantize = quantize
        start = initial_image(init, height, width, seed=seed, texture=texture)
        self.register_buffer("initial", torch.empty_like(start))
        self.param = torch.nn.Parameter(torch.empty_like(start))
        self.start_from(start)

    @classmethod
    def from_image(cls, image: str | Path | Image.Image, **kwargs) -> "Canvas":
        """A canvas sized like `image` that starts as exactly that picture (no texture unless asked)."""
        picture = image if isinstance(image, Image.Image) else _open_image(image)
        kwargs.setdefault("texture", 0.0)
        return cls((picture.height, picture.width), init=picture, **kwargs)

    @torch.no_grad()
    def start_from(self, pixels: torch.Tensor) -> None:
        """Make `pixels` (3, H, W, in [0, 1]) the canvas and the start its regularisers measure change from."""
        pixels = pixels.to(self.initial.device, self.initial.dtype)
        self.initial.copy_(pixels)
        # The sigmoid keeps every pixel in (0, 1) with no dead gradients; its inverse seeds it.
        self.param.copy_(torch.logit(pixels.clamp(EPS, 1.0 - EPS)) if self.parametrization == "sigmoid" else pixels)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return tuple(self.param.shape[1:])

    def continuous(self) -> torch.Tensor:
        """The image before quantisation."""
        if self.parametrization == "sigmoid":
            return torch.sigmoid(self.param)
        return inward_clamp(self.param)

    def forward(self) -> torch.Tensor:
        image = self.continuous()
        return quantize_st(image) if self.quantize else image

    def regularization(self, tv: float = 0.0, l2: float = 0.0) -> torch.Tensor:
        """tv · total variation + l2 · mean squared distance, both of the change from the initial image.

        Both terms measure the change, not the picture: an icon init has real edges that a total
        variation of the image itself would try to blur away.
        """
        delta = self.forward() - self.initial
        loss = delta.new_zeros(())
        if tv:
            loss = loss + tv * (
                (delta[:, 1:, :] - delta[:, :-1, :]).abs().mean()
                + (delta[:, :, 1:] - delta[:, :, :-1]).abs().mean()
            )
        if l2:
            loss = loss + l2 * delta.pow(2).mean()
        return loss

    @torch.no_grad()
    def to_pil(self) -> Image.Image:
        """The picture that is served: uint8 RGB, equal to the quantised `forward()` pixel for pixel."""
        return tensor_to_image(quantize_st(self.continuous()))

    def extra_repr(self) -> str:
        height, width = self.size
        return f"size={height}x{width}, parametrization={self.parametrization}, quantize={self.quantize}"
