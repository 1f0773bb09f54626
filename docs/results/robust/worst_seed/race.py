import json, sys, glob, os
os.environ["RACE_END"] = "1"
from dataclasses import fields
from pathlib import Path
from artstudio.training import TrainConfig, train
from artstudio.methods import load_artwork
from artstudio.evaluation import evaluate
from artstudio.data import load_jsonl as read_jsonl
GS3 = Path("/tmp/exp42/runs/compare-gs3")
name = sys.argv[1]; frac = float(sys.argv[2]); tasks = sys.argv[3].split(","); seeds = [int(s) for s in sys.argv[4].split(",")]
cells = {}
for f in glob.glob(str(GS3 / "cells/*/cell.json")):
    c = json.load(open(f))
    if c.get("method") == "art" and c.get("phase") == "test":
        cells[(c["task"], c["seed"])] = (Path(f).parent, c)
names = {f.name for f in fields(TrainConfig)}
for task in tasks:
    for seed in seeds:
        folder, cell = cells[(task, seed)]
        cfg = json.load(open(folder / "run/config.json"))
        cfg = {k: v for k, v in cfg.items() if k in names}
        cfg["eval_data"] = str(GS3.parent.parent / cfg["eval_data"])
        out = Path(f"/tmp/exp44/runs/{name}/{task}-{seed}")
        cfg["out"] = str(out)
        cfg["method_options"] = dict(cfg.get("method_options") or {}) | {"start_steps": frac}
        try:
            train(TrainConfig(**cfg), progress=False)
        except RuntimeError as e:
            assert "RACE_END" in str(e)
        choice = json.load(open(out / "starts/choice.json"))
        accs = {}
        for s in choice["starts"]:
            m = load_artwork(Path(s["folder"]) / "artwork.png", "studio-tiny")
            accs[s["start"]] = evaluate(m, read_jsonl(cfg["eval_data"]), "json").accuracy
        line = f"{name},{task},{seed},{cell['accuracy']},{accs[choice['chosen']]},{choice['chosen']}," + ",".join(f"{k}:{s['val_accuracy']}:{accs[k]}" for k, s in zip(accs, choice['starts']))
        print(line, flush=True)
        open(f"/tmp/exp44/res_{name}.csv", "a").write(line + "\n")
