"""The scripts whose numbers the README quotes run end to end (on a tiny random model, in seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    for key in ("grpo_from_gray", "grpo_from_sft", "grpo_lora"):
        run = results[key]
        assert len(run["train_reward"]) == 2 and all(0.0 <= r <= 1.0 for r in run["train_reward"])
        assert 0.0 <= run["accuracy"] <= 1.0
    assert results["grpo_lora"]["method"] == "lora" and results["grpo_lora"]["lr"] == 2e-4
    assert (out / "reward_curve.png").stat().st_size > 1000
    assert "lora: GRPO from its start" in done.stdout
