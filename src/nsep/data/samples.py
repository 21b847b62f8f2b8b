"""Folders of single-note recordings turned into a SoundFont that FluidSynth renders.

Sample libraries often come as one folder an instrument with one recording a note, named by the
note: ``A4.mp3``, ``Cs4.wav`` or ``C#4.flac`` (``s`` or ``#`` for sharp, ``b`` for flat, octave 4
holding middle C, MIDI key 60), or by MIDI key number (``60.wav``). Each folder becomes one
instrument on a General-MIDI program (which also gives its family): every key plays the recording
nearest in pitch, transposed. Recordings are mixed to mono, their leading silence trimmed, cut to
``max_seconds`` with a short fade, peak-normalised and stored at ``sample_rate``; they play once
(no loop), with a short release.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as AF

from nsep.audio import atomic_output
from nsep.data.sfwriter import RELEASE, Zone, soundfont_bytes, timecents
from nsep.errors import InputError, OutputExistsError, UsageError
from nsep.taxonomy import GM_PROGRAMS

_NOTE = re.compile(r"(?P<letter>[A-Ga-g])(?P<accidental>#|s|b)?(?P<octave>-?\d)")
_SEMITONES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff"}
_ONSET_DB = -40.0  # leading points quieter than this, relative to the peak, are trimmed
_PRE_ONSET = 0.005  # seconds kept before the onset
_FADE = 0.1  # seconds of fade-out where a recording is cut
_RELEASE_SECONDS = 0.15
_PEAK = 0.9 * 32767


@dataclass
class NoteSample:
    """One recording, ready for the SoundFont: int16 mono audio at ``rate``, played from ``key``."""

    name: str
    audio: np.ndarray
    rate: int
    key: int
    loop: tuple[int, int] | None = None


def note_key(stem: str) -> int | None:
    """The MIDI key a file name stands for (``A4`` -> 69, ``Cs4``/``C#4`` -> 61, ``Bb1`` -> 34, ``60``), or None."""
    if stem.isdigit():
        key = int(stem)
        return key if 0 <= key <= 127 else None
    match = _NOTE.fullmatch(stem)
    if match is None:
        return None
    shift = {"#": 1, "s": 1, "b": -1}.get(match["accidental"] or "", 0)
    key = 12 * (int(match["octave"]) + 1) + _SEMITONES[match["letter"].lower()] + shift
    return key if 0 <= key <= 127 else None


def program_number(text: str) -> int:
    """A General-MIDI program from its number (0-127) or its name (``violin``, ``french horn``)."""
    if text.isdigit() and 0 <= int(text) <= 127:
        return int(text)
    wanted = re.sub(r"[^a-z0-9]", "", text.lower())
    for number, (name, _, _) in enumerate(GM_PROGRAMS):
        if re.sub(r"[^a-z0-9]", "", name.lower()) == wanted:
            return number
    raise UsageError(f"{text!r} is not a General-MIDI program number (0-127) or name")


def _prepared(path: Path, sample_rate: int, max_seconds: float) -> np.ndarray:
    """A recording as float mono at ``sample_rate``: onset-trimmed, cut with a fade, peak 0.9."""
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise InputError(str(path), f"cannot decode ({err})") from None
    mono = audio.mean(axis=1)
    peak = float(np.abs(mono).max()) if mono.size else 0.0
    if not np.isfinite(peak) or peak == 0:
        raise InputError(str(path), "silent or not finite")
    if rate != sample_rate:
        mono = AF.resample(torch.from_numpy(mono), rate, sample_rate).numpy()
        peak = float(np.abs(mono).max())
    onset = int(np.argmax(np.abs(mono) >= peak * 10 ** (_ONSET_DB / 20)))
    mono = mono[max(0, onset - int(_PRE_ONSET * sample_rate)) : onset + int(max_seconds * sample_rate)]
    fade = min(int(_FADE * sample_rate), len(mono))
    mono[len(mono) - fade :] *= np.linspace(1, 0, fade, dtype=np.float32)
    return mono / max(float(np.abs(mono).max()), 1e-9)


def read_folder(folder: Path, sample_rate: int, max_seconds: float) -> list[NoteSample]:
    """The note recordings of one folder, lowest key first; files not named by a note are skipped."""
    if not folder.is_dir():
        raise InputError(str(folder), "not a folder")
    found: dict[int, NoteSample] = {}
    for path in sorted(folder.iterdir()):
        key = note_key(path.stem)
        if path.suffix.lower() not in _AUDIO_SUFFIXES or key is None or key in found:
            continue
        audio = np.round(_prepared(path, sample_rate, max_seconds) * _PEAK).astype(np.int16)
        found[key] = NoteSample(f"{folder.name[:14]}-{path.stem}", audio, sample_rate, key)
    if not found:
        raise InputError(str(folder), "no recordings named by note (A4.wav, Cs4.mp3, 60.flac, ...)")
    return [found[key] for key in sorted(found)]


def _zones(notes: list[NoteSample], first_sample: int) -> list[Zone]:
    """Key ranges split half way between recorded keys, so each key plays the nearest recording."""
    zones = []
    for i, note in enumerate(notes):
        low = 0 if i == 0 else (notes[i - 1].key + note.key) // 2 + 1
        high = 127 if i == len(notes) - 1 else (note.key + notes[i + 1].key) // 2
        zones.append(Zone((low, high), first_sample + i, note.key, envelope=[(RELEASE, timecents(_RELEASE_SECONDS))]))
    return zones


def convert(instruments: list[tuple[int, Path]], out: str | Path, name: str = "note recordings",
            sample_rate: int = 22_050, max_seconds: float = 4.5, overwrite: bool = False) -> int:
    """Write one SoundFont of (program, folder) instruments; return the number of recordings.

    A program given twice gets banks 0, 1, ... (rendered with ``nsep data render --variations``).
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(str(out))
    samples: list[NoteSample] = []
    zoned: list[tuple[str, list[Zone]]] = []
    presets: dict[tuple[int, int], list[int]] = {}
    for program, folder in instruments:
        notes = read_folder(Path(folder), sample_rate, max_seconds)
        zoned.append((Path(folder).name, _zones(notes, len(samples))))
        samples.extend(notes)
        bank = sum(1 for bank, other in presets if other == program)
        presets[(bank, program)] = [len(zoned) - 1]
    with atomic_output(out, overwrite=overwrite) as tmp:
        tmp.write_bytes(soundfont_bytes(name, samples, zoned, presets))
    return len(samples)
