#!/usr/bin/env bash
# On the lent GPU machine: render the carried fonts (as scripts/device_train_classify.sh does; a warm
# machine keeps earlier renders in datasets/gpu), then train one separator per name in $MODELS, in
# parallel on the one GPU, for $MINUTES of training each. Weights come back in $OUT, logs and
# curves in $OUT/separate-logs.tar.gz. INIT_DIR may hold earlier weights (separate-MODEL.pt) to
# start from.
# Usage: MODELS="bandsplit unet unet-bilstm" MINUTES=6 bash scripts/device_train_separate.sh [options]
RENDER_ONLY=1 bash scripts/device_train_classify.sh
source scripts/device_setup.sh
set -euo pipefail
SECONDS=0
banks=()
for bank in datasets/gpu/*; do banks+=(--data "$bank"); done
work=/tmp/separate
mkdir -p "$work"
models=${MODELS:-bandsplit unet unet-bilstm}
n=$(wc -w <<<"$models")
for model in $models; do
  init=()
  [ -z "${INIT_DIR:-}" ] || [ ! -f "$INIT_DIR/separate-$model.pt" ] || init=(--init "$INIT_DIR/separate-$model.pt")
  timeout $(( ${MINUTES:-6} * 60 + 120 )) nsep train separate "${banks[@]}" --model "$model" "${init[@]}" \
    --out "$work/separate-$model.pt" --max-minutes "${MINUTES:-6}" --epochs 200 -j $(( 14 / n )) -y "$@" \
    > "$work/train-$model.log" 2>&1 &
done
wait
for model in $models; do tail -n 2 "$work/train-$model.log"; cp "$work/separate-$model.pt" "$OUT/" || true; done
tar -C "$work" -czf "$OUT/separate-logs.tar.gz" --exclude='*.pt' .
echo "total ${SECONDS}s"
