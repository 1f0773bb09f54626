"""Re-train compare-gs3's ART test cells with one option changed; print accuracy per cell."""
import json, sys, glob, os
from dataclasses import fields
from pathlib import Path
from artstudio.training import TrainConfig, train

GS3 = Path("/tmp/exp42/runs/compare-gs3")
name = sys.argv[1]; change = json.loads(sys.argv[2]); tasks = sys.argv[3].split(","); seeds = [int(s) for s in sys.argv[4].split(",")]
cells = {}
for f in glob.glob(str(GS3 / "cells/*/cell.json")):
    c = json.load(open(f))
    if c.get("method") == "art" and c.get("phase") == "test":
        cells[(c["task"], c["seed"])] = (Path(f).parent, c)
names = {f.name for f in fields(TrainConfig)}
out_csv = Path(f"/tmp/exp44/res_{name}.csv")
for task in tasks:
    for seed in seeds:
        folder, cell = cells[(task, seed)]
        cfg = json.load(open(folder / "run/config.json"))
        cfg = {k: v for k, v in cfg.items() if k in names}
        cfg["eval_data"] = str(GS3.parent.parent / cfg["eval_data"])
        cfg["out"] = f"/tmp/exp44/runs/{name}/{task}-{seed}"
        mo = dict(cfg.get("method_options") or {})
        for k, v in change.items():
            if k.startswith("mo."):
                mo[k[3:]] = v
            else:
                cfg[k] = v
        cfg["method_options"] = mo
        res = train(TrainConfig(**cfg), progress=False)
        acc = res.metrics.get("accuracy")
        line = f"{name},{task},{seed},{cell['accuracy']},{acc},{res.metrics.get('train_seconds')}"
        print(line, flush=True)
        with open(out_csv, "a") as fh:
            fh.write(line + "\n")
