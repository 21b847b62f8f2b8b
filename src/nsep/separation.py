"""Separation of audio of any length: segments on a fixed grid, batched through a model, overlap-added.

The grid is demucs' own (``demucs.apply.apply_model`` with ``split=True``): segments start every
``(1 - overlap) * segment`` samples, each is padded symmetrically with real context to the length
the model wants, and the outputs are cross-faded with triangular weights. ``shifts`` repeats the
whole pass with the signal delayed by a random 0-0.5 s (from a seeded generator) and averages.
Unlike ``apply_model``, segments from along the file share one batch, the cross-fading runs on
the model's device, and the signal streams through: only a few batches of input and output are in
memory at once, so memory is bounded by ``batch_size`` segments, not by the file's length. No buffer
grows by concatenation: input blocks are read (and standardised) straight into the batch, each pass
cross-fades into one preallocated window, and :func:`separate` has that divided straight into its stems.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from nsep.errors import UsageError
from nsep.models.base import Later

STATS_PIECE = 1 << 16  # samples per step of input_stats
# presence a family needs to pass presence gating (--gate) unless the model records its own: the
# detector's own thresholds aim at F1, a gate needs recall; chosen on validation mixtures over 0.02-0.2
# and the detector's own (docs/MODELS.md)
GATE_THRESHOLD = 0.05


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
    # windows per forward pass on a GPU by default: HTDemucs in bf16 through `nsep separate` peaks at
    # 5.4 GB in tensors, 7.2 GB in nvidia-smi with 16 on an H100 (24: 8.0 and 9.7 GB)
    gpu_batch_size: int = 16
    gated: bool = False  # trained to separate among the families a detector finds: --gate by default
    gate_detector: str | None = None  # the detector whose gate it was chosen with (None: the default detector)
    gate_threshold: float = GATE_THRESHOLD  # the presence a family needs to pass its gate

    @abstractmethod
    def forward(self, batch: torch.Tensor) -> torch.Tensor: ...

    def gate(self, families: set[str] | None) -> None:
        """Share the mixture out among these sources only (None: all); nsep's mask models support it."""
        if families is not None:
            raise UsageError(f"{self.name}: presence gating needs one of nsep's own separators")

    def valid_length(self, length: int) -> int:
        """The input length the model runs on for a segment of ``length`` samples."""
        return length


def triangle(length: int, power: float = 1.0) -> torch.Tensor:
    """demucs' cross-fade weight: rising to 1 mid-segment, then falling."""
    weight = torch.cat([torch.arange(1, length // 2 + 1), torch.arange(length - length // 2, 0, -1)]).float()
    return (weight / weight.max()) ** power


class _Source:
    """Random access to a streamed signal ``[C, total]``, standardised by ``stats`` (mean, std) if
    given: zeros outside it; old samples can be dropped.

    The blocks are kept as they come (no buffer is grown by concatenation): a read copies only what it
    needs, standardising it on the way, straight into the caller's batch row."""

    def __init__(self, blocks: Iterator[torch.Tensor], total: int, stats: tuple[float, float] | None = None):
        self.blocks, self.total, self.stats = blocks, total, stats
        self.held: deque[tuple[int, torch.Tensor]] = deque()  # (signal time of its first sample, block)
        self.end = 0  # signal time after the last block held

    def device(self) -> torch.device:
        """Where the signal's blocks live (read ahead to the first block if need be)."""
        self._fetch(1)
        return self.held[0][1].device if self.held else torch.device("cpu")

    def _fetch(self, stop: int) -> None:
        while self.end < min(stop, self.total):
            block = next(self.blocks, None)
            if block is None:
                self.total = self.end
                return
            self.held.append((self.end, block.float()))
            self.end += block.shape[-1]

    def read_into(self, row: torch.Tensor, start: int) -> None:
        """Fill ``row`` ``[C, n]`` with samples ``start`` to ``start + n``."""
        stop = start + row.shape[-1]
        self._fetch(stop)
        lo = max(start, self.held[0][0] if self.held else self.end)
        hi = max(lo, min(stop, self.end))
        row[:, : lo - start].zero_()
        row[:, hi - start :].zero_()
        for at, block in self.held:
            a, b = max(lo, at), min(hi, at + block.shape[-1])
            if b > a:
                self._copy(block[:, a - at : b - at], row[:, a - start : b - start])

    def _copy(self, samples: torch.Tensor, into: torch.Tensor) -> None:
        if self.stats is None:
            into.copy_(samples)
        else:
            torch.sub(samples, self.stats[0], out=into).div_(self.stats[1])

    def release(self, before: int) -> None:
        while self.held and self.held[0][0] + self.held[0][1].shape[-1] <= before:
            self.held.popleft()


class _Grid:
    """One pass over the signal delayed by ``lead`` samples; yields finished output in signal time,
    written into ``into`` (``[S, C, total]``) where that is on the model's device.

    ``sums`` and ``weights`` are one preallocated window that starts at virtual time ``origin``: a
    segment's fresh part is written (weighted) into it, its overlap with earlier ones added in place,
    and what :meth:`finished` hands out makes room by moving the pending tail to the front."""

    def __init__(self, total: int, lead: int, length: int, stride: int, weight: torch.Tensor,
                 into: torch.Tensor | None = None):
        self.total, self.lead, self.length, self.weight, self.into = total + lead, lead, length, weight, into
        self.offsets = range(0, self.total, stride)
        self.next = 0  # index into offsets
        self.sums: torch.Tensor | None = None
        self.weights = torch.zeros(0)
        self.origin = 0  # virtual time of sums[..., 0]
        self.filled = 0  # virtual time up to which sums hold output

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

    def _reserve(self, out: torch.Tensor, stop: int) -> None:
        """Room in the window up to virtual time ``stop`` for outputs like ``out`` ``[B, S, C, L]``."""
        size = stop - self.origin
        if self.sums is not None and size <= self.sums.shape[-1]:
            return
        keep = self.filled - self.origin
        sums, weights = out.new_empty(*out.shape[1:-1], size), out.new_empty(size)
        if self.sums is not None:
            sums[..., :keep], weights[:keep] = self.sums[..., :keep], self.weights[:keep]
        self.sums, self.weights, self.weight = sums, weights, self.weight.to(out.device)

    def add(self, segments: list[tuple[int, int]], out: torch.Tensor, trims: list[int]) -> None:
        """Cross-fade a batch of outputs ``[B, S, C, L]`` (each trimmed to its segment) into the sums."""
        self._reserve(out, max(o + n for o, n in segments))
        for (offset, n), trim, piece in zip(segments, trims, out):
            at, seen = offset - self.origin, min(max(self.filled - offset, 0), n)
            piece, weight = piece[..., trim : trim + n], self.weight[:n]
            self.sums[..., at : at + seen] += weight[:seen] * piece[..., :seen]
            self.weights[at : at + seen] += weight[:seen]
            torch.mul(piece[..., seen:], weight[seen:], out=self.sums[..., at + seen : at + n])
            self.weights[at + seen : at + n] = weight[seen:]
            self.filled = max(self.filled, offset + n)

    def finished(self) -> torch.Tensor | None:
        """Output that no later segment touches, lead removed, as ``[S, C, n]``."""
        frontier = self.frontier()
        stop, skip = frontier - self.origin, max(0, self.lead - self.origin)
        if self.sums is None or stop <= 0:
            return None
        out = None
        if skip < stop:
            at = self.origin + skip - self.lead  # signal time
            into = self.into if self.into is not None and self.into.device == self.sums.device else None
            out = torch.div(self.sums[..., skip:stop], self.weights[skip:stop],
                            out=None if into is None else into[..., at : at + stop - skip])
        keep = self.filled - frontier
        self.sums[..., :keep] = self.sums[..., stop : stop + keep].clone()
        self.weights[:keep] = self.weights[stop : stop + keep].clone()
        self.origin = frontier
        return out


def _groups(batch: torch.Tensor, channels: int) -> tuple[torch.Tensor, int | None]:
    """``[B, C, L]`` -> ``[B * G, channels, L]``: the input as it is (G None) when the channel counts
    agree, else each channel on its own (G = C, each repeated to the model's channel count)."""
    have = batch.shape[1]
    if have == channels:
        return batch, None
    return batch.reshape(-1, 1, batch.shape[-1]).expand(-1, channels, -1), have


def _ungroup(out: torch.Tensor, groups: int | None, batch: int) -> torch.Tensor:
    """``[B * G, S, channels, L]`` -> ``[B, S, C, L]`` (the model's channels averaged per input channel)."""
    if groups is None:
        return out
    out = out.mean(dim=2).view(batch, groups, out.shape[1], out.shape[-1])
    return out.transpose(1, 2)


def run(separator: Separator, blocks: Iterator[torch.Tensor], total: int, channels: int, settings: Settings = Settings(),
        stats: tuple[float, float] | None = None, into: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """Separate a signal of ``total`` samples at the model's rate, given as ``[channels, n]`` blocks;
    yield stems ``[S, channels, n]`` in order. ``stats`` (mean, std) standardise the input (see
    :func:`input_stats`) and are undone on the stems. ``into`` (``[S, channels, total]``), when given,
    receives the stems, and what is yielded are its views."""
    rate = separator.sample_rate
    length = int(rate * (settings.segment or separator.segment))
    stride = max(1, int((1 - settings.overlap) * length))
    valid = separator.valid_length(length)
    weight = triangle(length, settings.transition_power)
    source = _Source(blocks, total, stats)
    max_shift = int(0.5 * rate)
    draw = random.Random(settings.seed)
    leads = [max_shift - draw.randint(0, max_shift) for _ in range(settings.shifts)] or [0]
    grids = [_Grid(total, lead, length, stride, weight, into if len(leads) == 1 else None) for lead in leads]
    ready: list[deque[torch.Tensor]] = [deque() for _ in grids]
    inputs = _Batches(separator.device, (settings.batch_size, channels, valid))
    handoff = _Handoff()
    done, rounds = 0, 0
    while True:
        for grid, queue in zip(grids, ready):
            segments = grid.take(settings.batch_size)
            if segments:
                trims = [(valid - n) // 2 for _, n in segments]
                batch = inputs.fill(source, [o - trim - grid.lead for (o, _), trim in zip(segments, trims)])
                grouped, groups = _groups(batch, separator.channels)
                out = _ungroup(separator.forward(grouped), groups, len(segments)).float()
                grid.add(segments, out, trims)
            piece = grid.finished()
            if piece is not None and piece.shape[-1]:
                queue.append(piece)
        source.release(min(g.frontier() - valid - g.lead for g in grids))
        finished = all(g.done for g in grids)
        for out in _average(ready, final=finished):
            if stats is not None:
                out.mul_(stats[1]).add_(stats[0])
            if out.device.type == "cuda" and (into is None or into.device.type == "cpu"):
                handoff.put(out, done, rounds)
            elif into is None:
                yield out.cpu()
            else:  # a no-op where the pass wrote it there
                yield into[..., done : done + out.shape[-1]].copy_(out)
            done += out.shape[-1]
        for at, host in handoff.take(rounds + 1 if finished else rounds):
            yield host if into is None else into[..., at : at + host.shape[-1]].copy_(host)
        if finished:
            return
        rounds += 1


class _Handoff:
    """Stems from a GPU to the host without stalling it: each piece goes on its way at once
    (:class:`~nsep.models.base.Later`) and is handed on a round later, when the GPU is already at
    work on the next batch."""

    def __init__(self) -> None:
        self.waiting: deque[tuple[int, Later, int]] = deque()

    def put(self, piece: torch.Tensor, at: int, round_: int) -> None:
        self.waiting.append((at, Later(piece), round_))

    def take(self, before: int) -> Iterator[tuple[int, torch.Tensor]]:
        """The pieces put before round ``before``, in order, once their copies are done."""
        while self.waiting and self.waiting[0][2] < before:
            at, later, _ = self.waiting.popleft()
            yield at, later.wait()[0]


class _Batches:
    """Model inputs ``[B, C, L]`` read from a source into reused buffers, then sent to the device.

    For a GPU, rows are read into two pinned host buffers in turn and copied without waiting, so
    the CPU fills the next batch while the GPU runs this one; a buffer is refilled only once its
    copy is done. A source already on the model's device is read into a buffer there."""

    def __init__(self, device: torch.device, shape: tuple[int, int, int]):
        self.device, self.shape = device, shape
        self.buffers: list[torch.Tensor] = []
        self.copied: list[torch.cuda.Event | None] = []
        self.turn = 0

    def fill(self, source: _Source, starts: list[int]) -> torch.Tensor:
        """The batch of rows starting at ``starts`` (signal time), on the device."""
        if not self.buffers:
            where = source.device()
            pinned = self.device.type == "cuda" and where.type == "cpu"
            self.buffers = [torch.empty(self.shape, device=where, pin_memory=pinned) for _ in range(2 if pinned else 1)]
            self.copied = [None] * len(self.buffers)
        k, self.turn = self.turn, (self.turn + 1) % len(self.buffers)
        if self.copied[k] is not None:
            self.copied[k].synchronize()
        batch = self.buffers[k][: len(starts)]
        for row, start in zip(batch, starts):
            source.read_into(row, start)
        if batch.device == self.device:
            return batch
        moved = batch.to(self.device, non_blocking=batch.is_pinned())
        if batch.is_pinned():
            self.copied[k] = torch.cuda.Event()
            self.copied[k].record()
        return moved


def _take(queue: deque[torch.Tensor], count: int) -> torch.Tensor:
    """The first ``count`` samples of a queue of ``[..., n]`` pieces (a view when one piece holds them)."""
    parts, have = [], 0
    while have < count:
        piece = queue.popleft()
        need = count - have
        if piece.shape[-1] > need:
            queue.appendleft(piece[..., need:])
            piece = piece[..., :need]
        parts.append(piece)
        have += piece.shape[-1]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


def _average(ready: list[deque[torch.Tensor]], final: bool = False) -> Iterator[torch.Tensor]:
    """The mean over passes of the output all of them have finished (its own tensor, free to change in place)."""
    n = min(sum(p.shape[-1] for p in q) for q in ready)
    if n == 0:
        return
    parts = [_take(queue, n) for queue in ready]
    yield parts[0] if len(parts) == 1 else torch.stack(parts).mean(dim=0)
    if final and any(ready):
        raise RuntimeError("separation passes ended at different lengths")


def input_stats(blocks: Iterator[torch.Tensor]) -> tuple[float, float]:
    """Mean and standard deviation of the channel-averaged signal (demucs' ``ref``), in one pass
    over pieces that stay in cache (float64 copies of a whole song cost 8x the time)."""
    count, total, squares = 0, 0.0, 0.0
    for block in blocks:
        for piece in block.split(STATS_PIECE, dim=-1):
            ref = piece.double().mean(dim=0)
            count += ref.numel()
            total += float(ref.sum())
            squares += float(ref.square_().sum())
    mean = total / max(count, 1)
    variance = (squares - count * mean * mean) / max(count - 1, 1)
    return mean, math.sqrt(max(variance, 0.0)) or 1.0


def separate(separator: Separator, wave: torch.Tensor, settings: Settings = Settings(), normalise: bool | None = None) -> torch.Tensor:
    """A whole in-memory signal ``[C, T]`` at the model's rate -> stems ``[S, C, T]``."""
    normalise = separator.normalise if normalise is None else normalise
    stats = input_stats(iter([wave])) if normalise else None
    stems = torch.empty(len(separator.sources), *wave.shape)
    for _ in run(separator, iter(wave.split(1 << 20, dim=-1)), wave.shape[-1], wave.shape[0], settings, stats, stems):
        pass
    return stems
