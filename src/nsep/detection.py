"""Which families play in each file, and when: streamed windows in, presence and segments out.

The engine's decoders stream each file into model-sized windows that overlap by half; windows
from consecutive files share batches (:func:`nsep.engine.batches`). Each file's window activity goes
straight into its :class:`~nsep.timeline.Timeline`, so memory is bounded by the batch and the
windows in flight, not by the file's length. A family's presence is its highest clip
probability over the file's windows; its timeline segments are kept only if it is present (its
presence reaches the clip threshold), so the timeline never contradicts ``labels``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from nsep import engine
from nsep.models.base import Later, ModelInfo, Predictor
from nsep.timeline import Segment, SegmentTracker, Timeline, one_window_segments

SILENT_PEAK = 1e-4  # windows quieter than this (-80 dBFS) hold nothing


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

    def present(self, labels: list[str], probabilities: np.ndarray) -> list[str]:
        """The labels whose clip- or file-level probability reaches its threshold, in label order."""
        return [label for label, above in zip(labels, (np.asarray(probabilities) >= self.clip).tolist()) if above]

    def keep_present(self, labels: list[str], probabilities: np.ndarray, segments: list[Segment]) -> list[Segment]:
        """The segments of families that are present (frames of an absent family do not count)."""
        present = set(self.present(labels, probabilities))
        return [segment for segment in segments if segment.family in present]


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
            self.result.segments = self.thresholds.keep_present(self.labels, self.presence, self.tracker.finish(duration))
        return self.result


def run(
    predictor: Predictor,
    paths: list[str],
    thresholds: Thresholds,
    min_duration: float = 0.0,
    batch_size: int | None = None,
    workers: int | None = None,
    hop_fraction: float = 0.5,
    on_done: Callable[[], None] | None = None,
) -> Iterator[Detection]:
    """Yield a :class:`Detection` per path, in input order."""
    info = predictor.info
    size = info.clip_samples
    hop = max(1, int(size * hop_fraction))
    span, hop_seconds = size / info.sample_rate, hop / info.sample_rate
    device = predictor.device
    batch_size = batch_size or engine.auto_batch_size(device)
    workers = engine.auto_workers(len(paths), device) if workers is None else workers
    states: dict[int, _FileState] = {}
    order = engine.InOrder(on_done)

    def state_of(index: int) -> _FileState:
        if index not in states:
            states[index] = _FileState(index, paths[index], info.labels, thresholds, min_duration)
        return states[index]

    def submit(batch: engine.Batch) -> Later | None:
        if not len(batch.owners):
            return None
        waves = batch.windows.to(device, non_blocking=True).float()
        return predictor.submit(waves, frames=True).add(waves.abs().amax(dim=-1) < SILENT_PEAK)

    def finish(batch: engine.Batch, later: Later | None) -> Iterator[Detection]:
        closed = {index: (duration, error) for index, duration, error in batch.closed}
        done: dict[int, Detection] = {}
        if later is not None:
            clip, frames, silent = later.get()
            clip[silent], frames[silent] = 0.0, 0.0
            whole = _one_window_files(batch, closed, states)
            for row, (owner, start) in enumerate(zip(batch.owners.tolist(), batch.starts.tolist())):
                if owner not in whole:
                    state_of(owner).add(start / info.sample_rate, span, hop_seconds, clip[row], frames[row])
            if whole:
                indices, rows = list(whole), list(whole.values())
                durations = np.array([closed[index][0] for index in indices])
                step = min(span / frames.shape[-1], hop_seconds)
                found = one_window_segments(frames[rows], durations, span, step, info.labels, thresholds.frame, min_duration)
                present = clip[rows]  # a copy: results must not hold on to the pinned batch
                for k, (index, segments) in enumerate(zip(indices, found)):
                    done[index] = Detection(index, paths[index], float(durations[k]), present[k],
                                            thresholds.keep_present(info.labels, present[k], segments), 1)
        for index, duration, error in batch.closed:
            if index in done:
                yield from order.put(index, done.pop(index))
                continue
            state = state_of(index)
            del states[index]
            state.result.error = error
            yield from order.put(index, state.finish(0.0 if error else duration))

    stream = engine.batches(paths, info.sample_rate, size, hop, batch_size, workers, device.type == "cuda")
    yield from engine.lookahead(stream, submit, finish)


def _one_window_files(batch: engine.Batch, closed: dict[int, tuple[float, str | None]],
                      states: dict[int, _FileState]) -> dict[int, int]:
    """Files (input index -> row) whose one and only window is in this batch: their timelines are
    made together (:func:`~nsep.timeline.one_window_segments`), not one by one."""
    if not len(batch.owners):
        return {}
    index, first, count = np.unique(batch.owners, return_index=True, return_counts=True)
    return {i: row for i, row, n in zip(index.tolist(), first.tolist(), count.tolist())
            if n == 1 and i in closed and closed[i][1] is None and i not in states}
