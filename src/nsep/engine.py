"""Batched inference over many files: decode in worker processes, fill batches across files.

Each file becomes model-sized windows (padded if short, overlapping if long); windows from many
files share a batch, and results come back per file, in input order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from nsep import audio
from nsep.errors import NsepError
from nsep.models.base import Predictor


@dataclass
class FileResult:
    """Per-window probabilities ``[windows, labels]`` of one file, or the reason it failed."""

    index: int
    path: str
    probabilities: np.ndarray | None = None
    window_rms: np.ndarray | None = None
    window_starts: np.ndarray | None = None  # seconds
    duration: float = 0.0
    error: str | None = None


def split_windows(wave: torch.Tensor, size: int, hop: int) -> tuple[torch.Tensor, np.ndarray]:
    """``[T]`` -> ``[W, size]`` windows (zero-padded; the last one ends at the file's end) and starts."""
    total = wave.shape[-1]
    if total <= size:
        return torch.nn.functional.pad(wave, (0, size - total))[None], np.zeros(1, dtype=np.int64)
    starts = list(range(0, total - size + 1, hop))
    if starts[-1] + size < total:
        starts.append(total - size)
    return torch.stack([wave[s : s + size] for s in starts]), np.asarray(starts)


class _Decoder(Dataset):
    """Item ``i`` decodes files ``i * group`` onwards: groups keep a decoder process's hand-overs few."""

    def __init__(self, paths: list[str], sample_rate: int, size: int, hop: int, group: int = 1):
        self.paths, self.sample_rate, self.size, self.hop, self.group = paths, sample_rate, size, hop, group

    def __len__(self) -> int:
        return -(-len(self.paths) // self.group)

    def __getitem__(self, item: int) -> list:
        first = item * self.group
        return [self._decode(i) for i in range(first, min(first + self.group, len(self.paths)))]

    def _decode(self, index: int):
        path = self.paths[index]
        try:
            clip = audio.load(path, sample_rate=self.sample_rate, channels=1)
        except NsepError as err:
            return index, None, None, str(err), 0.0
        except Exception as err:  # a decoder crash on one file must not stop the batch
            return index, None, None, f"{path}: cannot decode audio ({type(err).__name__}: {err})", 0.0
        windows, starts = split_windows(clip.samples[0], self.size, self.hop)
        return index, windows, starts, None, clip.duration


def auto_workers(n_files: int, device: torch.device) -> int:
    """Decoder processes: several when a GPU waits for data; none on the CPU, where a decoder would
    take cores from the model (measured on 2 cores: 165 clips/s without, 138 with one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if n_files < 16 or device.type != "cuda":
        return 0
    return min(8, cores)


def run(
    predictor: Predictor,
    paths: list[str],
    batch_size: int = 64,
    workers: int | None = None,
    hop_fraction: float = 0.5,
    on_done: Callable[[], None] | None = None,
) -> Iterator[FileResult]:
    """Yield a :class:`FileResult` per path, in order, batching windows across files."""
    info = predictor.info
    size = info.clip_samples
    hop = max(1, int(size * hop_fraction))
    workers = auto_workers(len(paths), predictor.device) if workers is None else workers
    group = 32 if workers else 1
    loader = DataLoader(
        _Decoder(paths, info.sample_rate, size, hop, group),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=4 if workers else None,
        pin_memory=predictor.device.type == "cuda",
        collate_fn=lambda item: item,
    )
    pending: list[tuple[FileResult, torch.Tensor]] = []
    ready: dict[int, FileResult] = {}
    next_index = 0

    def flush() -> None:
        batch = torch.cat([w for _, w in pending])
        probs = predictor.predict(batch)
        rms = batch.square().mean(dim=-1).sqrt().numpy()
        offset = 0
        for result, windows in pending:
            n = len(windows)
            result.probabilities, result.window_rms = probs[offset : offset + n], rms[offset : offset + n]
            ready[result.index] = result
            offset += n
        pending.clear()

    def drain() -> Iterator[FileResult]:
        nonlocal next_index
        while next_index in ready:
            yield ready.pop(next_index)
            next_index += 1
            if on_done:
                on_done()

    queued = 0
    for index, windows, starts, error, duration in (item for group in loader for item in group):
        result = FileResult(index, paths[index], duration=duration)
        if error is not None:
            result.error = error
            ready[index] = result
        else:
            result.window_starts = starts / info.sample_rate
            pending.append((result, windows))
            queued += len(windows)
            if queued >= batch_size:
                flush()
                queued = 0
        yield from drain()
    if pending:
        flush()
    yield from drain()


def combine(result: FileResult, floor_db: float = 40.0) -> np.ndarray:
    """Clip-level probabilities: mean over windows within ``floor_db`` of the loudest one."""
    rms_db = 20 * np.log10(np.maximum(result.window_rms, 1e-9))
    keep = rms_db >= rms_db.max() - floor_db
    return result.probabilities[keep].mean(axis=0)
