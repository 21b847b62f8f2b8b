#!/usr/bin/env bash
# On the lent GPU machine, after device_train_classify.sh / device_train_detect.sh: score candidates
# on the validation instruments of the banks in datasets/gpu (never trained on), to choose what
# ships. Classifiers: the bundled ones and every run in /tmp/classify-runs, on the valid notes of
# all banks and of the banks named in $BANKS alone (default: all but ToneJS, so models trained
# without it compare on equal terms). Detectors: the bundled detect-cnn and /tmp/detect-runs/*.pt on
# music mixtures of the $DETECT_BANKS valid instruments (200 a k, seed 7). Results come back as
# $OUT/valid-evals.tar.gz.
source scripts/device_setup.sh
set -euo pipefail
shopt -s nullglob
evals=/tmp/valid-evals
mkdir -p "$evals"
all=(); some=(); detect=()
for bank in datasets/gpu/*; do
  all+=(--data "$bank")
  [[ " ${BANKS:-FluidR3_GM MuseScore_General GeneralUser FreePats OPL-3_FM_128M} " != *" $(basename "$bank") "* ]] || some+=(--data "$bank")
  [[ " ${DETECT_BANKS:-FluidR3_GM MuseScore_General GeneralUser OPL-3_FM_128M} " != *" $(basename "$bank") "* ]] || detect+=(--data "$bank")
done
for model in classify-cnn classify-ensemble /tmp/classify-runs/classify-cnn-*.pt; do
  [[ "$model" != *.last.pt ]] || continue
  name=$(basename "${model%.pt}"); [[ "$model" != /* ]] || name="run-$name"
  nsep -q eval classify "${all[@]}" --split valid --model "$model" -j 12 --json > "$evals/$name-valid-all.json"
  nsep -q eval classify "${some[@]}" --split valid --model "$model" -j 12 --json > "$evals/$name-valid-some.json"
  echo "$name: all $(grep -m1 '"accuracy"' "$evals/$name-valid-all.json") some $(grep -m1 '"accuracy"' "$evals/$name-valid-some.json")"
done
for model in detect-cnn /tmp/detect-runs/detect-*.pt; do
  [[ "$model" != *.last.pt ]] || continue
  name=$(basename "${model%.pt}"); [[ "$model" != /* ]] || name="run-$name"
  nsep -q eval detect "${detect[@]}" --split valid --model "$model" --mode music --k 1..6 --mixtures 200 --seed 7 -j 12 \
    --json > "$evals/$name-valid-music.json"
  echo "$name: $(grep -m1 '"map"' "$evals/$name-valid-music.json") $(grep -m1 '"frame_f1"' "$evals/$name-valid-music.json")"
done
tar -C "$evals" -czf "$OUT/valid-evals.tar.gz" .
