"""`make demo` end to end on the shipped studio-tiny (a few steps, no app), in temporary folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from artstudio.artwork import read_artwork
from artstudio.backbone import DEFAULT_MODEL
from artstudio.demo import DEMO_TASK, run_demo

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (Path(DEFAULT_MODEL) / "config.json").exists(),
                                                   reason="studio-tiny weights are not in this checkout")]


def test_demo_trains_exports_and_reports(tmp_path, capsys):
    out = run_demo(DEMO_TASK, steps=3, runs_dir=tmp_path / "runs")
    assert out["artwork"] == tmp_path / "runs" / f"demo-{DEMO_TASK}" / "artwork.png"
    art = read_artwork(out["artwork"])
    assert art.metadata.model_id == "studio-tiny" and art.metadata.task["name"] == DEMO_TASK
    assert art.metadata.steps == 3 and art.image.size == (96, 96)
    assert all(0.0 <= out[k] <= 1.0 for k in ("base", "grey", "art"))
    shown = capsys.readouterr().out
    assert "base model (no picture)" in shown and "ART canvas" in shown


def test_a_missing_model_folder_is_named_as_train_names_it(tmp_path, capsys):
    """`demo --model /nonexistent` said "studio-tiny is missing ... rebuild it"."""
    from artstudio.demo import main

    assert main(["--model", str(tmp_path / "nonexistent"), "--steps", "5", "--no-app"]) == 2
    err = capsys.readouterr().err
    assert f"model folder {tmp_path / 'nonexistent'} does not exist" in err and "studio-tiny is missing" not in err
