"""Evaluation metrics are strictly 0/1 and read `Answer: <number>` exactly as the ART paper does."""

import pytest

from artstudio.errors import ConfigError, DataError
from artstudio.scoring import METRICS, accuracy, any_number, extract_answer_number, normalize_number, score


@pytest.mark.parametrize("text, expected", [
    ("Answer: 1,234", 1234.0),
    ("Answer: $5", 5.0),
    ("answer: -3.5", -3.5),
    ("ANSWER:42", 42.0),
    ("Answer: 1 234 567", 1234567.0),
    ("The total is 7.\nAnswer: 12.", 12.0),
    ("Answer: 3\nwait, no.\nAnswer: 4", 4.0),  # the last formatted answer counts
    ("Answer: 5\n6", 5.0),  # a number on the next line is not glued on
    ("Final answer: +.5", 0.5),
])
def test_extract_answer_number(text, expected):
    assert extract_answer_number(text) == expected


@pytest.mark.parametrize("text", ["42", "Answer: none", "answer 42", ""])
def test_extract_answer_number_needs_the_format(text):
    assert extract_answer_number(text) is None


def test_normalize_number_and_any_number():
    assert normalize_number(" 1,234 ") == 1234.0
    assert normalize_number("$5") == 5.0
    assert normalize_number("-3.5.") == -3.5
    assert normalize_number("nan") is None
    assert normalize_number("5 apples") is None
    assert any_number("I think 12 or maybe 15, 000 apples") == 15000.0
    assert any_number("no digits") is None


@pytest.mark.parametrize("prediction, correct", [
    ("Answer: 1,234", True),
    ("work...\nAnswer: 1234.0000000001", True),
    ("Answer: 7\nAnswer: 1234", True),
    ("Answer: 1234\nAnswer: 7", False),
    ("1234", False),  # right number without the format is wrong in evaluation
    ("Answer: 1235", False),  # near misses earn nothing when evaluating
    ("Answer: 1240", False),
    ("no idea", False),
])
def test_numeric_is_zero_one(prediction, correct):
    assert score("numeric", prediction, "1234") is correct


def test_numeric_reads_reference_formats():
    assert score("numeric", "Answer: $5", "Answer: 5")
    assert score("numeric", "answer: -3.5", "-3.5")
    assert score("numeric", "Answer: 1234", "1,234")
    with pytest.raises(DataError, match="'seven'"):
        score("numeric", "Answer: 7", "seven")


def test_exact():
    assert score("exact", "  olleh\n", "olleh")
    assert not score("exact", "Olleh", "olleh")


def test_regex():
    assert score("regex", " [12] ", r"\[\d+\]")
    assert not score("regex", "[12] extra", r"\[\d+\]")  # fullmatch, not search
    assert score("regex", "cat", "ignored", pattern="c.t")
    with pytest.raises(ConfigError, match=r"\[unclosed"):
        score("regex", "x", "x", pattern="[unclosed")


def test_json():
    assert score("json", '  {"b": [1, 2], "a": 1.0}\n', '{"a": 1, "b": [1, 2]}')
    assert not score("json", 'Here: {"a": 1}', '{"a": 1}')  # only whitespace around is tolerated
    assert not score("json", '{"a": true}', '{"a": 1}')  # true is not 1
    assert not score("json", '{"a": 1, "b": 2}', '{"a": 1}')
    with pytest.raises(DataError, match="not JSON at all"):
        score("json", "{}", "not JSON at all")


def test_unknown_metric_lists_choices():
    with pytest.raises(ConfigError) as e:
        score("bleu", "a", "a")
    for name in METRICS:
        assert name in str(e.value)


def test_accuracy():
    assert accuracy("numeric", ["Answer: 1", "1", "Answer: 3", "x"], ["1", "1", "3", "4"]) == 0.5
    with pytest.raises(DataError, match="pair up"):
        accuracy("exact", ["a"], ["a", "b"])


def test_a_bad_regex_names_its_source():
    from artstudio.scoring import compile_pattern

    with pytest.raises(ConfigError, match=r"fix --pattern \(or the answer"):
        compile_pattern("[")
    with pytest.raises(ConfigError, match="invalid regular expression '\\['.*; fix the --foo option$"):
        compile_pattern("[", "the --foo option")


def test_reference_answers_are_checked_against_the_metric_before_use():
    from artstudio.data import Example
    from artstudio.scoring import check_references

    rows = [Example(prompt="x", answer="12", source="t.jsonl:1"), Example(prompt="y", answer="", source="t.jsonl:2"),
            Example(prompt="z", answer="S", source="t.jsonl:3")]
    with pytest.raises(DataError, match=r"^t\.jsonl:3: reference answer 'S' is not a number"):
        check_references("numeric", rows, "the rows")
    check_references("numeric", rows[:2], "the rows")  # numbers pass; an empty (GRPO) answer is skipped
    check_references("exact", rows, "the rows")
    with pytest.raises(DataError, match=r"^the rows, row 0: reference answer 'S' is not valid JSON"):
        check_references("json", [Example(prompt="x", answer="S", id="0")], "the rows")
    with pytest.raises(ConfigError, match="invalid regular expression"):
        check_references("regex", [Example(prompt="x", answer="(")], "the rows")
    check_references("regex", [Example(prompt="x", answer="(")], "the rows", pattern="[0-9]+")


def test_regex_answers_that_do_not_match_their_own_text_are_warned_about(caplog):
    """`--metric regex` with answers like '[3]' (a character class) scored 0 % with no word."""
    from artstudio.data import Example
    from artstudio.scoring import check_references

    rows = [Example(prompt="7 3", answer="[3]", id="0"), Example(prompt="a", answer="(yes|no)", id="1"),
            Example(prompt="b", answer="abc", id="2")]
    with caplog.at_level("WARNING", logger="artstudio.scoring"):
        check_references("regex", rows, "the evaluation rows")
        check_references("regex", rows, "--data x")  # the same answers again: said once
        check_references("regex", rows[2:], "--data y")  # every answer matches itself: nothing to say
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "2 of the answers do not match their own text (row 0: '[3]')" in said[0]
    assert "use --metric exact, or pass one --pattern" in said[0]
