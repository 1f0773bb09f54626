"""The scripts whose numbers the README quotes run end to end (on a tiny random model, in seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_grpo_demo_runs_every_start_and_baseline(tiny_model_dir, tmp_path):
    out = tmp_path / "demo"
    cmd = [sys.executable, str(ROOT / "scripts" / "grpo_demo.py"), "--model", tiny_model_dir("qwen3_5"), "--out", str(out),
           "--steps", "2", "--sft-steps", "2", "--batch-size", "2", "--group-size", "2", "--train-size", "8",
           "--test-size", "4", "--baselines", "lora", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert {"base", "grpo_from_gray", "sft", "grpo_from_sft", "grpo_lora"} <= set(results)
    assert {"torch", "transformers"} <= set(results["versions"])  # what a sampled run's numbers move with
    for key in ("grpo_from_gray", "grpo_from_sft", "grpo_lora"):
        run = results[key]
        assert len(run["train_reward"]) == 2 and all(0.0 <= r <= 1.0 for r in run["train_reward"])
        assert 0.0 <= run["accuracy"] <= 1.0
    assert results["grpo_lora"]["method"] == "lora" and results["grpo_lora"]["lr"] == 2e-4
    assert (out / "reward_curve.png").stat().st_size > 1000
    assert "lora: GRPO from its start" in done.stdout
    # "From a grey canvas" is one start from grey: the two default starts on studio-tiny began from the T2C painting.
    for run in ("grpo-gray", "sft"):
        assert json.loads((out / run / "config.json").read_text())["method_options"]["starts"] == 1


@pytest.mark.slow
def test_build_gallery_splits_tasks_over_workers_and_merges_one_table(tiny_model_dir, tmp_path):
    out, runs = tmp_path / "canvases", tmp_path / "runs"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"kept-from-before": {"base": 0, "grey": 0, "art": 1, "exported": 1,
                                                                         "steps": 1, "train_seconds": 1}}))
    cmd = [sys.executable, str(ROOT / "scripts" / "build_gallery.py"), "--model", tiny_model_dir("qwen3_5"),
           "--tasks", "max-bracket,first-json,add-json", "--steps", "2", "--batch-size", "2", "--jobs", "2", "--ema", "0.5",
           "--runs", str(runs), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"kept-from-before", "max-bracket", "first-json", "add-json"}
    for name in ("max-bracket", "first-json", "add-json"):
        assert (out / f"{name}.png").stat().st_size > 0
        assert results[name]["steps"] == 2 and 0.0 <= results[name]["exported"] <= 1.0
        # The table says how each artwork was made: this model has no Text-to-Canvas, so one start from grey.
        assert results[name]["start"] == "gray" and results[name]["ema"] == 0.5
    table = (out / "README.md").read_text()
    assert "| `first-json` |" in table and "| **mean** |" in table and "| gray | 0.5 |" in table
    bad = subprocess.run(cmd[:4] + ["--tasks", "no-such-task"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "no-such-task" in bad.stderr


def test_pretraining_script_saves_a_loadable_model_and_its_report(tmp_path):
    from artstudio.backbone import load_backbone
    from artstudio.tasks import list_tasks

    out = tmp_path / "st"
    cmd = [sys.executable, str(ROOT / "scripts" / "pretrain_studio_tiny.py"), "--steps", "3", "--batch-size", "4",
           "--out", str(out), "--test-size", "2", "--eval-every", "0", "--checkpoint-every", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "pretraining_report.json").read_text())
    assert report["steps"] == 3 and set(report["accuracy"]) == {c.name for c in list_tasks("pretrain")}
    assert json.loads((out / "artstudio.json").read_text()) == {"canvas_size": 96}
    bb = load_backbone(str(out))
    assert bb.family == "qwen3_5" and bb.recommended_canvas_size == 96
    assert bb.model.config.text_config.rope_parameters["partial_rotary_factor"] == 1.0
    assert bb.tokenizer.convert_tokens_to_ids("<|im_start|>") != bb.tokenizer.unk_token_id


@pytest.mark.slow
def test_bench_art_vs_lora_runs_and_prints_every_ratio():
    """The studio-tiny cost benchmark (training step, its parts, GRPO's policy pass) on a tiny setting."""
    proc = subprocess.run([sys.executable, "benchmarks/bench_art_vs_lora.py", "--batch-size", "2", "--repeats", "1",
                           "--grpo", "2x3"], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for line in ("ART / lora =", "shared prefix speed-up", "where ART's step goes", "GRPO policy pass, 2 prompts x 3"):
        assert line in proc.stdout, line


@pytest.mark.parametrize("family, says", [("qwen2_5_vl", "depth is not the difference"),
                                          ("qwen3_5", "so its backward stops there")])
def test_bench_art_vs_lora_says_how_deep_each_backward_goes(family, says, tiny_model_dir):
    """Qwen3.5's linear-attention layers have no q/v projections: LoRA's backward stops above them."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_art_vs_lora import depth_note
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from artstudio.backbone import load_backbone
    from artstudio.methods import build_method

    bb = load_backbone(tiny_model_dir(family))
    assert says in depth_note(build_method("art", bb), build_method("lora", bb), "lora")


@pytest.mark.slow
def test_bench_scale_runs_on_cpu_with_two_layers(tmp_path):
    """The GPU benchmark's script, on the real Qwen3.5-0.8B shapes cut to 2 layers: every method measured."""
    out = tmp_path / "scale.json"
    proc = subprocess.run([sys.executable, "benchmarks/bench_scale.py", "--layers", "2", "--vision-layers", "1",
                           "--batch-size", "2", "--repeats", "1", "--prompt-tokens", "16", "--canvas-size", "64",
                           "--json", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"art", "art-unshared", "art-full-logits", "lora", "lora-every-layer", "soft-prompt"}
    # q/v LoRA adapts only the full-attention layer (1); on every projection its MLP adapters reach layer 0
    assert "lora adapts layers [1] of 2" in proc.stdout and "lora-every-layer adapts layers [0, 1] of 2" in proc.stdout
    assert "ART / LoRA on every layer time" in proc.stdout
    assert results["art"]["lm_tokens"] < results["art-unshared"]["lm_tokens"]  # the prefix ran once
    assert all(r["seconds_per_step"] > 0 and r["peak_mb"] > 0 for r in results.values())
    assert "shared prefix" in proc.stdout and "answer-only logits" in proc.stdout


def test_bench_scale_extrapolates_each_method_along_a_straight_line_in_depth():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_scale import extrapolate
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    # A step costs a fixed part plus a part per layer: 2 + 0.5 L seconds, 100 + 10 L MiB.
    tables = {d: {"art": {"seconds_per_step": 2 + 0.5 * d, "peak_mb": 100 + 10 * d, "added_mb": 10 * d}} for d in (4, 8)}
    line = extrapolate(tables, 24)["art"]
    assert line["seconds_per_step"] == pytest.approx(14.0) and line["seconds_per_step_per_layer"] == pytest.approx(0.5)
    assert line["peak_mb"] == pytest.approx(340) and line["added_mb"] == pytest.approx(240)


@pytest.mark.parametrize("layers, message", [("4,6", "multiple of the layer pattern"), ("4,4", "two or more different"),
                                             ("four", "whole numbers"), ("0", "at least 1")])
def test_bench_scale_refuses_depths_it_cannot_extrapolate_from(layers, message):
    proc = subprocess.run([sys.executable, "benchmarks/bench_scale.py", "--layers", layers], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, message", [(["--periods", "one"], "comma-separated numbers"),
                                          (["--periods", "-1"], "0 or more"), (["--seconds", "0"], "more than 0")])
def test_app_idle_refuses_bad_periods_before_it_starts_anything(args, message):
    proc = subprocess.run([sys.executable, "benchmarks/app_idle.py", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the machine without a GPU")
def test_bench_scale_without_a_gpu_says_so_and_exits_cleanly():
    # It built the full 24-layer model in float32 and was killed for memory on a 24 GiB machine.
    proc = subprocess.run([sys.executable, "benchmarks/bench_scale.py"], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert proc.returncode == 0 and "no GPU" in proc.stdout and "--layers 4,8" in proc.stdout


@pytest.mark.slow
def test_tune_gain_reports_default_against_tuned_test_scores(tiny_model_dir, sum_task, tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from tune_gain import error_reduction, main
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert error_reduction(0.8, 0.9) == pytest.approx(0.5) and error_reduction(1.0, 1.0) is None
    assert error_reduction(0.9, 0.8) == pytest.approx(-1.0)  # tuning made it worse: reported, not hidden
    out = tmp_path / "gain"
    assert main(["--methods", "lora", "--tasks", str(sum_task), "--trials", "2", "--steps", "2", "--trial-steps", "2",
                 "--sampler", "random", "--model", tiny_model_dir("qwen3_5"), "--out", str(out)]) == 0
    import csv

    rows = list(csv.DictReader(open(out / "tune_gain.csv")))
    assert [(r["method"], r["task"], r["trials"]) for r in rows] == [("lora", str(sum_task), "2")]
    assert 0 <= float(rows[0]["default"]) <= 1 and 0 <= float(rows[0]["tuned"]) <= 1
    assert (out / "lora-sum" / "final.json").is_file()
    assert main(["--methods", "nosuch", "--tasks", str(sum_task), "--out", str(tmp_path / "bad")]) == 2
    # --finals-from trains a recorded table's final runs again, as the study's final runs train, and no study.
    again = tmp_path / "again"
    assert main(["--methods", "lora", "--tasks", str(sum_task), "--steps", "2", "--model", tiny_model_dir("qwen3_5"),
                 "--finals-from", str(out / "tune_gain.csv"), "--out", str(again)]) == 0
    redone = list(csv.DictReader(open(again / "tune_gain.csv")))
    assert [(r["task"], r["best_params"]) for r in redone] == [(str(sum_task), rows[0]["best_params"])]
    assert (again / "lora-sum" / "final" / "best" / "tune_final.json").is_file()
    assert not (again / "lora-sum" / "study.db").exists()


def test_vllm_check_skips_cleanly_without_vllm_or_a_gpu():
    """benchmarks/vllm_check.py needs vLLM on a CUDA GPU; elsewhere it says why and exits 0."""
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is not None and torch.cuda.is_available():
        pytest.skip("vLLM and a GPU are here: run the check itself")
    proc = subprocess.run([sys.executable, "benchmarks/vllm_check.py"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("skipped: ")


def test_cue_probe_splits_word_problem_answers_into_shape_and_number():
    """The word-problems-json probe (docs/robust.md) scores the JSON shape and the number separately."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from cue_probe import _halves
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    rows = [{"answer": '{"result": 12}', "prediction": '{"result": 12}', "correct": True},
            {"answer": '{"result": 12}', "prediction": '{"result": 13}', "correct": False},
            {"answer": '{"result": 12}', "prediction": "out: 12", "correct": False},
            {"answer": '{"result": 12}', "prediction": '{"value": 1}', "correct": False}]
    assert _halves(rows) == (0.25, 0.5, 0.5)


@pytest.mark.slow
def test_cue_probe_word_problems_runs_on_the_shipped_model():
    proc = subprocess.run([sys.executable, "benchmarks/cue_probe.py", "--word-problems", "--n-test", "12"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("no picture") for line in lines)
    for picture in ("plus glyph, json band", "no glyph, answer band"):
        assert {line[len(picture):].split()[0] for line in lines if line.startswith(picture)} == {"add", "sub", "mul"}


def test_capacity_runs_every_method_at_every_size_and_plots(tiny_model_dir, tmp_path):
    """benchmarks/capacity.py (the README's capacity table): one-start and default ART, the soft prompt at
    each size, LoRA once, into one CSV and one plot."""
    out = tmp_path / "capacity"
    proc = subprocess.run([sys.executable, "benchmarks/capacity.py", "--model", tiny_model_dir("qwen3_5"), "--out",
                           str(out), "--sizes", "64", "--steps", "1", "--train-rows", "24", "--test-rows", "4", "--ema", "0.9"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import csv

    rows = list(csv.DictReader(open(out / "capacity.csv")))
    assert sorted({(r["method"], r["tokens"]) for r in rows}) == [
        ("art", "4"), ("art-single", "4"), ("lora", ""), ("soft-prompt", "4")]
    assert {r["task"] for r in rows} == {"last-letter", "parity"} and all(0 <= float(r["accuracy"]) <= 1 for r in rows)
    assert (out / "capacity.png").stat().st_size > 1000
    # --ema reaches every run.
    runs = [json.loads(p.read_text()) for p in (out / "px64").glob("cells/*/run/config.json")]
    assert runs and {r["resolved"]["ema"] for r in runs} == {0.9}


def test_grid_picks_reports_each_seeds_pick_against_the_mean(tmp_path):
    """benchmarks/grid_picks.py ranks as the harness does (accuracy, then lower validation loss)."""
    import json

    def cell(method, seed, lr, accuracy, loss):
        folder = tmp_path / "cmp" / "grid" / f"{method}-{seed}-{lr}"
        folder.mkdir(parents=True)
        (folder / "cell.json").write_text(json.dumps({"method": method, "task": "t", "seed": seed, "lr": lr,
                                                      "accuracy": accuracy, "val_loss": loss}))

    # seed 0 alone prefers 0.1 (90 against 80); the mean prefers 0.3 (80 against 60).
    for seed, (low, high) in enumerate([(0.9, 0.8), (0.3, 0.8)]):
        cell("art", seed, 0.1, low, 0.5)
        cell("art", seed, 0.3, high, 0.5)
    for seed in (0, 1):  # a tie on accuracy: the lower loss wins in every seed
        cell("lora", seed, 0.001, 1.0, 0.2)
        cell("lora", seed, 0.003, 1.0, 0.1)
    proc = subprocess.run([sys.executable, "benchmarks/grid_picks.py", str(tmp_path / "cmp")], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:5] == ["art", "t", "mean", "picks", "0.3"] and "each seed alone: 0.1, 0.3" in lines[0]
    assert lines[1].split()[:5] == ["lora", "t", "mean", "picks", "0.003"]
    assert "art: seed 0 alone picks another rate on 1 of 1 tasks; the seeds disagree on 1 of 1" in proc.stdout
    assert "lora: seed 0 alone picks another rate on 0 of 1 tasks; the seeds disagree on 0 of 1" in proc.stdout
    empty = subprocess.run([sys.executable, "benchmarks/grid_picks.py", str(tmp_path)], capture_output=True, text=True,
                           timeout=120, cwd=ROOT)
    assert empty.returncode == 2 and "no finished lr grid" in empty.stderr and "Traceback" not in empty.stderr
