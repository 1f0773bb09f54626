"""Other wordings of a library task's description, so that a hypernetwork learns the task, not the template.

Every library card says its task in one fixed template ("The prompt is ..., with no instruction. Reply
with ..., written ..."). A hypernetwork trained on those 98 sentences alone keys on the template's
exact words, and a description a person writes in other words reaches it as noise (measured in
docs/hyper.md: 75 % zero-shot from the cards, 15 % and 2 % from paraphrases). The Text-to-LoRA paper
trains on many descriptions per task for the same reason. Here they come from a small grammar:
frames × ways to say the data × ways to say the operation (as a noun phrase or as a verb) × ways to
say the answer format, drawn with a seed. Held-out pairs never get wordings: only library pairs
(op, how) are asked for, and a held-out description stays a new combination.
"""

from __future__ import annotations

import random

from .suite import HELDOUT_PAIRS

DATA = {
    "digits": ("two digits separated by a space", "a pair of digits", "two single-digit numbers",
               "two numbers from 0 to 9", "two digits, like `3 7`", "two small numbers"),
    "word": ("a lowercase word of 2 to 4 letters", "a short lowercase word", "a word of two to four letters",
             "one short word", "a small word in lower case", "a word, like `cat`"),
}
# Noun phrases (what the reply is) and imperatives (what to do) for each operation.
OPS = {
    "add": (("their sum", "the sum of the two", "the total of both numbers", "the two added together"),
            ("add them", "add the two numbers", "sum them up", "add the numbers together")),
    "sub": (("the first minus the second", "the difference, first minus second",
             "the second subtracted from the first", "what remains when the second is taken from the first"),
            ("subtract the second from the first", "take the second number away from the first",
             "compute first minus second")),
    "mul": (("their product", "the product of the two", "the two multiplied together", "the first times the second"),
            ("multiply them", "multiply the two numbers", "multiply one by the other")),
    "max": (("the larger of the two", "the bigger one", "the greater digit", "the maximum of the two",
             "whichever is higher"),
            ("pick the larger one", "keep the bigger number", "choose the maximum")),
    "min": (("the smaller of the two", "the lesser digit", "the minimum of the two", "whichever is lower",
             "the smaller one"),
            ("pick the smaller one", "keep the lower number", "choose the minimum")),
    "reverse": (("the word reversed", "the word spelled backwards", "its letters in reverse order",
                 "the word written back to front"),
                ("reverse it", "spell it backwards", "write its letters in reverse order")),
    "sort": (("its letters sorted alphabetically", "its letters in alphabetical order",
              "the letters arranged from a to z", "the word's letters sorted"),
             ("sort its letters alphabetically", "put its letters in alphabetical order",
              "arrange the letters from a to z")),
    "upper": (("the word in capital letters", "the word in uppercase", "the word in all caps",
               "the same word fully capitalised"),
              ("convert it to uppercase", "capitalise every letter", "write it in capitals")),
    "count": (("the number of letters", "how many letters it has", "its length", "the letter count"),
              ("count its letters", "count how many letters it has", "measure its length in letters")),
    "first": (("its first letter", "the initial letter", "the letter it starts with", "the word's opening letter"),
              ("take its first letter", "keep only the first letter", "give the letter it begins with")),
}
FORMATS = {
    "plain": ("as a bare value", "with nothing else", "and nothing around it", "as just the value",
              "alone, with no extra text"),
    "answer": ("on one line of the form `Answer: <value>`", "after `Answer: `",
               "on a line starting with Answer and a colon", "in the form Answer: <value>"),
    "json": ('as a JSON object of the form {"result": <value>}', 'as JSON with the key "result"',
             'as the value of "result" in a JSON object', 'in JSON, like {"result": <value>}'),
    "bracket": ("inside square brackets, like [<value>]", "in square brackets", "between [ and ]",
                "wrapped in [ ]", "enclosed in brackets, e.g. [<value>]"),
    "paren": ("inside round brackets, like (<value>)", "in parentheses", "between ( and )", "wrapped in ( )",
              "enclosed in round brackets"),
    "quote": ('inside double quotes, like "<value>"', "in quotation marks", 'wrapped in " "',
              "between double quotes"),
    "equals": ("after an equals sign and a space, like = <value>", "preceded by `= `", "after an equals sign",
               "in the form = <value>"),
    "arrow": ("after an arrow and a space, like -> <value>", "preceded by `-> `", "after an arrow ->",
              "in the form -> <value>"),
    "out": ("on one line of the form `out: <value>`", "after `out: `", "on a line starting with out and a colon",
            "in the form out: <value>"),
    "result": ("on one line of the form `Result: <value>`", "after `Result: `",
               "on a line starting with Result and a colon", "in the form Result: <value>"),
    "sentence": ("as the sentence `The result is <value>.`", "in the sentence The result is <value>.",
                 "as a sentence: The result is <value>.", "inside the sentence `The result is <value>.`"),
}
# {data} {what} (noun phrase) {do} (imperative) {how} (format); the first is the cards' own frame.
FRAMES = (
    "The prompt is {data}, with no instruction. Reply with {what}, written {how}.",
    "You get {data}. Reply with {what}, {how}.",
    "Input: {data}. Output: {what}, {how}.",
    "Given {data}, answer with {what} {how}.",
    "For {data}, output {what}, written {how}.",
    "{Data} is the input; give back {what} {how}.",
    "{Data} is given. {Do} and reply {how}.",
    "Take {data}, {do}, and write the answer {how}.",
    "{Do}: the input is {data}. Give the result {how}.",
)


def wordings(op: str, how: str, n: int, *, seed: int = 0) -> list[str]:
    """`n` distinct descriptions of library pair (op, how), drawn with `seed` (the card's own is not among them)."""
    if op not in OPS or how not in FORMATS or (op, how) in HELDOUT_PAIRS:
        raise KeyError(f"no wordings for {op}-{how}: only library pairs have them (held-out tasks stay unseen)")
    data_kind = "word" if op in ("reverse", "sort", "upper", "count", "first") else "digits"
    text_json = how == "json" and op in ("reverse", "sort", "upper", "first")
    rng = random.Random(f"{seed}:{op}:{how}")
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(50 * n):
        if len(out) == n:
            break
        data = rng.choice(DATA[data_kind])
        what = rng.choice(OPS[op][0])
        do = rng.choice(OPS[op][1])
        fmt = rng.choice(FORMATS[how]) + (" (the value as a JSON string)" if text_json and rng.random() < 0.5 else "")
        text = rng.choice(FRAMES[1:]).format(data=data, Data=data[0].upper() + data[1:], what=what, do=do,
                                             Do=do[0].upper() + do[1:], how=fmt)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out
