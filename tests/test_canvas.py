"""The Canvas: straight-through quantisation, initialisations, regularisers, PIL export, state dict."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from artstudio.canvas import Canvas, inward_clamp, quantize_st
from artstudio.errors import ArtStudioError
from artstudio.vision import image_to_tensor


def _pixels(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float()


@pytest.fixture
def striped_png(tmp_path):
    """A 40×80 (H×W) picture: left half red, right half blue, a green centre column band."""
    array = np.zeros((40, 80, 3), dtype=np.uint8)
    array[:, :40] = (255, 0, 0)
    array[:, 40:] = (0, 0, 255)
    array[:, 30:50] = (0, 255, 0)
    path = tmp_path / "icon.png"
    Image.fromarray(array).save(path)
    return path


@pytest.mark.parametrize("parametrization", ["sigmoid", "pixels"])
def test_gradient_reaches_the_parameter_through_quantisation(parametrization):
    canvas = Canvas(32, init="noise", seed=0, parametrization=parametrization)
    target = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    loss = (canvas() - target).pow(2).sum()
    loss.backward()
    assert canvas.param.grad is not None
    assert (canvas.param.grad != 0).float().mean() > 0.99
    before = canvas().detach().clone()
    torch.optim.SGD(canvas.parameters(), lr=5.0).step()
    assert not torch.equal(canvas().detach(), before)


def test_quantised_forward_equals_the_exported_png_exactly():
    canvas = Canvas((32, 64), init="noise", seed=3)
    with torch.no_grad():
        canvas.param.add_(0.37 * torch.randn_like(canvas.param))  # off the k/255 grid
    image = canvas()
    assert torch.equal(image, _pixels(canvas.to_pil()) / 255)
    assert torch.equal(image * 255, torch.round(image * 255))
    assert canvas.to_pil().size == (64, 32) and canvas.size == (32, 64)


def test_unquantised_forward_is_continuous_but_export_is_uint8():
    canvas = Canvas(32, init="noise", seed=3, quantize=False)
    with torch.no_grad():
        canvas.param.add_(0.1)
    image = canvas()
    assert not torch.equal(image * 255, torch.round(image * 255))
    assert torch.equal(torch.round(image.detach() * 255), _pixels(canvas.to_pil()))


def test_quantize_st_is_identity_in_backward():
    x = torch.tensor([0.1, 0.5004, 0.9], requires_grad=True)
    y = quantize_st(x)
    assert torch.equal(y, torch.round(x.detach() * 255) / 255)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(3))


def test_inward_clamp_lets_saturated_pixels_come_back_but_not_run_away():
    x = torch.tensor([-0.5, 0.5, 1.5, -0.5, 1.5], requires_grad=True)
    y = inward_clamp(x)
    assert torch.equal(y.detach(), torch.tensor([0.0, 0.5, 1.0, 0.0, 1.0]))
    # Descent moves x by -grad: [-0.5 -> up] passes, [1.5 -> down] passes, outward ones are blocked.
    (y * torch.tensor([-1.0, 1.0, 1.0, 1.0, -1.0])).sum().backward()
    assert torch.equal(x.grad, torch.tensor([-1.0, 1.0, 1.0, 0.0, 0.0]))


@pytest.mark.parametrize("init", ["gray", "noise", "#ff8000", "red", "file", "icon+texture", "pil", "tensor"])
def test_every_init_works_and_is_seeded(init, striped_png):
    spec = {
        "file": str(striped_png),
        "icon+texture": f"icon+texture:{striped_png}",
        "pil": Image.open(striped_png),
        "tensor": torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)),
    }.get(init, init)
    a = Canvas(32, init=spec, seed=5)
    b = Canvas(32, init=spec, seed=5)
    assert torch.equal(a(), b())
    assert torch.equal(a(), a.initial)  # the quantised start is exactly the init image
    assert a().shape == (3, 32, 32) and 0 <= a().min() and a().max() <= 1
    if init in ("noise", "icon+texture", "pil"):
        assert not torch.equal(a(), Canvas(32, init=spec, seed=6)())


def test_an_init_picture_of_another_size_is_fitted_and_said_to_be(striped_png, caplog):
    """`--init` of a 100 px picture on a 96 px canvas was scaled without a word (infer refuses that picture)."""
    import logging

    width, height = Image.open(striped_png).size  # 80 x 40
    with caplog.at_level(logging.WARNING, logger="artstudio.canvas"):
        Canvas((height, width), init=str(striped_png))
    assert "scaled" not in caplog.text  # its own size: nothing to say
    with caplog.at_level(logging.WARNING, logger="artstudio.canvas"):
        Canvas(height, init=str(striped_png))
    assert f"init picture {width}×{height} scaled and centre-cropped to the {height}×{height} canvas" in caplog.text


def test_init_values():
    assert torch.all(Canvas(32)().detach() == 128 / 255)
    orange = Canvas(32, init="#ff8000")().detach()
    assert (orange[:, 0, 0] * 255).round().tolist() == [255, 128, 0]
    assert Canvas(32, init="red")().detach()[:, 5, 5].tolist() == [1.0, 0.0, 0.0]
    assert torch.all(Canvas(32, init="gray", texture=0.5)() == 128 / 255)  # texture is for icons only
    assert Canvas(32, init="noise", seed=0)().std() > 0.25  # uniform noise: std 1/sqrt(12)


def test_icon_texture_adds_high_frequency_noise(striped_png):
    icon = Image.new("RGB", (64, 64), (100, 150, 200))  # mid-tones, so no noise is clipped
    plain = Canvas.from_image(icon)().detach()
    textured = Canvas(64, init=icon, seed=0, texture=0.1)().detach()
    delta = textured - plain
    assert 0.03 < delta.abs().mean() < 0.07  # uniform in [-0.1, 0.1]: mean |delta| 0.05
    # Per-pixel noise: neighbouring changes are uncorrelated (high frequency), not a smooth tint.
    corr = torch.corrcoef(torch.stack([delta[:, :, 1:].flatten(), delta[:, :, :-1].flatten()]))[0, 1]
    assert abs(corr) < 0.05
    from_path = Canvas((40, 80), init=f"icon+texture:{striped_png}", seed=0)().detach()
    assert not torch.equal(from_path, Canvas((40, 80), init=str(striped_png))().detach())


def test_non_square_image_is_centre_cropped(striped_png):
    # 40×80 scaled to cover 32×32 -> 32×64, then the centre 32 columns (green band plus edges) kept.
    image = Canvas(32, init=str(striped_png))().detach()
    centre = image[:, 16, 16]
    assert centre.tolist() == [0.0, 1.0, 0.0]
    assert image[0, 16, 0] > 0.9 and image[2, 16, 31] > 0.9  # red left edge, blue right edge


def test_from_image_keeps_size_and_pixels_exactly(striped_png):
    canvas = Canvas.from_image(striped_png)
    assert canvas.size == (40, 80)
    assert torch.equal(canvas(), image_to_tensor(Image.open(striped_png)))
    assert np.array_equal(np.array(canvas.to_pil()), np.array(Image.open(striped_png).convert("RGB")))
    assert Canvas.from_image(Image.open(striped_png), parametrization="pixels").size == (40, 80)


def test_regularizers_zero_at_init_and_positive_after_a_change():
    canvas = Canvas(32, init="noise", seed=0)
    assert canvas.regularization(tv=1.0, l2=1.0).item() == 0.0
    with torch.no_grad():
        canvas.param[:, 10:20, 10:20] += 1.0
    tv = canvas.regularization(tv=1.0)
    l2 = canvas.regularization(l2=1.0)
    assert tv.item() > 0 and l2.item() > 0
    assert canvas.regularization().item() == 0.0
    l2.backward()
    assert canvas.param.grad[:, 15, 15].abs().sum() > 0 and canvas.param.grad[:, 0, 0].abs().sum() == 0


@pytest.mark.parametrize("parametrization", ["sigmoid", "pixels"])
def test_state_dict_round_trip_reproduces_the_image(parametrization, tmp_path):
    canvas = Canvas(32, init="noise", seed=0, parametrization=parametrization)
    with torch.no_grad():
        canvas.param.add_(0.05 * torch.randn_like(canvas.param))
    from safetensors.torch import load_file, save_file

    save_file(canvas.state_dict(), tmp_path / "canvas.safetensors")
    again = Canvas(32, parametrization=parametrization)
    again.load_state_dict(load_file(tmp_path / "canvas.safetensors"))
    assert torch.equal(again(), canvas())
    assert torch.equal(again.initial, canvas.initial)


def test_bad_inits_are_clear_errors(tmp_path):
    with pytest.raises(ArtStudioError, match="unknown canvas init 'blurple'.*#rrggbb"):
        Canvas(32, init="blurple")
    # A run folder named as the init ("unknown canvas init", or "Is a directory" with a slash): its artwork, named.
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(ArtStudioError, match=r"is a folder; pass a picture file \(PNG"):
        Canvas(32, init=str(run))
    Image.new("RGB", (32, 32)).save(run / "artwork.png")
    with pytest.raises(ArtStudioError, match=r"is a folder; pass a picture file, such as its artwork: .*run/artwork\.png"):
        Canvas(32, init=str(run) + "/")
    missing = tmp_path / "missing.png"
    with pytest.raises(ArtStudioError, match=f"{missing}.*does not exist"):
        Canvas(32, init=str(missing))
    with pytest.raises(ArtStudioError, match="missing.png"):
        Canvas(32, init=f"icon+texture:{missing}")
    # Nothing after the prefix read the current folder: "is not a readable image ...: Is a directory: '.'".
    with pytest.raises(ArtStudioError, match="names no picture after 'icon\\+texture:'"):
        Canvas(32, init="icon+texture:")
    with pytest.raises(ArtStudioError, match=f"{run} is a folder; give a picture file"):
        Canvas(32, init=f"icon+texture:{run}")
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    with pytest.raises(ArtStudioError, match=f"{junk}.*not a readable image"):
        Canvas(32, init=str(junk))
    with pytest.raises(ArtStudioError, match="parametrization"):
        Canvas(32, parametrization="fourier")
    with pytest.raises(ArtStudioError, match="positive"):
        Canvas(0)
