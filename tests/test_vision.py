"""The differentiable image processor equals the stock Qwen processor for every family."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor

from artstudio.backbone import Geometry
from artstudio.errors import CanvasSizeError
from artstudio.tiny import FAMILIES
from artstudio.vision import image_to_tensor, tensor_to_image, to_pixel_values


def _factor(family: str) -> int:
    return 28 if family.startswith("qwen2") else 32


def _random_image(height: int, width: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def processors(tiny_model_dir):
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = AutoProcessor.from_pretrained(tiny_model_dir(family))
        return cache[family]

    return get


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("shape", [(2, 2), (3, 3), (4, 4), (2, 3)])
def test_pixel_values_match_the_stock_processor(processors, family, shape):
    processor = processors(family)
    factor = _factor(family)
    height, width = shape[0] * factor, shape[1] * factor
    image = _random_image(height, width, seed=hash((family, shape)) % 1000)
    reference = processor.image_processor(images=[image], return_tensors="pt")

    pixel_values, grid = to_pixel_values(image_to_tensor(image), Geometry.from_processor(processor))
    assert torch.equal(grid, reference["image_grid_thw"])
    assert pixel_values.shape == reference["pixel_values"].shape
    assert (pixel_values - reference["pixel_values"]).abs().max().item() <= 1e-5


def test_gradient_reaches_every_pixel_and_dtype_follows_input():
    geo = Geometry(16, 2, 2, (0.5,) * 3, (0.5,) * 3, min_pixels=1024, max_pixels=512 * 512)
    image = torch.rand(3, 64, 96, dtype=torch.float64, requires_grad=True)
    pixel_values, grid = to_pixel_values(image, geo)
    assert pixel_values.dtype == torch.float64 and grid.tolist() == [[1, 4, 6]]
    pixel_values.sum().backward()
    # Each pixel appears temporal_patch_size times, scaled by 1/std.
    assert torch.allclose(image.grad, torch.full_like(image, 2 / 0.5))
    bf16, _ = to_pixel_values(torch.rand(3, 64, 64, dtype=torch.bfloat16), geo)
    assert bf16.dtype == torch.bfloat16


def test_size_errors_name_the_nearest_valid_sizes():
    geo = Geometry(14, 2, 2, (0.5,) * 3, (0.5,) * 3, min_pixels=56 * 56, max_pixels=224 * 224)
    with pytest.raises(CanvasSizeError, match=r"multiple of 28.*84×84 \(9 tokens\), 112×112 \(16 tokens\)"):
        to_pixel_values(torch.rand(3, 100, 100), geo)
    with pytest.raises(CanvasSizeError, match=r"below the model's min_pixels 3136.*56×56 \(4 tokens\)"):
        to_pixel_values(torch.rand(3, 28, 28), geo)
    with pytest.raises(CanvasSizeError, match=r"above the model's max_pixels 50176.*224×224 \(64 tokens\)"):
        to_pixel_values(torch.rand(3, 252, 252), geo)


def test_image_to_tensor_round_trips_uint8():
    image = _random_image(32, 48, seed=7)
    tensor = image_to_tensor(image)
    assert tensor.shape == (3, 32, 48) and tensor.dtype == torch.float32
    assert torch.equal(tensor, torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255)
    assert np.array_equal(np.asarray(tensor_to_image(tensor)), np.asarray(image))
    rgba = Image.new("RGBA", (8, 8), (10, 20, 30, 40))
    assert image_to_tensor(rgba).shape == (3, 8, 8)


def test_a_trained_canvas_served_as_png_gives_the_training_pixel_values(processors):
    from artstudio.canvas import Canvas

    processor = processors("qwen3_5")
    canvas = Canvas(64, init="noise", seed=0)
    with torch.no_grad():
        canvas.param.add_(0.3 * torch.randn_like(canvas.param))
    trained, _ = to_pixel_values(canvas(), Geometry.from_processor(processor))
    served = processor.image_processor(images=[canvas.to_pil()], return_tensors="pt")["pixel_values"]
    assert (trained.detach() - served).abs().max().item() <= 1e-5


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_5"])
def test_a_rows_own_picture_is_sized_as_qwen_vl_utils_sizes_it(tiny_model_dir, tmp_path, family):
    """qwen-vl-utils is Qwen's reference for sizing a message's picture (`smart_resize`, and
    `process_vision_info` for a whole message); a row's own picture gets the same visual-token grid."""
    from qwen_vl_utils import process_vision_info, smart_resize

    from artstudio.backbone import load_backbone
    from artstudio.data import Example
    from artstudio.forward import row_images
    from artstudio.methods import build_method

    bb = load_backbone(tiny_model_dir(family))
    ip = bb.processor.image_processor
    factor = ip.patch_size * ip.merge_size
    lo, hi = ip.size["shortest_edge"], ip.size["longest_edge"]
    method = build_method("base", bb)
    for h, w in [(37, 53), (120, 300), (480, 640), (33, 700)]:
        path = tmp_path / f"{h}x{w}.png"
        Image.fromarray(np.random.default_rng(h).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        _, grids, tokens = row_images(method, [Example(prompt="look", answer="x", id="0", image=str(path))])
        rh, rw = smart_resize(h, w, factor=factor, min_pixels=lo, max_pixels=hi)
        assert tokens[0] == (rh // factor) * (rw // factor), (h, w)
        assert grids[0][0].tolist() == [[1, rh // ip.patch_size, rw // ip.patch_size]]
        # The whole-message path: the picture process_vision_info returns is not resized again.
        images, _ = process_vision_info([{"role": "user", "content": [
            {"type": "image", "image": str(path), "min_pixels": lo, "max_pixels": hi}]}], image_patch_size=ip.patch_size)
        assert images[0].size == (rw, rh)
