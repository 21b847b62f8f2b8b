#!/usr/bin/env bash
# On the lent GPU machine: train the classifier, the gated separator and the detector side by side on
# the one GPU, each within a training-time budget (--max-minutes, so each anneals fully in the time
# it has). The runs are detached (setsid): they go on between calls while the machine is held, so
# one call can launch them and later calls wait and collect.
#   launch: render the carried fonts (scripts/device_train_classify.sh, RENDER_ONLY; a warm machine
#           keeps earlier renders), start the runs, then wait like `wait`.
#   wait:   wait until WAIT seconds (default 540) after this call began or until every run has
#           ended, then pack weights, logs and curves into $OUT (runs still going are packed as
#           they stand: best epoch so far).
# The best checkpoints and their logs are copied into $OUT while waiting, so a call that is cut off
# (the session's device time ends) still brings them back. MINUTES is a whole number.
# RUNS picks the runs (default "classify separate detect"); CLASSIFY, SEPARATE and DETECT replace
# each run's options (defaults below: the ninth session's, from the shipped weights).
# Usage: EXCLUDE=.carry/exclude/TimGM6mb.sf2 MINUTES=12 bash scripts/device_train_all.sh launch
#        WAIT=540 bash scripts/device_train_all.sh wait
# Carry (64 MiB a call, the tracked tree included): see docs/DATA.md, "Training on a lent GPU".
set -uo pipefail
work=/tmp/train-all
minutes=${MINUTES:-12}
[[ $minutes =~ ^[0-9]+$ ]] || { echo "MINUTES must be a whole number of minutes, not '$minutes'" >&2; exit 2; }
if [ "${1:-wait}" = launch ]; then
  RENDER_ONLY=1 bash scripts/device_train_classify.sh || exit 1
  source scripts/device_setup.sh
  banks=()
  for bank in datasets/gpu/*; do banks+=(--data "$bank"); done
  mkdir -p "$work"
  mv "$OUT"/*.json "$work"/ 2>/dev/null  # the render and split reports travel in the logs' archive
  cap=$(( minutes * 60 * 2 + 300 ))  # a hard stop far beyond the budget, should a run hang
  launch() {  # name, then the command; detached from this call, logging to $work/NAME.log
    local name=$1; shift
    setsid timeout "$cap" "$@" > "$work/$name.log" 2>&1 < /dev/null &
    echo $! > "$work/$name.pid"
  }
  runs=" ${RUNS:-classify separate detect} "
  if [[ $runs == *" classify "* ]]; then
    read -ra options <<<"${CLASSIFY:---model cnn --init classify-cnn --teacher classify-ensemble --distill 0.5 --lowpass 0.3 --lr 5e-4 --steps-per-epoch 1200}"
    launch classify nsep train classify "${banks[@]}" "${options[@]}" --epochs 100 --patience 100 \
      --max-minutes "$minutes" --out "$work/classify-cnn.pt" -y
    sleep 90  # the classifier decodes every note first; let it move them to the GPU before the others load theirs
  fi
  if [[ $runs == *" separate "* ]]; then
    read -ra options <<<"${SEPARATE:---model unet-bilstm --init weights/separate-unet-bilstm.pt --gated --gate-extra 0.1 --lr 5e-4 -j 6}"
    launch separate nsep train separate "${banks[@]}" "${options[@]}" --epochs 500 --steps-per-epoch 200 \
      --patience 100 --max-minutes "$minutes" --out "$work/separate-unet-bilstm.pt" -y
  fi
  if [[ $runs == *" detect "* ]]; then
    read -ra options <<<"${DETECT:---model cnn --init weights/detect-cnn.pt --lr 3e-4 --batch-size 128 -j 6}"
    launch detect nsep train detect "${banks[@]}" "${options[@]}" --epochs 500 --steps-per-epoch 200 \
      --patience 100 --max-minutes "$minutes" --out "$work/detect-cnn.pt" -y
  fi
fi
while [ "$SECONDS" -lt "${WAIT:-540}" ]; do
  running=0
  for pid in "$work"/*.pid; do kill -0 "$(cat "$pid")" 2>/dev/null && running=1; done
  [ "$running" = 1 ] || break
  # the best epochs so far, in $OUT all along: a call cut off when the session's device time ends still returns them
  for best in "$work"/*.pt; do [[ $best == *.last.pt ]] || cp -u "$best" "${best%.pt}.log.jsonl" "$OUT/" 2>/dev/null; done
  sleep 10
done
for log in "$work"/*.log; do echo "== $log"; tail -c 600 "$log"; echo; done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
free -g | head -2
cp "$work"/*.pt "$OUT/" 2>/dev/null
rm -f "$OUT"/*.last.pt
tar -C "$work" -czf "$OUT/train-all-logs.tar.gz" --exclude='*.pt' .
ls -la "$OUT"
