"""Benchmark separation: nsep's engine vs demucs' ``apply_model`` with the same network, and nsep's own models.

Run: ``python bench/bench_separate.py [--songs 20] [--seconds 180] [--device cuda] [--repeat 3]
[--models separate-unet-bilstm ...] [--no-demucs]``.

Songs are synthetic 44.1 kHz stereo signals (a few tones and noise bursts, seeded), held in memory,
so the numbers measure separation rather than disk I/O. For the demucs comparison both sides run
the same randomly initialised HTDemucs (the official weights cannot be downloaded here) at
apply_model's defaults (segment 7.8 s, overlap 0.25, shifts 1; the shift's random delay is drawn
from the same seed on both sides): ``apply_model`` one segment at a time, nsep with segments of the
whole song batched, in float32 and in bf16. nsep's own models run through the same engine on each
channel at 16 kHz. Each row is the median of ``--repeat`` passes over all songs (after one warm-up
song); speed is seconds of audio per second, with the peak GPU memory. Writes JSON to
``bench/results/separate-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from fractions import Fraction
from pathlib import Path

import torch

from common import machine

RESULTS = Path(__file__).parent / "results"
RATE = 44_100


def songs(count: int, seconds: float) -> list[torch.Tensor]:
    """Seeded stereo test signals ``[2, T]``: tones that change every second, plus noise bursts."""
    gen = torch.Generator().manual_seed(0)
    out = []
    t = torch.arange(int(seconds * RATE)) / RATE
    for _ in range(count):
        freqs = 55 * 2 ** (torch.randint(0, 48, (int(seconds) + 1, 3), generator=gen) / 12)
        tones = torch.sin(2 * torch.pi * freqs[t.long()] * t[:, None]).sum(-1) * 0.1
        noise = torch.randn(2, t.numel(), generator=gen) * 0.05 * (torch.sin(2 * torch.pi * 2 * t) > 0.9)
        out.append((tones[None] * torch.tensor([[1.0], [0.8]]) + noise).float())
    return out


def timed(run, items: list[torch.Tensor], device: torch.device, repeat: int) -> tuple[float, float, list[torch.Tensor]]:
    """Median seconds over ``repeat`` passes, peak GPU memory (GB) and the last pass's outputs."""
    run(items[0][:, : RATE * 10])  # warm-up: kernels, allocator, cuDNN plans
    walls, outputs = [], []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        outputs = [run(x) for x in items]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        walls.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else float("nan")
    return statistics.median(walls), peak, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--songs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None, help="default: nsep separate's for each model and device")
    parser.add_argument("--models", nargs="*", default=["separate-unet-bilstm"])
    parser.add_argument("--no-demucs", action="store_true")
    args = parser.parse_args()

    from nsep import audio, memory, separation
    from nsep.models import separator as separators

    memory.reuse_freed_memory()  # as the nsep command does

    device = torch.device(args.device)
    items = songs(args.songs, args.seconds)
    audio_seconds = args.songs * args.seconds
    rows: dict[str, dict] = {}

    def batch_size(sep: separation.Separator) -> int:
        return args.batch_size or (sep.gpu_batch_size if device.type == "cuda" else 2)

    def row(name: str, wall: float, peak: float, **extra) -> None:
        rows[name] = {"seconds": round(wall, 3), "x_realtime": round(audio_seconds / wall, 1),
                      "peak_gpu_gb": round(peak, 2), **extra}
        print(f"{name}: {rows[name]}", file=sys.stderr)

    if not args.no_demucs:
        from demucs.apply import apply_model
        from demucs.htdemucs import HTDemucs

        torch.manual_seed(0)
        network = HTDemucs(sources=["drums", "bass", "other", "vocals"], segment=Fraction(39, 5)).eval()

        def reference(x: torch.Tensor) -> torch.Tensor:
            random.seed(0)
            with torch.inference_mode():
                return apply_model(network, x[None], shifts=1, split=True, overlap=0.25, device=device)[0].cpu()

        wall, peak, expected = timed(reference, items, device, args.repeat)
        row("demucs apply_model (fp32, defaults)", wall, peak)
        for precision, autocast in (("fp32", False), ("bf16", True)):
            sep = separators.DemucsSeparator(network, "htdemucs-random", device, autocast=autocast)
            batch = batch_size(sep)
            settings = separation.Settings(overlap=0.25, shifts=1, batch_size=batch, seed=0)
            wall, peak, got = timed(lambda x: separation.separate(sep, x, settings, normalise=False), items, device, args.repeat)
            diff = max(float((a - b).abs().max()) for a, b in zip(got, expected))
            row(f"nsep --model htdemucs ({precision}, batch {batch})", wall, peak, max_abs_diff=diff,
                speedup=round(rows["demucs apply_model (fp32, defaults)"]["seconds"] / wall, 2))

    for name in args.models:
        default = separators.load(name, str(device))  # bf16 on a GPU; then --fp32 where that differs
        for sep in [default, separators.load(name, str(device), autocast=False)] if default.autocast else [default]:
            batch = batch_size(sep)

            def own(x: torch.Tensor, sep=sep, batch=batch) -> torch.Tensor:
                mono = audio.resample(x.to(device), RATE, sep.sample_rate)  # on the device, as a GPU pipeline would
                return separation.separate(sep, mono, separation.Settings(batch_size=batch))

            wall, peak, _ = timed(own, items, device, args.repeat)
            row(f"nsep --model {name} ({'bf16' if sep.autocast else 'fp32'}, batch {batch})", wall, peak)

    print(f"{'run':<46} {'seconds':>9} {'x real time':>12} {'peak GPU GB':>12} {'max |diff|':>11}")
    for name, r in rows.items():
        print(f"{name:<46} {r['seconds']:>9} {r['x_realtime']:>12} {r['peak_gpu_gb']:>12} {r.get('max_abs_diff', ''):>11}")
    report = {"songs": args.songs, "seconds_each": args.seconds, "device": args.device, "machine": machine(), "runs": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"separate-{device.type}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
