#!/usr/bin/env bash
# On the lent GPU machine: render the SoundFonts in $FONT_DIRS (default .carry/fonts) into NSynth
# format (fonts in a folder named *synthetic* labelled synthetic), split by instrument group (15 % valid), and train one classifier per width in $WIDTHS,
# in parallel on the one GPU (or one per "name:options" entry of $RUNS). Runs live in
# /tmp/classify-runs; a later call on the warm machine resumes each unfinished run, and every call
# packs weights, logs and curves into $OUT/classify-runs.tar.gz (15 MiB parts when larger). RENDER_ONLY=1 stops after
# rendering (fonts too large for one call's carry are rendered over two calls on a warm machine).
# EXCLUDE names fonts (the test font) whose samples no training note may sound (`--exclude-shared-with`).
# Whenever a call renders, all banks in datasets/gpu are split together (`nsep data split`), so a
# General-MIDI program lands on the same side in every font.
# Usage: WIDTHS="16 24" bash scripts/device_train_classify.sh [extra `nsep train classify` options]
#        RUNS="mix:--width 24 --mixup 0.4;wide:--width 48" bash scripts/device_train_classify.sh --epochs 30
source scripts/device_setup.sh
set -euo pipefail
data=datasets/gpu
mkdir -p "$data"
SECONDS=0
banks=()
exclude=()
for font in ${EXCLUDE:-}; do exclude+=(--exclude-shared-with "$font"); done
rendered=0
for dir in ${FONT_DIRS:-.carry/fonts}; do
  for font in "$dir"/*; do
    name=$(basename "${font%.*}")
    [ ! -f "$data/$name/examples.json" ] || continue  # rendered by an earlier call on this warm machine
    how=(); [[ "$dir" != *synthetic* ]] || how=(--synthetic "$font")  # FM fonts: source "synthetic"
    nsep -q data render "$font" "${how[@]}" "${exclude[@]}" -o "$data/$name" --variations -j 16 --json > "$OUT/render-$name.json"
    rendered=1
  done
done
[ "$rendered" = 0 ] || nsep -q data split "$data"/* --valid-fraction 0.15 --seed 0 --json > "$OUT/split.json"
echo "rendered in ${SECONDS}s"
[ -z "${RENDER_ONLY:-}" ] || exit 0
for bank in "$data"/*; do banks+=(--data "$bank"); done
nsep data info "$data"/* --json > "$OUT/data-info.json"
work=/tmp/classify-runs
mkdir -p "$work"
# RUNS: "name:options;name:options" (one classifier each); default: one per width in $WIDTHS.
runs=${RUNS:-$(for width in ${WIDTHS:-32}; do printf 'w%s:--width %s;' "$width" "$width"; done)}
IFS=';' read -ra specs <<<"$runs"
for spec in "${specs[@]}"; do
  [ -n "$spec" ] || continue
  name=${spec%%:*}; read -ra options <<<"${spec#*:}"
  again=(); [ ! -f "$work/classify-cnn-$name.last.pt" ] || again=(--resume)  # a later call continues the run
  timeout "${TRAIN_SECONDS:-420}" nsep train classify "${banks[@]}" --model cnn "${options[@]}" "${again[@]}" \
    --out "$work/classify-cnn-$name.pt" "$@" >> "$work/train-$name.log" 2>&1 &
done
wait
tail -n 2 "$work"/train-*.log
tar -C "$work" -czf "$OUT/classify-runs.tar.gz" --exclude='*.last.pt' .
if [ "$(stat -c %s "$OUT/classify-runs.tar.gz")" -gt $(( 15 * 1024 * 1024 )) ]; then
  split -b 15m "$OUT/classify-runs.tar.gz" "$OUT/classify-runs.tar.gz.part-" && rm "$OUT/classify-runs.tar.gz"
fi
echo "total ${SECONDS}s"
