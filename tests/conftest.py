"""Shared fixtures: tiny random-weight models of every Qwen VL family, saved and loaded back."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from artstudio.tiny import FAMILIES, build_tiny  # noqa: E402

# Families whose canvas side is a multiple of 28 (patch 14) vs 32 (patch 16).
FACTOR = {f: (28 if f.startswith("qwen2") else 32) for f in FAMILIES}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """`tiny_model_dir(family)` -> folder with a saved random-weight model + processor (cached)."""
    cache: dict[str, str] = {}

    def make(family: str) -> str:
        if family not in cache:
            cache[family] = str(build_tiny(family, tmp_path_factory.mktemp(family), seed=0))
        return cache[family]

    return make
