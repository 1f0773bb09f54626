"""Faults a user's run survives: SIGKILL at any step, a failing export, NaN/inf in the loss or the
gradients, and two trainings pointed at one run folder."""

from __future__ import annotations

import json
import os
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from artstudio.artwork import read_artwork
from artstudio.data import Example, write_jsonl
from artstudio.errors import ArtStudioError, ConfigError
from artstudio.methods import build_method
from artstudio.training import TrainConfig, export_run, run_folder, train

ROWS = [Example(prompt=f"{a} {b}", answer=str(a + b), id=str(i))
        for i, (a, b) in enumerate([(1, 2), (3, 4), (2, 2), (5, 1), (0, 7), (6, 3)])]
STEPS = 12
KILL_AFTER = (2, 5, 8)  # SIGKILLed once this many steps are in metrics.jsonl (4 steps left: never too late)


@pytest.fixture()
def task_dir(tmp_path):
    write_jsonl(tmp_path / "data" / "train.jsonl", ROWS)
    write_jsonl(tmp_path / "data" / "test.jsonl", ROWS[:2])
    return tmp_path / "data"


def _argv(model: str, task: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "artstudio", "train", "--model", model, "--data", str(task), "--out", str(out),
            "--steps", str(STEPS), "--batch-size", "2", "--lr", "0.2", "--seed", "3", "--canvas-size", "64",
            "--checkpoint-every", "1", "--snapshot-every", "0", *extra]


def _steps_logged(out: Path) -> int:
    path = out / "metrics.jsonl"
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.strip() and "loss" in json.loads(line))


def _final_canvas(out: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(out / "final" / "method.safetensors"))["canvas.param"]


@pytest.mark.slow
def test_sigkill_at_any_step_resumes_to_the_bit_identical_canvas(tiny_model_dir, task_dir, tmp_path):
    model = tiny_model_dir("qwen3_5")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    full = tmp_path / "full"
    subprocess.run(_argv(model, task_dir, full), check=True, env=env, capture_output=True, timeout=600)
    survived = 0
    for kill_after in KILL_AFTER:
        out = tmp_path / f"killed-{kill_after}"
        proc = subprocess.Popen(_argv(model, task_dir, out), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 600
        while _steps_logged(out) < kill_after and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed after {kill_after} steps"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (out / "final").exists()
        subprocess.run(_argv(model, task_dir, out, "--resume"), check=True, env=env, capture_output=True, timeout=600)
        assert torch.equal(_final_canvas(out), _final_canvas(full)), f"killed after {kill_after} steps"
        steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
                 if "loss" in json.loads(line)]
        assert steps == list(range(1, STEPS + 1)), steps
        survived += 1
    assert survived == len(KILL_AFTER)


@pytest.mark.slow
@pytest.mark.parametrize("sig, status, said", [(signal.SIGINT, 130, "interrupted"),
                                               (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_ctrl_c_or_sigterm_finishes_the_step_saves_a_checkpoint_and_resume_gives_the_same_canvas(
        tiny_model_dir, task_dir, tmp_path, sig, status, said):
    # SIGTERM is what a scheduler (SLURM, Kubernetes) sends before it kills a preempted job
    model = tiny_model_dir("qwen3_5")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    sparse = ("--checkpoint-every", "50")  # no periodic checkpoint in 12 steps: only the interrupt writes one
    full = tmp_path / "full"
    subprocess.run(_argv(model, task_dir, full, *sparse), check=True, env=env, capture_output=True, timeout=600)
    out = tmp_path / "cut"
    proc = subprocess.Popen(_argv(model, task_dir, out, *sparse), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while _steps_logged(out) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == status and "Traceback" not in err, err[-2000:]
    at = json.loads((out / "checkpoint" / "checkpoint.json").read_text())["step"]
    assert 3 <= at < STEPS and at == _steps_logged(out) and f"{said} after step {at} of {out}; checkpoint saved" in err
    subprocess.run(_argv(model, task_dir, out, *sparse, "--resume"), check=True, env=env, capture_output=True,
                   timeout=600)
    assert torch.equal(_final_canvas(out), _final_canvas(full))


def test_a_failing_export_leaves_the_previous_artwork_and_no_partial_file(qwen35, tmp_path, monkeypatch):
    method = build_method("art", qwen35, {"canvas_size": 64, "init": "noise", "seed": 1})
    path = tmp_path / "art.png"
    method.export(path)
    before = path.read_bytes()
    with torch.no_grad():
        method.canvas.param.fill_(0.25)

    def torn_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG\r\n\x1a\n half a file")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        method.export(path)
    monkeypatch.undo()
    assert path.read_bytes() == before and read_artwork(path).image.size == (64, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art.png"], "a temporary file was left behind"


@pytest.mark.parametrize("where", ["loss", "gradient"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_or_gradient_never_reaches_the_canvas(qwen35, task_dir, tmp_path, monkeypatch, where, bad):
    import artstudio.objectives.sft as sft

    real, calls = sft.compute_loss, {"n": 0}

    def poisoned(method, examples, slot=None):
        calls["n"] += 1
        loss = real(method, examples, slot)
        if calls["n"] == 2:
            if where == "loss":
                return loss * bad
            method.canvas.param.register_hook(lambda g: torch.full_like(g, bad))
        return loss

    monkeypatch.setattr(sft, "compute_loss", poisoned)
    seen = []
    res = train(TrainConfig(out=str(tmp_path / "run"), data=str(task_dir), steps=3, batch_size=2, checkpoint_every=0,
                            snapshot_every=0, eval_data=None), backbone=qwen35, progress=False, canvas_size=64,
                callbacks=[lambda r: seen.append(r)])
    records = [r for r in seen if "loss" in r]
    assert records[1].get("skipped") and records[1]["loss"] is None
    assert torch.isfinite(res.method.canvas.param).all()
    assert read_artwork(res.artwork).image.size == (64, 64)


def test_two_trainings_cannot_share_a_run_folder(tiny_model_dir, task_dir, tmp_path):
    model = tiny_model_dir("qwen3_5")
    out = tmp_path / "run"
    with run_folder(TrainConfig(out=str(out), data=str(task_dir))):
        (out / "config.json").write_text("{}")  # export on a run still training said "continue it with --resume"
        with pytest.raises(ConfigError, match=r"is still training \(pid \d+\); export it when"):
            export_run(out)
        # final/ is written before the last evaluation: an export then wrote an artwork without its accuracy
        (out / "final").mkdir()
        (out / "final" / "method.json").write_text("{}")
        with pytest.raises(ConfigError, match=r"is still training \(pid \d+\); export it when"):
            export_run(out)
        shutil.rmtree(out / "final")
        (out / "config.json").unlink()
        proc = subprocess.run(_argv(model, task_dir, out), capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, HF_HUB_OFFLINE="1"))
        assert proc.returncode == 2, proc.stderr
        assert "is in use by another training" in proc.stderr and "Traceback" not in proc.stderr
    assert not (out / "config.json").exists(), "the refused run wrote into the folder"


def test_a_finished_run_is_never_overwritten_silently(qwen35, task_dir, tmp_path):
    common = dict(data=str(task_dir), steps=1, batch_size=2, checkpoint_every=0, snapshot_every=0, eval_data=None)
    first = train(TrainConfig(out=str(tmp_path / "run"), **common), backbone=qwen35, progress=False, canvas_size=64)
    png = first.artwork.read_bytes()
    with pytest.raises(ConfigError, match="already holds a run.*--resume.*--overwrite"):
        train(TrainConfig(out=str(tmp_path / "run"), seed=5, **common), backbone=qwen35, progress=False, canvas_size=64)
    assert first.artwork.read_bytes() == png
    again = train(TrainConfig(out=str(tmp_path / "run"), seed=5, overwrite=True, **common), backbone=qwen35,
                  progress=False, canvas_size=64)
    assert again.artwork.read_bytes() != png
    with pytest.raises(ConfigError, match="is a file"):
        train(TrainConfig(out=str(first.artwork), **common), backbone=qwen35, progress=False, canvas_size=64)


def test_a_refused_overwrite_keeps_the_old_run(qwen35, task_dir, tmp_path):
    """--overwrite with a bad --data row or a bad canvas size deleted the old run before refusing the new one."""
    common = dict(steps=1, batch_size=2, checkpoint_every=0, snapshot_every=0, eval_data=None)
    run = tmp_path / "run"
    first = train(TrainConfig(out=str(run), data=str(task_dir), **common), backbone=qwen35, progress=False,
                  canvas_size=64)
    before = sorted(p.name for p in run.iterdir())
    png = first.artwork.read_bytes()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "2 3", "answer": "5"}\n{"prompt": 7}\n')
    with pytest.raises(ArtStudioError):
        train(TrainConfig(out=str(run), data=str(bad), overwrite=True, **common), backbone=qwen35, progress=False,
              canvas_size=64)
    with pytest.raises(ArtStudioError, match="canvas size"):
        train(TrainConfig(out=str(run), data=str(task_dir), overwrite=True, **common), backbone=qwen35,
              progress=False, canvas_size=65)
    assert sorted(p.name for p in run.iterdir()) == before and first.artwork.read_bytes() == png
    # A replacement killed before it began (its predecessor still aside) is put back by the next call.
    aside = run / ".replaced-999999"
    aside.mkdir()
    for name in before:
        if name != ".lock":
            (run / name).rename(aside / name)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(TrainConfig(out=str(run), data=str(task_dir), **common), backbone=qwen35, progress=False, canvas_size=64)
    assert not aside.exists() and first.artwork.read_bytes() == png


def test_resume_on_a_folder_without_a_run_is_refused(qwen35, task_dir, tmp_path):
    """--resume used to start a fresh run with only a warning (a mistyped --out trained from step 0)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    for out in (tmp_path / "new", mine):  # a folder that does not exist, and one that holds no run
        with pytest.raises(ConfigError, match="holds no run to continue"):
            train(TrainConfig(out=str(out), data=str(task_dir), steps=1, resume=True), backbone=qwen35, progress=False,
                  canvas_size=64)
    assert not (tmp_path / "new").exists()
    # A refusal leaves a folder the user made as it was: a `.lock` left there made `export -o` refuse it.
    with pytest.raises(ArtStudioError):
        train(TrainConfig(out=str(mine), data="max-bracket", steps=0), backbone=qwen35, progress=False, canvas_size=64)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_written_files_follow_the_umask(qwen35, tmp_path):
    method = build_method("art", qwen35, {"canvas_size": 64})
    old = os.umask(0o022)
    try:
        import artstudio.atomic as atomic

        path = method.export(tmp_path / "a.png")
        assert (path.stat().st_mode & 0o777) == 0o666 & ~atomic._umask()
    finally:
        os.umask(old)


def test_a_run_records_its_versions_and_a_resume_on_others_says_so(qwen35, task_dir, tmp_path, caplog):
    """A sampled run's numbers rest on the packages (a GRPO run: 97 % on one machine, 18 % on another, same code and
    seed): config.json records them, and a resume on other versions says it is no longer bit for bit."""
    import torch
    import transformers

    common = dict(out=str(tmp_path / "run"), data=str(task_dir), batch_size=2, checkpoint_every=1, snapshot_every=0,
                  eval_data=None)
    train(TrainConfig(steps=1, **common), backbone=qwen35, progress=False, canvas_size=64)
    file = tmp_path / "run" / "config.json"
    record = json.loads(file.read_text())
    versions = record["resolved"]["versions"]
    assert versions["torch"] == torch.__version__ and versions["transformers"] == transformers.__version__
    record["resolved"]["versions"]["torch"] = "2.0.0"  # as if it began on another machine
    file.write_text(json.dumps(record))
    caplog.clear()
    train(TrainConfig(steps=2, resume=True, **common), backbone=qwen35, progress=False, canvas_size=64)
    assert f"torch 2.0.0 -> {torch.__version__}" in caplog.text and "transformers" not in caplog.text
    assert json.loads(file.read_text())["resolved"]["versions"]["torch"] == torch.__version__
