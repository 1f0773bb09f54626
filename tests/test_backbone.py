"""Backbone: geometry from the processor config, loading + freezing, and the precomputed-vision forward."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from artstudio.backbone import DEFAULT_MODEL, Geometry, load_backbone, resolve_dtype
from artstudio.errors import CanvasSizeError, ConfigError, ModelLoadError
from artstudio.tiny import FAMILIES, char_tokenizer, tiny_processor
from artstudio.vision import image_to_tensor, to_pixel_values

# Qwen3.5-0.8B's real preprocessor config: patch 16, merge 2, 256×256 .. 4096×4096 pixels.
QWEN35 = Geometry(16, 2, 2, (0.5,) * 3, (0.5,) * 3, min_pixels=65536, max_pixels=16777216)


def _random_image(side: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))


def _side(family: str) -> int:
    return 56 if family.startswith("qwen2") else 64


# ----------------------------------------------------------------------------- geometry

def test_default_model_is_inside_the_package():
    import artstudio

    assert Path(DEFAULT_MODEL).is_absolute()
    assert Path(DEFAULT_MODEL) == Path(artstudio.__file__).resolve().parent / "models" / "studio-tiny"


@pytest.mark.parametrize("family,patch,mean0", [("qwen2_5_vl", 14, 0.48145466), ("qwen3_5", 16, 0.5)])
def test_geometry_comes_from_the_processor(family, patch, mean0):
    geo = Geometry.from_processor(tiny_processor(family, char_tokenizer()))
    assert (geo.patch_size, geo.merge_size, geo.temporal_patch_size) == (patch, 2, 2)
    assert geo.factor == 2 * patch
    assert geo.image_mean[0] == pytest.approx(mean0)
    assert (geo.min_pixels, geo.max_pixels) == (32 * 32, 512 * 512)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_pictures_token_count_agrees_with_the_image_processor(family):
    """The row-length check counts a row's own picture without running the processor; the count must be the
    processor's, for sides that round down to nothing, past max_pixels, below min_pixels and long and thin."""
    processor = tiny_processor(family, char_tokenizer())
    geo = Geometry.from_processor(processor)
    sizes = [(1, 1), (10, 300), (31, 33), (56, 64), (100, 100), (512, 512), (513, 700), (2000, 100), (1000, 1000),
             (3, 590), (777, 5)]
    for height, width in sizes:
        grid = processor.image_processor(images=[Image.new("RGB", (width, height))], return_tensors="pt")["image_grid_thw"]
        assert geo.picture_tokens(height, width) == int(grid[0].prod()) // geo.merge_size**2, (family, height, width)
    with pytest.raises(CanvasSizeError, match="more than 200 times as long"):
        geo.picture_tokens(3, 1254)  # the processor refuses it too


def test_geometry_reads_min_max_pixels_attributes_when_size_is_absent():
    ip = SimpleNamespace(patch_size=14, merge_size=2, temporal_patch_size=2, image_mean=[0.4] * 3,
                         image_std=[0.3] * 3, size=None, min_pixels=3136, max_pixels=1003520)
    geo = Geometry.from_processor(SimpleNamespace(image_processor=ip))
    assert (geo.min_pixels, geo.max_pixels, geo.factor) == (3136, 1003520, 28)


def test_geometry_rejects_a_processor_without_patches():
    ip = SimpleNamespace(image_mean=[0.5] * 3, image_std=[0.5] * 3, size={"shortest_edge": 1, "longest_edge": 2})
    with pytest.raises(ModelLoadError, match="patch_size"):
        Geometry.from_processor(ip)


def test_tokens_and_valid_sizes_match_the_paper_reference():
    assert QWEN35.tokens(256) == 64  # the paper's 256×256 canvas is 64 visual tokens
    assert QWEN35.tokens(256, 512) == 128
    assert QWEN35.valid_sizes(352) == [256, 288, 320, 352]
    assert QWEN35.nearest_valid(300) == [288, 320]
    assert QWEN35.nearest_valid(288) == [288]
    assert QWEN35.nearest_valid(100) == [256]  # below min_pixels: only the smallest valid side


def test_check_lists_nearest_sizes_and_their_tokens():
    QWEN35.check(256)
    QWEN35.check(256, 320)
    with pytest.raises(CanvasSizeError) as err:
        QWEN35.check(300)
    msg = str(err.value)
    assert "multiple of 32" in msg and "288×288 (81 tokens)" in msg and "320×320 (100 tokens)" in msg
    with pytest.raises(CanvasSizeError, match=r"below the model's min_pixels 65536.*256×256 \(64 tokens\)"):
        QWEN35.check(128)
    with pytest.raises(CanvasSizeError, match=r"above the model's max_pixels.*4096×4096"):
        QWEN35.check(8192)
    # Sizes read as pictures do, width×height: check(height=256, width=300) is a 300×256 picture.
    with pytest.raises(CanvasSizeError, match=r"canvas size 300×256 .*Nearest valid sizes: 288×256"):
        QWEN35.check(256, 300)


@pytest.mark.parametrize("side", [0, -32])
def test_a_side_of_zero_or_less_is_refused_with_a_reason(side):
    with pytest.raises(CanvasSizeError, match=r"each side must be a positive number of pixels, a multiple of 32\. "
                                              r"Smallest valid sizes: 256×256"):
        QWEN35.check(side)
    with pytest.raises(CanvasSizeError, match="positive number of pixels"):
        QWEN35.check(256, side)


def test_geometry_to_dict_is_json_ready():
    import json

    d = json.loads(json.dumps(QWEN35.to_dict()))
    assert d["patch_size"] == 16 and d["factor"] == 32 and d["image_mean"] == [0.5, 0.5, 0.5]


# ----------------------------------------------------------------------------- loading

def test_load_backbone_freezes_and_describes(tiny_model_dir):
    bb = load_backbone(tiny_model_dir("qwen3_5"), device="cpu")
    assert bb.family == "qwen3_5" and bb.model_id == tiny_model_dir("qwen3_5")
    assert not bb.model.training
    assert all(not p.requires_grad for p in bb.model.parameters())
    assert bb.dtype == torch.float32 and bb.device.type == "cpu"
    tok = bb.tokenizer
    assert bb.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert bb.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert bb.vision_end_token_id == tok.convert_tokens_to_ids("<|vision_end|>")
    assert bb.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert bb.pad_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    info = bb.describe()
    assert info["family"] == "qwen3_5" and info["params"] == sum(p.numel() for p in bb.model.parameters())
    assert info["geometry"]["factor"] == 32 and info["valid_sizes"][0] == 32 and info["valid_sizes"][-1] == 512
    assert isinstance(bb.input_embeddings(), torch.nn.Embedding)


def test_load_backbone_honours_dtype(tiny_model_dir):
    bb = load_backbone(tiny_model_dir("qwen2_5_vl"), device="cpu", dtype="bf16")
    assert bb.dtype == torch.bfloat16 and next(bb.model.parameters()).dtype == torch.bfloat16


def test_resolve_dtype():
    assert resolve_dtype(None, "cpu") == torch.float32
    assert resolve_dtype(None, "cuda:0") == torch.bfloat16
    assert resolve_dtype("fp16", "cpu") == torch.float16
    with pytest.raises(ConfigError, match="--dtype 'int3' is not a dtype; use bf16, fp16 or fp32"):
        resolve_dtype("int3", "cpu")


def test_a_device_this_machine_lacks_is_a_clear_error_not_a_torch_traceback():
    from artstudio.backbone import check_device

    check_device(None)
    check_device("cpu")
    with pytest.raises(ConfigError, match="--device 'tpu' is not a device; use cpu, cuda"):
        check_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device cuda:1: this machine has no CUDA GPU"):
            check_device("cuda:1")


def test_missing_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match=r"does not exist; pass a Hugging Face id like Qwen/Qwen3.5-0.8B"):
        load_backbone(str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_backbone("./no-such-model-folder")


def test_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_backbone(str(tmp_path))


def test_non_qwen_model_names_the_type_found(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                intermediate_size=8).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match=r"'llama' model.*qwen2_5_vl.*qwen3_5"):
        load_backbone(str(tmp_path))


# ----------------------------------------------------------------------------- forward parity

def _chat_batch(bb, images):
    messages = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"q{i}?"}]}]
                for i in range(len(images))]
    text = [bb.processor.apply_chat_template(m, add_generation_prompt=True) for m in messages]
    return bb.processor(text=text, images=images, return_tensors="pt", padding=True)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "qwen3_5"])
def test_one_encoding_broadcast_matches_pixel_values(tiny_model_dir, family):
    bb = load_backbone(tiny_model_dir(family), device="cpu")
    image = _random_image(_side(family), seed=1)
    batch = _chat_batch(bb, [image, image, image])
    with torch.no_grad():
        reference = bb.model(**batch).logits

    canvas = image_to_tensor(image).requires_grad_()
    pixel_values, grid = to_pixel_values(canvas, bb.geometry)
    encoded = bb.encode_images(pixel_values, grid)
    out = bb.forward(batch["input_ids"], batch["attention_mask"], batch["mm_token_type_ids"],
                     image_outputs=bb.concat_image_outputs([encoded] * 3), image_grid_thw=grid.repeat(3, 1),
                     labels=batch["input_ids"])
    torch.testing.assert_close(out.logits, reference, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert canvas.grad is not None and canvas.grad.abs().sum() > 0


def test_joining_one_encoding_per_row_shares_it_and_sums_its_gradient(tiny_model_dir):
    bb = load_backbone(tiny_model_dir("qwen3_vl"), device="cpu")
    canvas = image_to_tensor(_random_image(64, 2)).requires_grad_()
    pixel_values, grid = to_pixel_values(canvas, bb.geometry)
    encoded = bb.encode_images(pixel_values, grid)
    rep = bb.concat_image_outputs([encoded] * 4)  # one canvas encoding, once per row
    assert len(rep.pooler_output) == 4 and all(t is encoded.pooler_output[0] for t in rep.pooler_output)
    assert len(rep.deepstack_features) == len(encoded.deepstack_features)
    assert all(len(layer) == 4 for layer in rep.deepstack_features)
    leaf = encoded.pooler_output[0]
    leaf.retain_grad()  # the one encoding every row of the batch shares
    torch.cat(rep.pooler_output).sum().backward()
    assert torch.equal(leaf.grad, torch.full_like(leaf, 4.0))


def test_concat_interleaves_different_images_in_sequence_order(tiny_model_dir):
    bb = load_backbone(tiny_model_dir("qwen3_vl"), device="cpu")
    a, b = _random_image(64, 3), _random_image(64, 4)
    batch = _chat_batch(bb, [a, b, a])
    with torch.no_grad():
        reference = bb.model(**batch).logits
        enc = {}
        for name, img in (("a", a), ("b", b)):
            pv, grid = to_pixel_values(image_to_tensor(img), bb.geometry)
            enc[name] = bb.encode_images(pv, grid)
        joined = bb.concat_image_outputs([enc["a"], enc["b"], enc["a"]])
        out = bb.forward(batch["input_ids"], batch["attention_mask"], image_outputs=joined,
                         image_grid_thw=batch["image_grid_thw"])
    torch.testing.assert_close(out.logits, reference, atol=1e-5, rtol=1e-5)


def test_inputs_embeds_with_ids_gives_the_same_logits(tiny_model_dir):
    bb = load_backbone(tiny_model_dir("qwen2_5_vl"), device="cpu")
    image = _random_image(56, 5)
    batch = _chat_batch(bb, [image])
    with torch.no_grad():
        reference = bb.model(**batch).logits
        pv, grid = to_pixel_values(image_to_tensor(image), bb.geometry)
        out = bb.forward(batch["input_ids"], batch["attention_mask"], image_outputs=bb.encode_images(pv, grid),
                         image_grid_thw=grid, inputs_embeds=bb.input_embeddings()(batch["input_ids"]))
    torch.testing.assert_close(out.logits, reference, atol=1e-5, rtol=1e-5)


def test_unreachable_hub_id_is_a_model_load_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="nobody/not-a-model"):
        load_backbone("nobody/not-a-model")


def test_a_hub_id_with_no_route_to_the_hub_fails_at_once_saying_so(monkeypatch):
    """Offline, an id not in the cache retried the Hub for about 23 s (a line each time) before failing."""
    import urllib.error
    import urllib.request

    import transformers

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)

    def no_route(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", no_route)
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained",
                        lambda *a, **k: pytest.fail("the Hub client was asked"))
    with pytest.raises(ModelLoadError, match=r"nobody/not-a-model is not a local folder and not in the Hugging Face "
                                             r"cache, and the Hub .* cannot be reached \(Name or service not known\)"):
        load_backbone("nobody/not-a-model")
