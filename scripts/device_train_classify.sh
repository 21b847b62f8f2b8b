#!/usr/bin/env bash
# On the lent GPU machine: render every SoundFont in .carry/fonts into NSynth format (split by
# instrument at render time) and train one classifier per width in $WIDTHS, in parallel on the
# one GPU; weights, logs and curves land in $OUT.
# Usage: WIDTHS="16 24" bash scripts/device_train_classify.sh [extra `nsep train classify` options]
source scripts/device_setup.sh
set -euo pipefail
data=datasets/gpu
mkdir -p "$data"
SECONDS=0
banks=()
for font in .carry/fonts/*; do
  name=$(basename "${font%.*}")
  nsep -q data render "$font" -o "$data/$name" --variations -j 16 --json > "$OUT/render-$name.json"
  banks+=(--data "$data/$name")
done
echo "rendered in ${SECONDS}s"
nsep data info "$data"/* --json > "$OUT/data-info.json"
for width in ${WIDTHS:-32}; do
  timeout "${TRAIN_SECONDS:-420}" nsep train classify "${banks[@]}" --model cnn --width "$width" \
    --out "$OUT/classify-cnn-w$width.pt" "$@" > "$OUT/train-w$width.log" 2>&1 &
done
wait
tail -n 3 "$OUT"/train-*.log
echo "total ${SECONDS}s"
