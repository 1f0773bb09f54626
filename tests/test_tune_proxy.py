"""benchmarks/tune_proxy.py: the proxy-vs-full measurement on the tiny test model (3 configs x 1 fraction x 2 steps),
its rank correlation, and clear errors for an unknown method or task."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from artstudio.errors import ArtStudioError

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("tune_proxy", ROOT / "benchmarks" / "tune_proxy.py")
tune_proxy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tune_proxy)

def test_spearman_matches_the_definition_with_average_ranks():
    sp = tune_proxy.spearman
    assert sp([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert sp([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert tune_proxy.average_ranks([0.5, 0.1, 0.5, 0.9]) == [2.5, 1.0, 2.5, 4.0]
    # Ties: Pearson of the average ranks (what scipy.stats.spearmanr returns): 0.9486832980505138.
    assert sp([0, 0, 1, 2], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)
    assert sp([0.3, 0.3, 0.3], [1, 2, 3]) is None  # a constant side: undefined, not 0 or NaN
    assert sp([1], [2]) is None


def test_measure_scores_every_config_on_full_and_proxy_data(tiny_model_dir, sum_task, tmp_path):
    model = tiny_model_dir("qwen3_5")
    res = tune_proxy.measure("lora", str(sum_task), configs=3, fractions=[0.5], steps=2, trial_steps=2,
                             val_fraction=0.2, model=model, work=tmp_path / "work", device="cpu", log=lambda s: None)
    assert res["n_configs"] == 3 and len(res["configs"]) == 3 and res["fractions"] == ["0.5"]
    assert res["n_val"] == 6 and res["n_fit"] == 24 and res["summary"]["0.5"]["n_proxy"] == 12
    assert res["configs"][0]["default"] and not any(r["default"] for r in res["configs"][1:])
    assert len({json.dumps(r["params"], sort_keys=True) for r in res["configs"]}) == 3  # distinct draws
    for r in res["configs"]:
        assert 0.0 <= r["full"] <= 1.0 and 0.0 <= r["proxy"]["0.5"] <= 1.0
        assert r["full_seconds"] > 0 and r["proxy_seconds"]["0.5"] > 0
    s = res["summary"]["0.5"]
    assert s["spearman"] is None or -1.0 <= s["spearman"] <= 1.0
    assert s["trial_steps"] == 2 and 1 <= s["picked_full_rank"] <= 3 and s["regret"] >= 0 and s["seconds"] > 0
    # Every run was scored on the validation rows carved from train, never on the test split.
    cfg = json.loads((tmp_path / "work" / "runs" / "config-01" / "proxy-0.5-2steps" / "config.json").read_text())
    assert cfg["eval_data"].endswith("val.jsonl") and cfg["steps"] == 2
    json.dumps(res)  # JSON-ready
    table = tune_proxy.table(res)
    assert "Spearman" in table and table.count("\n| 0 (default)") == 1
    png = tune_proxy.plot(res, tmp_path / "proxy.png")
    assert png.stat().st_size > 1000
    # A second call reuses every finished run from the cache.
    again = tune_proxy.measure("lora", str(sum_task), configs=3, fractions=[0.5], steps=2, trial_steps=2,
                               val_fraction=0.2, model=model, work=tmp_path / "work", device="cpu", log=lambda s: None)
    assert [r["full"] for r in again["configs"]] == [r["full"] for r in res["configs"]]
    assert not math.isnan(again["wall_seconds"])


def test_unknown_method_or_task_is_a_clear_error(sum_task, tmp_path, capsys):
    with pytest.raises(ArtStudioError, match="unknown method 'nope'.*lora"):
        tune_proxy.measure("nope", str(sum_task), configs=3, work=tmp_path / "w")
    with pytest.raises(ArtStudioError, match="no-such-task is neither a file.*built-in task"):
        tune_proxy.measure("lora", "no-such-task", configs=3, work=tmp_path / "w")
    assert tune_proxy.main(["--method", "nope", "--task", str(sum_task), "--work", str(tmp_path / "w")]) == 2
    assert "unknown method" in capsys.readouterr().err
