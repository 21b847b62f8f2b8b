"""Benchmark ``nsep detect`` on long files: wall time, peak memory and timeline coverage by length.

Run: ``python bench/bench_detect_long.py [--minutes 1 10 60] [--model detect-cnn] [--device cpu]``.
For each length it writes the synthetic 44.1 kHz stereo FLAC of ``bench_separate_long.py`` (tones and
noise bursts), runs ``nsep detect --jsonl`` on it in a fresh process and reports wall time, real-time
factor, peak RSS, the duration the result reports and where its last timeline segment ends. Memory
that stays flat from 1 to 60 minutes is the streaming claim. Writes JSON to
``bench/results/detect-long-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench_separate_long import write_long
from common import machine, measure

RESULTS = Path(__file__).parent / "results"


def run_one(minutes: float, model: str, device: str, tmp: Path) -> dict:
    song = tmp / f"long-{minutes:g}.flac"
    write_long(song, minutes)
    out = tmp / f"long-{minutes:g}.jsonl"
    with out.open("w") as stdout:
        run = measure(["detect", str(song), "--model", model, "--device", device, "--jsonl"], stdout=stdout)
    result = json.loads(out.read_text())
    song.unlink()
    ends = [segment["end"] for segment in result["segments"]]
    return {"minutes": minutes, "wall_s": run["wall_s"], "x_realtime": round(minutes * 60 / run["wall_s"], 1),
            "peak_rss_mb": run["peak_rss_mb"], "duration_s": result["duration"], "windows": result["windows"],
            "labels": result["labels"], "segments": len(ends), "last_segment_end_s": max(ends, default=None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0, 60.0])
    parser.add_argument("--model", default="detect-cnn")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_one(minutes, args.model, args.device, Path(tmp)) for minutes in args.minutes]
    for r in runs:
        print(f"{r['minutes']:g} min: {r['wall_s']} s ({r['x_realtime']}x real time), peak RSS {r['peak_rss_mb']} MB, "
              f"{r['segments']} segments, the last ending at {r['last_segment_end_s']} of {r['duration_s']} s",
              file=sys.stderr)
    report = {"model": args.model, "device": args.device, "runs": runs, "machine": machine()}
    print(json.dumps(report, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"detect-long-{args.device.split(':')[0]}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
