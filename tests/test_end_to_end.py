"""The issue's "done when": train -> export -> eval --canvas -> info through the CLI, on tiny Qwen3.5 and
Qwen2.5-VL models saved to folders; the exported PNG serves exactly (same predictions as training, same
loss and greedy answers through the stock AutoProcessor); `load_artwork` refuses what it must."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from artstudio.methods import load_artwork, read_artwork
from artstudio.backbone import load_backbone
from artstudio.cli import main
from artstudio.data import Example, write_jsonl
from artstudio.errors import ArtworkError, ConfigError, DataError
from artstudio.evaluation import evaluate
from artstudio.generation import GenerationConfig, generate
from artstudio.methods import ArtMethod, Method
from artstudio.prompts import end_of_turn_token, render_prompt
from artstudio.objectives.sft import compute_loss

pytestmark = pytest.mark.slow

SIDE = {"qwen3_5": 64, "qwen2_5_vl": 56}
ROWS = [Example(prompt=f"{a} {b}", answer=str(a + b), id=f"r{i}")
        for i, (a, b) in enumerate([(1, 2), (3, 4), (2, 2), (5, 1), (0, 7), (6, 3)])]


def _predictions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module", params=sorted(SIDE))
def trained(request, tiny_model_dir, tmp_path_factory):
    """A CLI-trained run and its CLI-exported artwork, per family."""
    family = request.param
    model = tiny_model_dir(family)
    root = tmp_path_factory.mktemp(f"e2e-{family}")
    write_jsonl(root / "train.jsonl", ROWS)
    write_jsonl(root / "test.jsonl", ROWS[:4])
    run, art = root / "run", root / "art.png"
    assert main(["train", "--model", model, "--data", str(root / "train.jsonl"), "--eval-data", str(root / "test.jsonl"),
                 "--metric", "exact", "--steps", "3", "--batch-size", "2", "--lr", "0.2", "--canvas-size",
                 str(SIDE[family]), "--init", "noise", "--seed", "0", "--out", str(run),
                 "--checkpoint-every", "0", "--snapshot-every", "0"]) == 0
    assert main(["export", str(run), "-o", str(art)]) == 0
    return SimpleNamespace(family=family, model=model, root=root, run=run, art=art, test=root / "test.jsonl")


def test_export_carries_the_run(trained, capsys):
    meta = read_artwork(trained.art).metadata
    result = json.loads((trained.run / "result.json").read_text())
    assert meta.model_id == trained.model and meta.family == trained.family
    assert meta.steps == 3 and meta.objective == "sft" and meta.placement == "first"
    assert meta.task["name"] == trained.root.name  # trained on ROOT/train.jsonl with no card: named for its folder
    assert meta.metrics == {"accuracy": result["accuracy"], "eval_n": 4}
    assert meta.canvas_size == (SIDE[trained.family],) * 2
    # the same pixels as the artwork training wrote itself
    assert np.array_equal(np.asarray(Image.open(trained.art)), np.asarray(Image.open(trained.run / "artwork.png")))
    assert main(["info", str(trained.art)]) == 0
    out = capsys.readouterr().out
    assert "steps" in out and trained.model in out and "first" in out
    assert main(["info", str(trained.art), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["artwork"]["metadata"]["steps"] == 3


def test_eval_canvas_reproduces_training_predictions(trained):
    out = trained.root / "eval"
    assert main(["eval", "--model", trained.model, "--canvas", str(trained.art), "--data", str(trained.test),
                 "--metric", "exact", "--out", str(out)]) == 0
    served = _predictions(out / "predictions.jsonl")
    in_training = _predictions(trained.run / "eval" / "predictions.jsonl")
    assert [set(r) for r in served] == [{"id", "prompt", "answer", "prediction", "correct"}] * 4
    assert [r["prediction"] for r in served] == [r["prediction"] for r in in_training]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 4
    assert metrics["accuracy"] == json.loads((trained.run / "result.json").read_text())["accuracy"]


def test_export_and_eval_never_overwrite_silently(trained, capsys):
    """A second export to the same PNG, or an eval into a folder holding one, is refused unless --overwrite."""
    before = trained.art.read_bytes()
    assert main(["export", str(trained.run), "-o", str(trained.art)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert trained.art.read_bytes() == before
    assert main(["export", str(trained.run), "-o", str(trained.art), "--overwrite"]) == 0
    assert main(["export", str(trained.run)]) == 0  # the run's own artwork.png is the run's to rewrite
    for target, said in ((f"{trained.root / 'slash.png'}/", "ends in a slash, which names a folder"),
                         (str(trained.art / "x.png"), f"{trained.art} is a file, not a folder")):
        assert main(["export", str(trained.run), "-o", target]) == 2  # -o x.png/ wrote a file x.png
        assert said in capsys.readouterr().err
    assert not (trained.root / "slash.png").exists()
    out = trained.root / "eval-twice"
    args = ["eval", "--model", trained.model, "--data", str(trained.test), "--out", str(out)]
    assert main(args) == 0
    written = (out / "predictions.jsonl").read_text()
    capsys.readouterr()
    assert main(args + ["--canvas", str(trained.art)]) == 2
    assert "already holds predictions.jsonl, metrics.json" in capsys.readouterr().err
    assert (out / "predictions.jsonl").read_text() == written
    assert main(args + ["--canvas", str(trained.art), "--overwrite"]) == 0
    # into a run's folder: it wrote there, and the run's --resume then called the folder an evaluation
    capsys.readouterr()
    assert main(["eval", "--model", trained.model, "--data", str(trained.test), "--out", str(trained.run),
                 "--overwrite"]) == 2
    assert f"--out {trained.run} holds a run (config.json), not an evaluation" in capsys.readouterr().err
    assert not (trained.run / "predictions.jsonl").exists()


def test_an_output_that_cannot_be_written_is_refused_before_the_work(trained, capsys, monkeypatch):
    """`eval --out` into a read-only folder answered every row first, then named a hidden temporary file
    (".predictions.jsonl.60c45ikb.tmp: Permission denied"); export named its temporary file too."""
    import tempfile

    import artstudio.evaluation

    locked = trained.root / "locked"
    locked.mkdir()
    real = tempfile.mkstemp

    def mkstemp(*args, **kw):  # a folder the system will not let us write (root ignores chmod, so pretend)
        if Path(kw.get("dir", "")).resolve() == locked.resolve():
            raise PermissionError(13, "Permission denied")
        return real(*args, **kw)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(artstudio.evaluation, "evaluate", lambda *a, **k: pytest.fail("evaluated first"))
    capsys.readouterr()
    assert main(["eval", "--model", trained.model, "--data", str(trained.test), "--out", str(locked / "sub")]) == 2
    assert f"error: cannot use {locked / 'sub'}: Permission denied" in capsys.readouterr().err
    assert main(["export", str(trained.run), "-o", str(locked / "x.png")]) == 2
    assert capsys.readouterr().err.strip() == f"error: cannot use {locked / 'x.png'}: Permission denied"
    assert not list(locked.iterdir())


def test_eval_without_canvas_is_the_base_model(trained):
    out = trained.root / "base"
    assert main(["eval", "--model", trained.model, "--data", str(trained.test), "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["n"] == 4
    assert len(_predictions(out / "predictions.jsonl")) == 4


def _stock_inputs(backbone, example: Example, image: Image.Image, with_answer: bool):
    """What the stock AutoProcessor makes from the chat text and the PNG, plus the prompt length."""
    prompt = render_prompt(backbone.processor, example.prompt, placement="first")
    text = prompt + (example.answer + end_of_turn_token(backbone.tokenizer) if with_answer else "")
    enc = backbone.processor(text=[text], images=[image], return_tensors="pt")
    n_prompt = backbone.processor(text=[prompt], images=[image], return_tensors="pt")["input_ids"].shape[1]
    return enc, n_prompt


def _until_end_of_turn(backbone, ids: list[int]) -> list[int]:
    """A generated answer up to and including the first token that ends the turn (as serving stops)."""
    tok = backbone.tokenizer
    stop = {backbone.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")}
    end = next((i for i, t in enumerate(ids) if t in stop), len(ids) - 1)
    return ids[: end + 1]


def test_png_round_trip_through_the_stock_processor(trained):
    bb = load_backbone(trained.model)
    in_training = Method.load(trained.run / "final", bb)
    served = load_artwork(trained.art, bb)
    image = Image.open(trained.art).convert("RGB")
    for ex in ROWS[:3]:
        enc, n_prompt = _stock_inputs(bb, ex, image, with_answer=True)
        labels = enc["input_ids"].clone()
        labels[:, :n_prompt] = -100
        with torch.no_grad():
            stock = bb.model(**enc, labels=labels).loss.item()
            train_path = compute_loss(in_training, [ex]).item()
            png_path = compute_loss(served, [ex]).item()
        assert abs(stock - train_path) <= 1e-4 * abs(train_path), (stock, train_path)
        assert abs(png_path - train_path) <= 1e-4 * abs(train_path), (png_path, train_path)

        enc, n_prompt = _stock_inputs(bb, ex, image, with_answer=False)
        with torch.no_grad():
            ids = bb.model.generate(**enc, max_new_tokens=8, do_sample=False)
        ours = generate(served, [ex], GenerationConfig(max_new_tokens=8)).token_ids[0][0]
        assert ours == _until_end_of_turn(bb, ids[0, n_prompt:].tolist())


# ---------------------------------------------------------------------------- load_artwork

@pytest.fixture(scope="module")
def qwen35(trained, tiny_model_dir):
    if trained.family != "qwen3_5":
        pytest.skip("load_artwork checks run on the Qwen3.5 artwork")
    return trained


def test_load_artwork_gives_a_frozen_canvas(qwen35):
    method = load_artwork(qwen35.art)  # the model comes from the metadata
    assert isinstance(method, ArtMethod) and method.placement == "first"
    assert method.backbone.model_id == qwen35.model
    assert method.num_trainable() == 0 and all(not p.requires_grad for p in method.canvas.parameters())
    assert np.array_equal(np.asarray(method.image()), np.asarray(Image.open(qwen35.art).convert("RGB")))


def test_plain_png_needs_a_model(qwen35, tmp_path, capsys):
    plain = tmp_path / "plain.png"
    Image.open(qwen35.art).convert("RGB").save(plain)  # same pixels, no metadata
    with pytest.raises(ArtworkError, match="plain PNG .* name the model"):
        load_artwork(plain)
    method = load_artwork(plain, model=qwen35.model)
    assert method.placement == "first" and method.canvas.size == (64, 64)
    assert main(["eval", "--canvas", str(plain), "--data", str(qwen35.test)]) == 2
    assert "--model M" in capsys.readouterr().err
    assert main(["eval", "--canvas", str(plain), "--model", qwen35.model, "--data", str(qwen35.test)]) == 0


def test_python_callers_may_name_the_model_and_pass_plain_rows(qwen35):
    """load_artwork(png, "model") and evaluate(path, rows) were AttributeErrors; rows had to be Examples."""
    method = load_artwork(qwen35.art, qwen35.model)  # a model named where the backbone goes
    assert method.backbone.model_id == qwen35.model
    texts = generate(method, ["1 2", {"prompt": "3 4"}], GenerationConfig(max_new_tokens=4)).texts
    assert len(texts) == 2 and texts[0] == generate(method, [Example(prompt="1 2")], GenerationConfig(max_new_tokens=4)).texts[0]
    with pytest.raises(ConfigError, match="expected a method .*load_artwork.*got 'x.png' \\(str\\)"):
        evaluate("x.png", [Example(prompt="1 2", answer="3")])
    with pytest.raises(DataError, match="no rows"):
        evaluate(method, [])


def test_model_mismatch_is_refused_unless_allowed(qwen35, tmp_path, capsys):
    other = shutil.copytree(qwen35.model, tmp_path / "other-model")  # same weights, another model id
    bb = load_backbone(str(other))
    with pytest.raises(ArtworkError, match="made for another model.*allow-model-mismatch"):
        load_artwork(qwen35.art, bb)
    assert load_artwork(qwen35.art, bb, allow_mismatch=True).backbone is bb
    args = ["eval", "--model", str(other), "--canvas", str(qwen35.art), "--data", str(qwen35.test)]
    assert main(args) == 2
    err = capsys.readouterr().err
    # (transformers may draw a weight-loading bar on stderr first)
    assert "\nerror: " in "\n" + err and "--allow-model-mismatch" in err and "Traceback" not in err
    assert main([*args, "--allow-model-mismatch"]) == 0


def test_eval_on_a_builtin_task_and_infer(qwen35, capsys):
    assert main(["eval", "--model", qwen35.model, "--data", "add-json", "--limit", "4"]) == 0
    out = capsys.readouterr().out
    assert "json" in out and "/4)" in out  # the task card's metric, 4 rows
    assert main(["infer", "--canvas", str(qwen35.art), "--prompt", "1 2", "--max-new-tokens", "4"]) == 0
    served = load_artwork(qwen35.art)
    expected = generate(served, [Example(prompt="1 2")], GenerationConfig(max_new_tokens=4)).texts[0][0]
    assert capsys.readouterr().out == expected + "\n"


def test_eval_and_infer_take_an_exported_adapter(tiny_model_dir, tmp_path, capsys):
    """A LoRA run's exported adapter (or a T2L one) had no command-line way to be scored: eval, infer and
    serve refused the folder. `--adapter` answers as the run did in training."""
    model = tiny_model_dir("qwen3_5")
    write_jsonl(tmp_path / "train.jsonl", ROWS)
    write_jsonl(tmp_path / "test.jsonl", ROWS[:4])
    run, adapter = tmp_path / "run", tmp_path / "adapter"
    assert main(["train", "--model", model, "--method", "lora", "--data", str(tmp_path / "train.jsonl"), "--eval-data",
                 str(tmp_path / "test.jsonl"), "--metric", "exact", "--steps", "3", "--batch-size", "2", "--lr", "0.05",
                 "--out", str(run), "--checkpoint-every", "0"]) == 0
    assert main(["export", str(run), "-o", str(adapter)]) == 0
    capsys.readouterr()
    assert main(["eval", "--adapter", str(adapter), "--data", str(tmp_path / "test.jsonl"), "--metric", "exact",
                 "--out", str(tmp_path / "eval")]) == 0  # the model comes from the adapter's artstudio.json
    said = capsys.readouterr().out
    assert f"adapter   {adapter}" in said and "base model" not in said  # it said "canvas none (base model)"
    about = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert about["adapter"] == str(adapter.resolve()) and about["canvas"] is None and about["model"] == model
    served = _predictions(tmp_path / "eval" / "predictions.jsonl")
    in_training = _predictions(run / "eval" / "predictions.jsonl")
    assert [r["prediction"] for r in served] == [r["prediction"] for r in in_training]
    capsys.readouterr()
    assert main(["infer", "--adapter", str(adapter), "--prompt", ROWS[0].prompt]) == 0
    # (infer's budget is 64 new tokens, the evaluation's the answers' length: the same greedy start)
    assert capsys.readouterr().out.strip().startswith(in_training[0]["prediction"].strip())
    for argv, said in (
            (["--canvas", str(tmp_path / "x.png")], "--canvas and --adapter: give one"),
            (["--model", tiny_model_dir("qwen2_5_vl")], "was made for"),
            (["--print-curl"], "an adapter is served by the engine's own LoRA support")):
        assert main(["infer", "--adapter", str(adapter), "--prompt", "1 2", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and said in err and "Traceback" not in err, err
    assert main(["eval", "--adapter", str(tmp_path), "--data", str(tmp_path / "test.jsonl")]) == 2
    assert "is not a PEFT adapter folder (no adapter_config.json)" in capsys.readouterr().err
    assert main(["eval", "--adapter", str(tmp_path / "nope"), "--data", str(tmp_path / "test.jsonl")]) == 2
    assert f"--adapter {tmp_path / 'nope'} does not exist;" in capsys.readouterr().err
    # A truncated weights file was a raw SafetensorError traceback; a config naming other modules than its
    # weights scored the base model silently (PEFT only warned).
    import shutil

    truncated, edited = tmp_path / "truncated", tmp_path / "edited"
    shutil.copytree(adapter, truncated)
    weights = truncated / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:2000])
    shutil.copytree(adapter, edited)
    cfg = json.loads((edited / "adapter_config.json").read_text())
    (edited / "adapter_config.json").write_text(json.dumps(cfg | {"target_modules": ["k_proj"]}))
    for folder, said in ((truncated, "PEFT cannot load it"), (edited, "does not match its weights")):
        assert main(["eval", "--adapter", str(folder), "--data", str(tmp_path / "test.jsonl")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and said in err and "Traceback" not in err, err
