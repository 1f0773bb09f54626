"""ART with --starts 3 in the 300x16 lr-grid comparison's test cells (rates as picked on three seeds)."""
import csv, json, subprocess, sys, os
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
ROOT = Path("/tmp/exp46")
CSV = Path("/work/main/docs/results/robust/lrgrid_300x16_gs3/results.csv")
sys.path.insert(0, str(ROOT / "src"))
from artstudio.tasks.resolve import resolve_data
from artstudio.data import load_jsonl, write_jsonl
cells = [r for r in csv.DictReader(open(CSV)) if r["method"] == "art"]
evals = {}
for task in sorted({r["task"] for r in cells}):
    t = resolve_data(task, ROOT / "tasks", role="test")
    rows = load_jsonl(t.folder / "test.jsonl")[:100]
    evals[task] = write_jsonl(ROOT / "tasks" / f"{task}.test-first-100.jsonl", rows)
jobs = [(starts, r) for r in cells for starts in sys.argv[1].split(",")]  # both arms of a cell side by side
def run(job):
    starts, r = job
    out = ROOT / f"runs-s{starts}" / f"{r['task']}-{r['seed']}"
    if (out / "result.json").exists():
        return
    cmd = [sys.executable, "-m", "artstudio", "train", "--data", r["task"], "--eval-data", str(evals[r["task"]]),
           "--seed", r["seed"], "--lr", r["lr"], "--steps", "300", "--batch-size", "16", "--starts", starts,
           "--checkpoint-every", "0", "--snapshot-every", "0", "--overwrite", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    log = open(str(out) + ".log", "w") if out.parent.mkdir(parents=True, exist_ok=True) is None else None
    subprocess.run(cmd, cwd=ROOT / "src", env=env, stdout=log, stderr=subprocess.STDOUT)
with ThreadPoolExecutor(int(sys.argv[2]) if len(sys.argv) > 2 else 2) as ex:
    list(ex.map(run, jobs))
