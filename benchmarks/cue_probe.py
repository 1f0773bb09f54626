"""Does studio-tiny read a cue picture it never saw? The compositional ceiling of a "drawn" canvas.

Every held-out task of the suite is an (operation, format) pair that pretraining never showed. The
picture that would ask for it is easy to draw: the pair's glyph under the pair's colour band. This
script uses exactly that picture, untrained, as a frozen canvas on each held-out task and prints the
accuracy next to the no-picture base model. If the model had learned the two halves of a cue
independently, the drawn cue would solve its task; if it learned each seen pair as one symbol, the
drawn cue fails and a trained canvas must find some other picture (docs/gallery.md).

    python benchmarks/cue_probe.py                      # studio-tiny, 100 test prompts per task, 2 drawings
    python benchmarks/cue_probe.py --n-test 200 --drawings 3
    python benchmarks/cue_probe.py --word-problems [--canvas RUN/artwork.png ...]

`--word-problems` asks why no canvas fits `word-problems-json` (docs/robust.md). A word problem
names its operation in words, and pretraining showed word problems with three answer formats but
never JSON. On its 200 test rows, split by operation, it scores the drawn cue with each operation's
glyph (and with the band alone) under the JSON band, the same with a format pretraining did show
(`Answer: <n>`) as the control, and any trained canvas given with `--canvas`; each answer is also
split into the JSON shape and the number, to show which half a picture gets right.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
from pathlib import Path

from artstudio.backbone import DEFAULT_MODEL, load_backbone
from artstudio.data import load_jsonl
from artstudio.evaluation import evaluate
from artstudio.data import Example
from artstudio.methods import build_method, load_artwork
from artstudio.tasks import get_task, make_task, pictures, suite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--n-test", type=int, default=100, help="test prompts per task")
    ap.add_argument("--drawings", type=int, default=2, help="differently jittered drawings of each cue (seeds 0..N-1)")
    ap.add_argument("--word-problems", action="store_true", help="probe word-problems-json (see above)")
    ap.add_argument("--canvas", nargs="*", default=[], help="with --word-problems: trained artworks to score alike")
    args = ap.parse_args()

    bb = load_backbone(args.model)
    if args.word_problems:
        return word_problems(bb, args.n_test or 200, args.canvas)
    glyphs = {op: spec[0] for op, spec in (suite.NUMERIC_OPS | suite.STRING_OPS).items()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for op, how in suite.HELDOUT_PAIRS:
            name = f"{op}-{how}"
            card = get_task(name)
            test = load_jsonl(make_task(name, Path(tmp) / name, seed=0, n_train=0, n_test=args.n_test) / "test.jsonl")
            base = evaluate(build_method("base", bb), test, card.metric).accuracy
            drawn = []
            for seed in range(args.drawings):
                path = Path(tmp) / name / f"cue-{seed}.png"
                pictures.cue(random.Random(seed), glyphs[op], how).save(path)
                drawn.append(evaluate(build_method("random-canvas", bb, {"init": str(path)}), test, card.metric).accuracy)
            rows.append((name, base, sum(drawn) / len(drawn)))
            print(f"{name:<18} base {base:6.1%}   drawn cue {rows[-1][2]:6.1%}", flush=True)
    mean = lambda i: sum(r[i] for r in rows) / len(rows)  # noqa: E731
    print(f"{'mean':<18} base {mean(1):6.1%}   drawn cue {mean(2):6.1%}")
    print(f"tasks the drawn cue solves (>= 80 %): {sum(r[2] >= 0.8 for r in rows)} of {len(rows)}")


# word_problem() words each operation its own way (artstudio/tasks/suite.py)
_WORDS = {"add": "gets", "sub": "gives away", "mul": "buys"}
_GLYPH = {"add": "plus", "sub": "minus", "mul": "times"}


def _halves(rows: list[dict]) -> tuple[float, float, float]:
    """(accuracy, answers in the JSON shape {"result": n}, answers whose last number is right)."""
    shape = number = 0
    for r in rows:
        try:
            obj = json.loads(r["prediction"])
            shape += isinstance(obj, dict) and list(obj) == ["result"]
        except ValueError:
            pass
        nums = re.findall(r"-?\d+", r["prediction"])
        number += bool(nums) and nums[-1] == re.findall(r"-?\d+", r["answer"])[-1]
    n = max(len(rows), 1)
    return sum(r["correct"] for r in rows) / n, shape / n, number / n


def word_problems(bb, n_test: int, canvases: list[str]) -> None:
    from artstudio.hyper.t2c import cue_target
    from artstudio.vision import tensor_to_image

    with tempfile.TemporaryDirectory() as tmp:
        test = load_jsonl(make_task("word-problems-json", Path(tmp) / "wp", seed=0, n_train=0, n_test=n_test)
                          / "test.jsonl")
        by_op = {op: [ex for ex in test if word in ex.prompt] for op, word in _WORDS.items()}
        as_answer = {op: [Example(ex.prompt, "Answer: " + str(json.loads(ex.answer)["result"]), id=ex.id)
                          for ex in rows] for op, rows in by_op.items()}

        def frozen(glyph_op: str | None, how: str):
            path = Path(tmp) / f"{glyph_op}-{how}.png"
            tensor_to_image(cue_target(pictures.SIDE, glyph_op, how)).save(path)
            return build_method("random-canvas", bb, {"init": str(path)})

        print(f"word-problems-json, {len(test)} test rows ({', '.join(f'{op} {len(r)}' for op, r in by_op.items())})")
        print(f"{'picture':<36}{'rows':<6}{'correct':>9}{'JSON shape':>12}{'number':>9}")

        def report(label: str, method, sets: dict, metric: str) -> None:
            for op, rows in sets.items():
                acc, shape, number = _halves(evaluate(method, rows, metric).predictions)
                shape_text = f"{shape:11.1%}" if metric == "json" else f"{'':>11}"
                print(f"{label[-35:]:<36}{op:<6}{acc:9.1%} {shape_text}{number:9.1%}", flush=True)

        report("no picture", build_method("base", bb), by_op, "json")
        for how, sets, metric in (("json", by_op, "json"), ("answer", as_answer, "exact")):
            for glyph_op in (*_GLYPH, None):
                report(f"{_GLYPH.get(glyph_op, 'no')} glyph, {how} band", frozen(glyph_op, how), sets, metric)
        for path in canvases:
            report(path, load_artwork(path, bb), by_op | {"all": test}, "json")

if __name__ == "__main__":
    main()
