"""Timelines from overlapping windows, segments from timelines."""

import numpy as np

from nsep.timeline import Segment, SegmentTracker, Timeline

LABELS = ["a", "b"]


def _segments(cells: np.ndarray, step: float, min_duration: float = 0.0, thresholds=(0.5, 0.5)) -> list[Segment]:
    tracker = SegmentTracker(LABELS, np.asarray(thresholds), step, min_duration, merge_gap=0.25)
    tracker.feed(0, cells)
    return tracker.finish(cells.shape[1] * step)


def test_overlapping_windows_average_to_one_timeline_released_in_order():
    timeline = Timeline(2, step=0.5)
    released = []
    for start in (0.0, 1.0, 2.0):
        frames = np.array([[1.0, 1.0], [0.0, 0.0]]) if start < 2 else np.zeros((2, 2))
        timeline.add(start, 2.0, frames)
        released.append(timeline.pop(start))
    released.append(timeline.finish(4.0))
    firsts = [first for first, _ in released]
    cells = np.concatenate([c for _, c in released], axis=1)
    assert firsts == sorted(firsts) and cells.shape == (2, 8)
    assert np.allclose(cells[0, :2], 1) and np.allclose(cells[0, 6:], 0) and np.allclose(cells[1], 0)
    assert np.all((cells[0, 2:6] >= 0) & (cells[0, 2:6] <= 1))


def test_segments_bridge_short_gaps_and_drop_short_runs():
    step = 0.1
    a = np.zeros(40)
    a[0:10] = 0.9
    a[12:20] = 0.8  # 0.2-s gap: bridged
    a[30:32] = 0.7  # 0.2-s run: dropped with min_duration 0.5
    b = np.zeros(40)
    b[5:40] = 0.6
    segments = _segments(np.stack([a, b]), step, min_duration=0.5)
    assert [(s.family, round(s.start, 2), round(s.end, 2)) for s in segments] == [("a", 0.0, 2.0), ("b", 0.5, 4.0)]
    assert all(0.5 <= s.confidence <= 1 for s in segments)


def test_segments_are_ordered_and_within_the_file():
    rng = np.random.default_rng(0)
    cells = rng.random((2, 200))
    segments = _segments(cells, 0.05)
    assert segments == sorted(segments, key=lambda s: (s.start, LABELS.index(s.family)))
    assert all(0 <= s.start < s.end <= 10.0 for s in segments)
    for family in LABELS:
        runs = [s for s in segments if s.family == family]
        assert all(x.end <= y.start for x, y in zip(runs, runs[1:]))
