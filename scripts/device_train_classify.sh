#!/usr/bin/env bash
# On the lent GPU machine: render the training fonts into NSynth format, split by instrument,
# train the classifiers and leave weights, logs and curves in $OUT.
source scripts/device_setup.sh
set -euo pipefail
data=/tmp/nsep-data
for font in .carry/fonts/*; do
  name=$(basename "${font%.*}")
  nsep -q data render --soundfont "$font" --out "$data/$name" --workers 16 --seed 0
  nsep -q data split "$data/$name" --valid-fraction 0.15 --seed 0
done
nsep data info "$data"/* | tee "$OUT/data-info.txt"
nsep train classify --data "$data"/* --model cnn --out "$OUT/classify-cnn.pt" "$@" 2>&1 | tee "$OUT/train-cnn.log"
