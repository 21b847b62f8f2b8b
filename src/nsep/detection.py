"""Which families play in each file, and when: streamed windows in, presence and segments out.

A decoder thread streams each file (:func:`nsep.audio.stream`) into model-sized windows that
overlap by half; windows from consecutive files share batches. Each file's window activity goes
straight into its :class:`~nsep.timeline.Timeline`, so memory is bounded by the batch and the
windows in flight, not by the file's length. A family's presence is its highest clip
probability over the file's windows.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from nsep import audio
from nsep.errors import NsepError
from nsep.models.base import ModelInfo, Predictor
from nsep.timeline import Segment, SegmentTracker, Timeline

BLOCK_SECONDS = 30.0  # audio decoded at a time
SILENT_PEAK = 1e-4  # windows quieter than this (-80 dBFS) hold nothing
QUEUE_WINDOWS = 64  # windows the decoder may run ahead (16 MB of 4-s windows)


@dataclass
class Detection:
    """One file's result, or the reason it failed."""

    index: int
    path: str
    duration: float = 0.0
    present: np.ndarray | None = None  # [labels]
    segments: list[Segment] = field(default_factory=list)
    windows: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Thresholds:
    """Each family's decision thresholds: for presence in a clip or file, and for timeline frames."""

    clip: np.ndarray
    frame: np.ndarray

    @classmethod
    def of(cls, info: ModelInfo, override: float | None = None) -> Thresholds:
        """``override`` for everything if given, else the model's validated ones, else 0.5."""
        n = len(info.labels)
        if override is not None:
            return cls(np.full(n, override), np.full(n, override))
        clip = np.asarray(info.thresholds) if info.thresholds else np.full(n, 0.5)
        return cls(clip, np.asarray(info.frame_thresholds) if info.frame_thresholds else clip)


def windows(path: str, sample_rate: int, size: int, hop: int) -> Iterator[tuple[int, torch.Tensor] | float]:
    """Windows ``(start sample, [size])`` of a mono stream, the last one ending at the file's end
    (a short file gives one zero-padded window); finally the duration in seconds."""
    buffer, offset, start = torch.zeros(0), 0, 0
    for block in audio.stream(path, BLOCK_SECONDS, sample_rate, channels=1):
        buffer = torch.cat([buffer, block[0]])
        while start + size <= offset + buffer.shape[0]:
            yield start, buffer[start - offset : start - offset + size].clone()
            start += hop
        drop = max(0, min(start - offset, buffer.shape[0] - size))
        buffer, offset = buffer[drop:], offset + drop
    total = offset + buffer.shape[0]
    if total < size:
        yield 0, torch.nn.functional.pad(buffer, (0, size - total))
    elif start - hop + size < total:
        yield total - size, buffer[-size:].clone()
    yield total / sample_rate


class _FileState:
    """A file in flight: its timeline, segment tracker and running presence."""

    def __init__(self, index: int, path: str, labels: list[str], thresholds: Thresholds, min_duration: float):
        self.result = Detection(index, path)
        self.labels, self.thresholds, self.min_duration = labels, thresholds, min_duration
        self.timeline: Timeline | None = None
        self.tracker: SegmentTracker | None = None
        self.presence = np.zeros(len(labels))
        self.done = False

    def add(self, start: float, span: float, hop: float, clip: np.ndarray, frames: np.ndarray) -> None:
        if self.timeline is None:
            step = min(span / frames.shape[1], hop)
            self.timeline = Timeline(len(self.labels), step)
            self.tracker = SegmentTracker(self.labels, self.thresholds.frame, step, self.min_duration)
        self.presence = np.maximum(self.presence, clip)
        self.timeline.add(start, span, frames)
        self.tracker.feed(*self.timeline.pop(start))
        self.result.windows += 1

    def finish(self, duration: float) -> Detection:
        self.result.duration = duration
        self.result.present = self.presence
        if self.timeline is not None and self.result.error is None:
            self.tracker.feed(*self.timeline.finish(duration))
            self.result.segments = self.tracker.finish(duration)
        return self.result


def _decode(paths: list[str], sample_rate: int, size: int, hop: int, out: queue.Queue, stop: threading.Event) -> None:
    """Put ``(index, start, window)``, ``(index, None, duration)`` or ``(index, None, error)`` items, then None."""

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    for index, path in enumerate(paths):
        try:
            for item in windows(path, sample_rate, size, hop):
                if not put((index, *item) if isinstance(item, tuple) else (index, None, item)):
                    return
        except NsepError as err:
            put((index, None, str(err)))
        except Exception as err:  # a decoder crash on one file must not stop the batch
            put((index, None, f"{path}: cannot decode audio ({type(err).__name__}: {err})"))
    put(None)


def run(
    predictor: Predictor,
    paths: list[str],
    thresholds: Thresholds,
    min_duration: float = 0.0,
    batch_size: int = 32,
    hop_fraction: float = 0.5,
    on_done: Callable[[], None] | None = None,
) -> Iterator[Detection]:
    """Yield a :class:`Detection` per path, in input order."""
    info = predictor.info
    size = info.clip_samples
    hop = max(1, int(size * hop_fraction))
    span, hop_seconds = size / info.sample_rate, hop / info.sample_rate
    items: queue.Queue = queue.Queue(maxsize=QUEUE_WINDOWS)
    stop = threading.Event()
    decoder = threading.Thread(target=_decode, args=(paths, info.sample_rate, size, hop, items, stop), daemon=True)
    decoder.start()
    states: dict[int, _FileState] = {}
    pending: list[tuple[_FileState, int, torch.Tensor]] = []
    closing: list[tuple[_FileState, float | str]] = []

    def flush() -> Iterator[Detection]:
        if pending:
            batch = torch.stack([w for _, _, w in pending])
            clip, frames = predictor.predict_frames(batch)
            silent = (batch.abs().amax(dim=-1) < SILENT_PEAK).numpy()
            clip[silent], frames[silent] = 0.0, 0.0
            for (state, start, _), c, f in zip(pending, clip, frames):
                if state.result.error is None:
                    state.add(start / info.sample_rate, span, hop_seconds, c, f)
            pending.clear()
        for state, end in closing:
            if isinstance(end, str):
                state.result.error = end
            yield state.finish(0.0 if isinstance(end, str) else end)
            del states[state.result.index]
            if on_done:
                on_done()
        closing.clear()

    try:
        while (item := items.get()) is not None:
            index, start, payload = item
            state = states.setdefault(index, _FileState(index, paths[index], info.labels, thresholds, min_duration))
            if start is None:
                closing.append((state, payload))
            else:
                pending.append((state, start, payload))
                if len(pending) >= batch_size:
                    yield from flush()
        yield from flush()
    finally:
        stop.set()
