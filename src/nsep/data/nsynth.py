"""Read NSynth-format note banks: NSynth's own ``nsynth-{train,valid,test}`` folders or nsep's renders.

A bank is a folder with ``examples.json`` (note_str -> fields) and ``audio/{note_str}.wav``.
Instrument identity across several folders is ``(folder, instrument_str)``: two renders both
have a ``keyboard_acoustic_000``, and they are different instruments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from nsep.audio import resample
from nsep.errors import InputError
from nsep.taxonomy import FAMILIES, SOURCES

NSYNTH_FRAMES = 64_000
_OFFICIAL_SPLIT = re.compile(r"^nsynth-(train|valid|test)$")


@dataclass(frozen=True)
class Example:
    """One note of a bank: every NSynth field, where its wav lies, its split and its bank folder.

    Banks of real recordings may leave ``note``, ``instrument``, ``pitch``, ``velocity`` and the
    qualities unknown (null or absent): those read as ``None`` / empty.
    """

    note: int | None
    note_str: str
    instrument: int | None
    instrument_str: str
    pitch: int | None
    velocity: int | None
    sample_rate: int
    qualities: tuple[int, ...]
    qualities_str: tuple[str, ...]
    instrument_family: int
    instrument_family_str: str
    instrument_source: int
    instrument_source_str: str
    path: Path
    split: str | None
    dataset: Path
    soundfont: str | None = None
    program: int | None = None

    @property
    def instrument_key(self) -> tuple[str, str]:
        """Identity of the instrument across banks: (bank folder, instrument_str)."""
        return str(self.dataset), self.instrument_str


def _folder_split(folder: Path) -> str | None:
    match = _OFFICIAL_SPLIT.match(folder.name)
    return match.group(1) if match else None


def read_examples(folder: str | Path) -> dict[str, dict]:
    """The raw ``examples.json`` of a bank, checked to be a mapping of note_str to fields."""
    path = Path(folder) / "examples.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(str(folder), "not a note bank (no examples.json)") from None
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(str(path), f"cannot read ({err})") from None
    if not isinstance(data, dict):
        raise InputError(str(path), "expected an object mapping note_str to note fields")
    return data


def _optional_int(fields: dict, key: str) -> int | None:
    value = fields.get(key)
    return None if value is None else int(value)


def _example(folder: Path, default_split: str | None, note_str: str, fields: dict) -> Example:
    try:
        source_str = fields["instrument_source_str"]
        source = fields.get("instrument_source")
        return Example(
            note=_optional_int(fields, "note"),
            note_str=note_str,
            instrument=_optional_int(fields, "instrument"),
            instrument_str=fields["instrument_str"],
            pitch=_optional_int(fields, "pitch"),
            velocity=_optional_int(fields, "velocity"),
            sample_rate=int(fields["sample_rate"]),
            qualities=tuple(int(q) for q in fields.get("qualities") or ()),
            qualities_str=tuple(fields.get("qualities_str") or ()),
            instrument_family=int(fields["instrument_family"]),
            instrument_family_str=fields["instrument_family_str"],
            instrument_source=SOURCES.index(source_str) if source is None else int(source),
            instrument_source_str=source_str,
            path=folder / "audio" / f"{note_str}.wav",
            split=fields.get("split", default_split),
            dataset=folder,
            soundfont=fields.get("soundfont"),
            program=fields.get("program"),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(str(folder / "examples.json"), f"note {note_str!r}: bad or missing field {err}") from None


def _as_set(value: str | int | Iterable | None) -> set | None:
    if value is None:
        return None
    if isinstance(value, (str, int)):
        return {value}
    return set(value)


def load_bank(
    folders: str | Path | Sequence[str | Path],
    families: str | Iterable[str] | None = None,
    sources: str | Iterable[str] | None = None,
    pitches: Collection[int] | None = None,
    velocities: Collection[int] | None = None,
    instruments: str | Iterable[str] | None = None,
    split: str | Iterable[str] | None = None,
) -> list[Example]:
    """The notes of one or more banks that pass every given filter, sorted by bank and note_str.

    ``pitches`` and ``velocities`` take any collection (``range(40, 80)`` works); ``instruments``
    takes instrument_str names; ``split`` one name or several.
    """
    roots = [folders] if isinstance(folders, (str, Path)) else list(folders)
    wanted_families, wanted_sources = _as_set(families), _as_set(sources)
    wanted_instruments, wanted_splits = _as_set(instruments), _as_set(split)
    found: list[Example] = []
    for root in roots:
        folder = Path(root)
        default_split = _folder_split(folder)
        for note_str, fields in sorted(read_examples(folder).items()):
            example = _example(folder, default_split, note_str, fields)
            if (
                (wanted_families is None or example.instrument_family_str in wanted_families)
                and (wanted_sources is None or example.instrument_source_str in wanted_sources)
                and (pitches is None or example.pitch in pitches)
                and (velocities is None or example.velocity in velocities)
                and (wanted_instruments is None or example.instrument_str in wanted_instruments)
                and (wanted_splits is None or example.split in wanted_splits)
            ):
                found.append(example)
    return found


def read_note(example: Example, sample_rate: int = 16_000, frames: int = NSYNTH_FRAMES) -> np.ndarray:
    """A note's samples, mono ``[frames]`` float32 at ``sample_rate``, cut or zero-padded to ``frames``."""
    try:
        data, rate = sf.read(str(example.path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise InputError(str(example.path), f"cannot decode audio ({err})") from None
    samples = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
    if rate != sample_rate:
        samples = resample(torch.from_numpy(np.ascontiguousarray(samples))[None], rate, sample_rate)[0].numpy()
    out = np.zeros(frames, dtype=np.float32)
    n = min(frames, samples.shape[0])
    out[:n] = samples[:n]
    return out


def load_note(example: Example, sample_rate: int = 16_000, frames: int = NSYNTH_FRAMES) -> torch.Tensor:
    """:func:`read_note` as a tensor."""
    return torch.from_numpy(read_note(example, sample_rate, frames))


class NoteDataset(Dataset):
    """Notes as ``(waveform [1, frames] float32, family index)``; indices into ``labels`` (default FAMILIES)."""

    def __init__(
        self,
        examples: Sequence[Example],
        labels: Sequence[str] = FAMILIES,
        sample_rate: int = 16_000,
        frames: int = NSYNTH_FRAMES,
    ):
        missing = {e.instrument_family_str for e in examples} - set(labels)
        if missing:
            raise ValueError(f"families {sorted(missing)} are not among the labels {list(labels)}")
        self.examples = list(examples)
        self.labels = list(labels)
        self.sample_rate = sample_rate
        self.frames = frames

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        example = self.examples[index]
        waveform = load_note(example, self.sample_rate, self.frames)[None]
        return waveform, self.labels.index(example.instrument_family_str)
