#!/usr/bin/env bash
# On the lent GPU machine: render the fonts exactly as scripts/device_train_classify.sh does (into
# datasets/gpu, whole instrument groups held out for validation; a warm machine keeps them), then
# train one family detector per name in $MODELS, in parallel on the one GPU. When a test font was
# carried to .carry/test, each is scored there with `nsep eval detect` in seed and music mode
# (EVAL_MIXTURES per number of instruments). Weights, logs, curves and scores come back as
# $OUT/detect-runs.tar.gz, cut into 15 MiB parts (detect-runs.tar.gz.part-aa, -ab, ...) when
# larger: `cat detect-runs.tar.gz.part-* | tar -xz`.
# A run cut off by TRAIN_SECONDS is resumed by the next call on the warm machine (same options).
# Usage: MODELS="cnn mlp" bash scripts/device_train_detect.sh [extra `nsep train detect` options]
#        models: cnn (default), mlp, seedcnn, resnet18, xgb (xgb needs the xgboost-cpu wheel in .whl)
RENDER_ONLY=1 bash scripts/device_train_classify.sh
source scripts/device_setup.sh
set -euo pipefail
SECONDS=0
banks=()
for bank in datasets/gpu/*; do banks+=(--data "$bank"); done
work=/tmp/detect-runs
mkdir -p "$work"
models=${MODELS:-${MODEL:-cnn}}
n=$(wc -w <<<"$models")
for model in $models; do
  suffix=pt; [ "$model" = xgb ] && suffix=ubj
  again=(); [ ! -f "$work/detect-$model.last.pt" ] || again=(--resume)  # a later call on the warm machine continues
  timeout "${TRAIN_SECONDS:-520}" nsep train detect "${banks[@]}" --model "$model" --out "$work/detect-$model.$suffix" -y \
    -j "${JOBS:-$(( 14 / n > 1 ? 14 / n : 1 ))}" "${again[@]}" "$@" >> "$work/train-detect-$model.log" 2>&1 || echo "$model: exit status $?" &
done
wait
for model in $models; do echo "== $model"; tail -n 3 "$work/train-detect-$model.log"; done
# held-out test mixtures from a font never trained or tuned on, if one was carried to .carry/test
for font in .carry/test/*; do
  [ -f "$font" ] || continue
  test=datasets/test-$(basename "${font%.*}")
  [ -f "$test/examples.json" ] || nsep -q data render "$font" -o "$test" --split test -j 16 --json > "$work/render-test.json"
  for model in $models; do
    suffix=pt; [ "$model" = xgb ] && suffix=ubj
    for mode in seed music; do
      nsep -q eval detect --data "$test" --model "$work/detect-$model.$suffix" --mode "$mode" --k 1..6 \
        --mixtures "${EVAL_MIXTURES:-500}" --seed 0 -j 12 --json > "$work/eval-detect-$model-$mode.json"
    done
  done
done
tar -C "$work" -czf "$OUT/detect-runs.tar.gz" --exclude='*.last.pt' .
if [ "$(stat -c %s "$OUT/detect-runs.tar.gz")" -gt $(( 15 * 1024 * 1024 )) ]; then
  split -b 15m "$OUT/detect-runs.tar.gz" "$OUT/detect-runs.tar.gz.part-" && rm "$OUT/detect-runs.tar.gz"
fi
echo "total ${SECONDS}s"
