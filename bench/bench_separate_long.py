"""Benchmark ``nsep separate`` on one long file: wall time and peak memory (the streaming claim).

Run: ``python bench/bench_separate_long.py [--minutes 60] [--model separate-unet-bilstm] [--device cpu] [--highs follow]``.
Writes a synthetic 44.1 kHz stereo FLAC of that length (tones and noise bursts), separates it with
default settings in a fresh process, and reports wall time, real-time factor and peak RSS; on a GPU
also the peak GPU memory in use (``nvidia-smi`` every 0.2 s, CUDA context included). ``--model
htdemucs-random`` saves a randomly initialised full-size HTDemucs as a demucs package and uses that
(official weights cannot be downloaded here). Writes JSON to ``bench/results/separate-long-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
from fractions import Fraction
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


def random_htdemucs(path: Path) -> None:
    """A full-size HTDemucs with random weights, saved as a demucs package."""
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"], segment=Fraction(39, 5))
    args, kwargs = model._init_args_kwargs
    torch.save({"klass": HTDemucs, "args": args, "kwargs": kwargs, "state": model.state_dict()}, path)


class GpuMemoryPeak:
    """The most GPU memory in use (MB, from ``nvidia-smi``) while the ``with`` block runs, above what was in use before."""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak, self.stop = interval, 0.0, threading.Event()

    @staticmethod
    def used() -> float:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, check=True).stdout
        return float(out.split()[0])

    def _poll(self) -> None:
        while not self.stop.wait(self.interval):
            self.peak = max(self.peak, self.used() - self.base)

    def __enter__(self) -> "GpuMemoryPeak":
        self.base = self.used()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--model", default="separate-unet-bilstm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default: nsep separate's")
    parser.add_argument("--highs", default="other", help="nsep separate --highs (other or follow)")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    with tempfile.TemporaryDirectory() as tmp:
        song = Path(tmp) / "long.flac"
        write_long(song, args.minutes)
        model = args.model
        if model == "htdemucs-random":
            model = str(Path(tmp) / "htdemucs-random.th")
            random_htdemucs(Path(model))
        command = ["-v", "separate", str(song), "-o", str(Path(tmp) / "stems"), "--model", model, "--device", args.device]
        if args.batch_size:
            command += ["--batch-size", str(args.batch_size)]
        if args.highs != "other":
            command += ["--highs", args.highs]
        if gpu:
            with GpuMemoryPeak() as memory:
                run = measure(command)
            run["peak_gpu_mb"] = round(memory.peak, 1)
        else:
            run = measure(command)
        stems = sorted(p.name for p in (Path(tmp) / "stems" / "long").iterdir())
    seconds = args.minutes * 60
    report = {"minutes": args.minutes, "model": args.model, "device": args.device, "batch_size": args.batch_size,
              "highs": args.highs, "wall_s": run["wall_s"],
              "x_realtime": round(seconds / run["wall_s"], 2), "peak_rss_mb": run["peak_rss_mb"],
              "peak_gpu_mb": run.get("peak_gpu_mb"), "stems": stems, "machine": machine()}
    print(json.dumps(report, indent=2))
    print(f"{args.minutes:g} min 44.1 kHz stereo: {run['wall_s']} s ({report['x_realtime']}x real time), "
          f"peak RSS {run['peak_rss_mb']} MB" + (f", peak GPU memory {run['peak_gpu_mb']} MB" if gpu else ""), file=sys.stderr)
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.highs == "other" else f"-highs-{args.highs}"
    (RESULTS / f"separate-long-{args.device.split(':')[0]}{suffix}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
