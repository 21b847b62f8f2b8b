"""Batched inference over many files: decode in worker processes, fill batches across files.

Each file is streamed (:func:`nsep.audio.stream`) into model-sized windows (padded if short,
overlapping if long). A decoder packs windows from consecutive files into one tensor per batch, so
a worker process hands over one tensor per batch rather than one per file, and memory stays bounded
by the batches in flight, however long a file is. :func:`run` turns the batches into per-file
results in input order; :mod:`nsep.detection` consumes :func:`batches` directly for timelines.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from nsep import audio
from nsep.errors import NsepError
from nsep.models.base import Later, Predictor

T = TypeVar("T")

BLOCK_SECONDS = 30.0  # audio decoded at a time from one file
MIN_SECONDS = 0.05  # shorter inputs hold less than one analysis frame of any model: refused, not guessed at


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


@dataclass
class Batch:
    """Windows of consecutive files; ``closed`` lists files that end in this batch.

    ``owners[i]`` and ``starts[i]`` are the input index and start sample of window ``i``; a file's
    windows arrive in order, possibly over several batches, all before its ``closed`` entry
    ``(index, duration in seconds, error or None)``.
    """

    windows: torch.Tensor
    owners: np.ndarray
    starts: np.ndarray
    closed: list[tuple[int, float, str | None]] = field(default_factory=list)

    def pin_memory(self) -> Batch:
        """The batch with its windows in pinned memory (the DataLoader's pinning thread calls this),
        so the copy to the GPU runs without stopping this process or waiting for the GPU's queue."""
        return replace(self, windows=self.windows.pin_memory())


def split_windows(wave: torch.Tensor, size: int, hop: int) -> tuple[torch.Tensor, np.ndarray]:
    """``[T]`` -> ``[W, size]`` windows (zero-padded; the last one ends at the file's end) and starts."""
    total = wave.shape[-1]
    if total <= size:
        return torch.nn.functional.pad(wave, (0, size - total))[None], np.zeros(1, dtype=np.int64)
    starts = list(range(0, total - size + 1, hop))
    if starts[-1] + size < total:
        starts.append(total - size)
    return torch.stack([wave[s : s + size] for s in starts]), np.asarray(starts)


def file_windows(path: str, sample_rate: int, size: int, hop: int) -> Iterator[tuple[int, torch.Tensor] | float]:
    """Windows ``(start sample, [size])`` of a mono stream, as :func:`split_windows` cuts them, with
    memory bounded by a decoding block; finally the duration in seconds."""
    buffer, offset, start = torch.zeros(0), 0, 0
    for block in audio.stream(path, BLOCK_SECONDS, sample_rate, channels=1, min_seconds=MIN_SECONDS):
        buffer = block[0] if buffer.numel() == 0 else torch.cat([buffer, block[0]])
        while start + size <= offset + buffer.shape[0]:
            yield start, buffer[start - offset : start - offset + size]
            start += hop
        drop = max(0, min(start - offset, buffer.shape[0] - size))
        buffer, offset = buffer[drop:], offset + drop
    total = offset + buffer.shape[0]
    if total < size:
        yield 0, torch.nn.functional.pad(buffer, (0, size - total))
    elif start - hop + size < total:
        yield total - size, buffer[-size:]
    yield total / sample_rate


class WindowBatches(IterableDataset):
    """Batches of up to ``batch_windows`` windows over ``paths``.

    Files go in chunks of ``chunk`` consecutive paths; worker ``w`` of ``n`` decodes chunks ``w``,
    ``w + n``, ... so batches from the workers arrive roughly in input order.
    """

    def __init__(self, paths: list[str], sample_rate: int, size: int, hop: int, batch_windows: int, chunk: int,
                 dtype: torch.dtype = torch.float32):
        self.paths, self.sample_rate, self.size, self.hop = paths, sample_rate, size, hop
        self.batch_windows, self.chunk, self.dtype = batch_windows, chunk, dtype

    def __iter__(self) -> Iterator[Batch]:
        worker = get_worker_info()
        first, step = (worker.id, worker.num_workers) if worker else (0, 1)
        for chunk_start in range(first * self.chunk, len(self.paths), step * self.chunk):
            yield from self._chunk(range(chunk_start, min(chunk_start + self.chunk, len(self.paths))))

    def _chunk(self, indices: range) -> Iterator[Batch]:
        windows = self._buffer()
        count = 0
        owners: list[int] = []
        starts: list[int] = []
        closed: list[tuple[int, float, str | None]] = []
        for index in indices:
            path = self.paths[index]
            try:
                for item in file_windows(path, self.sample_rate, self.size, self.hop):
                    if isinstance(item, float):
                        closed.append((index, item, None))
                        continue
                    windows[count].copy_(item[1])  # converts to the batch's dtype in the same pass
                    count += 1
                    owners.append(index)
                    starts.append(item[0])
                    if count == self.batch_windows:
                        yield self._pack(windows, owners, starts, closed)
                        windows, count, owners, starts, closed = self._buffer(), 0, [], [], []
            except NsepError as err:
                closed.append((index, 0.0, str(err)))
            except Exception as err:  # a decoder crash on one file must not stop the batch
                closed.append((index, 0.0, f"{path}: cannot decode audio ({type(err).__name__}: {err})"))
        if count or closed:
            yield self._pack(windows[:count], owners, starts, closed)

    def _buffer(self) -> torch.Tensor:
        """A fresh batch to fill (a new one each time: a yielded batch goes on to the consumer); in a
        worker process it is made in shared memory, so handing it over copies nothing."""
        buffer = torch.empty(self.batch_windows, self.size, dtype=self.dtype)
        return buffer.share_memory_() if get_worker_info() is not None else buffer

    def _pack(self, windows: torch.Tensor, owners: list[int], starts: list[int], closed: list) -> Batch:
        return Batch(windows, np.asarray(owners, dtype=np.int64), np.asarray(starts, dtype=np.int64), closed)


class InOrder:
    """Per-file results that finish out of order (decoders run ahead of each other), handed on in input order."""

    def __init__(self, on_done: Callable[[], None] | None = None):
        self.ready: dict[int, object] = {}
        self.next, self.on_done = 0, on_done

    def put(self, index: int, result: object) -> Iterator[object]:
        """Hold ``result`` for input ``index``; yield every result whose turn has come."""
        self.ready[index] = result
        while self.next in self.ready:
            yield self.ready.pop(self.next)
            self.next += 1
            if self.on_done:
                self.on_done()


def auto_workers(n_files: int, device: torch.device) -> int:
    """Decoder processes: several when a GPU waits for data; none on the CPU, where a decoder would
    take cores from the model (measured on 2 cores: 165 clips/s without, 138 with one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if n_files < 16 or device.type != "cuda":
        return 0
    return max(1, min(16, cores - 4))  # on 16 cores 12 decoded fastest (8, 12, 14, 16 tried): this process needs room


def auto_batch_size(device: torch.device) -> int:
    """Windows per forward pass: enough to fill a GPU, few enough to keep a CPU's cache warm."""
    return 512 if device.type == "cuda" else 64


def batches(
    paths: list[str],
    sample_rate: int,
    size: int,
    hop: int,
    batch_size: int,
    workers: int,
    pin_memory: bool = False,
) -> Iterator[Batch]:
    """Decode ``paths`` into :class:`Batch` es, in ``workers`` processes (0: in this one).

    Worker processes hand windows over as float16 when they go to a GPU: half the bytes to map, pin
    and copy, and finer than the bf16 the networks run in there (the accuracy is measured in bench/).
    """
    dtype = torch.float16 if workers and pin_memory else torch.float32
    loader = DataLoader(
        WindowBatches(paths, sample_rate, size, hop, batch_size, chunk=batch_size, dtype=dtype),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=2 if workers else None,
        pin_memory=pin_memory,
        collate_fn=lambda item: item,
    )
    yield from loader


def run(
    predictor: Predictor,
    paths: list[str],
    batch_size: int | None = None,
    workers: int | None = None,
    hop_fraction: float = 0.5,
    on_done: Callable[[], None] | None = None,
) -> Iterator[FileResult]:
    """Yield a :class:`FileResult` per path, in order, batching windows across files."""
    info = predictor.info
    size = info.clip_samples
    hop = max(1, int(size * hop_fraction))
    device = predictor.device
    batch_size = batch_size or auto_batch_size(device)
    workers = auto_workers(len(paths), device) if workers is None else workers
    parts: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    order = InOrder(on_done)

    def submit(batch: Batch) -> Later | None:
        if not len(batch.owners):
            return None
        waves = batch.windows.to(device, non_blocking=True).float()
        return predictor.submit(waves).add(waves.square().mean(dim=-1).sqrt())

    def finish(batch: Batch, later: Later | None) -> Iterator[FileResult]:
        if later is not None:
            probs, rms = later.get()
            cuts = np.flatnonzero(np.diff(batch.owners)) + 1
            for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(batch.owners)]):
                owner = int(batch.owners[lo])
                parts.setdefault(owner, []).append((probs[lo:hi], rms[lo:hi], batch.starts[lo:hi]))
        for index, duration, error in batch.closed:
            result = FileResult(index, paths[index], duration=duration, error=error)
            pieces = parts.pop(index, [])
            if error is None:
                result.probabilities = np.concatenate([p for p, _, _ in pieces])
                result.window_rms = np.concatenate([r for _, r, _ in pieces])
                result.window_starts = np.concatenate([s for _, _, s in pieces]) / info.sample_rate
            yield from order.put(index, result)

    stream = batches(paths, info.sample_rate, size, hop, batch_size, workers, device.type == "cuda")
    yield from lookahead(stream, submit, finish)


def lookahead(stream: Iterator[Batch], submit: Callable[[Batch], Later | None],
              finish: Callable[[Batch, Later | None], Iterator[T]]) -> Iterator[T]:
    """``finish`` each batch only after the next one is submitted, so a GPU computes one batch
    while this process takes in the results of the one before and waits for the decoders."""
    pending: tuple[Batch, Later | None] | None = None
    for batch in stream:
        submitted = (batch, submit(batch))
        if pending is not None:
            yield from finish(*pending)
        pending = submitted
    if pending is not None:
        yield from finish(*pending)


def label_columns(labels: list[str], chosen: list[str]) -> np.ndarray:
    """Where each of ``chosen`` sits among a model's ``labels``; ValueError naming any it does not have."""
    unknown = [f for f in chosen if f not in labels]
    if unknown:
        raise ValueError(f"model has no label {', '.join(unknown)} (it has {', '.join(labels)})")
    return np.asarray([labels.index(f) for f in chosen])


def restrict(probabilities: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Probabilities of some labels only (:func:`label_columns`), renormalised among them."""
    kept = probabilities[..., columns]
    return kept / np.maximum(kept.sum(axis=-1, keepdims=True), 1e-12)


def combine(result: FileResult, floor_db: float = 40.0) -> np.ndarray:
    """Clip-level probabilities: mean over windows within ``floor_db`` of the loudest one."""
    rms_db = 20 * np.log10(np.maximum(result.window_rms, 1e-9))
    keep = rms_db >= rms_db.max() - floor_db
    return result.probabilities[keep].mean(axis=0)
