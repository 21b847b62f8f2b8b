"""Spectrograms of whole files of any length, computed block by block with bounded memory."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nsep import audio
from nsep.errors import InputError
from nsep.features import FeatureSpec, Spectrogram, band_frequencies

BLOCK_SECONDS = 30.0


@dataclass
class SpectrogramResult:
    """dB values ``[bands, columns]``; a column is ``frames_per_column`` STFT frames averaged."""

    db: np.ndarray
    spec: FeatureSpec
    frames: int
    frames_per_column: int
    duration: float
    frequencies: np.ndarray

    @property
    def seconds_per_column(self) -> float:
        return self.frames_per_column * self.spec.hop / self.spec.sample_rate


def frame_count(samples: int, n_fft: int, hop: int) -> int:
    """Frames of a centred STFT over ``samples`` samples (``n_fft // 2`` zeros padded at each end)."""
    return 1 + (samples + 2 * (n_fft // 2) - n_fft) // hop


def _frames(front: Spectrogram, stream, n_fft: int, hop: int):
    """Power frames ``[bands, n]`` of a centred STFT over a stream of ``[1, t]`` blocks."""
    buffer = torch.zeros(n_fft // 2)
    tail = torch.zeros(n_fft // 2)
    blocks = iter(stream)
    finished = False
    while not finished:
        block = next(blocks, None)
        if block is None:
            finished = True
            block = tail[None]
        buffer = torch.cat([buffer, block[0]])
        if buffer.numel() < n_fft:
            continue
        n = 1 + (buffer.numel() - n_fft) // hop
        yield front.power(buffer[: (n - 1) * hop + n_fft])
        buffer = buffer[n * hop :]


@contextlib.contextmanager
def _npy_columns(path: Path, shape: tuple[int, int]) -> Iterator[Callable[[np.ndarray], None]]:
    """A writer of ``[rows, n]`` blocks into a float32 ``.npy`` of ``shape``, stored column-major.

    Column-major order lets blocks of columns be appended in turn, so memory holds one block, never
    the whole array (a memory map would keep every page it wrote resident).
    """
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f4", "fortran_order": True, "shape": shape})
        yield lambda block: handle.write(np.ascontiguousarray(block.T, dtype="<f4").tobytes())


def compute(
    path: str,
    spec: FeatureSpec,
    max_columns: int | None = None,
    npy_out: Path | None = None,
) -> SpectrogramResult:
    """Spectrogram of a file (mixed to mono, resampled to ``spec.sample_rate``).

    With ``max_columns``, frames are averaged in groups so at most that many columns remain (for
    pictures); with ``npy_out``, every frame is also written there in dB, a block at a time.
    """
    head = audio.info(path)
    samples = math.ceil(head.frames * spec.sample_rate / head.sample_rate)
    frames = frame_count(samples, spec.n_fft, spec.hop)
    group = max(1, math.ceil(frames / max_columns)) if max_columns else 1
    columns = math.ceil(frames / group)
    front = Spectrogram(spec, center=False)
    bands = front.bank.shape[1] if front.bank is not None else spec.n_fft // 2 + 1
    pooled = np.zeros((bands, columns), dtype=np.float64)
    counts = np.zeros(columns, dtype=np.int64)
    done = 0
    stream = audio.stream(path, BLOCK_SECONDS, spec.sample_rate, channels=1)
    npy = _npy_columns(npy_out, (bands, frames)) if npy_out is not None else contextlib.nullcontext()
    with npy as write:
        for power in _frames(front, stream, spec.n_fft, spec.hop):
            power = power[:, : frames - done].double().numpy()
            n = power.shape[1]
            index = (done + np.arange(n)) // group
            np.add.at(pooled.T, index, power.T)
            np.add.at(counts, index, 1)
            if write is not None:
                write(10 * np.log10(np.maximum(power, 1e-10)))
            done += n
    if done < frames:
        raise InputError(path, f"audio ends early: {done} of the {frames} frames its header promises")
    db = 10 * np.log10(np.maximum(pooled / np.maximum(counts, 1), 1e-10))
    if spec.top_db is not None:
        db = np.maximum(db, db.max() - spec.top_db)
    return SpectrogramResult(
        db=db.astype(np.float32),
        spec=spec,
        frames=frames,
        frames_per_column=group,
        duration=head.duration,
        frequencies=band_frequencies(spec).numpy(),
    )
