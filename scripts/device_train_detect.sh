#!/usr/bin/env bash
# On the lent GPU machine: render the fonts exactly as scripts/device_train_classify.sh does (into
# datasets/gpu, whole instrument groups held out for validation; a warm machine keeps them), then
# train one family detector on mixtures of them. Weights, log and curves land in $OUT, and, when a
# test font was carried to .carry/test, its `nsep eval detect` scores in seed and music mode
# (EVAL_MIXTURES per number of instruments).
# Usage: MODEL=cnn bash scripts/device_train_detect.sh [extra `nsep train detect` options]
#        MODEL is cnn (default), mlp, seedcnn, resnet18 or xgb (xgb needs the xgboost-cpu wheel in .whl)
RENDER_ONLY=1 bash scripts/device_train_classify.sh
source scripts/device_setup.sh
set -euo pipefail
model=${MODEL:-cnn}
suffix=pt
[ "$model" = xgb ] && suffix=ubj
SECONDS=0
banks=()
for bank in datasets/gpu/*; do banks+=(--data "$bank"); done
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
