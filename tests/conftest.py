"""Shared fixtures: tiny random-weight models of every Qwen VL family, saved and loaded back."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from artstudio.data import Example, write_jsonl  # noqa: E402
from artstudio.tiny import FAMILIES, build_tiny  # noqa: E402

# Families whose canvas side is a multiple of 28 (patch 14) vs 32 (patch 16).
FACTOR = {f: (28 if f.startswith("qwen2") else 32) for f in FAMILIES}


# A digit-sum task folder small enough for studies of a few trials (the tuner's tests).
SUM_TRAIN = [Example(prompt=f"{a} {b}", answer=str(a + b), id=f"train-{i}")
             for i, (a, b) in enumerate((a, b) for a in range(6) for b in range(5))]
SUM_TEST = [Example(prompt=f"{a} {b}", answer=str(a + b), id=f"test-{i}") for i, (a, b) in enumerate([(2, 1), (4, 3), (5, 2)])]


@pytest.fixture()
def sum_task(tmp_path):
    folder = tmp_path / "sum"
    write_jsonl(folder / "train.jsonl", SUM_TRAIN)
    write_jsonl(folder / "test.jsonl", SUM_TEST)
    (folder / "card.json").write_text(json.dumps({"name": "sum", "description": "add two digits", "metric": "exact"}))
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """`tiny_model_dir(family)` -> folder with a saved random-weight model + processor (cached)."""
    cache: dict[str, str] = {}

    def make(family: str) -> str:
        if family not in cache:
            cache[family] = str(build_tiny(family, tmp_path_factory.mktemp(family), seed=0))
        return cache[family]

    return make


@pytest.fixture(scope="module")
def qwen35(tiny_model_dir):
    """The tiny random-weight Qwen3.5 backbone, loaded once per test module."""
    from artstudio.backbone import load_backbone

    return load_backbone(tiny_model_dir("qwen3_5"))

