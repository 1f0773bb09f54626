"""JSONL loading: good rows load, every kind of bad row stops with file, line and expectation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from artstudio.data import Example, load_jsonl, repeated_prompts, split_validation, write_jsonl
from artstudio.errors import ConfigError, DataError


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_load_rows_with_default_ids_and_relative_image(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "imgs" / "a.png")
    f = _write(tmp_path / "d.jsonl", [
        json.dumps({"prompt": "2+2?", "answer": "4"}),
        "",
        json.dumps({"prompt": "see", "answer": "red", "id": 7, "image": "imgs/a.png"}),
        json.dumps({"prompt": "x", "answer": "y"}),
    ])
    rows = load_jsonl(f)
    assert [r.id for r in rows] == ["0", "7", "2"]
    assert rows[0] == Example(prompt="2+2?", answer="4", id="0", image=None)
    assert rows[1].image == str((tmp_path / "imgs" / "a.png").resolve())


def test_load_from_other_working_directory(tmp_path, monkeypatch):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    f = _write(tmp_path / "d.jsonl", [json.dumps({"prompt": "p", "answer": "a", "image": "a.png"})])
    monkeypatch.chdir(Path("/"))
    assert Path(load_jsonl(f)[0].image).is_file()


@pytest.mark.parametrize(
    ("lines", "line", "words"),
    [
        (['{"prompt": "a", "answer": "b"}', '{"prompt": "a", "answer": '], 2, "invalid JSON"),
        (['["prompt", "answer"]'], 1, "not an object"),
        (['{"answer": "b"}'], 1, 'missing field "prompt"'),
        (['{"prompt": "a"}'], 1, 'missing field "answer"'),
        (['{"prompt": 3, "answer": "b"}'], 1, '"prompt" is a number; expected a string'),
        (['{"prompt": "a", "answer": null}'], 1, '"answer" is null'),
        (['{"prompt": "a", "answer": "b", "id": [1]}'], 1, '"id" is a list'),
        (['{"prompt": "a", "answer": "b", "image": "nope.png"}'], 1, "does not exist"),
        # a URL was looked for as a file (".../data/https:/example.com/x.png"), a data URI quoted twice in full
        (['{"prompt": "a", "answer": "b", "image": "https://example.com/x.png"}'], 1,
         'image "https://example.com/x.png" is a URL; expected the path of a picture file'),
        (['{"prompt": "a", "answer": "b", "image": "data:image/png;base64,' + "A" * 500 + '"}'], 1,
         'image "data:image/png;base64,' + "A" * 23 + '…" is a URL'),
        # each was a traceback: half of an emoji, a field nested 100,000 deep, a number of 5,000 digits
        (['{"prompt": "a", "answer": "b"}', '{"prompt": "ab\\ud800c", "answer": "b"}'], 2,
         '"prompt" holds a lone surrogate'),
        (['{"prompt": "a", "answer": "b", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"], 1, "nested too deeply"),
        (['{"prompt": "a", "answer": "b", "x": 1' + "0" * 5000 + "}"], 1, "integer string conversion"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, lines, line, words):
    f = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(DataError) as err:
        load_jsonl(f)
    msg = str(err.value)
    assert f"{f}:{line}:" in msg
    assert words in msg
    assert "expected" in msg


def test_undecodable_image(tmp_path):
    (tmp_path / "fake.png").write_text("not an image")
    f = _write(tmp_path / "d.jsonl", [json.dumps({"prompt": "p", "answer": "a", "image": "fake.png"})])
    with pytest.raises(DataError, match=r"d\.jsonl:1: image \"fake.png\" cannot be decoded"):
        load_jsonl(f)


def test_missing_and_empty_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_jsonl(tmp_path / "none.jsonl")
    empty = _write(tmp_path / "empty.jsonl", ["", "   "])
    with pytest.raises(DataError, match="has no rows"):
        load_jsonl(empty)


def test_duplicate_ids_name_both_lines(tmp_path):
    f = _write(tmp_path / "d.jsonl", [
        '{"prompt": "a", "answer": "b", "id": "x"}',
        '{"prompt": "c", "answer": "d"}',
        '{"prompt": "e", "answer": "f", "id": "x"}',
    ])
    with pytest.raises(DataError, match=r"d\.jsonl:3: duplicate id 'x'; line 1 has it too\. Expected"):
        load_jsonl(f)
    # A row without an id has its position as id: the message says so, not "duplicate id '1'" alone.
    f = _write(tmp_path / "e.jsonl", ['{"prompt": "a", "answer": "b", "id": "1"}', '{"prompt": "c", "answer": "d"}'])
    with pytest.raises(DataError, match=r"e\.jsonl:2: duplicate id '1', which is its position among the rows, as it "
                                        r"has no \"id\"; line 1 has it too\. Expected every row"):
        load_jsonl(f)
    f = _write(tmp_path / "g.jsonl", ['{"prompt": "a", "answer": "b"}', '{"prompt": "c", "answer": "d", "id": 0}'])
    with pytest.raises(DataError, match=r"g\.jsonl:2: duplicate id '0'; line 1 has it too \(where it is that row's "
                                        r"position, as it has no \"id\"\)"):
        load_jsonl(f)


def test_an_empty_prompt_is_refused_with_its_line(tmp_path):
    """`infer --prompt ""` and the server refused an empty prompt, but a row {"prompt": ""} was answered and
    scored like any other."""
    for i, prompt in enumerate(['""', '"   "', '"\\n"']):
        f = _write(tmp_path / f"p{i}.jsonl", ['{"prompt": "a", "answer": "b"}', f'{{"prompt": {prompt}, "answer": "c"}}'])
        with pytest.raises(DataError, match=rf'p{i}\.jsonl:2: field "prompt" is empty'):
            load_jsonl(f, require_answer=False)


def test_answer_optional_for_prompts_only(tmp_path):
    f = _write(tmp_path / "d.jsonl", ['{"prompt": "a"}'])
    assert load_jsonl(f, require_answer=False) == [Example(prompt="a", answer="", id="0")]


def test_write_then_load_round_trip(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "pic.png")
    rows = [
        Example("2+2?", "4", "a"),
        Example("colour ×", "rot → red", "b", str(tmp_path / "pic.png")),
    ]
    out = write_jsonl(tmp_path / "sub" / ".." / "out.jsonl", rows)
    assert load_jsonl(out) == rows
    assert '"image": "pic.png"' in out.read_text(encoding="utf-8")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_rows_written_without_ids_read_back(tmp_path):
    """`write_jsonl` wrote "id": "" on every id-less row, and reading the file refused the duplicate ids."""
    out = write_jsonl(tmp_path / "rows.jsonl", [Example("cat", "[CAT]"), Example("sun", "[SUN]")])
    back = load_jsonl(out)
    assert [(e.prompt, e.answer) for e in back] == [("cat", "[CAT]"), ("sun", "[SUN]")]
    assert len({e.id for e in back}) == 2 and '"id"' not in out.read_text()


def test_split_validation_is_deterministic_and_disjoint():
    rows = [Example(str(i), str(i), str(i)) for i in range(20)]
    train, val = split_validation(rows, 0.25, seed=3)
    assert len(val) == 5 and len(train) == 15
    assert sorted(r.id for r in train + val) == sorted(r.id for r in rows)
    assert (train, val) == split_validation(rows, 0.25, seed=3)
    assert split_validation(rows, 0.25, seed=4)[1] != val
    assert train == sorted(train, key=lambda r: int(r.id))  # original order kept
    assert split_validation(rows, 0.0, seed=0) == (rows, [])
    assert len(split_validation(rows[:3], 0.01, seed=0)[1]) == 1


def test_split_validation_rejects_bad_fraction():
    rows = [Example("a", "b", "0"), Example("c", "d", "1")]
    with pytest.raises(ConfigError, match="0 <= fraction < 1"):
        split_validation(rows, 1.0, seed=0)
    with pytest.raises(DataError, match="at least 2 examples"):
        split_validation(rows[:1], 0.5, seed=0)


def test_a_split_named_on_its_own_keeps_the_card_of_its_task_folder(tmp_path):
    """`eval --data TASK/train.jsonl` scores with the task's metric, not the fallback `exact`."""
    from artstudio.tasks.resolve import resolve_data

    folder = tmp_path / "task"
    write_jsonl(folder / "train.jsonl", [Example(prompt="a", answer='{"result": 1}', id="0")])
    write_jsonl(folder / "test.jsonl", [Example(prompt="b", answer='{"result": 2}', id="1")])
    (folder / "card.json").write_text(json.dumps({"name": "t", "description": "d", "metric": "json"}))
    assert resolve_data(str(folder / "train.jsonl"), tmp_path, role="test").card["metric"] == "json"
    assert resolve_data(str(folder / "train.jsonl"), tmp_path, role="train").card["metric"] == "json"
    lone = tmp_path / "lone.jsonl"
    write_jsonl(lone, [Example(prompt="c", answer="3", id="2")])
    assert resolve_data(str(lone), tmp_path, role="test").card == {}


@pytest.mark.parametrize("card, match", [
    ([1, 2], r"card\.json holds an array; a card must be a JSON object"),
    ("str", r"card\.json holds a string; a card must be a JSON object"),
    ({"name": 5, "description": "d"}, r"card\.json: field 'name' must be a string, not 5"),
    ({"name": "t", "description": ["d"]}, r"card\.json: field 'description' must be a string, not \[\"d\"\]"),
    ({"name": "t", "answer_format": 3}, r"card\.json: field 'answer_format' must be a string"),
    ({"name": "t", "metric": "bleu"}, r"card\.json: unknown metric 'bleu'; choose one of exact, numeric, regex, json"),
])
def test_a_bad_card_names_its_file_for_every_verb(tmp_path, card, match):
    """The one reader of cards refuses what train, eval and the rest would trip over later."""
    from artstudio.tasks import load_card
    from artstudio.tasks.resolve import resolve_data

    folder = tmp_path / "task"
    write_jsonl(folder / "train.jsonl", [Example(prompt="a", answer="1", id="0")])
    write_jsonl(folder / "test.jsonl", [Example(prompt="b", answer="2", id="1")])
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match=match) as err:
        load_card(folder)
    assert str(folder / "card.json") in str(err.value)
    for role in ("train", "test"):
        with pytest.raises(DataError, match=match):
            resolve_data(str(folder), tmp_path, role=role)


# --- what a new user's own files held (2026-12-04 new-user pass) ------------------------------------

def test_line_separators_inside_strings_load_and_round_trip(tmp_path):
    """U+2028, U+2029 and U+0085 are legal inside JSON strings; str.splitlines() broke rows at them, and the
    run's own copy (written raw) then failed to load with a message naming a file the user never wrote."""
    rows = [Example(prompt=f"5{sep}0", answer=f"[{sep}]", id=str(i)) for i, sep in enumerate("\u2028\u2029\u0085")]
    back = load_jsonl(write_jsonl(tmp_path / "copy.jsonl", rows))
    assert [(r.prompt, r.answer) for r in back] == [(r.prompt, r.answer) for r in rows]
    raw = _write(tmp_path / "raw.jsonl", ['{"prompt": "a\u2028b", "answer": "c"}'])
    assert load_jsonl(raw)[0].prompt == "a\u2028b"


def test_a_byte_order_mark_is_not_data_and_other_encodings_name_their_line(tmp_path):
    f = tmp_path / "bom.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + b'{"prompt": "a", "answer": "b"}\n')
    assert load_jsonl(f)[0].prompt == "a"
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes(b'{"prompt": "a", "answer": "b"}\n{"prompt": "a", "answer": "b"}\n{"prompt": "caf\xe9", "answer": "x"}\n')
    with pytest.raises(DataError, match=r"latin1.jsonl:3: is not UTF-8 text"):
        load_jsonl(latin)


def test_picture_and_row_shape_messages_say_what_is_wrong(tmp_path):
    Image.new("RGB", (6400, 20)).save(tmp_path / "wide.png")
    cases = {
        json.dumps({"prompt": "p", "answer": "a", "image": "wide.png"}):  # and how to fix it, not which formats PIL reads
            r"6400×20, more than 200 times as long as it is wide, which Qwen's processors refuse; expected a picture at "
            r"most 200 times as long as it is wide \(crop it, or pad its short side\)$",
        json.dumps({"prompt": "p", "answer": "a", "image": ""}): r'field "image" is empty',
        json.dumps({"prompt": "p", "answer": "a", "image": "."}): r"is a folder, not an image file",
        json.dumps({"messages": [{"role": "user", "content": "p"}]}): r'a chat row \("messages"\); expected one prompt',
        '{"prompt": "unterminated': r"invalid JSON \(Unterminated string starting at: column 12\)",
    }
    for k, (line, message) in enumerate(cases.items()):
        with pytest.raises(DataError, match=rf"d{k}.jsonl:1: .*{message}"):
            load_jsonl(_write(tmp_path / f"d{k}.jsonl", [line]))
    with pytest.raises(DataError, match="takes the path of a JSONL file"):
        load_jsonl(5)
    # A spreadsheet export: the JSON error alone did not say that CSV is not read.
    (tmp_path / "rows.csv").write_text("prompt,answer\napple,A\n")
    with pytest.raises(DataError, match=r"rows\.csv:1: invalid JSON .*\.csv files are not read: rows are JSONL"):
        load_jsonl(tmp_path / "rows.csv")


def test_rows_from_python_are_examples_dicts_or_prompt_strings():
    from artstudio.data import as_examples

    rows = as_examples([Example(prompt="a", answer="b"), {"prompt": "c", "answer": "d"}, "e"])
    assert [(r.prompt, r.answer) for r in rows] == [("a", "b"), ("c", "d"), ("e", "")]
    with pytest.raises(DataError, match="no rows"):
        as_examples([])
    with pytest.raises(DataError, match="got a single str; wrap it in a list"):
        as_examples("data/test.jsonl")
    with pytest.raises(DataError, match="row 0 is a str; expected an artstudio.Example or a dict"):
        as_examples(["3 4"], needs_answers=True)
    with pytest.raises(DataError, match='missing field "answer"'):
        as_examples([{"prompt": "c"}], needs_answers=True)


def test_a_field_spelled_almost_like_a_row_field_is_said_once_per_file(tmp_path, caplog):
    """`"imag": "foo.png"` trained the row without its picture and said nothing; a row's own metadata stays quiet."""
    rows = [json.dumps({"prompt": "5", "answer": "x", "imag": "foo.png", "category": "c"}),
            json.dumps({"prompt": "6", "answer": "y", "imag": "bar.png", "source": "web"})]
    with caplog.at_level("WARNING", logger="artstudio.data"):
        got = load_jsonl(_write(tmp_path / "rows.jsonl", rows))
        load_jsonl(tmp_path / "rows.jsonl")  # read again (train, then eval): said once
    assert [e.image for e in got] == [None, None]
    said = [r.getMessage() for r in caplog.records]
    assert said == [f'{tmp_path / "rows.jsonl"}:1: field "imag" is not a row field (did you mean "image"?); it is '
                    "ignored (a row holds prompt, answer, id, image)"]


def test_test_rows_that_repeat_training_prompts_are_counted_and_said(tmp_path, caplog):
    """A test row asking a training row's prompt scores memory: a user's own task says how many there are
    (train and compare), while built-in tasks, whose digit tasks repeat prompts by design, stay quiet."""
    from artstudio.training import TrainConfig, resolve_data

    train = [Example(f"q{i}", "a") for i in range(6)]
    test = [Example("q1", "a"), Example("q5", "b"), Example("q9", "a"), Example("q1", "a", image=None)]
    assert repeated_prompts(train, test) == 3
    assert repeated_prompts(train, [Example("q9", "a")]) == 0
    # A picture is the same picture under another file name; another picture makes another question.
    red, copy, blue = tmp_path / "red.png", tmp_path / "red-copy.png", tmp_path / "blue.png"
    Image.new("RGB", (8, 8), "red").save(red)
    copy.write_bytes(red.read_bytes())
    Image.new("RGB", (8, 8), "blue").save(blue)
    pictured = [Example("colour?", "red", image=str(red))]
    assert repeated_prompts(pictured, [Example("colour?", "red", image=str(copy))]) == 1
    assert repeated_prompts(pictured, [Example("colour?", "blue", image=str(blue)), Example("colour?", "x")]) == 0
    task = tmp_path / "mine"
    write_jsonl(task / "train.jsonl", train)
    write_jsonl(task / "test.jsonl", test)
    with caplog.at_level("WARNING", logger="artstudio.data"):
        resolve_data(TrainConfig(data=str(task), out=str(tmp_path / "run")))
    assert f"3 of the 4 test rows in {task / 'test.jsonl'} ask a prompt that is also in the training rows" in caplog.text
    caplog.clear()
    write_jsonl(task / "test.jsonl", [Example("q9", "a")])
    with caplog.at_level("WARNING", logger="artstudio.data"):
        resolve_data(TrainConfig(data=str(task), out=str(tmp_path / "run")))
        resolve_data(TrainConfig(data="max-bracket", out=str(tmp_path / "builtin")))  # 100 prompts: they repeat
    assert "ask a prompt" not in caplog.text
