"""Benchmark ``nsep spectrogram`` on a synthesised 1-hour 44.1 kHz stereo file: wall time and peak memory.

Run: ``python bench/bench_spectrogram.py [--minutes 60] [--format flac]``. Prints a table, writes
``bench/results/spectrogram.json``. Peak memory is the child's maximum resident set size
(``os.wait4``), measured in a fresh process for each case.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from common import machine, measure

RATE = 44_100
RESULTS = Path(__file__).parent / "results" / "spectrogram.json"
CASES = {
    "png (defaults)": [],
    "png, mel, 44.1 kHz": ["--scale", "mel", "-r", "44100"],
    "npy (full array)": ["--npy"],
}


def synthesise(path: Path, minutes: float, chunk_seconds: int = 60) -> None:
    """A gliding two-voice tone with a little noise, written a minute at a time (bounded memory)."""
    rng = np.random.default_rng(0)
    total = int(minutes * 60 * RATE)
    phase = np.zeros(2)
    with sf.SoundFile(path, "w", RATE, 2, subtype="PCM_16") as out:
        for start in range(0, total, chunk_seconds * RATE):
            t = (start + np.arange(min(chunk_seconds * RATE, total - start))) / RATE
            freq = np.stack([220 + 110 * np.sin(2 * np.pi * t / 97), 660 + 220 * np.sin(2 * np.pi * t / 31)])
            step = np.cumsum(2 * np.pi * freq / RATE, axis=1) + phase[:, None]
            phase = step[:, -1] % (2 * np.pi)
            tone = 0.3 * np.sin(step) + 0.01 * rng.standard_normal(step.shape)
            out.write(tone.T.astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--format", choices=("flac", "wav"), default="flac")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / f"long.{args.format}"
        start = time.perf_counter()
        synthesise(audio, args.minutes)
        print(f"synthesised {args.minutes:g} min 44.1 kHz stereo {args.format} "
              f"({audio.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        rows = {"startup only (--version)": {"args": ["--version"], **measure(["--version"])}}
        for name, extra in CASES.items():
            out = Path(tmp) / ("out.npy" if "--npy" in extra else "out.png")
            nsep_args = ["-q", "spectrogram", audio.name, "-o", out.name, "--overwrite", *extra]
            rows[name] = {"args": nsep_args, **measure(nsep_args, cwd=Path(tmp))}
            print(f"{name}: {rows[name]}", file=sys.stderr)
    print(f"{'case':<26} {'wall (s)':>9} {'peak RSS (MB)':>14}")
    for name, row in rows.items():
        print(f"{name:<26} {row['wall_s']:>9} {row['peak_rss_mb']:>14}")
    report = {
        "input": {"minutes": args.minutes, "sample_rate": RATE, "channels": 2, "format": args.format},
        "machine": machine(),
        "cases": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
