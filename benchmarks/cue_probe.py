"""Does studio-tiny read a cue picture it never saw? The compositional ceiling of a "drawn" canvas.

Every held-out task of the suite is an (operation, format) pair that pretraining never showed. The
picture that would ask for it is easy to draw: the pair's glyph under the pair's colour band. This
script uses exactly that picture, untrained, as a frozen canvas on each held-out task and prints the
accuracy next to the no-picture base model. If the model had learned the two halves of a cue
independently, the drawn cue would solve its task; if it learned each seen pair as one symbol, the
drawn cue fails and a trained canvas must find some other picture (docs/gallery.md).

    python benchmarks/cue_probe.py                      # studio-tiny, 100 test prompts per task, 2 drawings
    python benchmarks/cue_probe.py --n-test 200 --drawings 3
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from artstudio.backbone import DEFAULT_MODEL, load_backbone
from artstudio.data import load_jsonl
from artstudio.evaluation import evaluate
from artstudio.methods import build_method
from artstudio.tasks import get_task, make_task, pictures, suite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--n-test", type=int, default=100, help="test prompts per task")
    ap.add_argument("--drawings", type=int, default=2, help="differently jittered drawings of each cue (seeds 0..N-1)")
    args = ap.parse_args()

    bb = load_backbone(args.model)
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


if __name__ == "__main__":
    main()
