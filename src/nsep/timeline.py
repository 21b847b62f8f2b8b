"""Turn per-window activity into one timeline per file, and the timeline into segments, as windows stream by.

Windows overlap; each window's frames are interpolated onto a fixed grid of cells and averaged
with a taper that trusts a window's middle more than its edges. Cells no later window can reach
are handed on at once, so memory holds only the cells of the windows in flight, however long
the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

EDGE_WEIGHT = 0.05  # a taper's floor: a cell only one window reaches still gets that window's value
MERGE_GAP = 0.25  # seconds: a family that stops for less than this has not stopped


@dataclass(frozen=True)
class Segment:
    """A stretch of time in which one family plays; ``confidence`` is its mean probability."""

    family: str
    start: float
    end: float
    confidence: float

    def to_dict(self) -> dict:
        return {"family": self.family, "start": round(self.start, 3), "end": round(self.end, 3),
                "confidence": round(self.confidence, 3)}


@lru_cache(maxsize=256)
def _resampling(offset: float, count: int, step: float, span: float, n: int) -> tuple[np.ndarray, ...]:
    """For ``count`` cells whose first centre lies ``offset`` seconds into a window of ``n`` frames
    over ``span`` seconds: the frames each cell interpolates between, the share of the later one, and
    the cells' taper. Windows on a regular grid share these, so they are computed once."""
    position = (offset + np.arange(count) * step) / span
    at = np.interp(position, (np.arange(n) + 0.5) / n, np.arange(n, dtype=float))  # fractional frame index
    below = np.floor(at).astype(int)
    above, part = np.minimum(below + 1, n - 1), at - below
    taper = EDGE_WEIGHT + (1 - EDGE_WEIGHT) * np.sin(np.pi * np.clip(position, 0, 1)) ** 2
    return below, above, part, taper


def _runs(index: np.ndarray, gap_cells: int, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) positions of the runs in sorted active cells ``index``: a run breaks
    where any of ``keys`` (label, file) changes or the cells are quiet for longer than ``gap_cells``."""
    new_run = np.ones(len(index), dtype=bool)
    new_run[1:] = np.diff(index) > gap_cells + 1
    for key in keys:
        new_run[1:] |= key[1:] != key[:-1]
    begins = np.flatnonzero(new_run)
    return begins, np.append(begins[1:], len(index)).astype(int) if len(index) else begins


class Timeline:
    """Overlap-adds window activity ``[labels, frames]`` onto cells ``step`` seconds long."""

    def __init__(self, n_labels: int, step: float):
        self.step = step
        self.total = np.zeros((n_labels, 0))
        self.weight = np.zeros(0)
        self.first = 0  # index of the first cell still held

    def add(self, start: float, span: float, frames: np.ndarray) -> None:
        """Window activity ``[labels, F]``: frame ``i`` is centred at ``start + (i + 0.5) * span / F``."""
        lo = max(self.first, int(np.ceil(start / self.step - 0.5)))
        hi = int(np.ceil((start + span) / self.step - 0.5))
        if hi <= lo:
            return
        self._grow(hi)
        below, above, part, taper = _resampling(round((lo + 0.5) * self.step - start, 9), hi - lo, self.step, span, frames.shape[1])
        values = frames[:, below] * (1 - part) + frames[:, above] * part
        self.total[:, lo - self.first : hi - self.first] += values * taper
        self.weight[lo - self.first : hi - self.first] += taper

    def _grow(self, end: int) -> None:
        missing = end - self.first - self.weight.shape[0]
        if missing > 0:
            self.total = np.concatenate([self.total, np.zeros((self.total.shape[0], missing))], axis=1)
            self.weight = np.concatenate([self.weight, np.zeros(missing)])

    def pop(self, until: float) -> tuple[int, np.ndarray]:
        """Release the cells that end by ``until`` seconds: (index of the first, ``[labels, cells]``)."""
        end = min(int(until / self.step), self.first + self.weight.shape[0])
        return self._release(end)

    def finish(self, duration: float) -> tuple[int, np.ndarray]:
        """Release every cell up to ``duration`` seconds."""
        self._grow(int(np.ceil(duration / self.step)))
        return self._release(int(np.ceil(duration / self.step)))

    def _release(self, end: int) -> tuple[int, np.ndarray]:
        count = max(0, end - self.first)
        values = self.total[:, :count] / np.maximum(self.weight[:count], 1e-12)
        first = self.first
        self.total, self.weight = self.total[:, count:], self.weight[count:]
        self.first += count
        return first, values


class SegmentTracker:
    """Cells in, segments out: runs at or above each family's threshold, short gaps bridged, short runs dropped."""

    def __init__(self, labels: list[str], thresholds: np.ndarray, step: float, min_duration: float,
                 merge_gap: float = MERGE_GAP):
        self.labels, self.thresholds, self.step = labels, np.asarray(thresholds), step
        self.min_duration, self.gap_cells = min_duration, int(round(merge_gap / step))
        self.open: dict[int, list[float]] = {}  # label -> [first cell, last active cell, probability sum, active cells]
        self.segments: list[Segment] = []

    def feed(self, first: int, cells: np.ndarray) -> None:
        """Cells ``[labels, n]`` starting at cell index ``first``, following the cells fed before."""
        if not cells.shape[1]:
            return
        active = cells >= self.thresholds[:, None]
        final = first + cells.shape[1] - 1
        # every run of active cells (per label, split where a label is quiet for longer than the gap) at once
        labels, hits = np.nonzero(active)
        index = hits + first
        begins, ends = _runs(index, self.gap_cells, labels)
        sums = np.concatenate([[0.0], np.cumsum(cells[labels, hits])])
        runs = zip(labels[begins].tolist(), index[begins].tolist(), index[ends - 1].tolist(),
                   (sums[ends] - sums[begins]).tolist(), (ends - begins).tolist())
        for label, low, high, total, count in runs:
            run = self.open.get(label)
            if run is not None and low - run[1] > self.gap_cells + 1:
                self._close(label)
                run = None
            if run is None:
                self.open[label] = [low, high, total, count]
            else:
                run[1], run[2], run[3] = high, run[2] + total, run[3] + count
        for label in list(self.open):
            if final - self.open[label][1] > self.gap_cells:
                self._close(label)

    def _close(self, label: int, limit: float | None = None) -> None:
        first, last, total, count = self.open.pop(label)
        start, end = first * self.step, (last + 1) * self.step
        if limit is not None:
            end = min(end, limit)
        if end - start >= self.min_duration:
            self.segments.append(Segment(self.labels[label], start, end, float(total / count)))

    def finish(self, duration: float) -> list[Segment]:
        """Close what is open (ending at ``duration`` at the latest); all segments by start, then family order."""
        for label in sorted(self.open):
            self._close(label, duration)
        order = {name: i for i, name in enumerate(self.labels)}
        return sorted(self.segments, key=lambda s: (s.start, order[s.family]))


def one_window_segments(frames: np.ndarray, durations: np.ndarray, span: float, step: float, labels: list[str],
                        thresholds: np.ndarray, min_duration: float, merge_gap: float = MERGE_GAP) -> list[list[Segment]]:
    """The segments of many files that each fit in one window (starting at 0), at once.

    ``frames`` ``[files, labels, F]`` and each file's duration (at most ``span``); the result is what
    a :class:`Timeline` with cells ``step`` long and a :class:`SegmentTracker` give each file alone,
    without their per-file cost (for folders of short clips that cost bounds the throughput).
    """
    count = np.ceil(np.asarray(durations) / step).astype(int)  # each file's cells
    hi = int(np.ceil(span / step - 0.5))  # the cells the window reaches
    below, above, part, taper = _resampling(round(0.5 * step, 9), hi, step, span, frames.shape[-1])
    width = max(hi, int(count.max(initial=0)))
    total, weight = np.zeros((*frames.shape[:2], width)), np.zeros(width)
    total[..., :hi] = (frames[..., below] * (1 - part) + frames[..., above] * part) * taper
    weight[:hi] = taper
    cells = total / np.maximum(weight, 1e-12)
    exists = np.arange(width)[None, None, :] < count[:, None, None]
    file, label, cell = np.nonzero((cells >= np.asarray(thresholds)[None, :, None]) & exists)
    begins, ends = _runs(cell, int(round(merge_gap / step)), file, label)
    out: list[list[Segment]] = [[] for _ in range(frames.shape[0])]
    if not len(begins):
        return out
    confidence = np.add.reduceat(cells[file, label, cell], begins) / (ends - begins)
    owner, family = file[begins], label[begins]
    start = cell[begins] * step
    end = np.minimum((cell[ends - 1] + 1) * step, np.asarray(durations, dtype=float)[owner])
    keep = np.flatnonzero(end - start >= min_duration)
    keep = keep[np.lexsort((family[keep], start[keep], owner[keep]))]
    for f, l, s, e, c in zip(owner[keep].tolist(), family[keep].tolist(), start[keep].tolist(), end[keep].tolist(),
                             confidence[keep].tolist()):
        out[f].append(Segment(labels[l], s, e, c))
    return out
