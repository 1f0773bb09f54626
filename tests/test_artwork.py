"""Artwork PNGs: lossless round trip with metadata, clear errors for broken files and wrong models."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from artstudio.artwork import (
    METADATA_KEY,
    ArtworkMetadata,
    chat_template_sha256,
    check_compatible,
    export_artwork,
    metadata_for,
    read_artwork,
)
from artstudio.errors import ArtworkError, CanvasSizeError


@dataclass
class FakeGeometry:
    """Stands in for backbone.Geometry: sides must be multiples of `factor`."""

    patch_size: int = 16
    merge_size: int = 2

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    def misfit(self, height: int, width: int) -> str | None:
        if height % self.factor or width % self.factor:
            return f"{height}x{width} is not a multiple of {self.factor}"
        return None

    def check(self, height: int, width: int) -> None:
        if self.misfit(height, width):
            raise CanvasSizeError(f"canvas {self.misfit(height, width)}")

    def to_dict(self) -> dict:
        return {"patch_size": self.patch_size, "merge_size": self.merge_size, "factor": self.factor}


def _backbone(model_id="tiny/qwen3_5", family="qwen3_5", template="{{ messages }}", patch=16):
    return SimpleNamespace(model_id=model_id, family=family, geometry=FakeGeometry(patch),
                           processor=SimpleNamespace(chat_template=template, tokenizer=None))


def _canvas(h=64, w=96) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _meta(backbone=None, h=64, w=96) -> ArtworkMetadata:
    return metadata_for(backbone or _backbone(), canvas_size=(h, w), placement="first",
                        task={"name": "gsm8k", "description": "grade-school maths"}, objective="grpo",
                        steps=120, metrics={"accuracy": 0.5}, extra={"seed": 3})


def test_round_trip_is_lossless_with_metadata(tmp_path):
    image, meta = _canvas(), _meta()
    path = export_artwork(image, tmp_path / "gallery" / "art.png", meta)
    art = read_artwork(path)
    assert np.array_equal(np.asarray(art.image), np.asarray(image))
    assert art.image.mode == "RGB" and art.path == path
    assert art.metadata == meta
    assert art.metadata.canvas_size == (64, 96)
    assert art.metadata.chat_template_sha256 == chat_template_sha256(_backbone().processor)
    assert art.metadata.format_version == 1 and art.metadata.created.endswith("+00:00")
    assert [p.name for p in path.parent.iterdir()] == ["art.png"]  # no temp file left behind
    assert json.loads(Image.open(path).text[METADATA_KEY])["task"]["name"] == "gsm8k"


def test_export_refuses_size_mismatch_and_non_png(tmp_path):
    with pytest.raises(ArtworkError, match="canvas_size"):
        export_artwork(_canvas(32, 32), tmp_path / "a.png", _meta())
    with pytest.raises(ArtworkError, match=r"\.png"):
        export_artwork(_canvas(), tmp_path / "a.jpg", _meta())


def test_plain_png_has_no_metadata_and_is_accepted_if_it_fits(tmp_path):
    _canvas(64, 64).save(tmp_path / "plain.png")
    art = read_artwork(tmp_path / "plain.png")
    assert art.metadata is None
    assert check_compatible(art, _backbone()) == []
    _canvas(60, 64).save(tmp_path / "odd.png")
    with pytest.raises(ArtworkError, match="does not fit"):
        check_compatible(read_artwork(tmp_path / "odd.png"), _backbone())


def test_missing_file(tmp_path):
    with pytest.raises(ArtworkError, match=r"missing\.png: no such file"):
        read_artwork(tmp_path / "missing.png")


def test_a_folder_is_named_as_a_folder_with_what_to_pass(tmp_path):
    """A folder was reported as `no such file`; an exported LoRA adapter folder is the common one."""
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with pytest.raises(ArtworkError, match=r"adapter is a PEFT adapter folder .*takes an artwork PNG file.*"
                                           r"eval and infer take it as --adapter .*adapter.*PeftModel\.from_pretrained"):
        read_artwork(adapter)
    run = tmp_path / "run"
    run.mkdir()
    _canvas().save(run / "artwork.png")
    with pytest.raises(ArtworkError, match=r"run is a folder; expected a PNG artwork file such as .*run/artwork\.png"):
        read_artwork(run)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtworkError, match=r"empty is a folder; expected a PNG artwork file$"):
        read_artwork(tmp_path / "empty")
    # A LoRA run folder was pointed to `artstudio export` "for an art run": it has an adapter to export instead.
    lora = tmp_path / "fu-lora"
    (lora / "final").mkdir(parents=True)
    (lora / "config.json").write_text(json.dumps({"method": "lora"}))
    with pytest.raises(ArtworkError, match=r"fu-lora is a lora run, which has no artwork; `artstudio export .*fu-lora -o "
                                           r".*fu-lora-adapter/` writes its adapter folder"):
        read_artwork(lora)
    (lora / "config.json").write_text(json.dumps({"method": "art"}))
    with pytest.raises(ArtworkError, match=r"fu-lora is a run folder without an artwork"):
        read_artwork(lora)


def test_sizes_read_width_by_height_as_pictures_do(tmp_path):
    """PIL and `file` say width×height; a 128-wide, 96-tall picture was reported as 96x128."""
    Image.new("RGB", (128, 96)).save(tmp_path / "wide.png")
    with pytest.raises(ArtworkError, match="canvas size 128×96 does not fit"):
        check_compatible(read_artwork(tmp_path / "wide.png"), _backbone(patch=20))
    img = _canvas(64, 96)  # 96 wide, 64 tall
    meta = dict(json.loads(_meta().to_json()), canvas_size=[64, 64])
    info = PngImagePlugin.PngInfo()
    info.add_itxt(METADATA_KEY, json.dumps(meta))
    img.save(tmp_path / "resized.png", pnginfo=info)
    with pytest.raises(ArtworkError, match=r"is \[64, 64\] \(height, width: a 64×64 picture\) but the picture is 96×64"):
        read_artwork(tmp_path / "resized.png")


def test_text_file_renamed_png(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("these are my notes")
    with pytest.raises(ArtworkError, match=r"notes\.png: cannot be decoded"):
        read_artwork(bad)


def test_corrupt_and_truncated_png(tmp_path):
    path = export_artwork(_canvas(), tmp_path / "art.png", _meta())
    data = bytearray(path.read_bytes())
    (tmp_path / "short.png").write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ArtworkError, match=r"short\.png: cannot be decoded"):
        read_artwork(tmp_path / "short.png")
    data[len(data) // 2: len(data) // 2 + 64] = b"\x00" * 64  # smash image data (CRC fails)
    (tmp_path / "smashed.png").write_bytes(bytes(data))
    with pytest.raises(ArtworkError, match=r"smashed\.png: cannot be decoded"):
        read_artwork(tmp_path / "smashed.png")


def test_jpeg_is_refused(tmp_path):
    _canvas().save(tmp_path / "art.jpeg", format="JPEG")
    with pytest.raises(ArtworkError, match="not a PNG"):
        read_artwork(tmp_path / "art.jpeg")


def _with_text(tmp_path, text: str):
    info = PngImagePlugin.PngInfo()
    info.add_itxt(METADATA_KEY, text)
    path = tmp_path / "meta.png"
    _canvas().save(path, pnginfo=info)
    return path


def test_missing_or_malformed_metadata_fields(tmp_path):
    good = json.loads(_meta().to_json())
    del good["family"]
    with pytest.raises(ArtworkError, match=r'meta\.png: metadata has no "family" field'):
        read_artwork(_with_text(tmp_path, json.dumps(good)))
    with pytest.raises(ArtworkError, match="not valid JSON"):
        read_artwork(_with_text(tmp_path, "{not json"))
    bad = json.loads(_meta().to_json()) | {"canvas_size": [64]}
    with pytest.raises(ArtworkError, match='"canvas_size"'):
        read_artwork(_with_text(tmp_path, json.dumps(bad)))
    bad = json.loads(_meta().to_json()) | {"steps": "many"}
    with pytest.raises(ArtworkError, match='"steps" has the wrong type'):
        read_artwork(_with_text(tmp_path, json.dumps(bad)))
    resized = json.loads(_meta().to_json()) | {"canvas_size": [32, 32]}
    with pytest.raises(ArtworkError, match="resized"):
        read_artwork(_with_text(tmp_path, json.dumps(resized)))


@pytest.mark.parametrize(
    ("other", "field"),
    [
        (_backbone(model_id="Qwen/Qwen3.5-0.8B"), "model_id"),
        (_backbone(family="qwen3_vl"), "family"),
        (_backbone(template="{{ other }}"), "chat_template_sha256"),
    ],
)
def test_model_mismatch_refused_unless_allowed(tmp_path, other, field):
    art = read_artwork(export_artwork(_canvas(), tmp_path / "art.png", _meta()))
    assert check_compatible(art, _backbone()) == []
    with pytest.raises(ArtworkError) as err:
        check_compatible(art, other)
    msg = str(err.value)
    assert field in msg and "--allow-model-mismatch" in msg
    mismatches = check_compatible(art, other, allow_mismatch=True)
    assert len(mismatches) == 1 and field in mismatches[0]


def test_size_that_does_not_fit_is_refused_even_when_allowed(tmp_path):
    art = read_artwork(export_artwork(_canvas(56, 56), tmp_path / "art.png", _meta(h=56, w=56)))
    with pytest.raises(ArtworkError, match="does not fit"):
        check_compatible(art, _backbone(), allow_mismatch=True)


@pytest.mark.parametrize("mode, said", [("L", "grayscale"), ("P", "a palette"), ("RGB", None), ("RGBA", None)])
def test_an_artwork_re_saved_in_another_colour_mode_is_used_with_a_warning(tmp_path, caplog, mode, said):
    """An artwork an editor re-saved in grayscale loaded without a word and scored 0 %."""
    path = export_artwork(_canvas(), tmp_path / "art.png", _meta())
    with Image.open(path) as img:
        info = PngImagePlugin.PngInfo()
        info.add_text(METADATA_KEY, img.text[METADATA_KEY])
        img.convert(mode).save(tmp_path / "copy.png", pnginfo=info)
    art = read_artwork(tmp_path / "copy.png")
    assert art.image.mode == "RGB" and art.mode == mode
    with caplog.at_level("WARNING", logger="artstudio"):
        check_compatible(art, _backbone())
    if said:
        assert f"mode {mode} ({said}" in caplog.text and "re-saved" in caplog.text
    else:
        assert "mode" not in caplog.text
