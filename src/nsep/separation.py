"""Separation of audio of any length: segments on a fixed grid, batched through a model, overlap-added.

The grid is demucs' own (``demucs.apply.apply_model`` with ``split=True``): segments start every
``(1 - overlap) * segment`` samples, each is padded symmetrically with real context to the length
the model wants, and the outputs are cross-faded with triangular weights. ``shifts`` repeats the
whole pass with the signal delayed by a random 0-0.5 s (from a seeded generator) and averages.
Unlike ``apply_model``, segments from along the file share one batch, the cross-fading runs on
the model's device, and the signal streams through: only a few batches of input and output are in
memory at once, so memory is bounded by ``batch_size`` segments, not by the file's length.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Settings:
    """How a separator walks over a signal."""

    segment: float | None = None  # seconds; None takes the model's
    overlap: float = 0.25
    shifts: int = 0
    batch_size: int = 16
    seed: int = 0  # of the shifts' random delays
    transition_power: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < 1:
            raise ValueError("overlap must be in [0, 1)")
        if self.shifts < 0 or self.batch_size < 1:
            raise ValueError("shifts must be >= 0 and batch size >= 1")
        if self.segment is not None and self.segment <= 0:
            raise ValueError("segment must be positive")


class Separator(ABC):
    """A separation network as the engine sees it: ``[B, channels, L]`` -> ``[B, sources, channels, L]``."""

    name: str
    sources: list[str]
    sample_rate: int
    channels: int
    segment: float  # seconds, the model's preferred window
    normalise: bool = False  # standardise the whole input first, as demucs' command line does
    device: torch.device = torch.device("cpu")

    @abstractmethod
    def forward(self, batch: torch.Tensor) -> torch.Tensor: ...

    def valid_length(self, length: int) -> int:
        """The input length the model runs on for a segment of ``length`` samples."""
        return length


def triangle(length: int, power: float = 1.0) -> torch.Tensor:
    """demucs' cross-fade weight: rising to 1 mid-segment, then falling."""
    weight = torch.cat([torch.arange(1, length // 2 + 1), torch.arange(length - length // 2, 0, -1)]).float()
    return (weight / weight.max()) ** power


class _Source:
    """Random access to a streamed signal ``[C, total]``: zeros outside it; old samples can be dropped."""

    def __init__(self, blocks: Iterator[torch.Tensor], total: int, channels: int):
        self.blocks, self.total = blocks, total
        self.data = torch.zeros(channels, 0)
        self.start = 0

    def read(self, start: int, stop: int) -> torch.Tensor:
        want = min(stop, self.total)
        while self.start + self.data.shape[-1] < want:
            block = next(self.blocks, None)
            if block is None:
                self.total = self.start + self.data.shape[-1]
                break
            self.data = block.float() if not self.data.numel() else torch.cat([self.data, block.float()], dim=-1)
        out = self.data.new_zeros(self.data.shape[0], stop - start)
        lo, hi = max(start, self.start), min(stop, self.start + self.data.shape[-1])
        if hi > lo:
            out[:, lo - start : hi - start] = self.data[:, lo - self.start : hi - self.start]
        return out

    def release(self, before: int) -> None:
        drop = min(max(0, before - self.start), self.data.shape[-1])
        self.data, self.start = self.data[:, drop:], self.start + drop


class _Grid:
    """One pass over the signal delayed by ``lead`` samples; yields finished output in signal time."""

    def __init__(self, total: int, lead: int, length: int, stride: int, weight: torch.Tensor):
        self.total, self.lead, self.length, self.weight = total + lead, lead, length, weight
        self.offsets = range(0, self.total, stride)
        self.next = 0  # index into offsets
        self.sums: torch.Tensor | None = None
        self.weights = torch.zeros(0)
        self.origin = 0  # virtual time of sums[..., 0]

    @property
    def done(self) -> bool:
        return self.next >= len(self.offsets)

    def frontier(self) -> int:
        """Virtual time before which no further segment adds anything."""
        return self.offsets[self.next] if not self.done else self.total

    def take(self, count: int) -> list[tuple[int, int]]:
        """The next segments as (offset, length) in virtual time."""
        chosen = [(o, min(self.length, self.total - o)) for o in self.offsets[self.next : self.next + count]]
        self.next += len(chosen)
        return chosen

    def add(self, segments: list[tuple[int, int]], out: torch.Tensor, trims: list[int]) -> None:
        """Cross-fade a batch of outputs ``[B, S, C, L]`` (each trimmed to its segment) into the sums."""
        if self.sums is None:
            self.sums = out.new_zeros(*out.shape[1:-1], 0)
            self.weights = out.new_zeros(0)
            self.weight = self.weight.to(out.device)
        need = max(o + n for o, n in segments) - self.origin - self.sums.shape[-1]
        if need > 0:
            self.sums = torch.cat([self.sums, self.sums.new_zeros(*self.sums.shape[:-1], need)], dim=-1)
            self.weights = torch.cat([self.weights, self.weights.new_zeros(need)])
        for (offset, n), trim, piece in zip(segments, trims, out):
            at = offset - self.origin
            self.sums[..., at : at + n] += self.weight[:n] * piece[..., trim : trim + n]
            self.weights[at : at + n] += self.weight[:n]

    def finished(self) -> torch.Tensor | None:
        """Output that no later segment touches, lead removed, as ``[S, C, n]``."""
        stop = self.frontier() - self.origin
        if self.sums is None or stop <= 0:
            return None
        out = self.sums[..., :stop] / self.weights[:stop]
        self.sums, self.weights = self.sums[..., stop:], self.weights[stop:]
        begin = self.origin
        self.origin += stop
        skip = max(0, self.lead - begin)
        return out[..., skip:] if skip < out.shape[-1] else None


def _groups(batch: torch.Tensor, channels: int) -> tuple[torch.Tensor, int]:
    """``[B, C, L]`` -> ``[B * G, channels, L]``: the input as it is when the channel counts agree,
    else each channel on its own (repeated to the model's channel count)."""
    have = batch.shape[1]
    if have == channels:
        return batch, 1
    return batch.reshape(-1, 1, batch.shape[-1]).expand(-1, channels, -1), have


def _ungroup(out: torch.Tensor, groups: int, batch: int) -> torch.Tensor:
    """``[B * G, S, channels, L]`` -> ``[B, S, C, L]`` (the model's channels averaged per input channel)."""
    if groups == 1:
        return out
    out = out.mean(dim=2).view(batch, groups, out.shape[1], out.shape[-1])
    return out.transpose(1, 2)


def run(separator: Separator, blocks: Iterator[torch.Tensor], total: int, channels: int, settings: Settings = Settings(),
        stats: tuple[float, float] | None = None) -> Iterator[torch.Tensor]:
    """Separate a signal of ``total`` samples at the model's rate, given as ``[channels, n]`` blocks;
    yield stems ``[S, channels, n]`` in order. ``stats`` (mean, std) standardise the input (see
    :func:`input_stats`) and are undone on the stems."""
    rate = separator.sample_rate
    length = int(rate * (settings.segment or separator.segment))
    stride = max(1, int((1 - settings.overlap) * length))
    valid = separator.valid_length(length)
    weight = triangle(length, settings.transition_power)
    if stats is not None:
        mean, std = stats
        blocks = ((b - mean) / std for b in blocks)
    source = _Source(blocks, total, channels)
    max_shift = int(0.5 * rate)
    draw = random.Random(settings.seed)
    leads = [max_shift - draw.randint(0, max_shift) for _ in range(settings.shifts)] or [0]
    grids = [_Grid(total, lead, length, stride, weight) for lead in leads]
    ready: list[list[torch.Tensor]] = [[] for _ in grids]
    while True:
        for grid, queue in zip(grids, ready):
            segments = grid.take(settings.batch_size)
            if segments:
                starts = [o - (valid - n) // 2 - grid.lead for o, n in segments]
                batch = torch.stack([source.read(s, s + valid) for s in starts])
                grouped, groups = _groups(batch.to(separator.device, non_blocking=True), separator.channels)
                out = _ungroup(separator.forward(grouped), groups, len(batch)).float()
                grid.add(segments, out, [(valid - n) // 2 for _, n in segments])
            piece = grid.finished()
            if piece is not None and piece.shape[-1]:
                queue.append(piece)
        source.release(min(g.frontier() - valid - g.lead for g in grids))
        finished = all(g.done for g in grids)
        for out in _average(ready, final=finished):
            out = out.cpu()
            yield out if stats is None else out * stats[1] + stats[0]
        if finished:
            return


def _average(ready: list[list[torch.Tensor]], final: bool = False) -> Iterator[torch.Tensor]:
    """The mean over passes of the output all of them have finished."""
    queued = [sum(p.shape[-1] for p in q) for q in ready]
    n = min(queued)
    if n == 0:
        return
    parts = []
    for queue in ready:
        joined = torch.cat(queue, dim=-1)
        parts.append(joined[..., :n])
        queue[:] = [joined[..., n:]] if joined.shape[-1] > n else []
    out = parts[0] if len(parts) == 1 else torch.stack(parts).mean(dim=0)
    yield out
    if final and any(ready):
        raise RuntimeError("separation passes ended at different lengths")


def input_stats(blocks: Iterator[torch.Tensor]) -> tuple[float, float]:
    """Mean and standard deviation of the channel-averaged signal (demucs' ``ref``), in one pass."""
    count, total, squares = 0, 0.0, 0.0
    for block in blocks:
        ref = block.double().mean(dim=0)
        count += ref.numel()
        total += float(ref.sum())
        squares += float(ref.square().sum())
    mean = total / max(count, 1)
    variance = (squares - count * mean * mean) / max(count - 1, 1)
    return mean, math.sqrt(max(variance, 0.0)) or 1.0


def separate(separator: Separator, wave: torch.Tensor, settings: Settings = Settings(), normalise: bool | None = None) -> torch.Tensor:
    """A whole in-memory signal ``[C, T]`` at the model's rate -> stems ``[S, C, T]``."""
    normalise = separator.normalise if normalise is None else normalise
    stats = input_stats(iter([wave])) if normalise else None
    chunks = run(separator, iter(wave.split(1 << 20, dim=-1)), wave.shape[-1], wave.shape[0], settings, stats)
    return torch.cat(list(chunks), dim=-1)
