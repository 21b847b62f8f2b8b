#!/usr/bin/env bash
# On the lent GPU machine: train one family detector on mixtures of the banks rendered from
# .carry/fonts/train (training instruments) and .carry/fonts/valid (held-out fonts: validation and
# thresholds), rendering them first where they are not there yet (a warm machine keeps them).
# Weights, log and curves land in $OUT, and, when a test font was carried to .carry/test, its
# `nsep eval detect` scores in seed and music mode (EVAL_MIXTURES per number of instruments).
# Usage: MODEL=cnn bash scripts/device_train_detect.sh [extra `nsep train detect` options]
#        MODEL is cnn (default), mlp, seedcnn, resnet18 or xgb (xgb needs the xgboost-cpu wheel in .whl)
source scripts/device_setup.sh
set -euo pipefail
model=${MODEL:-cnn}
suffix=pt
[ "$model" = xgb ] && suffix=ubj
data=datasets/gpu
mkdir -p "$data"
SECONDS=0
banks=()
for font in .carry/fonts/train/* .carry/fonts/valid/*; do
  name=$(basename "${font%.*}")
  case "$font" in */train/*) how=(--valid-fraction 0 --variations) ;; *) how=(--split valid) ;; esac
  nsep -q data render "$font" -o "$data/$name" "${how[@]}" -j 16 --json > "$OUT/render-$name.json"
  banks+=(--data "$data/$name")
done
echo "banks ready in ${SECONDS}s"
timeout "${TRAIN_SECONDS:-520}" nsep train detect "${banks[@]}" --model "$model" --out "$OUT/detect-$model.$suffix" -y \
  "$@" > "$OUT/train-detect-$model.log" 2>&1 || echo "exit status $?"
tail -n 4 "$OUT/train-detect-$model.log"
# held-out test mixtures from a font never trained or tuned on, if one was carried to .carry/test
for font in .carry/test/*; do
  [ -f "$font" ] || continue
  test=datasets/test-$(basename "${font%.*}")
  nsep -q data render "$font" -o "$test" --split test -j 16 --json > "$OUT/render-test.json"
  for mode in seed music; do
    nsep -q eval detect --data "$test" --model "$OUT/detect-$model.$suffix" --mode "$mode" --k 1..6 \
      --mixtures "${EVAL_MIXTURES:-500}" --seed 0 -j 12 --json > "$OUT/eval-detect-$model-$mode.json"
  done
done
echo "total ${SECONDS}s"
