"""Where a GPU run's time goes: bare forward passes, the pipeline without a model, start-up, separation.

Run: ``python bench/bench_parts.py --data BANK [--files 20000] [--device cuda]``. BANK is an
NSynth-format folder of 4-s notes (e.g. the TimGM6mb render). Four parts, each a table:

- forward: clips/s of each model's forward pass alone on random 4-s clips in batches of 512
  (bf16 autocast on CUDA), as trained (BatchNorm separate) and as nsep loads it (folded), with
  cuDNN's autotuner off and on;
- pipeline: files/s of classification and detection from wav files with a model that does nothing
  (decoding, batching and the per-file work only; ``--workers`` decoder counts), then with the real
  model, in this process;
- start-up: seconds to import nsep, start CUDA, load the model and run the first batch;
- separation: an HTDemucs (random weights) over stereo songs (3 minutes each by default) as ``bench_separate.py``
  runs it, with PyTorch's GroupNorm kernel and with nsep's (:mod:`nsep.models.groupnorm`), and a
  profile of two songs (GPU busy time, the costliest operations).

Writes JSON to ``bench/results/parts-<device>.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from common import machine

RESULTS = Path(__file__).parent / "results"


def rate(step, count: int, device: torch.device, repeat: int = 10) -> float:
    """Items per second of ``step()`` (which handles ``count`` items), after two warm-up calls."""
    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return count * repeat / (time.perf_counter() - start)


def forward_part(device: torch.device, batch: int) -> dict:
    from nsep.models import registry
    from nsep.models.base import read_checkpoint

    rows = {}
    for name, task in (("classify-cnn", "classify"), ("detect-cnn", "detect"), ("classify-ensemble", "classify")):
        predictor = registry.load(name, task, str(device))
        waves = torch.randn(batch, predictor.info.clip_samples, device=device) * 0.1
        frames = task == "detect"
        folded = predictor.module
        info, state = read_checkpoint(registry.locate(name, task)[0])
        unfolded = registry.build(info.architecture, len(info.labels), info.config)
        unfolded.load_state_dict(state)
        unfolded = unfolded.to(device).eval()
        for label, module in (("batchnorm", unfolded), ("folded", folded)):
            for tuned in (False, True):
                torch.backends.cudnn.benchmark = tuned
                predictor.module = module
                key = f"{name} {label} cudnn.benchmark={tuned}"
                rows[key] = round(rate(lambda: predictor.submit(waves, frames=frames).wait(), batch, device), 1)
                print(f"forward {key}: {rows[key]} clips/s", file=sys.stderr)
        predictor.module = folded
        if device.type == "cuda":
            rows[f"{name} folded cuda-graph"] = graph_rate(predictor, waves, frames)
            print(f"forward {name} graph: {rows[f'{name} folded cuda-graph']}", file=sys.stderr)
    torch.backends.cudnn.benchmark = False
    return rows


def graph_rate(predictor, waves: torch.Tensor, frames: bool) -> float | str:
    """The folded model replayed from a CUDA graph (no per-kernel launch cost)."""
    try:
        static = waves.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                predictor._outputs(static, frames)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outs = predictor._outputs(static, frames)

        def step():
            static.copy_(waves)
            graph.replay()
            [o.cpu() for o in outs]

        return round(rate(step, waves.shape[0], waves.device), 1)
    except Exception as err:  # report, do not stop the other parts
        return f"failed: {type(err).__name__}: {err}"


class NullPredictor:
    """A predictor that answers zeros at once: the pipeline's own cost."""

    def __init__(self, real):
        self.info, self.device = real.info, real.device

    def submit(self, waves: torch.Tensor, frames: bool = False):
        from nsep.models.base import Later

        n = len(self.info.labels)
        clip = torch.zeros(waves.shape[0], n, device=waves.device)
        return Later(clip, torch.zeros(waves.shape[0], n, 63, device=waves.device)) if frames else Later(clip)


def pipeline_part(paths: list[str], device: torch.device, workers: list[int | None]) -> dict:
    from nsep import detection, engine
    from nsep.models import registry

    rows = {}
    for task in ("classify", "detect"):
        real = registry.load(None, task, str(device))
        runs = [("no model", NullPredictor(real), w) for w in workers] + [("model", real, None)]
        for label, predictor, count_workers in runs:
            start = time.perf_counter()
            if task == "classify":
                count = sum(1 for _ in engine.run(predictor, paths, workers=count_workers))
            else:
                thresholds = detection.Thresholds.of(real.info)
                count = sum(1 for _ in detection.run(predictor, paths, thresholds, workers=count_workers))
            key = f"{task} {label} workers={'auto' if count_workers is None else count_workers}"
            rows[key] = round(count / (time.perf_counter() - start), 1)
            print(f"pipeline {key}: {rows[key]} files/s", file=sys.stderr)
    return rows


STARTUP = """
import time, sys
t0 = time.perf_counter()
import torch, nsep.cli
t1 = time.perf_counter()
torch.zeros(1, device="{device}"); torch.cuda.synchronize() if "{device}" != "cpu" else None
t2 = time.perf_counter()
from nsep.models import registry
p = registry.load("classify-cnn", "classify", "{device}")
t3 = time.perf_counter()
p.submit(torch.zeros(512, p.info.clip_samples, device="{device}")).wait()
t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""


def startup_part(path: str, device: torch.device) -> dict:
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", STARTUP.format(device=device.type)], capture_output=True, text=True, check=True)
        runs.append([float(x) for x in out.stdout.split()])
    phases = dict(zip(("imports", "device", "model", "first batch"), np.median(runs, axis=0).round(3).tolist()))
    walls = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nsep", "-q", "classify", path, "--device", str(device)],
                       capture_output=True, check=True)
        walls.append(time.perf_counter() - start)
    phases["nsep classify one file (wall)"] = round(float(np.median(walls)), 3)
    print(f"start-up: {phases}", file=sys.stderr)
    return phases


def separation_part(device: torch.device, songs: int, seconds: float) -> dict:
    from demucs.htdemucs import HTDemucs

    from bench_separate import songs as make_songs
    from nsep import separation
    from nsep.models import separator as separators

    torch.manual_seed(0)
    network = HTDemucs(sources=["drums", "bass", "other", "vocals"], segment=Fraction(39, 5)).eval()
    items = make_songs(songs, seconds)
    rows = {}
    for batch in (24, 32):
        for parallel in (False, True):
            sep = separators.DemucsSeparator(network, "htdemucs-random", device, autocast=True, parallel_group_norm=parallel)
            settings = separation.Settings(overlap=0.25, shifts=1, batch_size=batch, seed=0)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            x_rt = rate(lambda: [separation.separate(sep, x, settings, normalise=False) for x in items], seconds * len(items), device, 2)
            peak = torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else float("nan")
            key = f"batch {batch} parallel_group_norm={parallel}"
            rows[key] = {"x_realtime": round(x_rt, 1), "peak_gpu_gb": round(peak, 2)}
            print(f"separation {key}: {rows[key]}", file=sys.stderr)
    torch.backends.cudnn.benchmark = False
    if device.type == "cuda":
        rows["profile"] = separation_profile(network, items[:2], device)
    forward_rows = {}
    for batch in (24, 32):
        x = torch.randn(batch, 2, network.valid_length(int(44100 * 7.8)), device=device)
        sep = separators.DemucsSeparator(network, "htdemucs-random", device, autocast=True)
        forward_rows[f"forward only, batch {batch}"] = round(rate(lambda: sep.forward(x), batch, device, 5) * 7.8, 1)
    rows.update(forward_rows)
    print(f"separation forward: {forward_rows} x real time", file=sys.stderr)
    return rows


def separation_profile(network, items: list[torch.Tensor], device: torch.device) -> dict:
    """Where two songs' separation spends its time: GPU busy share, and the costliest operations."""
    from torch.profiler import ProfilerActivity, profile

    from nsep import separation
    from nsep.models import separator as separators

    sep = separators.DemucsSeparator(network, "htdemucs-random", device, autocast=True)
    settings = separation.Settings(overlap=0.25, shifts=1, batch_size=24, seed=0)
    separation.separate(sep, items[0], settings, normalise=False)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        for x in items:
            separation.separate(sep, x, settings, normalise=False)
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    events = prof.key_averages()
    gpu = sum(e.self_device_time_total for e in events) / 1e6
    by_cpu = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    by_gpu = sorted(events, key=lambda e: e.self_device_time_total, reverse=True)[:15]
    print(events.table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
    print(events.table(sort_by="self_cuda_time_total", row_limit=15), file=sys.stderr)
    return {"wall_s": round(wall, 3), "gpu_busy_s": round(gpu, 3),
            "top_cpu_ms": {e.key: round(e.self_cpu_time_total / 1e3, 1) for e in by_cpu},
            "top_gpu_ms": {e.key: round(e.self_device_time_total / 1e3, 1) for e in by_gpu}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--songs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--workers", type=int, nargs="+", default=None, help="decoder counts to try without a model (default: auto)")
    parser.add_argument("--parts", nargs="+", default=["forward", "pipeline", "startup", "separation"])
    args = parser.parse_args()

    from nsep import memory
    from nsep.data.nsynth import load_bank

    memory.reuse_freed_memory()
    device = torch.device(args.device)
    paths = [str(e.path) for e in load_bank(args.data)][: args.files]
    report = {"device": args.device, "machine": machine(), "files": len(paths)}
    if "forward" in args.parts:
        report["forward_clips_per_s"] = forward_part(device, args.batch)
    if "pipeline" in args.parts:
        report["pipeline_files_per_s"] = pipeline_part(paths, device, args.workers or [None])
    if "startup" in args.parts:
        report["startup_s"] = startup_part(paths[0], device)
    if "separation" in args.parts:
        report["separation"] = separation_part(device, args.songs, args.seconds)
    print(json.dumps(report, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"parts-{device.type}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
