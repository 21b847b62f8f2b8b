"""Benchmark ``nsep separate`` on one long file: wall time and peak memory (the streaming claim).

Run: ``python bench/bench_separate_long.py [--minutes 60] [--model separate-unet-bilstm]``. Writes a
synthetic 44.1 kHz stereo FLAC of that length (tones and noise bursts), separates it with default
settings in a fresh process, and reports wall time, real-time factor and peak RSS. Writes JSON to
``bench/results/separate-long-cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from common import machine, measure

RESULTS = Path(__file__).parent / "results"
RATE = 44_100


def write_long(path: Path, minutes: float) -> None:
    """A seeded stereo signal, written a minute at a time (never all in memory)."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", RATE, 2, "PCM_16", format="FLAC") as out:
        for minute in range(int(np.ceil(minutes))):
            t = np.arange(60 * RATE) / RATE + 60 * minute
            f = 55 * 2 ** (rng.integers(0, 48, 3) / 12)
            tone = 0.1 * np.sin(2 * np.pi * f[:, None] * t).sum(0)
            noise = 0.05 * rng.standard_normal((2, t.size)) * (np.sin(2 * np.pi * 2 * t) > 0.9)
            out.write((np.stack([tone, 0.8 * tone]) + noise).T.astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--model", default="separate-unet-bilstm")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        song = Path(tmp) / "long.flac"
        write_long(song, args.minutes)
        run = measure(["-q", "separate", str(song), "-o", str(Path(tmp) / "stems"), "--model", args.model, "--device", "cpu"])
        stems = sorted(p.name for p in (Path(tmp) / "stems" / "long").iterdir())
    seconds = args.minutes * 60
    report = {"minutes": args.minutes, "model": args.model, "wall_s": run["wall_s"], "x_realtime": round(seconds / run["wall_s"], 2),
              "peak_rss_mb": run["peak_rss_mb"], "stems": stems, "machine": machine()}
    print(json.dumps(report, indent=2))
    print(f"{args.minutes:g} min 44.1 kHz stereo: {run['wall_s']} s ({report['x_realtime']}x real time), "
          f"peak RSS {run['peak_rss_mb']} MB", file=sys.stderr)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "separate-long-cpu.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
