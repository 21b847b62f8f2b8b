#!/usr/bin/env bash
# Source this on the lent GPU machine (device tool) before running nsep there.
# It unpacks the carried FluidSynth libraries, installs the carried wheels the GPU image lacks,
# and installs nsep itself without touching the network.
set -euo pipefail
mkdir -p /tmp/fs
[ -d /tmp/fs/libs ] || tar -C /tmp/fs -xJf .carry/libs.tar.xz
export LD_LIBRARY_PATH=/tmp/fs/libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PYTHONPATH=/tmp/site
# once per machine and checkout (scripts that run side by side would otherwise install at once)
if [ "$(cat /tmp/fs/installed 2>/dev/null)" != "$PWD" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null
  echo "$PWD" > /tmp/fs/installed
fi
export PYTHONUNBUFFERED=1
set +euo pipefail
