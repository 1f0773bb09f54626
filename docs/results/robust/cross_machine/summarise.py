import json, csv, glob
amd = {(r["task"], r["seed"]): float(r["accuracy"]) for r in csv.DictReader(open("/work/main/docs/results/robust/lrgrid_300x16_gs3/results.csv")) if r["method"] == "art"}
lora = {(r["task"], r["seed"]): float(r["accuracy"]) for r in csv.DictReader(open("/work/main/docs/results/robust/lrgrid_300x16/results.csv")) if r["method"] == "lora"}
intel, s3 = {}, {}
for arm, d in (("s2", intel), ("s3", s3)):
    for f in glob.glob(f"/tmp/exp46/runs-{arm}/*/result.json"):
        task, seed = f.split("/")[-2].rsplit("-", 1)
        m = json.load(open(f)); m = m.get("metrics", m)
        d[(task, seed)] = m
rows = []
for k in sorted(intel):
    rows.append({"task": k[0], "seed": k[1], "amd_epyc": amd[k], "intel_xeon": intel[k]["accuracy"],
                 "intel_xeon_starts3": s3[k]["accuracy"] if k in s3 else "", "lora_amd": lora.get(k, ""),
                 "start_intel": intel[k].get("start"), "start_intel_starts3": s3[k].get("start") if k in s3 else ""})
with open("/tmp/exp46/cross_machine.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
n = len(rows)
ma = sum(r["amd_epyc"] for r in rows) / n; mi = sum(r["intel_xeon"] for r in rows) / n
ml = sum(r["lora_amd"] for r in rows) / n
print(f"n={n} AMD {ma:.4f} Intel {mi:.4f} LoRA(AMD) {ml:.4f}  gap AMD {100*(ml-ma):.2f} Intel {100*(ml-mi):.2f}")
diff = [(abs(r["amd_epyc"] - r["intel_xeon"]), r["task"], r["seed"], r["amd_epyc"], r["intel_xeon"]) for r in rows]
print("cells differing:", sum(d[0] > 0 for d in diff), "max", max(diff))
for d in sorted(diff, reverse=True)[:10]: print(d)
print("Intel cells <0.8:", [(r["task"], r["seed"], r["intel_xeon"]) for r in rows if r["intel_xeon"] < 0.8])
for s in "012":
    print("seed", s, "AMD", sum(r["amd_epyc"] for r in rows if r["seed"] == s) / 13, "Intel", sum(r["intel_xeon"] for r in rows if r["seed"] == s) / 13)
both = [r for r in rows if r["intel_xeon_starts3"] != ""]
print("starts3 cells", len(both), "equal to starts2:", sum(r["intel_xeon_starts3"] == r["intel_xeon"] for r in both),
      "t2c chosen (s3):", sum(r["start_intel_starts3"] == "t2c" for r in both))
from collections import defaultdict
per = defaultdict(list)
for r in rows: per[r["task"]].append(r)
for t, rs in sorted(per.items()):
    a = " / ".join("%.0f" % (100 * r["amd_epyc"]) for r in rs); i = " / ".join("%.0f" % (100 * r["intel_xeon"]) for r in rs)
    print(f"{t:20s} AMD {a}  Intel {i}")
li = {}
for f in glob.glob("/tmp/exp46/runs-lora/*/result.json"):
    task, seed = f.split("/")[-2].rsplit("-", 1)
    m = json.load(open(f)); m = m.get("metrics", m); li[(task, seed)] = m["accuracy"]
for r in rows:
    r["lora_intel"] = li[(r["task"], r["seed"])]
with open("/tmp/exp46/cross_machine.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
ml_i = sum(r["lora_intel"] for r in rows) / n
print(f"LoRA Intel {ml_i:.4f} (AMD {ml:.4f}); differing LoRA cells:", [(r['task'], r['seed'], r['lora_amd'], r['lora_intel']) for r in rows if r['lora_amd'] != r['lora_intel']])
print(f"gap on Intel (same machine): {100*(ml_i-mi):.2f}")
