"""The one training loop: gradients reach only the canvas, loss falls, resume is exact, bad steps skip."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest
import torch

from artstudio.backbone import load_backbone
from artstudio.data import Example, write_jsonl
from artstudio.errors import ConfigError, DataError
from artstudio.methods import build_method
from artstudio.objectives.sft import compute_loss
from artstudio.training import TrainConfig, batch_indices, train

ROWS = [Example(prompt=f"{a} {b}", answer=str(a + b), id=str(i)) for i, (a, b) in enumerate([(1, 2), (3, 4), (2, 2), (5, 1), (0, 7), (6, 3)])]


@pytest.fixture()
def task_dir(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", ROWS)
    write_jsonl(tmp_path / "test.jsonl", ROWS[:4])
    return tmp_path


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl", "qwen3_5"])
def test_step_updates_canvas_only(tiny_model_dir, family):
    bb = load_backbone(tiny_model_dir(family))
    side = 56 if family.startswith("qwen2") else 64
    method = build_method("art", bb, {"canvas_size": side})
    before = method.canvas().detach().clone()
    opt = torch.optim.AdamW(method.trainable_parameters(), lr=0.1)
    compute_loss(method, ROWS[:4]).backward()
    opt.step()
    assert all(p.grad is None for p in bb.model.parameters()), "a backbone parameter received a gradient"
    assert method.num_trainable() == 3 * side * side
    assert not torch.equal(before, method.canvas().detach()), "the canvas did not change"


def test_canvas_encoded_once_per_step(qwen35, monkeypatch):
    method = build_method("art", qwen35, {"canvas_size": 64})
    calls = []
    original = qwen35.encode_images
    monkeypatch.setattr(qwen35, "encode_images", lambda *a, **k: calls.append(1) or original(*a, **k))
    compute_loss(method, ROWS)  # a batch of 6 rows
    assert len(calls) == 1


def test_a_frozen_canvas_is_encoded_once_until_forgotten(qwen35, monkeypatch):
    method = build_method("art", qwen35, {"canvas_size": 64})
    method.canvas.param.requires_grad_(False)  # a served artwork
    calls = []
    original = qwen35.encode_images
    monkeypatch.setattr(qwen35, "encode_images", lambda *a, **k: calls.append(1) or original(*a, **k))
    first = method.slot_outputs()
    assert method.slot_outputs() is first and len(calls) == 1
    method.forget_encoding()  # what `serve` does with its canvas cache off (benchmarks/load_test.py)
    again = method.slot_outputs()
    assert len(calls) == 2 and again is not first
    assert all(torch.equal(a, b) for a, b in zip(again.pooler_output, first.pooler_output))


def test_loss_falls_when_memorising(qwen35, task_dir, tmp_path):
    res = train(TrainConfig(out=str(tmp_path / "run"), data=str(task_dir), steps=25, batch_size=6, lr=0.3,
                            checkpoint_every=0, snapshot_every=0, eval_data=None, seed=0),
                backbone=qwen35, progress=False, canvas_size=64, init="noise")
    losses = [h["loss"] for h in res.history if "loss" in h and h["loss"] is not None]
    assert len(losses) == 25
    # The batch is the whole (fixed) dataset, so every change is signal, not sampling noise; a random
    # tiny model is only weakly steerable by its image, hence the small margin.
    assert losses[-1] < losses[0] - 0.01, losses
    assert sum(b < a for a, b in zip(losses, losses[1:])) >= 20, "the loss should fall almost every step"


def test_run_folder_contents(qwen35, task_dir, tmp_path):
    out = tmp_path / "run"
    res = train(TrainConfig(out=str(out), data=str(task_dir), steps=4, batch_size=2, checkpoint_every=2, snapshot_every=2),
                backbone=qwen35, progress=False, canvas_size=64)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["steps"] == 4 and cfg["method_options"] == {"canvas_size": 64}
    metrics = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3, 4]
    assert (out / "snapshots" / "step-00002.png").exists() and (out / "snapshots" / "step-00004.png").exists()
    assert (out / "checkpoint" / "state.safetensors").exists()
    assert res.artwork is not None and res.artwork.exists()
    assert (out / "eval" / "predictions.jsonl").exists() and 0.0 <= res.metrics["accuracy"] <= 1.0


def test_resume_matches_uninterrupted_run(qwen35, task_dir, tmp_path):
    common = dict(data=str(task_dir), batch_size=2, checkpoint_every=3, snapshot_every=0, eval_data=None, lr=0.2, seed=3)
    full = train(TrainConfig(out=str(tmp_path / "full"), steps=6, **common), backbone=qwen35, progress=False, canvas_size=64)
    # An interrupted run: stop after the checkpoint at step 3, then resume to 6.
    stops = iter([False, False, False, True])
    train(TrainConfig(out=str(tmp_path / "cut"), steps=6, **common), backbone=qwen35, progress=False,
          should_stop=lambda: next(stops), canvas_size=64)
    resumed = train(TrainConfig(out=str(tmp_path / "cut"), steps=6, resume=True, **common), backbone=qwen35,
                    progress=False, canvas_size=64)
    assert torch.equal(full.method.canvas.param, resumed.method.canvas.param)
    steps = [h["step"] for h in resumed.history if "loss" in h]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_a_resume_keeps_the_frozen_models_dtype(tiny_model_dir, task_dir, tmp_path, monkeypatch):
    """A run begun under `accelerate launch --mixed_precision bf16` resumed in fp32 without a word."""
    common = dict(model=tiny_model_dir("qwen3_5"), data=str(task_dir), batch_size=2, checkpoint_every=1,
                  snapshot_every=0, eval_data=None, out=str(tmp_path / "run"))
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    stops = iter([False, True])
    train(TrainConfig(steps=3, **common), progress=False, should_stop=lambda: next(stops), canvas_size=64)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]["dtype"] == "bf16"
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    with pytest.raises(ConfigError, match=r"--dtype fp32 \(the run's frozen model ran in bf16\)"):
        train(TrainConfig(steps=3, resume=True, dtype="fp32", **common), progress=False, canvas_size=64)
    resumed = train(TrainConfig(steps=3, resume=True, **common), progress=False, canvas_size=64)
    assert resumed.method.backbone.dtype == torch.bfloat16
    assert json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]["dtype"] == "bf16"


def test_train_scores_a_regex_metric_with_its_pattern(qwen35, task_dir, tmp_path):
    """`train` had no --pattern: under --metric regex each answer was its own pattern (`eval` had one)."""
    common = dict(data=str(task_dir), batch_size=2, steps=1, snapshot_every=0, metric="regex")
    with pytest.raises(ConfigError, match=r"invalid regular expression '\[0-9'"):
        train(TrainConfig(out=str(tmp_path / "bad"), pattern="[0-9", **common), backbone=qwen35, progress=False,
              canvas_size=64)
    assert not (tmp_path / "bad").exists()
    result = train(TrainConfig(out=str(tmp_path / "run"), pattern=".*", **common), backbone=qwen35, progress=False,
                   canvas_size=64)
    assert result.metrics["accuracy"] == 1.0  # every answer matches ".*"; as its own pattern, few would


def test_an_sft_resume_may_score_with_another_metric(qwen35, task_dir, tmp_path):
    """The metric only scores an SFT run; a resume that named another one was refused as another run."""
    common = dict(data=str(task_dir), batch_size=2, checkpoint_every=1, snapshot_every=0, out=str(tmp_path / "run"))
    stops = iter([False, True])
    train(TrainConfig(steps=3, metric="exact", **common), backbone=qwen35, progress=False,
          should_stop=lambda: next(stops), canvas_size=64)
    done = train(TrainConfig(steps=3, resume=True, metric="regex", **common), backbone=qwen35, progress=False,
                 canvas_size=64)
    assert done.metrics["metric"] == "regex" and done.metrics["steps"] == 3


def test_resume_refuses_another_run_and_a_finished_one_but_may_train_longer(qwen35, task_dir, tmp_path):
    common = dict(data=str(task_dir), batch_size=2, checkpoint_every=2, snapshot_every=0, seed=3)
    out = tmp_path / "run"
    first = train(TrainConfig(out=str(out), steps=4, **common), backbone=qwen35, progress=False, canvas_size=64)
    record = (out / "config.json").read_text()
    other = tmp_path / "other"
    write_jsonl(other / "train.jsonl", ROWS[::-1][:4])
    for change, named in [(dict(data=str(other)), "--data"), (dict(seed=4), "--seed 4 (the run has 3)"),
                          (dict(lr=0.5), "--lr 0.5 (the run has 0.05)"),
                          (dict(canvas_size=96), "method option canvas_size 96 (the run has 64)")]:
        config = TrainConfig(out=str(out), steps=6, resume=True, **(common | {k: v for k, v in change.items() if k != "canvas_size"}))
        with pytest.raises(ConfigError, match="these differ: .*" + named.replace("(", r"\(").replace(")", r"\)")):
            train(config, backbone=qwen35, progress=False, canvas_size=change.get("canvas_size", 64))
        assert (out / "config.json").read_text() == record  # the run's record is untouched
    # The same rows from another folder, and the default rate named, are the same run.
    copy = tmp_path / "copy"
    write_jsonl(copy / "train.jsonl", ROWS)
    same = dict(common, data=str(copy), lr=0.05)
    with pytest.raises(ConfigError, match="already finished its 4 steps; nothing to resume"):
        train(TrainConfig(out=str(out), steps=4, resume=True, **same), backbone=qwen35, progress=False, canvas_size=64)
    # A method option typed as its default is the run's own too (it was "tv_weight 0.0 (the run has its default)").
    with pytest.raises(ConfigError, match="already finished its 4 steps; nothing to resume"):
        train(TrainConfig(out=str(out), steps=4, resume=True, method_options={"tv_weight": 0.0, "placement": "first"},
                          **same), backbone=qwen35, progress=False, canvas_size=64)
    # More steps continue the finished run (its time counts both segments); fewer than it reached are refused.
    longer = train(TrainConfig(out=str(out), steps=6, resume=True, **same), backbone=qwen35, progress=False,
                   canvas_size=64)
    assert [h["step"] for h in longer.history if "loss" in h] == [1, 2, 3, 4, 5, 6]
    assert longer.metrics["train_seconds"] > first.metrics["train_seconds"] > 0
    assert json.loads((out / "config.json").read_text())["steps"] == 6
    with pytest.raises(ConfigError, match="already at step 6; --steps 5 would end before it"):
        train(TrainConfig(out=str(out), steps=5, resume=True, **same), backbone=qwen35, progress=False, canvas_size=64)


def test_a_resume_after_the_data_file_was_edited_says_the_rows_changed(qwen35, tmp_path):
    """It said "--data D holds other training rows than the run's D. Resume with the run's own options (leave them
    out ...)" to a user who had typed no option, naming the same folder twice."""
    data = tmp_path / "task"
    write_jsonl(data / "train.jsonl", ROWS[:4])
    out = tmp_path / "run"
    common = dict(out=str(out), data=str(data), batch_size=2, checkpoint_every=1, snapshot_every=0)
    train(TrainConfig(steps=2, **common), backbone=qwen35, progress=False, canvas_size=64)
    write_jsonl(data / "train.jsonl", ROWS[:5])
    with pytest.raises(ConfigError, match=f"the training rows of {re.escape(str(data))} .*changed since the run in "
                                          f"{re.escape(str(out))} started.*Restore them, or start a new run"):
        train(TrainConfig(steps=4, resume=True, **common), backbone=qwen35, progress=False, canvas_size=64)


def test_a_method_that_trains_nothing_runs_no_steps(qwen35, task_dir, tmp_path, caplog):
    """`--method base --steps 50` (or t2l) ran 50 steps at lr 0 that changed nothing and reported them."""
    from artstudio.training import export_run

    with caplog.at_level("WARNING", logger="artstudio.train"):
        res = train(TrainConfig(out=str(tmp_path / "run"), data=str(task_dir), method="base", steps=5, batch_size=2),
                    backbone=qwen35, progress=False)
    assert res.metrics["steps"] == 0 and not [h for h in res.history if h.get("loss") is not None]
    assert "method base trains nothing (a reference): the run scores it as it is, with 0 steps, not 5" in caplog.text
    assert json.loads((tmp_path / "run" / "config.json").read_text())["steps"] == 0
    with pytest.raises(ConfigError, match="has nothing to export"):  # not "pass -o FOLDER" first
        export_run(tmp_path / "run", tmp_path / "base.png")


def test_a_run_that_started_from_a_picture_exports_after_it_moves(qwen35, task_dir, tmp_path, monkeypatch):
    from PIL import Image

    from artstudio.training import export_run

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (64, 64), (200, 30, 30)).save("start.png")
    train(TrainConfig(out="runs/a", data=str(task_dir), steps=2, batch_size=2, snapshot_every=0), backbone=qwen35,
          progress=False, canvas_size=64, init="start.png")
    (tmp_path / "start.png").unlink()  # the start picture's relative path no longer leads anywhere
    (tmp_path / "runs" / "a").rename(tmp_path / "moved")
    png = export_run(tmp_path / "moved", tmp_path / "a.png")
    assert Image.open(png).size == (64, 64)


def test_a_refused_run_leaves_no_folder_and_the_corrected_one_goes_through(qwen35, task_dir, tmp_path):
    with pytest.raises(ConfigError, match="unknown option"):  # refused before the starts or any folder
        train(TrainConfig(out=str(tmp_path / "a"), data=str(task_dir), steps=2, batch_size=2), backbone=qwen35,
              progress=False, canvas_sise=64)
    with pytest.raises(DataError):
        train(TrainConfig(out=str(tmp_path / "a"), data=str(tmp_path / "missing.jsonl"), steps=2), backbone=qwen35,
              progress=False)
    assert not (tmp_path / "a").exists()
    train(TrainConfig(out=str(tmp_path / "a"), data=str(task_dir), steps=1, batch_size=2, snapshot_every=0),
          backbone=qwen35, progress=False, canvas_size=64)
    assert (tmp_path / "a" / "result.json").is_file()
    # A folder the user made is theirs: a refusal leaves it as it was, and a run is not mixed into it (`--out /`
    # wrote config.json, final/ and the rest into the root folder).
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    for data in (tmp_path / "missing.jsonl", task_dir):
        with pytest.raises(ConfigError, match=r"mine holds files that are not a run \(notes.txt\), which writes "
                                              r"config.json, metrics.jsonl, result.json and more there"):
            train(TrainConfig(out=str(tmp_path / "mine"), data=str(data), steps=1), backbone=qwen35, progress=False)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    (tmp_path / "empty").mkdir()  # an empty folder, or one holding only what a run writes, is taken
    train(TrainConfig(out=str(tmp_path / "empty"), data=str(task_dir), steps=1, batch_size=2, snapshot_every=0),
          backbone=qwen35, progress=False, canvas_size=64)
    # A project folder holding the user's own data/ is theirs too; data/ is a run's only when the run trains on it
    # (the app copies an upload to RUN/data/).
    project = tmp_path / "project"
    shutil.copytree(task_dir, project / "data")
    with pytest.raises(ConfigError, match=r"project holds files that are not a run \(data\)"):
        train(TrainConfig(out=str(project), data=str(task_dir), steps=1), backbone=qwen35, progress=False)
    train(TrainConfig(out=str(project), data=str(project / "data"), steps=1, batch_size=2, snapshot_every=0),
          backbone=qwen35, progress=False, canvas_size=64)
    assert (project / "result.json").is_file()


def test_answers_the_metric_cannot_score_are_refused_before_training(qwen35, task_dir, tmp_path):
    """`--metric json` on plain answers trained every step, then failed at the evaluation and kept no result;
    resuming failed the same way and export found no final/. Now refused first, naming the row."""
    letters = [Example(prompt=w, answer=w[0].upper()) for w in ("apple", "stone", "river", "cloud")]
    write_jsonl(tmp_path / "fu" / "train.jsonl", letters)
    write_jsonl(tmp_path / "fu" / "test.jsonl", letters[:2])
    with pytest.raises(DataError, match=r"fu/test\.jsonl:1: reference answer 'A' is not a number"):
        train(TrainConfig(out=str(tmp_path / "a"), data=str(tmp_path / "fu"), steps=2, batch_size=2, metric="numeric"),
              backbone=qwen35, progress=False, canvas_size=64)
    assert not (tmp_path / "a").exists()
    # The training rows too: the starts' validation split and the fit check score them with the metric.
    with pytest.raises(DataError, match=r"fu/train\.jsonl:1: reference answer 'A' is not a number"):
        train(TrainConfig(out=str(tmp_path / "a"), data=str(tmp_path / "fu" / "train.jsonl"), steps=2, batch_size=2,
                          metric="numeric", eval_data=str(task_dir / "test.jsonl")),
              backbone=qwen35, progress=False, canvas_size=64)
    assert not (tmp_path / "a").exists()
    # A built-in task is written into the run folder, which the refusal removes: the error names the task, not
    # a file that is gone ("a/task/max-bracket/test.jsonl:1").
    with pytest.raises(DataError, match=r"^built-in task max-bracket, test\.jsonl:1: reference answer '\[\d\]' is not"):
        train(TrainConfig(out=str(tmp_path / "a"), data="max-bracket", steps=2, batch_size=2, metric="numeric"),
              backbone=qwen35, progress=False, canvas_size=64)
    assert not (tmp_path / "a").exists()


def test_non_finite_loss_skips_step(qwen35, task_dir, tmp_path, monkeypatch, caplog):
    import artstudio.objectives.sft as T

    real = T.compute_loss
    calls = {"n": 0}

    def flaky(method, examples, slot=None):
        calls["n"] += 1
        loss = real(method, examples, slot)
        return loss * float("nan") if calls["n"] == 2 else loss

    monkeypatch.setattr(T, "compute_loss", flaky)
    res = train(TrainConfig(out=str(tmp_path / "run"), data=str(task_dir), steps=3, batch_size=2,
                            checkpoint_every=0, snapshot_every=0, eval_data=None),
                backbone=qwen35, progress=False, canvas_size=64)
    records = [h for h in res.history if "loss" in h]
    assert records[1].get("skipped") and records[1]["loss"] is None
    assert all(math.isfinite(v) for v in res.method.canvas.param.flatten().tolist())
    assert "non-finite loss" in caplog.text


def test_batch_order_is_a_seeded_permutation():
    n = 7
    seen = [i for step in range(7) for i in batch_indices(n, step, 0, 1, 1, seed=5)]
    assert sorted(seen) == list(range(n)), "one epoch visits every row once"
    assert batch_indices(n, 2, 0, 3, 1, 5) == batch_indices(n, 2, 0, 3, 1, 5)
    assert batch_indices(n, 0, 0, 7, 1, 5) != batch_indices(n, 0, 0, 7, 1, 6)
    # A batch larger than the rows holds each row once (as a data loader gives it), never repeats.
    assert sorted(batch_indices(n, 3, 0, 100_000, 1, 5)) == list(range(n))


def test_errors_are_clear(qwen35, task_dir, tmp_path):
    with pytest.raises(ConfigError, match="no training data"):
        train(TrainConfig(out=str(tmp_path / "a")), backbone=qwen35, progress=False)
    with pytest.raises(DataError, match="neither a file"):
        train(TrainConfig(out=str(tmp_path / "b"), data=str(tmp_path / "missing.jsonl")), backbone=qwen35, progress=False)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError):
        train(TrainConfig(out=str(tmp_path / "c"), data=str(tmp_path / "empty.jsonl")), backbone=qwen35, progress=False)
    with pytest.raises(ConfigError, match="unknown option"):
        train(TrainConfig(out=str(tmp_path / "d"), data=str(task_dir)), backbone=qwen35, progress=False,
              canvas_sise=64)
    with pytest.raises(ConfigError, match=r"GRPO options \(--grpo-group-size\) apply only to --objective grpo"):
        train(TrainConfig(out=str(tmp_path / "e"), data=str(task_dir), grpo={"group_size": 4}), backbone=qwen35,
              progress=False)
    assert not (tmp_path / "e").exists()
    for out in (None, ""):  # None was a TypeError from pathlib; "" trained into the working folder
        with pytest.raises(ConfigError, match=f"training option out is {out!r}; expected the run's folder"):
            train(TrainConfig(out=out, data=str(task_dir)), backbone=qwen35, progress=False)


def test_keep_default_system_flag_reaches_every_prompt(tiny_model_dir, task_dir, tmp_path):
    from artstudio.methods import load_artwork
    from artstudio.generation import prepare_rows

    bb = load_backbone(tiny_model_dir("qwen2_5_vl"))
    decode = lambda m: bb.tokenizer.decode(prepare_rows(m, ROWS[:1])[0]["ids"])  # noqa: E731
    res = train(TrainConfig(out=str(tmp_path / "sys"), data=str(task_dir), steps=1, batch_size=2, checkpoint_every=0,
                            snapshot_every=0, keep_default_system=True), backbone=bb, progress=False, canvas_size=56)
    assert "You are a helpful assistant." in decode(res.method)
    served = load_artwork(res.artwork, bb)  # the artwork remembers its prompt format
    assert "You are a helpful assistant." in decode(served)
    res = train(TrainConfig(out=str(tmp_path / "nosys"), data=str(task_dir), steps=1, batch_size=2, checkpoint_every=0,
                            snapshot_every=0), backbone=bb, progress=False, canvas_size=56)
    assert "You are a helpful assistant." not in decode(res.method)


def test_prompt_format_belongs_to_each_method_not_the_shared_backbone(tiny_model_dir, task_dir, tmp_path):
    """The Playground's cross-talk: one backbone serves a cached artwork A (trained with the default system
    turn) while artwork B (trained without) is loaded and another run starts; A keeps its prompt format."""
    from artstudio.generation import prepare_rows
    from artstudio.ui.settings import AppSettings
    from artstudio.ui.studio import Studio

    model = tiny_model_dir("qwen2_5_vl")
    studio = Studio(AppSettings(runs_dir=str(tmp_path / "runs"), canvases_dir=str(tmp_path / "canvases"), model=model))
    try:
        bb = studio.backbone(model)
        common = dict(data=str(task_dir), steps=1, batch_size=2, checkpoint_every=0, snapshot_every=0)
        a = train(TrainConfig(out=str(tmp_path / "runs" / "a"), keep_default_system=True, **common),
                  backbone=bb, progress=False, canvas_size=56)
        train(TrainConfig(out=str(tmp_path / "runs" / "b"), **common), backbone=bb, progress=False, canvas_size=56)
        decode = lambda m: bb.tokenizer.decode(prepare_rows(m, ROWS[:1])[0]["ids"])  # noqa: E731
        served_a = studio.art_method(model, "runs/a/artwork.png")
        assert "You are a helpful assistant." in decode(served_a)
        served_b = studio.art_method(model, "runs/b/artwork.png")  # loading B ...
        train(TrainConfig(out=str(tmp_path / "runs" / "c"), **common), backbone=bb, progress=False,
              canvas_size=56)  # ... and starting a run on the shared backbone ...
        assert studio.art_method(model, "runs/a/artwork.png") is served_a  # ... leave the cached A as it was
        assert "You are a helpful assistant." in decode(served_a)
        assert "You are a helpful assistant." not in decode(served_b)
        assert a.method.keep_default_system and not hasattr(bb, "keep_default_system")
    finally:
        studio.close()


@pytest.mark.parametrize("name", ["art", "soft-prompt", "lora", "vera", "adalink"])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tiny_model_dir, name):
    from artstudio.training import gradient_checkpointing

    bb = load_backbone(tiny_model_dir("qwen3_5"))
    method = build_method(name, bb, {"canvas_size": 64, "seed": 0} if name in ("art", "soft-prompt") else {"seed": 0})

    def loss_and_grads():
        for p in method.trainable_parameters():
            p.grad = None
        loss = compute_loss(method, ROWS[:4])
        loss.backward()
        return loss.detach(), [None if p.grad is None else p.grad.clone() for p in method.trainable_parameters()]

    plain, plain_grads = loss_and_grads()
    was_training = method.model.training
    with gradient_checkpointing(method.model, True):
        assert any(getattr(m, "gradient_checkpointing", False) for m in method.model.modules())
        ckpt, ckpt_grads = loss_and_grads()
    assert method.model.training == was_training and not any(getattr(m, "gradient_checkpointing", False)
                                                             for m in method.model.modules())
    torch.testing.assert_close(ckpt, plain, atol=1e-5, rtol=1e-5)
    assert any(g is not None for g in plain_grads)
    for a, b in zip(ckpt_grads, plain_grads):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_a_run_with_gradient_checkpointing_trains_the_same_canvas(qwen35, task_dir, tmp_path):
    common = dict(data=str(task_dir), steps=2, batch_size=2, checkpoint_every=0, snapshot_every=0, eval_data=None)
    # transformers turns the cache off under checkpointing, so that run is unshared (`artstudio.forward`);
    # Adam's normalisation would turn the shared pass's 1e-7 rounding into 1e-5 on near-zero gradients.
    plain = train(TrainConfig(out=str(tmp_path / "a"), shared_prefix=False, **common), backbone=qwen35, progress=False,
                  canvas_size=64)
    ckpt = train(TrainConfig(out=str(tmp_path / "b"), gradient_checkpointing=True, **common), backbone=qwen35,
                 progress=False, canvas_size=64)
    torch.testing.assert_close(ckpt.method.canvas.param, plain.method.canvas.param, atol=1e-5, rtol=0)


# --- what a new user's own data and Python calls met (2026-12-04 new-user pass) ----------------------

def test_rows_the_model_cannot_read_and_answers_that_are_all_empty_are_refused_before_training(qwen35, task_dir,
                                                                                               tmp_path):
    """A 20,000-character answer ran the machine out of memory with no message; all-empty answers trained."""
    long = tmp_path / "long"
    write_jsonl(long / "train.jsonl", ROWS[:3] + [Example(prompt="1 2", answer="9 " * 5000, id="huge")])
    with pytest.raises(DataError, match=r"long/train\.jsonl:4: the row is too long: its prompt and answer take "
                                        r"[\d,]+ tokens.*model's 4,096 positions"):
        train(TrainConfig(out=str(tmp_path / "a"), data=str(long), steps=1, batch_size=2), backbone=qwen35,
              progress=False, canvas_size=64)
    # GRPO samples --grpo-max-new-tokens after each prompt: refused before the run, by that option's name
    with pytest.raises(DataError, match=r"ask for fewer new tokens \(--grpo-max-new-tokens\)"):
        train(TrainConfig(out=str(tmp_path / "a"), data=str(task_dir), steps=1, batch_size=2, objective="grpo",
                          grpo={"max_new_tokens": 4090, "group_size": 2}), backbone=qwen35, progress=False, canvas_size=64)
    # The canvas's own tokens count: a row that fits beside a 64-pixel canvas (4 tokens) does not beside a
    # 512-pixel one (256), which a fixed allowance of 96 positions let through to run past the model's positions.
    edge = tmp_path / "edge"
    write_jsonl(edge / "train.jsonl", ROWS[:3] + [Example(prompt="1 " * 1960, answer="3", id="edge")])
    with pytest.raises(DataError, match=r"edge/train\.jsonl:4: .* and with the chat template and the canvas \(256 tokens\)"):
        train(TrainConfig(out=str(tmp_path / "a"), data=str(edge), steps=1, batch_size=2), backbone=qwen35,
              progress=False, canvas_size=512)
    assert not (tmp_path / "a").exists()
    train(TrainConfig(out=str(tmp_path / "fits"), data=str(edge), steps=1, batch_size=2, snapshot_every=0),
          backbone=qwen35, progress=False, canvas_size=64)
    empty = tmp_path / "empty"
    write_jsonl(empty / "train.jsonl", [Example(prompt=r.prompt, answer="", id=r.id) for r in ROWS])
    with pytest.raises(DataError, match="every training answer is empty"):
        train(TrainConfig(out=str(tmp_path / "a"), data=str(empty), steps=1, batch_size=2), backbone=qwen35,
              progress=False, canvas_size=64)
    assert not (tmp_path / "a").exists()


def test_eval_data_is_spelled_like_data_and_python_callers_get_clear_errors(qwen35, task_dir, tmp_path):
    """--eval-data took only a file; train("path") and TrainConfig(steps="20") ended in TypeErrors."""
    run = train({"out": str(tmp_path / "r"), "data": str(task_dir), "eval_data": str(task_dir), "steps": 1,
                 "batch_size": 2, "snapshot_every": 0}, backbone=qwen35, progress=False, canvas_size=64)
    assert run.metrics["eval_n"] == 4  # the folder's test split
    with pytest.raises(ConfigError, match="train\\(\\) takes a TrainConfig or a dict"):
        train(str(task_dir))
    with pytest.raises(ConfigError, match="training option steps is '20'; expected a number"):
        TrainConfig(data="x", steps="20").check()
    with pytest.raises(ConfigError, match="training option data is 5 \\(int\\); expected text"):
        TrainConfig(data=5).check()
    assert TrainConfig(data=task_dir, out=tmp_path / "p").data == str(task_dir)  # a Path is welcome


def test_a_resume_with_other_row_pictures_is_another_run(qwen35, tmp_path):
    from PIL import Image

    data = tmp_path / "pics"
    for i, colour in enumerate(["red", "blue"]):
        Image.new("RGB", (32, 32), colour).save(tmp_path / f"{colour}.png")
    rows = [Example(prompt=r.prompt, answer=r.answer, id=r.id, image=str(tmp_path / "red.png")) for r in ROWS]
    write_jsonl(data / "train.jsonl", rows)
    common = dict(out=str(tmp_path / "run"), data=str(data), batch_size=2, checkpoint_every=1, snapshot_every=0)
    train(TrainConfig(steps=1, **common), backbone=qwen35, progress=False, canvas_size=64)
    Image.new("RGB", (32, 32), "blue").save(tmp_path / "red.png")  # the same path, another picture
    with pytest.raises(ConfigError, match=r"the training rows of .*pics \(or the pictures they name\) changed since"):
        train(TrainConfig(steps=2, resume=True, **common), backbone=qwen35, progress=False, canvas_size=64)


def test_export_overwrite_replaces_an_earlier_export_never_a_run_or_other_files(qwen35, tiny_model_dir, task_dir,
                                                                                 tmp_path, capsys):
    """`export RUN -o RUN --overwrite` replaced the run with the adapter; `-o PARENT` deleted every run in it."""
    from artstudio.training import export_run

    run = tmp_path / "runs" / "lora"
    train(TrainConfig(out=str(run), data=str(task_dir), method="lora", steps=1, batch_size=2,
                      model=tiny_model_dir("qwen3_5")), backbone=qwen35, progress=False)
    for target in (run, run.parent):
        for overwrite in (False, True):  # without --overwrite it said "pass --overwrite", which then refused
            with pytest.raises(ConfigError, match="is the run folder .* or a folder that holds it"):
                export_run(run, target, overwrite=overwrite)
    (tmp_path / "README.md").write_text("keep")
    for overwrite in (False, True):  # --overwrite replaced the file with the adapter's folder
        with pytest.raises(ConfigError, match="README.md is a file; an adapter export is a folder"):
            export_run(run, tmp_path / "README.md", overwrite=overwrite)
    assert (tmp_path / "README.md").read_text() == "keep"
    assert (run / "config.json").is_file() and (run / "final" / "method.json").is_file()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="holds files that are not an exported adapter \\(notes.txt\\)"):
        export_run(run, mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep"
    adapter = export_run(run, tmp_path / "adapter")
    assert (adapter / "adapter_config.json").is_file()
    assert export_run(run, tmp_path / "adapter", overwrite=True) == adapter  # an earlier export is replaced
    # Its record names the run's task, steps and accuracy, as an artwork's metadata does; `info` reads it.
    from artstudio.cli import main

    assert main(["info", str(adapter), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)["export"]
    assert record["method"] == "lora" and record["metadata"]["steps"] == 1
    assert record["metadata"]["task"]["name"] == task_dir.name and "accuracy" in record["metadata"]["metrics"]


def test_an_artwork_export_to_a_path_that_is_not_a_png_is_refused_before_overwrite_is_mentioned(qwen35, task_dir,
                                                                                                    tmp_path):
    from artstudio.training import export_run

    run = tmp_path / "art"
    train(TrainConfig(out=str(run), data=str(task_dir), steps=1, batch_size=2, method_options={"canvas_size": 64}),
          backbone=qwen35, progress=False)
    (tmp_path / "README.md").write_text("keep")
    for target in (tmp_path / "README.md", tmp_path):
        for overwrite in (False, True):
            with pytest.raises(ConfigError, match=r"whose artwork is a PNG file; expected a path ending in \.png"):
                export_run(run, target, overwrite=overwrite)
    assert (tmp_path / "README.md").read_text() == "keep"


def test_a_dict_config_takes_method_options_as_keywords_do():
    """README: train() takes a dict of the options; `starts`, `init` or `canvas_size` in it were refused as
    unknown training options, while train(..., starts=1) took them."""
    from artstudio.training import _merge

    config = _merge({"data": "max-bracket", "starts": 1, "canvas_size": 64, "out": "runs/x"}, {"init": "gray"})
    assert config.method_options == {"starts": 1, "canvas_size": 64, "init": "gray"}
    with pytest.raises(ConfigError, match=r"unknown option\(s\) lora_r: neither a training option \(.*steps.*\) "
                                          r"nor an option of method lora \(alpha, dropout, r, "):
        _merge({"data": "max-bracket", "method": "lora", "lora_r": 4}, {})


def test_a_training_file_beside_a_test_split_says_it_is_not_scored(qwen35, task_dir, tmp_path, caplog):
    """`--data folder/train.jsonl` trained with no evaluation and said so only at the end ("no eval data")."""
    import logging

    with caplog.at_level(logging.WARNING, logger="artstudio.train"):
        res = train(TrainConfig(data=str(task_dir / "train.jsonl"), out=str(tmp_path / "run"), steps=1, batch_size=2,
                                snapshot_every=0, checkpoint_every=0), backbone=qwen35, progress=False, canvas_size=64)
    assert "accuracy" not in res.metrics
    assert f"pass --eval-data {task_dir / 'test.jsonl'}, or --data {task_dir} for the whole task folder" in caplog.text
    (task_dir / "test.jsonl").unlink()  # a task folder without a test split trained unscored without a word
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="artstudio.train"):
        res = train(TrainConfig(data=str(task_dir), out=str(tmp_path / "run2"), steps=1, batch_size=2, snapshot_every=0,
                                checkpoint_every=0), backbone=qwen35, progress=False, canvas_size=64, starts=1)
    assert "accuracy" not in res.metrics
    assert f"task folder {task_dir} has no test.jsonl, so the run is not scored" in caplog.text


def test_snapshots_asked_of_a_method_that_paints_nothing_are_said_to_be_skipped(qwen35, task_dir, tmp_path, caplog):
    """`--snapshot-every 1 --method lora` saved nothing without a word."""
    import logging

    with caplog.at_level(logging.WARNING, logger="artstudio.train"):
        train(TrainConfig(data=str(task_dir), method="lora", out=str(tmp_path / "run"), steps=1, batch_size=2,
                          snapshot_every=1, checkpoint_every=0), backbone=qwen35, progress=False)
    assert "--snapshot-every saves the canvas of a painting method; lora paints none" in caplog.text
    assert not (tmp_path / "run" / "snapshots").exists()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="artstudio.train"):  # the default 50 is not the user's request
        train(TrainConfig(data=str(task_dir), method="lora", out=str(tmp_path / "run2"), steps=1, batch_size=2,
                          checkpoint_every=0), backbone=qwen35, progress=False)
    assert "--snapshot-every" not in caplog.text


def test_sft_on_bare_numbers_under_the_numeric_metric_is_refused_before_the_model_loads(tmp_path, caplog, monkeypatch):
    """The numeric metric credits only `Answer: <n>`; a card saying numeric over answers like '4' trained to 0 %
    without a word (the model learns to say '4')."""
    import artstudio.training
    from artstudio.training import check_numeric_format

    monkeypatch.setattr(artstudio.training, "load_backbone", lambda *a, **k: pytest.fail("the model was loaded"))
    rows = [Example(prompt=f"{a} {b}", answer=str(a + b), id=str(i)) for i, (a, b) in enumerate([(1, 2), (3, 4)])]
    write_jsonl(tmp_path / "task" / "train.jsonl", rows)
    (tmp_path / "task" / "card.json").write_text(json.dumps({"name": "sum", "metric": "numeric"}))
    with pytest.raises(DataError, match=r"every training answer is a bare number \('3'\).*'Answer: 3'.*--metric exact"):
        train(TrainConfig(data=str(tmp_path / "task"), out=str(tmp_path / "run"), steps=1), progress=False)
    assert not (tmp_path / "run" / "config.json").exists()
    mixed = rows + [Example(prompt="5 5", answer="Answer: 10", id="2")]
    check_numeric_format(mixed, "--data x")
    assert "2 of 3 training answers are bare numbers ('3')" in caplog.text
    caplog.clear()
    check_numeric_format([Example(prompt="5 5", answer="Answer: 10", id="2")], "--data x")
    assert caplog.text == ""


def test_a_run_on_a_given_backbone_records_that_backbone_s_model(qwen35, task_dir, tmp_path):
    """train(backbone=bb, model=another) trained on bb and recorded the other model: a resume or export_run would
    load it. A model left at the default now takes the backbone's; another is refused."""
    with pytest.raises(ConfigError, match="model is 'Qwen/Qwen3.5-0.8B' but the backbone given is"):
        train(TrainConfig(data=str(task_dir), out=str(tmp_path / "a"), steps=1, model="Qwen/Qwen3.5-0.8B"),
              backbone=qwen35, progress=False)
    assert not (tmp_path / "a").exists()
    train(TrainConfig(data=str(task_dir), out=str(tmp_path / "b"), steps=1, batch_size=2, snapshot_every=0,
                      method_options={"canvas_size": 64, "starts": 1}), backbone=qwen35, progress=False)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["model"] == str(qwen35.model_id)


@pytest.mark.parametrize("options", [[1], "canvas_size=96", 96])
def test_method_options_that_are_not_a_dict_are_refused_by_name(options, tmp_path):
    with pytest.raises(ConfigError, match="method_options is a dict of the method's options"):
        train(data="max-bracket", out=str(tmp_path / "run"), method_options=options, progress=False)


def test_a_resume_from_python_takes_every_option_left_out_from_the_run(qwen35, task_dir, tmp_path):
    """`train(out=RUN, resume=True, steps=N)` failed with 'no training data'; the command line's resume takes
    the run's own options from its config.json."""
    stops = iter([False, True])
    train(TrainConfig(data=str(task_dir), out=str(tmp_path / "run"), steps=3, batch_size=2, lr=0.1,
                      checkpoint_every=1, snapshot_every=0, method_options={"canvas_size": 64, "starts": 1}),
          backbone=qwen35, progress=False, should_stop=lambda: next(stops))
    done = train(out=str(tmp_path / "run"), resume=True, steps=4, backbone=qwen35, progress=False)
    assert done.metrics["steps"] == 4
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["data"], saved["lr"], saved["steps"]) == (str(task_dir), 0.1, 4)


def test_empty_answers_are_warned_about_and_a_result_s_repr_stays_short(qwen35, task_dir, tmp_path, caplog):
    """A row with "answer": "" trained without a word; TrainResult's repr printed every step's record."""
    rows = ROWS + [Example(prompt="9 9", answer="", id="blank")]
    write_jsonl(tmp_path / "t" / "train.jsonl", rows)
    result = train(TrainConfig(data=str(tmp_path / "t" / "train.jsonl"), out=str(tmp_path / "run"), steps=2,
                               batch_size=2, snapshot_every=0, method_options={"canvas_size": 64, "starts": 1}),
                   backbone=qwen35, progress=False)
    assert "1 of 7 training rows have an empty answer" in caplog.text and "say nothing" in caplog.text
    assert "history" not in repr(result) and "'loss'" not in repr(result) and len(repr(result)) < 2000
    assert repr(qwen35).startswith(f"Backbone({str(qwen35.model_id)!r}, family='qwen3_5'")


@pytest.mark.parametrize("card, data, name", [({"name": ""}, "data/words", "words"),
                                              ({}, "data/words/train.jsonl", "words"),
                                              ({}, "rows.jsonl", "rows"),
                                              ({"name": "upper"}, "data/words", "upper")])
def test_an_export_names_its_task_even_when_the_card_leaves_the_name_empty(card, data, name):
    from artstudio.training import export_artwork_of

    class Recorder:
        def export(self, path, **metadata):
            self.metadata = metadata
            return path

    method = Recorder()
    assert export_artwork_of(method, "a.png", card=card, data=data, objective="sft", steps=1, metrics={}) == "a.png"
    assert method.metadata["task"]["name"] == name


def test_a_resume_message_shows_a_rate_as_it_was_written():
    """A GRPO run's rate, ART's default scaled by the objective, read 0.005000000000000001 in the refusal."""
    from artstudio.checkpoint import shown

    assert shown(0.05 * 0.1) == "0.005" and shown(1e-12) == "1e-12" and shown(0.1 + 0.2) == "0.3"
    assert shown(None) == "its default" and shown(3) == "3" and shown({"r": 4}) == '{"r": 4}'
