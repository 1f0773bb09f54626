"""The built-in task suite: cards, held-out pairs that pretraining never shows, cue pictures, splits."""

from __future__ import annotations

import json
import random

import pytest

from artstudio.tasks import TASKS, list_tasks, make_task, pictures, sample, suite

FORMAT_OF = {  # answer text -> format, the inverse of suite.fmt
    "json": lambda a: a.startswith("{"),
    "answer": lambda a: a.startswith("Answer: "),
    "bracket": lambda a: a.startswith("[") and a.endswith("]"),
}


def answer_format(answer: str) -> str:
    return next((name for name, test in FORMAT_OF.items() if test(answer)), "plain")


def test_cards_are_complete_and_split_into_pretrain_and_heldout():
    pretrain, heldout = list_tasks("pretrain"), list_tasks("heldout")
    assert len(heldout) >= 12 and len(pretrain) >= 6
    assert {c.name for c in pretrain} | {c.name for c in heldout} | {c.name for c in list_tasks("library")} == set(TASKS)
    for card in TASKS.values():
        assert len(card.description.split()) >= 10, card.name
        assert card.metric in ("exact", "numeric", "json", "regex")
        prompt, answer, image = card.generate(random.Random(0))
        assert prompt and answer
    # Held-out tasks carry no picture: only something in the input, a canvas, can say what to do.
    assert all(c.generate(random.Random(1))[2] is None for c in heldout)


def test_pretraining_never_shows_a_heldout_operation_format_pair(monkeypatch):
    shown: list[tuple[str, str]] = []
    real_cue = pictures.cue
    monkeypatch.setattr(pictures, "cue", lambda rng, glyph, fmt, **kw: shown.append((glyph, fmt)) or real_cue(rng, glyph, fmt, **kw))
    glyph_of = {name: spec[0] for name, spec in (suite.NUMERIC_OPS | suite.STRING_OPS).items()}
    for card in list_tasks("pretrain"):
        sample(card, 300, seed=3)
    held = {(glyph_of[op], how) for op, how in suite.HELDOUT_PAIRS}
    assert shown and not held & set(shown)
    # Every operation and every format is still taught, each with several partners.
    assert {g for g, _ in shown} == set(glyph_of.values())
    assert {f for _, f in shown} == set(suite.PRETRAIN_FORMATS)


def test_every_operation_is_practised_at_many_distances_from_the_answer_start():
    # The value starts 0 to 14 characters into the answer, depending on the format; each operation
    # must meet most of those offsets in pretraining, or its circuit ties itself to the ones it met.
    for op in (*suite.NUMERIC_OPS, *suite.STRING_OPS):
        offsets = {suite.fmt("X", how).index("X") for o, how in suite._SEEN_PAIRS if o == op}
        assert len(offsets) >= 7, (op, sorted(offsets))


def test_pretraining_only_formats_differ_from_every_heldout_format():
    for how in suite.EXTRA_FORMATS:
        for value in ("7", "ab"):
            written = suite.fmt(value, how)
            assert written not in {suite.fmt(value, h) for h in suite.FORMATS}
            assert not written.startswith(("{", "[", "Answer:"))


def test_word_problems_are_never_answered_in_json_during_pretraining():
    for name in ("word-problems", "cue-word-problems"):
        answers = [a for _, a, _ in sample(TASKS[name], 300, seed=0)]
        assert not any(answer_format(a) == "json" for a in answers)


@pytest.mark.parametrize("op,how", suite.HELDOUT_PAIRS)
def test_heldout_answers_follow_their_card(op, how):
    card = TASKS[f"{op}-{how}"]
    for prompt, answer, _ in sample(card, 50, seed=0):
        assert answer_format(answer) == how
        if card.metric == "json":
            assert set(json.loads(answer)) == {"result"}
        if op in suite.STRING_OPS:
            lo, hi = suite.WORD_LENGTHS
            assert prompt.isalpha() and prompt.islower() and lo <= len(prompt) <= hi


@pytest.mark.parametrize("glyph", sorted({spec[0] for spec in (suite.NUMERIC_OPS | suite.STRING_OPS).values()}))
def test_cue_keeps_format_in_the_top_token_row_and_the_glyph_below(glyph):
    band = pictures.BAND
    for seed in range(22):
        fmt = suite.PRETRAIN_FORMATS[seed % len(suite.PRETRAIN_FORMATS)]
        img = pictures.cue(random.Random(seed), glyph, fmt)
        assert img.size == (pictures.SIDE, pictures.SIDE)
        px = img.load()
        top = {px[x, y] for x in range(0, pictures.SIDE, 4) for y in range(0, band, 4)}
        assert len(top) == 1, "the band is one flat colour"
        assert max(abs(a - b) for a, b in zip(top.pop(), pictures.FORMAT_COLOURS[fmt])) <= 12
        ink = [(x, y) for x in range(pictures.SIDE) for y in range(pictures.SIDE) if sum(px[x, y]) < 200]
        assert ink and min(y for _, y in ink) >= band, "the glyph never enters the band's token row"


def test_format_colours_are_distinct_from_each_other_and_from_grey():
    colours = list(pictures.FORMAT_COLOURS.values()) + [(128, 128, 128), pictures.PAPER]
    for i, a in enumerate(colours):
        for b in colours[i + 1:]:
            assert sum(abs(x - y) for x, y in zip(a, b)) > 90


def test_make_task_is_seeded_and_test_prompts_are_not_training_prompts(tmp_path):
    a = make_task("reverse-json", tmp_path / "a", seed=0, n_train=300, n_test=50)
    b = make_task("reverse-json", tmp_path / "b", seed=0, n_train=300, n_test=50)
    assert (a / "train.jsonl").read_text() == (b / "train.jsonl").read_text()
    assert (a / "test.jsonl").read_text() == (b / "test.jsonl").read_text()
    train = {json.loads(line)["prompt"] for line in (a / "train.jsonl").read_text().splitlines()}
    test = [json.loads(line)["prompt"] for line in (a / "test.jsonl").read_text().splitlines()]
    assert len(test) == 50 and not train & set(test)
    card = json.loads((a / "card.json").read_text())
    assert card["name"] == "reverse-json" and card["n_train"] == 300 and card["metric"] == "json"


def test_a_task_made_with_no_training_rows_is_a_folder_to_score_on(tmp_path):
    """n_train 0 wrote an empty train.jsonl, and `train` then said only "the file has no rows"."""
    from artstudio.errors import DataError
    from artstudio.training import TrainConfig, train

    make_task("max-bracket", tmp_path / "t", n_train=300, n_test=5)
    folder = make_task("max-bracket", tmp_path / "t", n_train=0, n_test=5, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "test.jsonl"]  # the earlier train.jsonl went too
    with pytest.raises(DataError, match="has no train.jsonl"):
        train(TrainConfig(data=str(folder), out=str(tmp_path / "run")), progress=False)


def test_picture_tasks_write_their_images(tmp_path):
    folder = make_task("read-digit", tmp_path / "r", n_train=4, n_test=2)
    row = json.loads((folder / "test.jsonl").read_text().splitlines()[0])
    assert (folder / row["image"]).is_file() and row["answer"].isdigit() and len(row["answer"]) == 1


def test_list_tasks_refuses_an_unknown_kind():
    """`list_tasks("heldoutt")` returned [] silently, while the command line refuses the kind."""
    import artstudio
    from artstudio.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown task kind 'heldoutt'; choose one of pretrain, heldout, library"):
        artstudio.list_tasks("heldoutt")
    assert len(list_tasks()) == len(TASKS)


def test_cards_in_other_encodings_and_bad_split_sizes_are_clear_errors(tmp_path):
    from artstudio.errors import ConfigError, DataError
    from artstudio.tasks import load_card

    (tmp_path / "card.json").write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(DataError, match="card.json is not UTF-8 text; save the card as UTF-8"):
        load_card(tmp_path)
    (tmp_path / "card.json").write_bytes(b'\xef\xbb\xbf{"name": "bom"}')  # a byte-order mark, as Notepad writes
    assert load_card(tmp_path)["name"] == "bom"
    for n in (-5, "5"):  # -5 wrote an empty train.jsonl that `train` then refused
        with pytest.raises(ConfigError, match="--n-train is .*; expected a whole number of rows, at least 0"):
            make_task("add-json", tmp_path / "t", n_train=n)
    with pytest.raises(ConfigError, match="--n-test is 0; expected a whole number of rows, at least 1"):
        make_task("add-json", tmp_path / "t", n_test=0)
    assert not (tmp_path / "t").exists()


def test_making_the_same_task_again_keeps_rows_the_user_edited(tmp_path):
    """Re-running `tasks make` into its own folder silently put back the generated rows over a user's edits."""
    from artstudio.errors import ConfigError

    folder = make_task("add-json", tmp_path / "t", n_train=5, n_test=3)
    make_task("add-json", folder, n_train=5, n_test=3)  # the same rows again: nothing lost, no error
    (folder / "train.jsonl").write_text('{"prompt": "1 1", "answer": "{\\"result\\": 2}"}\n')
    with pytest.raises(ConfigError, match=r"edited rows \(train.jsonl differs from"):
        make_task("add-json", folder, n_train=5, n_test=3)
    assert (folder / "train.jsonl").read_text().count("\n") == 1
    make_task("add-json", folder, n_train=5, n_test=3, overwrite=True)
    assert (folder / "train.jsonl").read_text().count("\n") == 5


def test_a_misspelled_card_field_is_named(tmp_path, caplog):
    """A card with "descripton" trained without a description (and without its T2C start), silently."""
    import json
    import logging

    from artstudio.tasks import load_card

    (tmp_path / "card.json").write_text(json.dumps({"name": "t", "descripton": "Reply with the sum.", "metric": "exact"}))
    with caplog.at_level(logging.WARNING, logger="artstudio.tasks"):
        card = load_card(tmp_path)
    assert card["name"] == "t"
    assert "field 'descripton' is not a card field (did you mean 'description'?)" in caplog.text


def test_a_task_is_not_written_into_a_run_or_evaluation_folder(tmp_path):
    """`tasks make add-json --out RUN` wrote train/test files beside the run's; `train --out RUN --overwrite` then
    refused the folder as a task's data."""
    from artstudio.errors import ConfigError

    for marker, what in (("config.json", "a run"), ("predictions.jsonl", "an evaluation")):
        folder = tmp_path / marker.split(".")[0]
        folder.mkdir()
        (folder / marker).write_text("{}")
        with pytest.raises(ConfigError, match=f"holds {what} .*not a task's data"):
            make_task("add-json", folder)
        assert not (folder / "train.jsonl").exists()
    made = make_task("add-json", tmp_path / "task", n_train=5, n_test=2)
    assert make_task("add-json", made, n_train=5, n_test=2) == made  # the same task again: its own folder
