"""Run every benchmark on this machine, one after another; each prints its table and writes its JSON.

    python bench/run_all.py                      # full sizes, device picked automatically
    python bench/run_all.py --quick --only classify detect
    python bench/run_all.py --data datasets/test # clips to classify (default: TimGM6mb rendered here)

The classification and detection benchmarks need four-second note clips; without ``--data`` the
held-out TimGM6mb font is rendered into ``datasets/bench`` first (it is never trained on). The
GPU machine has its own script, ``scripts/device_bench.sh``. Exits 1 if any benchmark failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEST_FONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
NAMES = ("spectrogram", "data", "classify", "detect", "detect-long", "separate", "separate-long")


def _device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _clips(data: Path | None) -> Path:
    """The clip folder for classify/detect: the one given, or TimGM6mb rendered once into datasets/bench."""
    if data is not None:
        return data
    bench = Path("datasets/bench")
    if not (bench / "examples.json").exists():
        subprocess.run([sys.executable, "-m", "nsep", "-q", "data", "render", str(TEST_FONT), "-o", str(bench),
                        "--split", "test"], check=True)
    return bench


def commands(names: list[str], device: str, quick: bool, data: Path | None) -> list[tuple[str, list[str]]]:
    """The benchmark command lines, in order."""
    gpu = device.startswith("cuda")
    runs = []
    for name in names:
        if name == "spectrogram":
            runs.append((name, ["bench_spectrogram.py", "--minutes", "5" if quick else "60"]))
        elif name == "data":
            runs.append((name, ["bench_data.py", "--notes", "100" if quick else "500"]))
        elif name in ("classify", "detect"):
            models = ["classify-cnn-detect", "classify-cnn", "classify-xgb"] if name == "classify" and not gpu else []
            runs.append((name, ["bench_classify.py", "--data", str(_clips(data)), "--task", name, "--device", device,
                                "--clips", "500" if quick else ("20000" if gpu else "2000"),
                                "--repeat", "1" if quick else "3", *(["--models", *models] if models else [])]))
        elif name == "detect-long":
            runs.append((name, ["bench_detect_long.py", "--minutes", *(["1", "5"] if quick else ["1", "10", "60"]),
                                "--device", device]))
        elif name == "separate":
            songs = ["--songs", "2" if quick or not gpu else "20", "--seconds", "30" if quick else "180"]
            runs.append((name, ["bench_separate.py", *songs, "--device", device, "--repeat", "1" if quick else "2",
                                *([] if gpu else ["--no-demucs"])]))
        elif name == "separate-long":
            runs.append((name, ["bench_separate_long.py", "--minutes", "5" if quick else "60", "--device", device]))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--quick", action="store_true", help="small sizes: a check that every benchmark runs")
    parser.add_argument("--data", type=Path, help="NSynth-format folder of clips for classify/detect")
    parser.add_argument("--only", nargs="+", choices=NAMES, default=list(NAMES))
    args = parser.parse_args()
    failed = []
    for name, command in commands(args.only, _device(args.device), args.quick, args.data):
        print(f"== {name}: {' '.join(command)}", flush=True)
        if subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]]).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
