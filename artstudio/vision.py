"""Differentiable image processor: a canvas tensor in [0, 1] -> (pixel_values, image_grid_thw).

This is the stock Qwen image processor (`Qwen2VLImageProcessor`) rewritten in torch so gradients
reach the pixels. For a canvas whose sides are multiples of patch × merge and whose area is inside
the processor's min/max pixels, the processor's resize is the identity (DESIGN §3), which leaves
three steps, all taken from the `Geometry` (never from a table of families):

1. normalise: (x - mean) / std, per channel;
2. repeat the frame `temporal_patch_size` times along time (a still image is a one-step video);
3. patchify into rows of `C * T * P * P` values, ordered merge-window by merge-window, so that the
   vision tower's spatial merge groups neighbouring patches.

The result equals what `AutoProcessor.image_processor` gives for the same uint8 image (parity tests).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from artstudio.backbone import Geometry


def to_pixel_values(image: torch.Tensor, geometry: Geometry) -> tuple[torch.Tensor, torch.LongTensor]:
    """Patchify a (3, H, W) image in [0, 1]; returns (gh*gw, C*T*P*P) pixel values and [[1, gh, gw]]."""
    if image.dim() != 3:
        raise ValueError(f"expected an image tensor of shape (3, H, W), got {tuple(image.shape)}")
    channels, height, width = image.shape
    geometry.check(height, width)
    p, m, t = geometry.patch_size, geometry.merge_size, geometry.temporal_patch_size
    mean = torch.tensor(geometry.image_mean, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    std = torch.tensor(geometry.image_std, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    x = (image - mean) / std
    gh, gw = height // p, width // p
    # (C, gh/m, m, P, gw/m, m, P) -> (gh/m, gw/m, m, m, C, P, P): one merge window after another.
    x = x.reshape(channels, gh // m, m, p, gw // m, m, p).permute(1, 4, 2, 5, 0, 3, 6)
    # Each patch row is ordered (C, T, P, P): the time copies sit inside the channel.
    x = x.unsqueeze(5).expand(-1, -1, -1, -1, -1, t, -1, -1)
    pixel_values = x.reshape(gh * gw, channels * t * p * p)
    grid = torch.tensor([[1, gh, gw]], dtype=torch.long, device=image.device)
    return pixel_values, grid


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image as a float (3, H, W) tensor of values k/255 (RGB; alpha and palettes dropped)."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255.0)


def tensor_to_image(image: torch.Tensor) -> Image.Image:
    """The inverse of `image_to_tensor`: a (3, H, W) tensor in [0, 1] as a uint8 RGB PIL image."""
    array = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy())
