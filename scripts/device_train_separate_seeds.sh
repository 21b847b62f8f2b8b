#!/usr/bin/env bash
# On the lent GPU machine: render the fonts in $FONT_DIRS (scripts/device_train_classify.sh, RENDER_ONLY),
# then fine-tune the shipped gated separator once per seed in $SEEDS (default "0 1"), side by side on
# the one GPU, for $MINUTES of training each, and wait as scripts/device_train_all.sh does (a later
# call on the warm machine collects with `WAIT=... bash scripts/device_train_all.sh wait`).
# The runs are meant to be weight-averaged (`nsep models average`) and chosen on validation. Each also
# writes sep-sSEED.average.pt, the mean of its second half's epochs (`--average-tail 0.5`): on the short
# fine-tunes the best epoch by the machine's noisy validation was often one of the first.
# Fonts carried as FONT.sf2.xz beside a font folder (too large to carry otherwise) are unpacked into it.
# Usage: EXCLUDE=.carry3/exclude/TimGM6mb.sf2 FONT_DIRS=.carry3/fonts MINUTES=14 WAIT=565 \
#            bash scripts/device_train_separate_seeds.sh
set -uo pipefail
for dir in ${FONT_DIRS:-.carry/fonts}; do  # a font packed as FONT.sf2.xz beside DIR is unpacked into DIR
  for packed in "$(dirname "$dir")"/*.sf2.xz; do
    [ -f "$packed" ] && [ ! -f "$dir/$(basename "${packed%.xz}")" ] || continue
    xz -dc "$packed" > "$dir/$(basename "${packed%.xz}")" || exit 1
  done
done
RENDER_ONLY=1 bash scripts/device_train_classify.sh || exit 1
source scripts/device_setup.sh
banks=(); for bank in datasets/gpu/*; do banks+=(--data "$bank"); done
work=/tmp/train-all; mkdir -p "$work"; mv "$OUT"/*.json "$work"/ 2>/dev/null
minutes=${MINUTES:-14}
for seed in ${SEEDS:-0 1}; do
  setsid timeout $(( minutes * 60 * 2 + 300 )) nsep train separate "${banks[@]}" --model unet-bilstm \
    --init weights/separate-unet-bilstm.pt --gated --gate-extra 0.4 --lr 3e-4 -j 7 --seed "$seed" --average-tail 0.5 \
    --epochs 500 --steps-per-epoch 200 --patience 100 --max-minutes "$minutes" \
    --out "$work/sep-s$seed.pt" -y > "$work/sep-s$seed.log" 2>&1 < /dev/null &
  echo $! > "$work/sep-s$seed.pid"
done
WAIT=$(( ${WAIT:-560} - SECONDS )) bash scripts/device_train_all.sh wait
