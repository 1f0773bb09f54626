"""Data-parallel training (`artstudio.distributed`): two processes started by torchrun train the same
canvas as one process at the same global batch; only the main process writes the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file
import torch

from artstudio.data import Example, write_jsonl

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

ROWS = [Example(prompt=f"{a} {b}", answer=str(a + b) * (1 + (a + b) % 3), id=str(i))
        for i, (a, b) in enumerate((a, b) for a in range(5) for b in range(4))]


def assert_same_training(two: torch.Tensor, one: torch.Tensor) -> None:
    """Two processes sum the gradients in another order than one process does, so float rounding differs.
    Where a gradient is near zero, Adam's first step (about lr × its sign) magnifies that rounding: on an
    AMD EPYC machine 1 of 12,288 canvas values differed by 1.1e-5 and 1 of 512 LoRA weights by 2.2e-5 (earlier
    machines kept every value within 1e-5). So: all but 1 % of the values within 1e-5, none off by more
    than 1e-3 (a gradient that missed the other process's rows changes most of the values)."""
    diff = (two.float() - one.float()).abs()
    assert diff.max().item() <= 1e-3, f"largest difference {diff.max().item():.3g}"
    off = (diff > 1e-5).float().mean().item()
    assert off <= 0.01, f"{off:.2%} of the values differ by more than 1e-5"


def _run(args: list[str], world: int, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(world),
                "--master_port", str(29500 + os.getpid() % 1000 + world)] if world > 1 else [sys.executable]
    return subprocess.run(launcher + ["-m", "artstudio", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_two_processes_train_the_canvas_of_one(tiny_model_dir, tmp_path):
    model = tiny_model_dir("qwen3_5")
    write_jsonl(tmp_path / "task" / "train.jsonl", ROWS[:16])
    write_jsonl(tmp_path / "task" / "test.jsonl", ROWS[16:])
    common = ["train", "--model", model, "--data", str(tmp_path / "task"), "--steps", "3", "--batch-size", "6",
              "--canvas-size", "64", "--checkpoint-every", "2", "--snapshot-every", "0", "--eval-data",
              str(tmp_path / "task" / "test.jsonl")]
    one = _run(common + ["--out", str(tmp_path / "one")], 1, tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _run(common + ["--out", str(tmp_path / "two")], 2, tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert ", 2 processes" in two.stdout  # the summary says how many trained

    canvas = {k: load_file(tmp_path / k / "final" / "method.safetensors") for k in ("one", "two")}
    assert canvas["one"].keys() == canvas["two"].keys()
    for key in canvas["one"]:
        assert_same_training(canvas["two"][key], canvas["one"][key])
    losses = {k: [json.loads(l)["loss"] for l in (tmp_path / k / "metrics.jsonl").read_text().splitlines()
                  if "loss" in json.loads(l)] for k in ("one", "two")}
    assert len(losses["two"]) == 3  # one writer: no step twice
    assert losses["two"] == pytest.approx(losses["one"], abs=1e-5)
    cfg = {k: json.loads((tmp_path / k / "config.json").read_text())["resolved"] for k in ("one", "two")}
    assert (cfg["one"]["processes"], cfg["two"]["processes"]) == (1, 2)
    assert (tmp_path / "two" / "artwork.png").is_file()
    assert json.loads((tmp_path / "two" / "result.json").read_text())["processes"] == 2

    # --resume continues the two-process run from its checkpoint the same way (step 2 -> 3 again).
    (tmp_path / "two" / "final").rename(tmp_path / "two-final")  # as if killed after its last checkpoint
    (tmp_path / "two" / "result.json").unlink()
    again = _run(common + ["--out", str(tmp_path / "two"), "--resume"], 2, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = load_file(tmp_path / "two" / "final" / "method.safetensors")
    for key in resumed:
        assert_same_training(resumed[key], canvas["one"][key])
    # Resumed on one process: config.json records both segments' counts, not only the last.
    (tmp_path / "two" / "result.json").unlink()
    assert _run(common[:common.index("--steps") + 1] + ["4"] + common[common.index("--steps") + 2:]
                + ["--out", str(tmp_path / "two"), "--resume"], 1, tmp_path).returncode == 0
    assert json.loads((tmp_path / "two" / "config.json").read_text())["resolved"]["processes"] == [2, 1]


def test_sigterm_to_torchrun_stops_every_process_after_one_step_with_a_checkpoint(tiny_model_dir, tmp_path):
    """A scheduler's SIGTERM to torchrun (which passes it on to each process) killed the processes mid-step:
    `--resume` went back to the last periodic checkpoint. Now they agree to stop after the same step, the
    main process saves a checkpoint there, and a resume continues from it."""
    import signal
    import time

    from artstudio.checkpoint import checkpoint_step

    model = tiny_model_dir("qwen3_5")
    write_jsonl(tmp_path / "task" / "train.jsonl", ROWS[:16])
    args = ["train", "--model", model, "--data", str(tmp_path / "task"), "--steps", "400", "--batch-size", "4",
            "--canvas-size", "64", "--checkpoint-every", "1000", "--snapshot-every", "0", "--starts", "1",
            "--eval-data", str(tmp_path / "task" / "train.jsonl"), "--out", str(tmp_path / "run")]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(29700 + os.getpid() % 200)]
    proc = subprocess.Popen(launcher + ["-m", "artstudio", *args], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "terminated (SIGTERM) after step" in err and "checkpoint saved" in err, err[-3000:]
    assert err.count("\nterminated\n") + err.startswith("terminated\n") == 1, err[-3000:]  # said once, not per process
    saved = checkpoint_step(tmp_path / "run" / "checkpoint")
    def steps() -> list[int]:
        return [json.loads(line)["step"] for line in metrics.read_text().splitlines() if "loss" in json.loads(line)]

    assert 3 <= saved < 400 and steps()[-1] == saved  # the checkpoint holds every step the run recorded
    assert not (tmp_path / "run" / "artwork.png").exists()

    again = _run(["train", "--resume", "--out", str(tmp_path / "run"), "--steps", str(saved + 2)], 2, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("differs from the run's") == 1, again.stderr[-3000:]  # one line, not one per process
    assert checkpoint_step(tmp_path / "run" / "checkpoint") == saved + 2
    assert steps() == list(range(1, saved + 3))  # went on from the saved step: none twice, none missing


def test_a_refused_run_folder_stops_every_process(tiny_model_dir, tmp_path):
    """The main process owns the folder; when it refuses (a run is there), no process hangs."""
    model = tiny_model_dir("qwen3_5")
    write_jsonl(tmp_path / "task" / "train.jsonl", ROWS[:8])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    proc = _run(["train", "--model", model, "--data", str(tmp_path / "task"), "--steps", "1", "--batch-size", "4",
                 "--canvas-size", "64", "--eval-data", str(tmp_path / "task" / "train.jsonl"),
                 "--out", str(tmp_path / "run")], 2, tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.count("already holds a run") >= 2  # both processes say why
    # torchrun reports a failed child with its own traceback; none comes from our code.
    frames = [line for line in proc.stderr.splitlines() if line.strip().startswith('File "')]
    assert not [f for f in frames if "/artstudio/" in f], frames


def test_refused_data_stops_every_process_with_one_message(tiny_model_dir, tmp_path):
    """A row naming a missing picture: the main process said why, the other died in a broken collective
    ("Connection closed by peer") with a traceback of ours."""
    model = tiny_model_dir("qwen3_5")
    rows = [Example(prompt=r.prompt, answer=r.answer, id=r.id) for r in ROWS[:8]]
    rows.append(Example(prompt="x", answer="y", id="pic", image="imgs/nope.png"))
    write_jsonl(tmp_path / "task" / "train.jsonl", rows)
    proc = _run(["train", "--model", model, "--data", str(tmp_path / "task" / "train.jsonl"), "--steps", "1",
                 "--batch-size", "4", "--canvas-size", "64", "--out", str(tmp_path / "run")], 2, tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.count('nope.png" does not exist') == 1, proc.stderr[-3000:]
    assert "[rank1]" not in proc.stderr and "Connection closed" not in proc.stderr
    frames = [line for line in proc.stderr.splitlines() if line.strip().startswith('File "')]
    assert not [f for f in frames if "/artstudio/" in f], frames
    assert "exitcode  : 2" in proc.stderr  # both processes exit as a refusal does, not killed


@pytest.mark.parametrize("method", ["art", "lora"])
def test_fsdp_shards_the_backbone_and_trains_what_one_process_trains(tiny_model_dir, tmp_path, method):
    """--fsdp: the frozen blocks are split over two processes, the trainable parameters stay whole; the
    trained weights, the loss curve and the test accuracy are one process's."""
    model = tiny_model_dir("qwen3_5")
    write_jsonl(tmp_path / "task" / "train.jsonl", ROWS[:16])
    write_jsonl(tmp_path / "task" / "test.jsonl", ROWS[16:])
    common = ["train", "--model", model, "--method", method, "--data", str(tmp_path / "task"), "--steps", "3",
              "--batch-size", "6", "--snapshot-every", "0", "--eval-every", "2",
              "--eval-data", str(tmp_path / "task" / "test.jsonl")]
    if method == "art":
        common += ["--canvas-size", "64", "--starts", "1"]
    else:
        common += ["--lr", "0.05"]  # dropout is off by default; a rate that moves B off zero
    one = _run(common + ["--out", str(tmp_path / "one")], 1, tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    if method == "art":  # the documented command: examples/fsdp.yaml turns --fsdp on through accelerate
        accelerate = Path(sys.executable).with_name("accelerate")
        two = subprocess.run([str(accelerate), "launch", "--config_file", str(ROOT / "examples" / "fsdp.yaml"),
                              "--num_processes", "2", "--mixed_precision", "no", "--main_process_port",
                              str(29600 + os.getpid() % 1000), "-m", "artstudio", *common, "--out", str(tmp_path / "two")],
                             env=dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1"), cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    else:
        two = _run(common + ["--out", str(tmp_path / "two"), "--fsdp"], 2, tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "frozen blocks sharded over 2 processes" in two.stderr
    weights = {k: load_file(next((tmp_path / k / "final").glob("*.safetensors"))) for k in ("one", "two")}
    assert weights["one"].keys() == weights["two"].keys() and weights["one"]
    for key in weights["one"]:
        assert_same_training(weights["two"][key], weights["one"][key])
    metrics = {k: [json.loads(l) for l in (tmp_path / k / "metrics.jsonl").read_text().splitlines()] for k in ("one", "two")}
    assert [m.get("loss") for m in metrics["two"]] == pytest.approx([m.get("loss") for m in metrics["one"]], abs=1e-5)
    evals = {k: [m["eval_accuracy"] for m in v if "eval_accuracy" in m] for k, v in metrics.items()}
    assert len(evals["two"]) == 2 and evals["two"] == evals["one"]  # mid-run and final, every process evaluating
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["fsdp"] is True and config["resolved"]["processes"] == 2


def test_fsdp_without_a_launcher_says_how_to_start_one(tiny_model_dir, tmp_path):
    write_jsonl(tmp_path / "task" / "train.jsonl", ROWS[:8])
    proc = _run(["train", "--model", tiny_model_dir("qwen3_5"), "--data", str(tmp_path / "task"), "--steps", "1",
                 "--fsdp", "--out", str(tmp_path / "run")], 1, tmp_path)
    assert proc.returncode != 0 and "torchrun --nproc_per_node" in proc.stderr and "Traceback" not in proc.stderr


def test_a_command_that_succeeds_leaves_the_process_group(tmp_path, monkeypatch):
    """The CLI destroys the process group after a command succeeds: gloo's threads left alive at exit
    abort a process ("terminate called without an active exception") after its work is done."""
    import torch.distributed as dist

    from artstudio.cli import main

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert main(["tasks", "list"]) == 0
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
