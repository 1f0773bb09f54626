"""Training rewards: the paper's shaped numeric bands, partial JSON credit, user rewards and sums."""

import math

import pytest

from artstudio.errors import ConfigError, DataError
from artstudio.objectives import rewards
from artstudio.scoring import score


@pytest.mark.parametrize("completion, answer, expected", [
    ("Answer: 1,234", "1234", 1.0),
    ("Answer: $5", "5", 1.0),
    ("answer: -3.5", "-3.5", 1.0),
    ("The answer is 1234", "1234", 0.01),  # right number, no `Answer:` prefix
    ("Answer: 7\nLet me redo it.\nAnswer: 1234", "1234", 1.0),  # the last formatted answer counts
    ("Answer: 1234\nAnswer: 7", "1234", 0.1),
    ("Answer: 1240", "1234", 0.4),  # 0.49 % off
    ("Answer: 1300", "1234", 0.2),  # 5.3 % off
    ("Answer: 99", "1234", 0.1),  # formatted but wrong
    ("I do not know.", "1234", 0.0),
    ("Answer: 0.001", "0", 0.1),  # a zero reference has no near-miss bands
    ("Answer: 0", "Answer: 0", 1.0),
])
def test_numeric_reward_bands(completion, answer, expected):
    assert rewards.get("numeric")("prompt", completion, answer) == expected
    # Evaluation of the same completion stays strictly 0/1.
    assert score("numeric", completion, answer) is (expected == 1.0)


def test_numeric_reward_rejects_non_numeric_reference():
    with pytest.raises(DataError, match="'abc'"):
        rewards.get("numeric")("p", "Answer: 3", "abc")


def test_exact_regex_format():
    assert rewards.get("exact")("p", " olleh ", "olleh") == 1.0
    assert rewards.get("exact")("p", "hello", "olleh") == 0.0
    assert rewards.get("regex")("p", "[7]", r"\[\d\]") == 1.0
    assert rewards.get("regex")("p", "7", r"\[\d\]") == 0.0
    assert rewards.get("format")("p", "so... Answer: 99", "3") == 1.0
    assert rewards.get("format")("p", "3", "3") == 0.0
    bracket = rewards.get("format:^\\[.+\\]$")
    assert bracket("p", "[abc]", "x") == 1.0
    assert bracket("p", "abc", "x") == 0.0


TOOL = '{"name": "search", "arguments": {"query": "cats", "limit": 5}}'


@pytest.mark.parametrize("completion, expected", [
    (TOOL, 1.0),
    ('{"arguments": {"limit": 5, "query": "cats"}, "name": "search"}', 1.0),
    ('{"name": "search", "arguments": {"query": "cats", "limit": 6}}', 0.75),  # 0.2 + 0.3 + 0.25
    ('{"name": "lookup", "arguments": {"query": "cats", "limit": 5}}', 0.7),  # 0.2 + 0.5
    ('{"name": "search", "arguments": "{\\"query\\": \\"cats\\"}"}', 0.75),  # string arguments decoded
    ('{"name": "search", "arguments": {"query": "cats", "limit": 5, "x": 1}}', 0.2 + 0.3 + 0.5 * 2 / 3),
    ('{"name": "search"}', 0.5),
    ('{"foo": 1}', 0.2),
    ('[1, 2]', 0.0),
    ('call search(cats)', 0.0),
    (f'Sure: {TOOL}', 0.0),  # as strict as the json metric
])
def test_json_tool_call_partial_credit(completion, expected):
    assert math.isclose(rewards.get("json-tool-call")("p", completion, TOOL), expected)


def test_json_tool_call_on_plain_objects_and_extra_fields():
    reward = rewards.get("json-tool-call")
    assert reward("p", '{"result": 5}', '{"result": 5}') == 1.0
    assert reward("p", '{"result": 6}', '{"result": 5}') == 0.2
    assert reward("p", '{"result": true}', '{"result": 1}') == 0.2
    # Right in every scored part but not the reference: still below a correct answer.
    assert reward("p", '{"name": "f", "arguments": {}, "id": 1}', '{"name": "f", "arguments": {}}') == 0.9
    assert reward("p", "7", "5") == 0.2 and reward("p", "5", "5") == 1.0
    with pytest.raises(DataError):
        reward("p", "{}", "{oops")


def test_weighted_sum_is_normalised():
    completion, answer = "Answer: 99", "1234"
    from_spec = rewards.get("numeric*0.8+format*0.2")
    assert math.isclose(from_spec("p", completion, answer), 0.8 * 0.1 + 0.2 * 1.0)
    doubled = rewards.combine({"numeric": 1.6, "format": 0.4})
    assert math.isclose(doubled("p", completion, answer), from_spec("p", completion, answer))
    assert rewards.get("numeric*3+format*1")("p", "Answer: 1234", "1234") == 1.0
    assert rewards.get("numeric+format")("p", "1234", "1234") == pytest.approx(0.005)


def test_a_format_term_in_a_sum_is_a_term_wherever_it_stands():
    """'format:\\[\\d\\]*0.3+exact*0.7' was read as one regex that no answer matches: GRPO trained on a reward of
    0 and said nothing; a format term whose regex holds '+' was cut there ("unknown reward '\\]'")."""
    for spec in ("format:\\[\\d\\]*0.3+exact*0.7", "exact*0.7+format:\\[\\d\\]*0.3"):
        reward = rewards.get(spec)
        assert [reward("p", c, "[5]") for c in ("[5]", "[6]", "x")] == [1.0, 0.3, 0.0], spec
    assert rewards.get("format:\\[\\d+\\]")("p", "[42]", "") == 1.0  # alone, a regex may hold '+' and '*'
    assert rewards.get("format:a*2")("p", "aa2", "") == 1.0
    for spec in ("format:\\[\\d+\\]*0.3+exact", "exact*0.7+format:\\[\\d+\\]*0.3"):
        with pytest.raises(ConfigError, match="does not read as a sum: .* may not hold '\\+' in its REGEX"):
            rewards.get(spec)


@pytest.mark.parametrize("spec", ["numeric*x", "numeric*-1+format", "*0.5"])
def test_bad_sums(spec):
    with pytest.raises(ConfigError):
        rewards.get(spec)


def test_unknown_reward_lists_names():
    with pytest.raises(ConfigError) as e:
        rewards.get("bleu")
    for name in ("numeric", "exact", "regex", "json-tool-call", "format"):
        assert name in str(e.value)
        assert name in rewards.names()


def test_user_reward_from_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(
        "def length(prompt, completion, answer):\n    return min(len(completion) / 10, 1.0)\n"
        "def too_big(prompt, completion, answer):\n    return 2.0\n"
        "def nan(prompt, completion, answer):\n    return float('nan')\n"
        "def text(prompt, completion, answer):\n    return '0.5'\n"
    )
    assert rewards.get(f"{path}:length")("p", "abcde", "a") == 0.5
    with pytest.raises(ConfigError, match=r"too_big.*returned 2\.0"):
        rewards.get(f"{path}:too_big")("p", "c", "a")
    with pytest.raises(ConfigError, match=r"nan.*returned nan"):
        rewards.get(f"{path}:nan")("p", "c", "a")
    with pytest.raises(ConfigError, match=r"text.*returned '0.5'; a reward must return a float"):  # text is not a score
        rewards.get(f"{path}:text")("p", "c", "a")
    with pytest.raises(ConfigError, match="has no attribute 'missing'"):
        rewards.get(f"{path}:missing")
    with pytest.raises(ConfigError, match="no file"):
        rewards.get(f"{tmp_path}/absent.py:length")
    mixed = rewards.get(f"{path}:length*0.5+exact*0.5")
    assert mixed("p", "abcde", "abcde") == 0.75


def test_user_reward_from_module(tmp_path, monkeypatch):
    (tmp_path / "user_reward_pkg.py").write_text("def half(prompt, completion, answer):\n    return 0.5\n")
    monkeypatch.chdir(tmp_path)  # the working folder is importable, as for `artstudio train`
    assert rewards.get("user_reward_pkg:half")("p", "c", "a") == 0.5
    with pytest.raises(ConfigError, match="no_such_module_xyz"):
        rewards.get("no_such_module_xyz:fn")


def test_register_decorator():
    @rewards.register("test-always-half")
    def half(prompt, completion, answer):
        return 0.5

    assert rewards.get("test-always-half") is half
    assert "test-always-half" in rewards.names()
    with pytest.raises(ConfigError, match="already registered"):
        rewards.register("numeric")(half)
    with pytest.raises(ConfigError, match="invalid"):
        rewards.register("a+b")


def test_a_bad_format_regex_names_the_reward_not_pattern():
    """`--grpo-reward "format:["` said "fix --pattern", an option the user never gave."""
    with pytest.raises(ConfigError) as info:
        rewards.get("format:[")
    msg = str(info.value)
    assert "invalid regular expression '['" in msg and "format:[" in msg and "--grpo-reward" in msg
    assert "--pattern" not in msg


def test_a_reward_file_whose_path_holds_plus_is_a_file_not_a_sum(tmp_path):
    folder = tmp_path / "c++ rewards"
    folder.mkdir()
    (folder / "r.py").write_text("def third(prompt, completion, answer):\n    return 1 / 3\n")
    assert rewards.get(f"{folder / 'r.py'}:third")("p", "c", "a") == pytest.approx(1 / 3)


def test_portable_records_reward_files_by_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text("def half(prompt, completion, answer):\n    return 0.5\n")
    monkeypatch.chdir(tmp_path)
    absolute = f"{tmp_path.resolve() / 'mine.py'}:half"
    assert rewards.portable("mine.py:half") == absolute
    assert rewards.portable("mine.py:half*0.5+exact*0.5") == f"{absolute}*0.5+exact*0.5"
    for spec in ("numeric", "numeric*0.8+format*0.2", "format:^A", "some.module:fn", None):
        assert rewards.portable(spec) == spec  # names, sums of names, patterns, modules: as given
    monkeypatch.chdir(tmp_path.parent)  # the recorded spec still loads from another folder
    assert rewards.get(absolute)("p", "c", "a") == 0.5


def test_numeric_reward_on_text_answers_suggests_a_reward_not_a_metric():
    with pytest.raises(DataError, match="--grpo-reward exact"):
        rewards.get("numeric")("p", "Answer: 3", "abc")


def test_functions_are_recorded_by_name_not_address():
    from artstudio.atomic import json_default

    fn = test_functions_are_recorded_by_name_not_address
    assert json_default(fn) == f"{fn.__module__}:test_functions_are_recorded_by_name_not_address"
    assert json_default(fn) == json_default(fn) and "0x" not in json_default(fn)
    assert json_default(3j) == "3j"


def test_a_scripts_own_reward_named_again_says_how_to_resume():
    """A Python function reward is recorded as `__main__:NAME`; `train --resume` from the command line then said
    "__main__ has no attribute 'my_reward'"."""
    with pytest.raises(ConfigError, match="was a function of the script that started the run.*resume it from Python"):
        rewards.get("__main__:no_such_reward_here")
