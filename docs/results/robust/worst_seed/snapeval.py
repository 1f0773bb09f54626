import glob, json, sys
from pathlib import Path
from artstudio.methods import load_artwork
from artstudio.evaluation import evaluate
from artstudio.data import load_jsonl
from artstudio.backbone import Backbone
for run in sorted(glob.glob("/tmp/exp44/runs/snap/*-[0-9]")):
    cfg = json.load(open(Path(run) / "config.json"))
    rows = load_jsonl(cfg["eval_data"])
    accs = []
    for png in sorted(glob.glob(run + "/snapshots/*.png")):
        m = load_artwork(png, model="studio-tiny")
        accs.append(round(evaluate(m, rows, "json").accuracy * 100))
    print(Path(run).name, accs, flush=True)
