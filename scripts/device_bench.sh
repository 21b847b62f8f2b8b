#!/usr/bin/env bash
# On the lent GPU machine: render the held-out TimGM6mb font (carried to .carry4/) as benchmark
# clips, then run the classify, detect and separation benchmarks on the GPU; their JSON lands in $OUT.
# Usage: bash scripts/device_bench.sh   (carry .carry/libs.tar.xz, .carry4 and .whl with demucs, julius, einops, tqdm)
source scripts/device_setup.sh
set -euo pipefail
SECONDS=0
nsep -q data render .carry4/TimGM6mb.sf2 -o datasets/bench --split test -j 16 --json > "$OUT/render-bench.json"
echo "rendered in ${SECONDS}s"
for task in classify detect; do
  python3 bench/bench_classify.py --data datasets/bench --task "$task" --clips "${CLIPS:-20000}" --copies "${COPIES:-1}" \
    --device cuda --repeat 3 2>"$OUT/bench-$task.log" | tee -a "$OUT/bench.txt"
done
python3 bench/bench_separate.py --songs 20 --seconds 180 --device cuda --repeat 2 \
  --models separate-unet-bilstm separate-unet separate-bandsplit 2>"$OUT/bench-separate.log" | tee -a "$OUT/bench.txt"
cp bench/results/*-cuda.json "$OUT/"
echo "total ${SECONDS}s"
