#!/bin/bash
# usage: plateau.sh NAME WINDOW NOISE TASK SEEDS...
name=$1; w=$2; noise=$3; task=$4; shift 4
T=/tmp/exp42/runs/compare-gs3/tasks
for s in "$@"; do
  out=/tmp/exp44/runs/$name/$task-$s
  PLATEAU_WINDOW=$w PLATEAU_NOISE=$noise OMP_NUM_THREADS=1 /work/main/.venv/bin/python -m artstudio train --method art-single \
    --data $T/$task --eval-data $T/$task.test-first-100.jsonl --steps 200 --batch-size 8 --lr 0.05 --seed $s \
    --out $out --overwrite > $out.log 2>&1
  acc=$(python3 -c "import json;print(json.load(open('$out/result.json')).get('accuracy'))")
  n=$(grep -c "noise added" $out.log)
  echo "$name,$task,$s,$acc,$n" | tee -a /tmp/exp44/res_plateau.csv
done
