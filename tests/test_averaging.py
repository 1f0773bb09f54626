"""The moving average of the trained tensors (--ema): what a run scores, snapshots, exports and resumes."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from artstudio.averaging import EMA_PREFIX, UPDATES, ParameterAverage
from artstudio.errors import ConfigError
from artstudio.training import TrainConfig, train
from artstudio.tune.space import load_space


def test_the_average_warms_up_then_holds_its_decay():
    p = torch.nn.Parameter(torch.zeros(3))
    avg = ParameterAverage({"p": p}, 0.95)
    with torch.no_grad():
        p.fill_(1.0)
    avg.update()  # first decay: (1 + 0) / (10 + 0) = 0.1, so 0.1 * 0 + 0.9 * 1
    assert torch.allclose(avg.average["p"], torch.full((3,), 0.9))
    avg.updates = 500
    assert avg.current_decay() == 0.95
    with torch.no_grad():
        p.fill_(2.0)
    avg.update()
    assert torch.allclose(avg.average["p"], torch.full((3,), 0.95 * 0.9 + 0.05 * 2.0))


def test_applied_swaps_the_average_in_and_back_and_apply_keeps_it():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    avg = ParameterAverage({"p": p}, 0.9)
    with torch.no_grad():
        p.mul_(3)  # raw now [3, 6], average still [1, 2]
    with avg.applied():
        assert torch.equal(p.detach(), torch.tensor([1.0, 2.0]))
    assert torch.equal(p.detach(), torch.tensor([3.0, 6.0]))
    avg.apply()
    assert torch.equal(p.detach(), torch.tensor([1.0, 2.0]))


def test_the_state_round_trips_and_a_checkpoint_without_one_is_told():
    p = torch.nn.Parameter(torch.randn(4))
    avg = ParameterAverage({"p": p}, 0.9)
    for _ in range(3):
        with torch.no_grad():
            p.add_(1.0)
        avg.update()
    state = avg.state()
    assert set(state) == {EMA_PREFIX + "p", UPDATES} and int(state[UPDATES]) == 3
    other = ParameterAverage({"p": torch.nn.Parameter(torch.zeros(4))}, 0.9)
    assert other.load_state(state)
    assert torch.equal(other.average["p"], avg.average["p"]) and other.updates == 3
    fresh = ParameterAverage({"p": torch.nn.Parameter(torch.zeros(4))}, 0.9)
    assert not fresh.load_state({"p": torch.zeros(4)})  # a checkpoint written without an average
    assert fresh.updates == 0 and torch.equal(fresh.average["p"], torch.zeros(4))
    with pytest.raises(ValueError):
        ParameterAverage({"p": p}, 1.0)


def test_the_average_is_off_unless_asked(qwen35, sum_task, tmp_path):
    """Off by default for every method: on studio-tiny it moved ART's mean by -1.7 to +0.3 points (robust.md)."""
    out = tmp_path / "run"
    res = train(TrainConfig(out=str(out), data=str(sum_task), steps=2, batch_size=2, checkpoint_every=2,
                            snapshot_every=0, eval_data=None), backbone=qwen35, progress=False, canvas_size=64)
    assert json.loads((out / "config.json").read_text())["resolved"]["ema"] == 0.0 and "ema" not in res.metrics
    assert not any(k.startswith(EMA_PREFIX) for k in _checkpoint(out))


def _checkpoint(out):
    """The trained state a checkpoint holds (the raw tensors and the average's, under EMA_PREFIX)."""
    tensors = load_file(str(out / "checkpoint" / "state.safetensors"))
    return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}


def test_an_art_run_scores_snapshots_and_exports_its_average(qwen35, sum_task, tmp_path):
    out = tmp_path / "run"
    res = train(TrainConfig(out=str(out), data=str(sum_task), steps=6, batch_size=2, lr=0.3, checkpoint_every=6,
                            snapshot_every=6, seed=0, ema=0.95), backbone=qwen35, progress=False, canvas_size=64)
    assert json.loads((out / "config.json").read_text())["resolved"]["ema"] == 0.95
    ckpt = _checkpoint(out)
    raw, average = ckpt["canvas.param"], ckpt[EMA_PREFIX + "canvas.param"]
    assert int(ckpt[UPDATES]) == 6 and not torch.equal(raw, average)
    assert torch.equal(res.method.canvas.param.detach(), average)  # the run ends as its average
    exported = np.asarray(Image.open(res.artwork).convert("RGB"))
    last_snapshot = np.asarray(Image.open(out / "snapshots" / "step-00006.png").convert("RGB"))
    assert np.array_equal(exported, last_snapshot)  # snapshots show the average too
    # The summary says the artwork is an average, and how to get the last step's instead.
    from artstudio.cli import train_summary

    assert res.metrics["ema"] == 0.95
    assert "the canvas averaged over about the last 20 steps (--ema 0.95; --ema 0 keeps" in train_summary(res)
    # The app's metrics panel says it too: the final evaluation's record names the decay.
    from artstudio.ui.jobs import DONE, Job
    from artstudio.ui.train_tab import _metrics_text

    assert [h["ema"] for h in res.history if h.get("final")] == [0.95]
    job = Job(id=1, kind="train", title="art", work=lambda j: None, run_dir=out, total=6, done=6, status=DONE,
              form={"method": "art"}, history=res.history)
    assert "final accuracy of the canvas averaged over about the last 20 steps (--ema 0.95)" in _metrics_text(job)
    job.form = {"method": "lora"}
    assert "of the trained parameters averaged over" in _metrics_text(job)


def test_ema_0_ends_with_the_last_steps_tensors(qwen35, sum_task, tmp_path):
    out = tmp_path / "run"
    res = train(TrainConfig(out=str(out), data=str(sum_task), steps=4, batch_size=2, lr=0.3, checkpoint_every=4,
                            snapshot_every=0, eval_data=None, ema=0.0), backbone=qwen35, progress=False, canvas_size=64)
    ckpt = _checkpoint(out)
    assert not any(k.startswith(EMA_PREFIX) for k in ckpt)
    assert torch.equal(res.method.canvas.param.detach(), ckpt["canvas.param"])
    from artstudio.cli import train_summary

    assert "ema" not in res.metrics and "average" not in train_summary(res)


def test_an_adapter_averages_when_asked(qwen35, sum_task, tmp_path):
    out = tmp_path / "lora"
    res = train(TrainConfig(out=str(out), data=str(sum_task), method="lora", steps=4, batch_size=2, lr=0.01,
                            checkpoint_every=4, snapshot_every=0, eval_data=None, ema=0.5),
                backbone=qwen35, progress=False)
    ckpt = _checkpoint(out)
    state = res.method.trainable_state()
    assert state and all(torch.equal(v.detach(), ckpt[EMA_PREFIX + k]) for k, v in state.items())
    assert any(not torch.equal(ckpt[k], ckpt[EMA_PREFIX + k]) for k in state)


def test_a_checkpoint_from_before_averaging_resumes_with_a_warning(qwen35, sum_task, tmp_path, caplog):
    common = dict(data=str(sum_task), batch_size=2, checkpoint_every=2, snapshot_every=0, eval_data=None, lr=0.2,
                  seed=1)
    out = tmp_path / "old"
    stops = iter([False, False, True])
    train(TrainConfig(out=str(out), steps=4, ema=0.0, **common), backbone=qwen35, progress=False,
          should_stop=lambda: next(stops), canvas_size=64)
    config = json.loads((out / "config.json").read_text())
    del config["ema"], config["resolved"]["ema"]  # as a run of an earlier version recorded it
    (out / "config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING, logger="artstudio"):
        res = train(TrainConfig(out=str(out), steps=4, resume=True, ema=0.95, **common), backbone=qwen35,
                    progress=False, canvas_size=64)
    assert "holds no moving average" in caplog.text
    assert res.metrics["steps"] == 4 and int(_checkpoint(out)[UPDATES]) == 2  # steps 3 and 4 averaged


@pytest.mark.parametrize("value", [1.0, -0.1, float("nan")])
def test_a_bad_decay_is_refused(sum_task, tmp_path, value):
    with pytest.raises(ConfigError, match="--ema"):
        TrainConfig(out=str(tmp_path / "x"), data=str(sum_task), ema=value).check()


def test_a_resume_with_another_decay_is_another_run(qwen35, sum_task, tmp_path):
    common = dict(data=str(sum_task), batch_size=2, checkpoint_every=2, snapshot_every=0, eval_data=None, seed=2)
    out = tmp_path / "run"
    train(TrainConfig(out=str(out), steps=2, ema=0.95, **common), backbone=qwen35, progress=False, canvas_size=64)
    for other in (0.5, 0.0):  # the checkpoint holds the 0.95 average: another decay, or none, is another run
        with pytest.raises(ConfigError, match=f"--ema {other:g} \\(the run has 0.95"):
            train(TrainConfig(out=str(out), steps=4, resume=True, ema=other, **common), backbone=qwen35,
                  progress=False, canvas_size=64)


def test_a_study_may_search_the_decay(tmp_path):
    f = tmp_path / "space.yaml"
    f.write_text("ema: {low: 0.8, high: 0.99}\n")
    assert "ema" in load_space("art", f).params
    f.write_text("ema: [0.9, 1.0]\n")
    with pytest.raises(ConfigError, match="ema"):
        load_space("art", f)


def test_a_run_begun_when_canvases_averaged_by_default_resumes_with_its_average(qwen35, sum_task, tmp_path):
    """Such a run recorded no --ema (None) and averaged at 0.95; resumed without --ema it keeps averaging."""
    out = tmp_path / "run"
    common = dict(data=str(sum_task), batch_size=2, lr=0.3, checkpoint_every=2, snapshot_every=0, eval_data=None)
    train(TrainConfig(out=str(out), steps=2, ema=0.95, **common), backbone=qwen35, progress=False, canvas_size=64)
    config = json.loads((out / "config.json").read_text())
    config["ema"] = None  # as that version recorded it: the method's default, resolved to 0.95
    (out / "config.json").write_text(json.dumps(config))
    res = train(TrainConfig(out=str(out), steps=4, resume=True, **common), backbone=qwen35, progress=False,
                canvas_size=64)
    assert res.metrics["ema"] == 0.95 and int(_checkpoint(out)[UPDATES]) == 4


def test_compare_ema_sets_every_cells_decay_and_its_key(tmp_path):
    """`compare --ema D` gives every method the decay: each cell's TrainConfig gets it and its key names it. Left
    out, cells keep the keys they had before the average existed, so finished cells are reused."""
    from types import SimpleNamespace

    from artstudio.comparison import CompareConfig
    from artstudio.comparison.config import check_config
    from artstudio.comparison.harness import Cell, _train_config

    task = SimpleNamespace(name="t", digest="d" * 16, folder=tmp_path, eval_file=tmp_path / "test.jsonl")
    art, lora = (Cell(m, task, 0, 0.05, "default", {}, 10) for m in ("art", "lora"))
    off, default, on = CompareConfig(out="x", ema=0.0), CompareConfig(out="x"), CompareConfig(out="x", ema=0.9)
    assert _train_config(off, art, tmp_path).ema == 0.0 and _train_config(default, art, tmp_path).ema is None
    assert _train_config(on, lora, tmp_path).ema == 0.9
    for cell in (art, lora):
        assert cell.key(off) == cell.key(default) != cell.key(on)
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ConfigError, match="--ema"):
            check_config(CompareConfig(out="x", ema=bad), ["art"])
