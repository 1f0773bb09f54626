"""The shipped studio-tiny model loads through the public loader like any Qwen checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from artstudio.backbone import DEFAULT_MODEL, load_backbone
from artstudio.data import Example, load_jsonl
from artstudio.evaluation import evaluate
from artstudio.methods import build_method
from artstudio.tasks import list_tasks, make_task
from artstudio.objectives.sft import compute_loss

GALLERY = Path(__file__).resolve().parents[1] / "canvases"

pytestmark = pytest.mark.skipif(not (Path(DEFAULT_MODEL) / "config.json").exists(),
                                reason="studio-tiny weights are not in this checkout")


@pytest.fixture(scope="module")
def tiny():
    return load_backbone()


def test_loads_as_a_qwen35_model_named_studio_tiny(tiny):
    assert tiny.family == "qwen3_5"
    assert tiny.model_id == "studio-tiny"
    assert tiny.geometry.patch_size == 16 and tiny.geometry.factor == 32
    assert tiny.recommended_canvas_size == 96 and tiny.geometry.tokens(96, 96) == 9
    assert all(not p.requires_grad for p in tiny.model.parameters())
    assert load_backbone("studio-tiny").model_id == "studio-tiny"


def test_weights_are_small_and_safetensors():
    files = list(Path(DEFAULT_MODEL).glob("*.safetensors"))
    assert files and sum(f.stat().st_size for f in files) <= 25 * 2**20
    report = json.loads((Path(DEFAULT_MODEL) / "pretraining_report.json").read_text())
    assert set(report["accuracy"]) == {c.name for c in list_tasks("pretrain")}


def test_canvas_gets_gradients_and_backbone_none(tiny):
    method = build_method("art", tiny)
    assert method.slot_tokens == 9
    loss = compute_loss(method, [Example(prompt="3 4", answer='{"result": 7}')])
    loss.backward()
    assert torch.isfinite(loss)
    assert method.canvas.param.grad is not None
    assert all(p.grad is None for p in tiny.model.parameters())


def test_saved_tokenizer_reproduces_the_training_ids(tiny):
    # transformers reloads a qwen3_5 tokenizer with its own Qwen class; the ids must not change.
    from artstudio.tiny import char_tokenizer

    text = "<|im_start|>user\nName the colour.<|im_end|>\n<|im_start|>assistant\n"
    trained_with = char_tokenizer()(text, add_special_tokens=False)["input_ids"]
    assert tiny.tokenizer(text, add_special_tokens=False)["input_ids"] == trained_with
    assert trained_with[0] == tiny.tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert tiny.tokenizer.decode(trained_with) == text


@pytest.mark.slow
def test_shipped_weights_solve_their_pretraining_tasks(tiny, tmp_path):
    # Through the public path (task folder -> load_jsonl -> evaluate), on fresh rows of every task:
    # guards against weights and task generators drifting apart (pictures redrawn, say).
    base = build_method("base", tiny)
    scores = {}
    for card in list_tasks("pretrain"):
        folder = make_task(card.name, tmp_path / card.name, seed=123, n_train=0, n_test=30)
        scores[card.name] = evaluate(base, load_jsonl(folder / "test.jsonl"), card.metric).accuracy
    assert sum(scores.values()) / len(scores) >= 0.8, scores


@pytest.mark.slow
def test_gallery_artworks_steer_the_shipped_model(tiny, tmp_path):
    # Every gallery PNG, served as a file, still does its held-out task on the shipped weights about
    # as well as the gallery table says (catches new weights shipped with a stale gallery), and the
    # gallery as a whole clears the 80 % held-out target that docs/gallery.md reports.
    from artstudio.methods import load_artwork

    results = json.loads((GALLERY / "results.json").read_text())
    assert {c.name for c in list_tasks("heldout")} <= set(results)
    served = {}
    for card in list_tasks("heldout"):
        test = load_jsonl(make_task(card.name, tmp_path / card.name, seed=0, n_train=0, n_test=40) / "test.jsonl")
        served[card.name] = evaluate(load_artwork(GALLERY / f"{card.name}.png", tiny), test, card.metric).accuracy
        assert abs(served[card.name] - results[card.name]["exported"]) <= 0.2, (card.name, served[card.name])
        if card.name == "max-bracket":
            assert evaluate(build_method("base", tiny), test, card.metric).accuracy <= 0.1
    assert sum(served.values()) / len(served) >= 0.8, served


def test_a_larger_canvas_also_gets_the_text_to_canvas_start(tiny, tmp_path):
    """The shipped T2C paints 96 px; a 192 px run starts from the painting resized, not from grey alone
    (sub-answer at 192 px, 150 steps: 99.0 % from it, 12.0 % from grey; docs/robust.md)."""
    from artstudio.training import TrainConfig, train

    folder = make_task("max-bracket", tmp_path / "task", seed=0, n_train=64, n_test=8)
    res = train(TrainConfig(out=str(tmp_path / "run"), data=str(folder), steps=4, batch_size=4, checkpoint_every=0,
                            snapshot_every=0, method_options={"canvas_size": 192}), backbone=tiny, progress=False)
    choice = json.loads((tmp_path / "run" / "starts" / "choice.json").read_text())
    assert [s["start"] for s in choice["starts"]] == ["gray", "t2c"]
    assert res.method.canvas.size == (192, 192)
    started = json.loads((tmp_path / "run" / "starts" / "1-t2c" / "config.json").read_text())
    assert started["method"] == "t2c+art" and started["method_options"]["canvas_size"] == 192
