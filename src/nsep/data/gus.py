"""Gravis UltraSound patch sets (FreePats) converted into a SoundFont that FluidSynth renders.

A patch set is a TiMidity configuration (``bank N`` / ``drumset N`` sections of ``PROGRAM
file.pat`` lines) and its ``.pat`` files. Every patch becomes one instrument; every melodic bank
program a preset of that bank, and each drum set a kit (bank 128) whose keys play their patches.
Samples keep their rate, loops and key ranges; bidirectional loops are unrolled (SoundFonts loop
forwards only) and GUS envelopes are mapped onto SoundFont volume envelopes.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nsep.audio import atomic_output
from nsep.data.sfwriter import (
    ATTACK, DECAY, DRUM_BANK, RELEASE, SUSTAIN, Zone, soundfont_bytes, timecents,
)
from nsep.errors import InputError, OutputExistsError

_SAMPLE_HEADER = struct.Struct("<7sBIIIHIIIhB6s6s3s3sBHH36s")
_MAGIC = (b"GF1PATCH110\0", b"GF1PATCH100\0")
_FIRST_SAMPLE = 129 + 63 + 47  # file header, instrument header, layer header
_DB_PER_OFFSET = 0.375  # a GUS envelope offset step (its volume register is logarithmic)

_MODE_16BIT, _MODE_UNSIGNED, _MODE_LOOP, _MODE_PINGPONG = 0x01, 0x02, 0x04, 0x08
_MODE_REVERSE, _MODESUSTAIN, _MODE_ENVELOPE = 0x10, 0x20, 0x40


@dataclass
class GusSample:
    """One sample of a patch: 16-bit audio, its loop, rate, key range and envelope."""

    name: str
    audio: np.ndarray  # int16
    loop: tuple[int, int] | None  # start, end in points
    rate: int
    low_hz: float
    high_hz: float
    root_hz: float
    envelope: tuple[bytes, bytes] | None  # six rates, six offsets
    sustain: bool


def read_patch(path: str | Path) -> list[GusSample]:
    """The samples of a ``.pat`` file (its first instrument and layer)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(str(path), f"cannot read patch ({err.strerror})") from None
    if data[:12] not in _MAGIC or len(data) < _FIRST_SAMPLE:
        raise InputError(str(path), "not a GUS patch (no GF1PATCH header)")
    count = data[_FIRST_SAMPLE - 47 + 6]
    samples, offset = [], _FIRST_SAMPLE
    for _ in range(count):
        if offset + _SAMPLE_HEADER.size > len(data):
            raise InputError(str(path), "truncated GUS patch")
        (name, _, size, loop_start, loop_end, rate, low, high, root, _, _, rates, offsets, _, _, modes, _, _,
         _) = _SAMPLE_HEADER.unpack_from(data, offset)
        offset += _SAMPLE_HEADER.size
        raw = data[offset : offset + size]
        offset += size
        audio, width = _pcm(raw, modes)
        if modes & _MODE_REVERSE:
            audio = audio[::-1].copy()
        loop = None
        if modes & _MODE_LOOP and loop_end > loop_start:
            loop = (loop_start // width, min(loop_end // width, len(audio)))
            if modes & _MODE_PINGPONG:
                audio, loop = _unroll(audio, loop)
        samples.append(GusSample(
            name=name.split(b"\0")[0].decode("latin-1"), audio=audio, loop=loop, rate=rate,
            low_hz=low / 1000, high_hz=high / 1000, root_hz=max(root, 1) / 1000,
            envelope=(rates, offsets) if modes & _MODE_ENVELOPE else None, sustain=bool(modes & _MODESUSTAIN)))
    return samples


def _pcm(raw: bytes, modes: int) -> tuple[np.ndarray, int]:
    """int16 audio from a patch's 8- or 16-bit, signed or unsigned data, and the bytes per point."""
    if modes & _MODE_16BIT:
        audio = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<u2" if modes & _MODE_UNSIGNED else "<i2")
        audio = (audio.astype(np.int32) - 32768).astype(np.int16) if modes & _MODE_UNSIGNED else audio.astype(np.int16)
        return audio, 2
    audio = np.frombuffer(raw, dtype=np.uint8 if modes & _MODE_UNSIGNED else np.int8).astype(np.int16)
    return ((audio - 128) if modes & _MODE_UNSIGNED else audio) * 256, 1


def _unroll(audio: np.ndarray, loop: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """A forward loop that plays a bidirectional one: the loop, then the loop reversed.

    The loop's first points follow it again, so the sample goes on past its loop end (FluidSynth
    needs points there to interpolate).
    """
    start, end = loop
    if end - start < 3:
        return audio, loop
    backwards = audio[start + 1 : end - 1][::-1]
    return np.concatenate([audio[:end], backwards, audio[start : start + 8]]), (start, end + len(backwards))


def _key(hz: float) -> float:
    return 69 + 12 * math.log2(max(hz, 1e-3) / 440)


def _ramp_seconds(rate: int, steps: float) -> float:
    """Seconds a GUS envelope stage takes to move ``steps`` offset units at ``rate``."""
    increment, scale = rate & 0x3F, rate >> 6
    per_second = max(increment, 1) / 16 * 44_100 / 8**scale
    return abs(steps) / per_second


def _envelope_generators(sample: GusSample) -> list[tuple[int, int]]:
    """SoundFont volume-envelope generators approximating the sample's GUS envelope."""
    if sample.envelope is None:
        return [(RELEASE, timecents(0.05))]
    rates, offsets = sample.envelope
    attack = _ramp_seconds(rates[0], offsets[0])
    release_rate = rates[3]
    # SoundFont decay and release times are for a full 100 dB ramp
    full_ramp = _ramp_seconds(release_rate, 100 / _DB_PER_OFFSET)
    if sample.sustain and sample.loop is not None:
        level = (255 - offsets[2]) * _DB_PER_OFFSET
        decay = _ramp_seconds(rates[1], offsets[0] - offsets[1]) + _ramp_seconds(rates[2], offsets[1] - offsets[2])
        return [(ATTACK, timecents(attack)), (DECAY, timecents(max(decay, 0.001) * 100 / max(level, 1))),
                (SUSTAIN, int(min(level, 100) * 10)), (RELEASE, timecents(full_ramp))]
    return [(ATTACK, timecents(attack)), (DECAY, timecents(full_ramp)), (SUSTAIN, 1000),
            (RELEASE, timecents(full_ramp))]


def _melodic_zones(samples: list[GusSample], first_sample: int) -> list[Zone]:
    """Zones of a melodic patch: each key goes to the sample whose range holds it (else the nearest)."""
    owners = []
    for key in range(128):
        hz = 440 * 2 ** ((key - 69) / 12)
        inside = [i for i, s in enumerate(samples) if s.low_hz <= hz <= s.high_hz]
        owners.append(inside[0] if inside else min(range(len(samples)), key=lambda i: min(
            abs(_key(samples[i].low_hz) - key), abs(_key(samples[i].high_hz) - key))))
    zones, start = [], 0
    for key in range(1, 129):
        if key == 128 or owners[key] != owners[start]:
            zones.append(_zone(samples[owners[start]], first_sample + owners[start], (start, key - 1)))
            start = key
    return zones


def _zone(sample: GusSample, index: int, keys: tuple[int, int], root: float | None = None) -> Zone:
    root = _key(sample.root_hz) if root is None else root
    return Zone(keys, index, int(round(root)), int(round((round(root) - root) * 100)), sample.loop is not None,
                 _envelope_generators(sample))


def read_config(path: str | Path) -> dict[tuple[int, int], Path]:
    """A TiMidity configuration as {(bank, program): patch file}; drum set N's keys as (128 + N, key)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="latin-1").splitlines()
    except OSError as err:
        raise InputError(str(path), f"cannot read patch configuration ({err.strerror})") from None
    entries: dict[tuple[int, int], Path] = {}
    section: tuple[str, int] | None = None
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        header = re.fullmatch(r"(bank|drumset)\s+(\d+)", line)
        if header:
            section = (header.group(1), int(header.group(2)))
            continue
        entry = re.match(r"(\d+)\s+(\S+)", line)
        if entry and section is not None:
            name = entry.group(2) if entry.group(2).endswith(".pat") else entry.group(2) + ".pat"
            bank = section[1] if section[0] == "bank" else DRUM_BANK + section[1]
            entries[(bank, int(entry.group(1)))] = path.parent / name
    if not entries:
        raise InputError(str(path), "no patches listed (expected 'bank N' / 'drumset N' sections)")
    return entries


def convert(config: str | Path, out: str | Path, name: str = "GUS patches", overwrite: bool = False) -> int:
    """Write the patch set that ``config`` lists as one SoundFont; return the number of presets."""
    if Path(out).exists() and not overwrite:
        raise OutputExistsError(str(out))
    entries = read_config(config)
    samples: list[GusSample] = []
    instruments: list[tuple[str, list[Zone]]] = []
    presets: dict[tuple[int, int], list[int]] = {}  # (bank, program) -> instruments
    for (bank, program), patch in sorted(entries.items()):
        found = read_patch(patch)
        if not found:
            continue
        first = len(samples)
        samples.extend(found)
        if bank >= DRUM_BANK:  # a kit piece: the patch sounds at its own pitch on its key only
            zones = [_zone(found[0], first, (program, program), root=program)]
            preset = (DRUM_BANK, bank - DRUM_BANK)
        else:
            zones = _melodic_zones(found, first)
            preset = (bank, program)
        presets.setdefault(preset, []).append(len(instruments))
        instruments.append((patch.stem[:20], zones))
    with atomic_output(Path(out), overwrite=overwrite) as tmp:
        tmp.write_bytes(soundfont_bytes(name, samples, instruments, presets))
    return len(presets)
