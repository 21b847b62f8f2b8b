"""Mixtures made on the fly from a note bank: a seeded torch Dataset of (mix, stems, labels, activity).

Two modes:

- ``seed``: the seed project's protocol. k notes of k distinct families, each a whole note placed at
  t=0, summed at unit gain.
- ``music``: k families each play one instrument of theirs through a clip: a melodic line of notes
  from one shared key and scale (drums ignore the key), with onsets, rests, durations cut short
  with a raised-cosine release fade, a random gain per family over ``gain_db``, and a span in which
  the family plays, so families may enter late and leave early.

Item ``i`` depends only on the seed and ``i`` (not on the worker or the order of access). Stems are
``[n_families, T]`` in the order of ``families`` (zeros where absent) and sum exactly to the mix;
a mix that would clip is scaled down together with its stems. ``presence`` marks the families
whose stem is not silent; ``activity`` marks, per frame of ``hop`` samples, where a placed note
of the family sounds above ``activity_db`` (dBFS).
"""

from __future__ import annotations

import math
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from nsep.data.nsynth import Example, read_note
from nsep.taxonomy import FAMILIES

MODES = ("seed", "music")
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "major_pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
}
SILENCE = 1e-4  # a stem whose peak is below this counts as absent


@dataclass(frozen=True)
class MixtureConfig:
    """How mixtures are made; ``count`` items, reproducible from ``seed``."""

    mode: str = "seed"
    count: int = 10_000
    seed: int = 0
    k: tuple[int, int] = (1, 4)  # inclusive range of families per mixture
    sample_rate: int = 16_000
    clip_samples: int = 64_000
    families: tuple[str, ...] = FAMILIES  # label order; notes of other families are ignored
    hop: int = 512  # samples per activity frame
    gain_db: tuple[float, float] = (-12.0, 0.0)  # music: gain of each family
    note_seconds: tuple[float, float] = (0.15, 2.0)  # music: note durations, log-uniform
    rest_probability: float = 0.2  # music: chance of a rest before a note
    release: float = 0.1  # music: seconds of fade after a note is cut
    whole_clip_probability: float = 0.5  # music: chance a family plays through the whole clip
    activity_db: float = -60.0
    cache: bool = False  # keep decoded notes in memory (per process)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mixture mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not 1 <= self.k[0] <= self.k[1]:
            raise ValueError(f"k must be a range 1 <= low <= high, got {self.k}")
        if self.count < 0 or self.clip_samples < 1 or self.hop < 1:
            raise ValueError("count, clip length and hop must be positive")

    @property
    def frames(self) -> int:
        return math.ceil(self.clip_samples / self.hop)


@dataclass
class Mixture:
    """One item: ``mix [1, T]``, ``stems [L, T]``, ``presence [L]``, ``activity [L, frames]``, and ``k``,
    the number of families present."""

    mix: torch.Tensor
    stems: torch.Tensor
    presence: torch.Tensor
    activity: torch.Tensor
    k: int


class NoteStore:
    """Notes decoded once into one int16 array, cut or padded to ``frames``.

    Worker processes forked after it is made share its pages, so mixtures cost arithmetic rather
    than file reads (about 10x faster in ``music`` mode); it needs notes x frames x 2 bytes of memory.
    """

    def __init__(self, examples: Sequence[Example], sample_rate: int, frames: int, threads: int = 16):
        self.sample_rate, self.frames = sample_rate, frames
        self.rows = {str(e.path): i for i, e in enumerate(examples)}
        self.audio = np.zeros((len(examples), frames), dtype=np.int16)
        with ThreadPoolExecutor(threads) as pool:
            for row, note in enumerate(pool.map(lambda e: read_note(e, sample_rate, frames), examples)):
                self.audio[row] = np.clip(np.round(note * 32767), -32768, 32767)

    def get(self, example: Example) -> np.ndarray:
        return self.audio[self.rows[str(example.path)]].astype(np.float32) / 32767


def _by_pitch(notes: list[Example]) -> dict[int | None, list[Example]]:
    """One instrument's notes by pitch, pitches ascending (unknown pitches, of recordings, last)."""
    found: dict[int | None, list[Example]] = defaultdict(list)
    for note in notes:
        found[note.pitch].append(note)
    return dict(sorted(found.items(), key=lambda item: (item[0] is None, item[0] or 0)))


class MixtureDataset(Dataset):
    """Seeded mixtures of the notes in ``examples`` (see the module's description)."""

    def __init__(self, examples: Sequence[Example], config: MixtureConfig = MixtureConfig(), store: NoteStore | None = None):
        if store is not None and (store.sample_rate, store.frames) != (config.sample_rate, config.clip_samples):
            raise ValueError("the note store's rate and length differ from the mixtures'")
        self.config, self.store = config, store
        self.families = list(config.families)
        # family -> instrument key -> notes; instrument identity is (bank folder, instrument_str)
        index: dict[str, dict[tuple[str, str], list[Example]]] = defaultdict(lambda: defaultdict(list))
        for example in examples:
            if example.instrument_family_str in self.families:
                index[example.instrument_family_str][example.instrument_key].append(example)
        self.available = [f for f in self.families if f in index]
        if not self.available:
            raise ValueError(f"no notes of the families {self.families}")
        if config.k[0] > len(self.available):
            raise ValueError(f"mixtures of at least {config.k[0]} families asked for, but the notes cover only "
                             f"{len(self.available)} ({', '.join(self.available)})")
        self.instruments = {f: [_by_pitch(index[f][key]) for key in sorted(index[f])] for f in self.available}
        self.notes = {f: [e for key in sorted(index[f]) for e in index[f][key]] for f in self.available}
        self._cache: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self.config.count

    def _load(self, example: Example) -> np.ndarray:
        if self.store is not None:
            return self.store.get(example)
        key = str(example.path)
        if key in self._cache:
            return self._cache[key]
        samples = read_note(example, self.config.sample_rate, self.config.clip_samples)
        if self.config.cache:
            self._cache[key] = samples
        return samples

    def __getitem__(self, index: int) -> Mixture:
        if not 0 <= index < len(self):
            raise IndexError(index)
        config = self.config
        rng = np.random.default_rng([config.seed, index])
        k = int(rng.integers(config.k[0], min(config.k[1], len(self.available)) + 1))
        chosen = [self.available[i] for i in sorted(rng.choice(len(self.available), k, replace=False))]
        # the chosen families' stems, in label order; numpy, because torch's threads only slow
        # down operations this small
        rows = np.zeros((k, config.clip_samples), dtype=np.float32)
        spans: list[list[tuple[int, int]]] = []
        scale = (int(rng.integers(12)), list(SCALES.values())[int(rng.integers(len(SCALES)))])
        for family, row in zip(chosen, rows):
            if config.mode == "seed":
                row += self._load(self.notes[family][int(rng.integers(len(self.notes[family])))])
                spans.append([(0, config.clip_samples)])
            else:
                spans.append(self._play(rng, family, row, scale))
        peak = float(np.abs(rows.sum(0)).max())
        if peak > 1.0:
            rows *= 0.99 / peak
        return self._item(rows, [self.families.index(f) for f in chosen], spans)

    def _play(self, rng: np.random.Generator, family: str, stem: np.ndarray, scale: tuple[int, tuple[int, ...]]) -> list[tuple[int, int]]:
        """Write one family's line into ``stem``; return the (start, end) samples of its notes."""
        config = self.config
        rate, total = config.sample_rate, config.clip_samples
        by_pitch = self.instruments[family][int(rng.integers(len(self.instruments[family])))]
        root, steps = scale
        in_key = [p for p in by_pitch if p is not None and (family == "drums" or (p - root) % 12 in steps)]
        pitches = in_key or list(by_pitch)
        if rng.random() < config.whole_clip_probability:
            start, stop = 0, total
        else:
            length = int(rng.uniform(0.25, 1.0) * total)
            start = int(rng.integers(0, total - length + 1))
            stop = start + length
        gain = 10 ** (rng.uniform(*config.gain_db) / 20)
        fade = max(1, int(config.release * rate))
        low, high = np.log(config.note_seconds[0]), np.log(config.note_seconds[1])
        position, step = start, int(rng.integers(len(pitches)))
        spans = []
        while position < stop:
            if spans and rng.random() < config.rest_probability:
                position += int(np.exp(rng.uniform(low, high)) * rate / 2)
                continue
            held = int(np.exp(rng.uniform(low, high)) * rate)
            step = int(np.clip(step + rng.integers(-2, 3), 0, len(pitches) - 1))
            candidates = by_pitch[pitches[step]]
            audio = self._load(candidates[int(rng.integers(len(candidates)))])
            end = min(position + held + fade, stop, total)
            length = end - position
            if length <= 0:
                break
            envelope = np.ones(length, dtype=np.float32)
            tail = min(fade, length)
            envelope[length - tail :] = 0.5 + 0.5 * np.cos(np.linspace(0, math.pi, tail))
            stem[position:end] += gain * audio[:length] * envelope
            spans.append((position, end))
            position += held
        return spans

    def _item(self, rows: np.ndarray, labels: list[int], spans: list[list[tuple[int, int]]]) -> Mixture:
        """Place the chosen rows among all labels; derive presence and frame activity."""
        config = self.config
        frames, hop = config.frames, config.hop
        magnitude = np.pad(np.abs(rows), ((0, 0), (0, frames * hop - config.clip_samples)))
        loud = magnitude.reshape(len(rows), frames, hop).max(-1) >= 10 ** (config.activity_db / 20)
        placed = np.zeros_like(loud)
        for row, row_spans in enumerate(spans):
            for start, end in row_spans:
                placed[row, start // hop : math.ceil(end / hop)] = True
        stems = np.zeros((len(self.families), config.clip_samples), dtype=np.float32)
        presence = np.zeros(len(self.families), dtype=np.float32)
        activity = np.zeros((len(self.families), frames), dtype=np.float32)
        stems[labels] = rows
        presence[labels] = magnitude.max(-1) >= SILENCE
        activity[labels] = placed & loud
        mix = stems.sum(0, keepdims=True)
        return Mixture(torch.from_numpy(mix), torch.from_numpy(stems), torch.from_numpy(presence),
                       torch.from_numpy(activity), int(presence.sum()))


def dataset(
    examples: Sequence[Example],
    mode: str = "seed",
    count: int = 10_000,
    seed: int = 0,
    k: tuple[int, int] = (1, 4),
    sample_rate: int = 16_000,
    clip_samples: int = 64_000,
    store: NoteStore | None = None,
    **options,
) -> MixtureDataset:
    """A :class:`MixtureDataset`; ``options`` are further :class:`MixtureConfig` fields."""
    config = MixtureConfig(mode=mode, count=count, seed=seed, k=tuple(k), sample_rate=sample_rate,
                           clip_samples=clip_samples, **options)
    return MixtureDataset(examples, config, store)


def collate(items: list[Mixture]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch for detection: ``(mix [B, T], presence [B, L], activity [B, L, frames], k [B])``."""
    return (
        torch.cat([m.mix for m in items]),
        torch.stack([m.presence for m in items]),
        torch.stack([m.activity for m in items]),
        torch.tensor([m.k for m in items]),
    )


def collate_stems(items: list[Mixture]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch for separation: ``(mix [B, 1, T], stems [B, L, T], presence [B, L])``."""
    return (
        torch.stack([m.mix for m in items]),
        torch.stack([m.stems for m in items]),
        torch.stack([m.presence for m in items]),
    )
