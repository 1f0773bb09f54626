"""The vLLM request: the canvas travels as an exact, lossless PNG data URL, where training put it."""

from __future__ import annotations

import json
import shlex
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from artstudio.artwork import export_artwork, metadata_for
from artstudio.errors import ArtworkError, ConfigError
from artstudio.serving import curl_command, decode_data_url, png_data_url, serve_command, vllm_request


class _Geometry:
    def to_dict(self) -> dict:
        return {"patch_size": 16, "merge_size": 2, "factor": 32}


def _artwork(tmp_path, placement: str = "first", name: str = "art.png") -> tuple:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    backbone = SimpleNamespace(model_id="some/model", family="qwen3_5", geometry=_Geometry(),
                               processor=SimpleNamespace(chat_template="{{ messages }}"))
    meta = metadata_for(backbone, canvas_size=(64, 64), placement=placement)
    return export_artwork(image, tmp_path / name, meta), pixels


def test_request_has_canvas_first_as_exact_png(tmp_path):
    path, pixels = _artwork(tmp_path)
    req = vllm_request(path, "3 4", "some/model", max_tokens=12)
    assert req["model"] == "some/model" and req["temperature"] == 0 and req["max_tokens"] == 12
    (message,) = req["messages"]
    assert message["role"] == "user"
    first, second = message["content"]
    assert first["type"] == "image_url" and second == {"type": "text", "text": "3 4"}
    url = first["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    decoded = np.asarray(decode_data_url(url))
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, pixels)
    json.dumps(req)  # serialisable as the request body


def test_placement_comes_from_the_metadata(tmp_path):
    path, _ = _artwork(tmp_path, placement="after-text")
    content = vllm_request(path, "hello", "m")["messages"][0]["content"]
    assert [c["type"] for c in content] == ["text", "image_url"]
    # an explicit placement wins over the metadata
    content = vllm_request(path, "hello", "m", placement="first")["messages"][0]["content"]
    assert [c["type"] for c in content] == ["image_url", "text"]


def test_plain_png_and_pil_image_go_first(tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(32, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "plain.png")
    for source in (tmp_path / "plain.png", Image.fromarray(pixels)):
        content = vllm_request(source, "q", "m")["messages"][0]["content"]
        assert content[0]["type"] == "image_url"
        assert np.array_equal(np.asarray(decode_data_url(content[0]["image_url"]["url"])), pixels)


def test_extra_image_follows_the_canvas(tmp_path):
    path, _ = _artwork(tmp_path)
    extra = Image.new("RGB", (32, 32), (255, 0, 0))
    content = vllm_request(path, "q", "m", image=extra)["messages"][0]["content"]
    assert [c["type"] for c in content] == ["image_url", "image_url", "text"]
    assert decode_data_url(content[1]["image_url"]["url"]).getpixel((0, 0)) == (255, 0, 0)


def test_no_artwork_is_text_only():
    req = vllm_request(None, "q", "m", temperature=0.7)
    assert req["messages"][0]["content"] == [{"type": "text", "text": "q"}] and req["temperature"] == 0.7


def test_curl_command_round_trips(tmp_path):
    path, _ = _artwork(tmp_path)
    req = vllm_request(path, "it's 3 4", "m")
    words = shlex.split(curl_command(req, "http://host:8000/v1/chat/completions"))
    assert words[:3] == ["curl", "-s", "http://host:8000/v1/chat/completions"]
    assert json.loads(words[words.index("-d") + 1]) == req
    assert "--enable-prefix-caching" in serve_command("Qwen/Qwen3.5-0.8B")


def test_bad_inputs(tmp_path):
    (tmp_path / "not.png").write_bytes(b"not an image")
    with pytest.raises(ArtworkError, match="not.png"):
        vllm_request(tmp_path / "not.png", "q", "m")
    with pytest.raises(ArtworkError, match="no such file"):
        png_data_url(tmp_path / "missing.png")
    with pytest.raises(ConfigError, match="max_tokens"):
        vllm_request(None, "q", "m", max_tokens=0)
    with pytest.raises(ConfigError, match="placement"):
        vllm_request(None, "q", "m", placement="middle")


def test_a_sampled_request_carries_its_seed_and_curl_takes_the_base_url():
    """`infer --print-request --temperature 0.5 --seed 3` printed no seed (and warned the seed was unused);
    `--print-curl --url http://HOST/v1` (the URL `artstudio serve` prints) posted to /v1 and got 404."""
    from artstudio.inference import InferConfig, unused_options

    assert vllm_request(None, "3 8", "studio-tiny", temperature=0.5, seed=3)["seed"] == 3
    assert "seed" not in vllm_request(None, "3 8", "studio-tiny", temperature=0, seed=3)  # greedy: no samples
    assert not any("--seed" in note for note in unused_options(InferConfig(prompt="3 8", print_request=True,
                                                                           temperature=0.5, seed=3)))
    for base in ("http://127.0.0.1:8123/v1", "http://127.0.0.1:8123/v1/"):
        assert curl_command({"model": "m"}, base).startswith("curl -s http://127.0.0.1:8123/v1/chat/completions ")
