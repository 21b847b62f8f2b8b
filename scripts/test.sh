#!/usr/bin/env bash
# The test command that the README and .ci/run both run: install what the tests need, then pytest.
#   bash scripts/test.sh [PYTEST ARGS...]    (VENV=path picks the virtual environment; default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."

# FluidSynth and General-MIDI SoundFonts (and the Synthesis ToolKit's stk-demo) render the synthetic
# training data the tests use.
missing=()
for package in fluidsynth fluid-soundfont-gm timgm6mb-soundfont stk; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update
    $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

venv=${VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet -e '.[dev]'

status=0
"$venv/bin/python" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "scripts/test.sh: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
