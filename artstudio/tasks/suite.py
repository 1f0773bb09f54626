"""The built-in synthetic task suite that studio-tiny is pretrained and judged on.

The world is small on purpose: a few-million-parameter model must master it on two CPU cores.
Operations act on data written in the prompt (two digits, or a lowercase word of 2 to 4 letters). An
operation and an answer format can be asked for in words, or shown in a *cue picture* (glyph =
operation, colour band = format, see `pictures.py`). Pretraining covers most operation × format pairs;
the held-out adaptation tasks are pairs the model never saw, asked with no instruction at all. The
model can only solve them if something in its input says what to do: that is the canvas's job.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass, field
from typing import Callable

from PIL import Image

from . import pictures

FORMATS = ("plain", "answer", "json", "bracket")  # the answer formats the held-out tasks ask for
# Formats only pretraining shows, each a template around the value. Their prefixes put the value 1 to
# 14 characters after the answer's start, so every operation is practised at many distances from it.
# In v1 each operation met only two or three of the four formats above, and it failed at the prefix
# length of the missing one: a reverse-json canvas got the JSON right and the reversal wrong.
EXTRA_FORMATS = {
    "paren": "({})", "quote": '"{}"', "equals": "= {}", "arrow": "-> {}", "out": "out: {}",
    "result": "Result: {}", "sentence": "The result is {}.",
}
PRETRAIN_FORMATS = FORMATS + tuple(EXTRA_FORMATS)
NUMERIC_OPS = {  # name: (glyph, function, words for the description)
    "add": ("plus", lambda a, b: a + b, "their sum"),
    "sub": ("minus", lambda a, b: a - b, "the first minus the second"),
    "mul": ("times", lambda a, b: a * b, "their product"),
    "max": ("up", max, "the larger of the two"),
    "min": ("down", min, "the smaller of the two"),
}
STRING_OPS = {
    "reverse": ("ring", lambda w: w[::-1], "the word reversed"),
    "sort": ("stairs", lambda w: "".join(sorted(w)), "its letters sorted alphabetically"),
    "upper": ("square", str.upper, "the word in capital letters"),
    "count": ("bars", len, "the number of letters"),
    "first": ("dot", lambda w: w[0], "its first letter"),
}
# Operation × format pairs that pretraining never shows; each is one held-out task.
HELDOUT_PAIRS = (
    ("add", "json"), ("sub", "answer"), ("mul", "plain"), ("max", "bracket"), ("min", "json"),
    ("mul", "bracket"), ("reverse", "json"), ("sort", "answer"), ("upper", "plain"),
    ("count", "bracket"), ("first", "json"), ("reverse", "bracket"),
)
FORMAT_WORDS = {
    "plain": "as a bare value",
    "answer": "on one line of the form `Answer: <value>`",
    "json": 'as a JSON object of the form {"result": <value>}',
    "bracket": "inside square brackets, like [<value>]",
}


_TEMPLATES = {"plain": "{}", "answer": "Answer: {}", "bracket": "[{}]", **EXTRA_FORMATS}


def fmt(value, how: str) -> str:
    """Write `value` in answer format `how` (JSON: a real JSON object, strings quoted and escaped)."""
    if how == "json":
        return json.dumps({"result": value})
    if how in _TEMPLATES:
        return _TEMPLATES[how].format(value)
    raise ValueError(how)


def _digits(rng: random.Random, op: str) -> tuple[int, int]:
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    if op == "sub" and a < b:  # keep answers non-negative: the small model only sees digits
        a, b = b, a
    return a, b


WORD_LENGTHS = (2, 4)  # v0 used 3-5 letters and reached 28 % on its string tasks; shorter words are learnable


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(*WORD_LENGTHS)))


def cue_example(rng: random.Random, op: str, how: str, with_picture: bool = True):
    """Data only in the prompt; operation and format in the cue picture (or nowhere)."""
    if op in NUMERIC_OPS:
        glyph, f, _ = NUMERIC_OPS[op]
        a, b = _digits(rng, op)
        prompt, value = f"{a} {b}", f(a, b)
    else:
        glyph, f, _ = STRING_OPS[op]
        w = _word(rng)
        prompt, value = w, f(w)
    image = pictures.cue(rng, glyph, how) if with_picture else None
    return prompt, fmt(value, how), image


# --- pretraining generators: (rng) -> (prompt, answer, image or None) ---------------------------

_SEEN_PAIRS = [(op, how) for op in (*NUMERIC_OPS, *STRING_OPS) for how in PRETRAIN_FORMATS if (op, how) not in HELDOUT_PAIRS]


def gen_cue_numeric(rng):
    op, how = rng.choice([p for p in _SEEN_PAIRS if p[0] in NUMERIC_OPS])
    return cue_example(rng, op, how)


def gen_cue_strings(rng):
    op, how = rng.choice([p for p in _SEEN_PAIRS if p[0] in STRING_OPS])
    return cue_example(rng, op, how)


_ARITH_PHRASES = {
    "add": ["add {a} and {b}", "what is {a} plus {b}?", "sum of {a} and {b}"],
    "sub": ["subtract {b} from {a}", "what is {a} minus {b}?"],
    "mul": ["multiply {a} by {b}", "what is {a} times {b}?"],
    "max": ["larger of {a} and {b}", "max of {a} and {b}"],
    "min": ["smaller of {a} and {b}", "min of {a} and {b}"],
}


def gen_arith_text(rng):
    op = rng.choice(list(NUMERIC_OPS))
    a, b = _digits(rng, op)
    return rng.choice(_ARITH_PHRASES[op]).format(a=a, b=b), str(NUMERIC_OPS[op][1](a, b)), None


_STRING_PHRASES = {
    "reverse": ["reverse {w}", "write {w} backwards"],
    "sort": ["sort the letters of {w}", "sort {w}"],
    "upper": ["uppercase {w}", "capitalise {w}"],
    "count": ["count the letters in {w}", "how many letters in {w}?"],
    "first": ["first letter of {w}", "what letter does {w} start with?"],
}


def gen_strings_text(rng):
    op = rng.choice(list(STRING_OPS))
    w = _word(rng)
    return rng.choice(_STRING_PHRASES[op]).format(w=w), str(STRING_OPS[op][1](w)), None


_NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Ida"]
_ITEMS = ["apple", "book", "coin", "pen", "shell", "card"]
MATH_SUFFIX = "\nEnd your response with: Answer: <number>"  # the paper's math instruction (DESIGN §1)


def word_problem(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    kind = rng.choice(["add", "sub", "mul"])
    a, b = _digits(rng, kind)
    if kind == "add":
        text = f"{name} has {a} {item}s and gets {b} more. How many {item}s now?"
    elif kind == "sub":
        text = f"{name} has {a} {item}s and gives away {b}. How many {item}s now?"
    else:
        text = f"{name} buys {a} bags with {b} {item}s each. How many {item}s in all?"
    return text, NUMERIC_OPS[kind][1](a, b)


def gen_word_problems(rng):
    text, value = word_problem(rng)
    return text + MATH_SUFFIX, f"Answer: {value}", None


def gen_cue_word_problems(rng):
    """Word problems whose cue picture shows the operation and the answer format.

    Only pairs pretraining may show: a held-out pair's cue (say × with the bare-value band, the
    mul-plain task) never appears here either, and no word problem is ever answered in JSON
    (word-problems-json is held out). v0 drew the format freely and leaked three held-out cues.
    """
    text, value = word_problem(rng)
    kind = "sub" if "gives" in text else "mul" if "bags" in text else "add"
    how = rng.choice([h for op, h in _SEEN_PAIRS if op == kind and h != "json"])
    return text, fmt(value, how), pictures.cue(rng, NUMERIC_OPS[kind][0], how)


def gen_read_digit(rng):
    # One digit: v0's two-digit numbers (0-99) in 9 visual tokens reached 5 %; one large digit is learnable.
    value = rng.randint(0, 9)
    return rng.choice(["Which digit is shown?", "Read the digit."]), str(value), pictures.number(rng, value)


def gen_colour_name(rng):
    colour = rng.choice(list(pictures.COLOURS))
    return rng.choice(["What colour is this?", "Name the colour."]), colour, pictures.swatch(rng, colour)


def gen_count_shapes(rng):
    n = rng.randint(1, 6)
    return rng.choice(["How many squares?", "Count the squares."]), str(n), pictures.shape_grid(rng, n)


TOOLS = {
    "get_weather": ("city", ["weather in {x}", "is it raining in {x}?"]),
    "get_time": ("city", ["time in {x}", "what time is it in {x}?"]),
    "play_song": ("title", ["play {x}", "put on {x}"]),
    "set_timer": ("minutes", ["timer for {x} minutes", "set a {x} minute timer"]),
}
_CITIES = ["Paris", "Oslo", "Lima", "Cairo", "Tokyo", "Rome", "Quito", "Delhi"]
_SONGS = ["Blue Sky", "Rain", "Gold", "Home", "Lights", "Echo"]


def _tool_call(rng: random.Random, tools: dict) -> tuple[str, str, str]:
    name = rng.choice(list(tools))
    arg, phrases = tools[name]
    value = rng.choice(_CITIES if arg == "city" else _SONGS if arg == "title" else [str(rng.randint(1, 30))])
    arguments = {arg: int(value) if arg == "minutes" else value}
    return name, rng.choice(phrases).format(x=value), json.dumps({"name": name, "arguments": arguments})


def gen_tool_call(rng):
    name, request, call = _tool_call(rng, TOOLS)
    shown = [t for t in TOOLS if t != name]
    shown = rng.sample(shown, rng.randint(1, len(shown))) + [name]
    rng.shuffle(shown)
    schema = ", ".join(f"{t}({TOOLS[t][0]})" for t in shown)
    return f"Tools: {schema}\nRequest: {request}", call, None


# --- task cards ---------------------------------------------------------------------------------

@dataclass
class TaskCard:
    """What a task asks, how it is scored, and how its splits are made."""

    name: str
    description: str = field(metadata={"help": "one paragraph a person could solve the task from"})
    metric: str = "exact"  # exact | numeric | json | regex
    answer_format: str = "plain"
    kind: str = "heldout"  # pretrain | heldout
    n_train: int = 1000
    n_test: int = 200
    generate: Callable[[random.Random], tuple[str, str, Image.Image | None]] | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "generate"}


def _heldout_cue(op: str, how: str) -> TaskCard:
    if op in NUMERIC_OPS:
        words, data = NUMERIC_OPS[op][2], "two digits separated by a space"
    else:
        words, data = STRING_OPS[op][2], "a lowercase word of 2 to 4 letters"
    value = "number" if op in NUMERIC_OPS or op == "count" else "text"
    return TaskCard(
        name=f"{op}-{how}",
        description=f"The prompt is {data}, with no instruction. Reply with {words}, written {FORMAT_WORDS[how]}"
        + (" (the value as a JSON string)." if how == "json" and value == "text" else "."),
        metric="json" if how == "json" else "exact",
        answer_format=how,
        generate=lambda rng, op=op, how=how: cue_example(rng, op, how, with_picture=False),
    )


def gen_word_problems_json(rng):
    text, value = word_problem(rng)
    return text, json.dumps({"result": value}), None


PRETRAIN = [
    TaskCard("cue-numeric", "Two digits in the prompt; the picture's glyph names the operation (+ add, − subtract, × multiply, ▲ larger, ▼ smaller) and the colour band across its top the answer format (green bare, yellow `Answer: <n>`, cyan JSON {\"result\": n}, pink [n], and seven formats only pretraining uses: purple (n), olive \"n\", orange = n, red -> n, blue out: n, teal Result: n, brown The result is n.).", "exact", "varies", "pretrain", generate=gen_cue_numeric),
    TaskCard("cue-strings", "A lowercase word of 2 to 4 letters in the prompt; the picture's glyph names the operation (ring reverse, stairs sort, square uppercase, two bars count, dot first letter) and the colour band across its top the answer format.", "exact", "varies", "pretrain", generate=gen_cue_strings),
    TaskCard("arith-text", "An arithmetic request on two digits in words (add, subtract, multiply, larger, smaller); reply with the bare number.", "exact", "plain", "pretrain", generate=gen_arith_text),
    TaskCard("strings-text", "A string transform asked in words (reverse, sort letters, uppercase, count letters, first letter); reply with the bare result.", "exact", "plain", "pretrain", generate=gen_strings_text),
    TaskCard("word-problems", "A one-sentence arithmetic word problem ending with the instruction `End your response with: Answer: <number>`; reply `Answer: <n>`.", "numeric", "answer", "pretrain", generate=gen_word_problems),
    TaskCard("cue-word-problems", "A one-sentence arithmetic word problem with a cue picture whose glyph shows the operation and whose colour band gives the answer format (green bare, yellow `Answer: <n>`, pink [n]; only operation-format pairs of the other pretraining tasks).", "exact", "varies", "pretrain", generate=gen_cue_word_problems),
    TaskCard("read-digit", "A picture shows one digit from 0 to 9, drawn large; reply with the digit.", "exact", "plain", "pretrain", generate=gen_read_digit),
    TaskCard("colour-name", "A picture is filled with one colour; reply with its name (red, green, blue, yellow, purple, orange, black, white).", "exact", "plain", "pretrain", generate=gen_colour_name),
    TaskCard("count-shapes", "A picture shows 1 to 6 squares on a 3×3 grid; reply with how many.", "exact", "plain", "pretrain", generate=gen_count_shapes),
    TaskCard("tool-call", "A list of tools with their argument names and a request in words; reply with the JSON call {\"name\": tool, \"arguments\": {arg: value}}.", "json", "json", "pretrain", generate=gen_tool_call),
]

HELDOUT = [_heldout_cue(op, how) for op, how in HELDOUT_PAIRS] + [
    TaskCard(
        "word-problems-json",
        'A one-sentence arithmetic word problem with no instruction about the format; reply with the number as a JSON object {"result": <n>}.',
        "json", "json", generate=gen_word_problems_json,
    ),
]
