"""Timelines from overlapping windows, segments from timelines."""

import numpy as np

from nsep.timeline import Segment, SegmentTracker, Timeline, one_window_segments

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


def _reference_segments(cells: np.ndarray, step: float, thresholds, gap_cells: int) -> list[tuple]:
    """Runs of active cells per label, merged over gaps of at most ``gap_cells`` quiet cells, found
    one label and one cell at a time."""
    out = []
    for label, row in enumerate(cells):
        runs: list[list[int]] = []
        for cell in np.flatnonzero(row >= thresholds[label]):
            if runs and cell - runs[-1][-1] <= gap_cells + 1:
                runs[-1].append(int(cell))
            else:
                runs.append([int(cell)])
        out += [(LABELS[label], run[0] * step, (run[-1] + 1) * step, float(row[run].mean())) for run in runs]
    return sorted(out, key=lambda s: (s[1], LABELS.index(s[0])))


def test_segments_fed_in_pieces_match_a_cell_by_cell_reference():
    rng = np.random.default_rng(3)
    step, thresholds = 0.05, np.array([0.6, 0.8])
    cells = rng.random((2, 300))
    tracker = SegmentTracker(LABELS, thresholds, step, 0.0, merge_gap=0.25)
    first = 0
    for size in (1, 7, 50, 2, 90, 150):  # pieces of every size, as windows release them
        tracker.feed(first, cells[:, first : first + size])
        first += size
    got = [(s.family, s.start, s.end, s.confidence) for s in tracker.finish(300 * step)]
    expected = _reference_segments(cells, step, thresholds, gap_cells=5)
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    assert np.allclose([g[3] for g in got], [e[3] for e in expected])


def test_one_window_files_get_the_segments_of_the_per_file_path():
    rng = np.random.default_rng(1)
    labels = [f"family{i}" for i in range(12)]
    span, frames_per_window = 4.0, 63
    step = span / frames_per_window
    for _ in range(60):
        frames = rng.random((7, 12, frames_per_window))
        frames = (frames + np.roll(frames, 1, -1) + np.roll(frames, 2, -1)) / 3  # runs of a few frames
        durations = np.where(rng.random(7) < 0.5, span, rng.uniform(0.1, span, 7))
        thresholds, min_duration = rng.uniform(0.3, 0.7, 12), float(rng.choice([0.0, 0.2, 0.5]))
        together = one_window_segments(frames, durations, span, step, labels, thresholds, min_duration)
        for file, duration in enumerate(durations):
            timeline, tracker = Timeline(12, step), SegmentTracker(labels, thresholds, step, min_duration)
            timeline.add(0.0, span, frames[file])
            tracker.feed(*timeline.finish(duration))
            alone = tracker.finish(duration)
            assert [(s.family, s.start, s.end) for s in together[file]] == [(s.family, s.start, s.end) for s in alone]
            assert np.allclose([s.confidence for s in together[file]], [s.confidence for s in alone], rtol=0, atol=1e-12)
