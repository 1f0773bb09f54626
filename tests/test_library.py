"""The hypernetworks' task library: every non-held-out operation x format pair, never a held-out one."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from artstudio.data import load_jsonl
from artstudio.errors import DataError
from artstudio.tasks import TASKS, list_tasks, make_task, resolve_tasks, task_specs
from artstudio.tasks.library import (LIBRARY_CUES, LIBRARY_FORMAT_WORDS, LIBRARY_PAIRS, WORD_PROBLEM_FORMATS,
                                     describe_pair)
from artstudio.tasks.suite import HELDOUT_PAIRS, NUMERIC_OPS, PRETRAIN_FORMATS, STRING_OPS, fmt

PARAPHRASES = Path(__file__).resolve().parents[1] / "artstudio" / "hyper" / "paraphrases.json"


def test_library_is_every_pair_that_is_not_held_out_and_word_problems_in_every_other_format():
    library = list_tasks("library")
    assert len(LIBRARY_PAIRS) == len(NUMERIC_OPS | STRING_OPS) * len(PRETRAIN_FORMATS) - len(HELDOUT_PAIRS) == 98
    assert WORD_PROBLEM_FORMATS == tuple(h for h in PRETRAIN_FORMATS if h != "json")  # json: the held-out task's
    assert len(library) == 98 + 10
    names = {c.name for c in library}
    assert names == ({f"{op}-{how}" for op, how in LIBRARY_PAIRS}
                     | {f"word-problems-{how}" for how in WORD_PROBLEM_FORMATS}) == set(LIBRARY_CUES)
    assert resolve_tasks("library") == [c.name for c in library]
    assert not set(resolve_tasks("all")) & names  # 'all' still means the suite's own tasks


def test_heldout_tasks_and_descriptions_never_enter_the_library():
    library = list_tasks("library")
    heldout = list_tasks("heldout")
    assert not {c.name for c in heldout} & {c.name for c in library}
    held_descriptions = {c.description for c in heldout}
    assert not held_descriptions & {c.description for c in library}
    for op, how in HELDOUT_PAIRS:
        assert f"{op}-{how}" not in {c.name for c in library}
    assert "word-problems-json" not in {c.name for c in library}
    assert all(c.kind == "library" for c in library)


def test_library_descriptions_use_the_heldout_cards_style():
    """A held-out description is a new combination of phrases the library uses (DESIGN §7)."""
    for op, how in HELDOUT_PAIRS:
        assert describe_pair(op, how) == TASKS[f"{op}-{how}"].description
    assert set(LIBRARY_FORMAT_WORDS) == set(PRETRAIN_FORMATS)
    descriptions = [c.description for c in list_tasks("library")]
    assert len(set(descriptions)) == len(descriptions)


@pytest.mark.parametrize("name", ["add-plain", "reverse-quote", "count-sentence", "max-json", "first-arrow",
                                  "word-problems-sentence", "word-problems-bracket"])
def test_library_tasks_are_instruction_free_and_follow_their_format(name, tmp_path):
    card = TASKS[name]
    op, how = name.rsplit("-", 1)
    folder = make_task(name, tmp_path / name, n_train=30, n_test=10)
    rows = load_jsonl(folder / "train.jsonl")
    for row in rows:
        assert row.image is None
        if op == "word-problems":
            assert row.prompt.endswith("?") and "Answer" not in row.prompt  # no instruction about the format
            assert row.answer in {fmt(v, how) for v in range(-9, 82)}
        elif op in NUMERIC_OPS:
            a, b = map(int, row.prompt.split())
            assert row.answer == fmt(NUMERIC_OPS[op][1](a, b), how)
        else:
            assert row.prompt.isalpha() and row.prompt.islower()
            assert row.answer == fmt(STRING_OPS[op][1](row.prompt), how)
    meta = json.loads((folder / "card.json").read_text())
    assert meta["description"] == card.description and meta["kind"] == "library"
    assert card.generate(random.Random(0))[2] is None


def test_task_specs_from_names_and_from_user_folders(tmp_path):
    specs = task_specs("add-plain,sort-quote", tmp_path / "cache", n_train=20, n_test=5)
    assert [s.name for s in specs] == ["add-plain", "sort-quote"]
    assert specs[0].description == TASKS["add-plain"].description
    assert (specs[0].folder / "train.jsonl").is_file()
    # Cached folders are reused.
    again = task_specs("add-plain", tmp_path / "cache", n_train=20, n_test=5)
    assert again[0].folder == specs[0].folder

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "train.jsonl").write_text('{"prompt": "ab", "answer": "ba"}\n')
    (mine / "card.json").write_text(json.dumps({"name": "my-task", "description": "Reverse the word.", "metric": "exact"}))
    listing = tmp_path / "tasks.txt"
    listing.write_text("# my tasks\nmine\n")
    for spec in (str(mine), str(listing)):
        (got,) = task_specs(spec, tmp_path / "cache")
        assert got.name == "my-task" and got.description == "Reverse the word." and got.folder == mine


def test_task_specs_bad_input_is_explained(tmp_path):
    with pytest.raises(DataError, match="neither a task folder nor a built-in task"):
        task_specs("no-such-task", tmp_path)
    folder = tmp_path / "t"
    folder.mkdir()
    (folder / "train.jsonl").write_text('{"prompt": "a", "answer": "b"}\n')
    with pytest.raises(DataError, match="no card.json"):
        task_specs(str(folder), tmp_path)
    (folder / "card.json").write_text(json.dumps({"name": "t", "description": "  "}))
    with pytest.raises(DataError, match="no description"):
        task_specs(str(folder), tmp_path)
    with pytest.raises(DataError, match="appear twice"):
        task_specs("add-plain,add-plain", tmp_path, n_train=5, n_test=2)


def test_paraphrases_cover_every_heldout_task_in_other_words():
    data = json.loads(PARAPHRASES.read_text())
    heldout = {c.name: c.description for c in list_tasks("heldout")}
    assert set(heldout) <= set(data)
    library = {c.description for c in list_tasks("library")}
    for name, card_text in heldout.items():
        assert len(data[name]) >= 4  # para1/2, and para3/4 by someone who never saw the library
        for p in data[name]:
            assert p.strip() and p != card_text and p not in library
            assert card_text.split(". ")[0] not in p  # not the cards' template: its first sentence is not reused


def test_library_tasks_have_other_wordings_and_held_out_pairs_have_none(tmp_path):
    """Many wordings per task (as Text-to-LoRA trains on), drawn with a seed; held-out pairs get none."""
    from artstudio.tasks.wordings import wordings

    first = wordings("add", "plain", 40)
    assert first == wordings("add", "plain", 40) != wordings("add", "plain", 40, seed=1)
    assert len(set(first)) == 40 and TASKS["add-plain"].description not in first
    heldout = {c.description for c in list_tasks("heldout")}
    for op, how in LIBRARY_PAIRS:
        assert not set(wordings(op, how, 8)) & heldout
    for op, how in HELDOUT_PAIRS:
        with pytest.raises(KeyError, match="held-out"):
            wordings(op, how, 4)
    assert any("JSON" in w for w in wordings("sub", "json", 8)) and all("[" not in w for w in wordings("sub", "json", 8))
    (spec,) = task_specs("reverse-quote", tmp_path / "cache", n_train=10, n_test=5)
    assert spec.descriptions[0] == TASKS["reverse-quote"].description and len(spec.descriptions) == 64


def test_a_card_can_bring_its_own_wordings(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "train.jsonl").write_text('{"prompt": "ab", "answer": "ba"}\n')
    card = {"name": "mine", "description": "Reverse the word.", "descriptions": ["Spell it backwards.", "Reverse the word."]}
    (mine / "card.json").write_text(json.dumps(card))
    (spec,) = task_specs([str(mine)], tmp_path / "cache")
    assert spec.descriptions == ("Reverse the word.", "Spell it backwards.")  # the card's own once
    (mine / "card.json").write_text(json.dumps(card | {"descriptions": "Spell it backwards."}))
    with pytest.raises(DataError, match="list of non-empty strings"):
        task_specs([str(mine)], tmp_path / "cache")
