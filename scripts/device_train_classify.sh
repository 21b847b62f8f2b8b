#!/usr/bin/env bash
# On the lent GPU machine: render the training fonts into NSynth format (split by instrument at
# render time), train the classifier and leave weights, logs and curves in $OUT.
# Usage: bash scripts/device_train_classify.sh [extra `nsep train classify` options]
source scripts/device_setup.sh
set -euo pipefail
data=datasets/gpu
mkdir -p "$data"
SECONDS=0
nsep -q data render .carry/fonts/FluidR3_GM.sf3 -o "$data/fluidr3" --variations -j 16 --json > "$OUT/render-fluidr3.json"
nsep -q data render .carry/fonts/sf_GMbank.sf2 -o "$data/gmbank" --variations -j 16 --json > "$OUT/render-gmbank.json"
nsep -q data render .carry/fonts/OPL3.sf3 --synthetic .carry/fonts/OPL3.sf3 -o "$data/opl3" -j 16 --json > "$OUT/render-opl3.json"
echo "rendered in ${SECONDS}s"
nsep data info "$data"/* | tee "$OUT/data-info.txt"
timeout 420 nsep train classify --data "$data"/* --model cnn --out "$OUT/classify-cnn.pt" "$@" 2>&1 | tee "$OUT/train-cnn.log" || true
cp "$OUT"/classify-cnn.log.jsonl "$OUT"/train-cnn-history.jsonl 2>/dev/null || true
echo "total ${SECONDS}s"
