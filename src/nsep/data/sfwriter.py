"""Write SoundFont 2 files: 16-bit samples, instruments of key-range zones, and bank/program presets.

The converters (``gus.py`` for GUS patch sets, ``samples.py`` for folders of note recordings) build
their samples and zones and hand them to :func:`soundfont_bytes`; the records and generator numbers
are those ``soundfont.py`` reads, so one definition of the format serves both directions.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from nsep.data.soundfont import (
    BAG_RECORD, GEN_INSTRUMENT, GEN_KEY_RANGE, GEN_RECORD, GEN_SAMPLE_ID, INST_RECORD, PHDR_RECORD, SHDR_RECORD,
)

DRUM_BANK = 128
GUARD_POINTS = 46  # zero points after each sample, as the SoundFont format asks
# Generators written besides those soundfont.py reads
ATTACK, DECAY, SUSTAIN, RELEASE = 34, 36, 37, 38
FINE_TUNE, SAMPLE_MODES, ROOT_KEY = 52, 54, 58


class Sample(Protocol):
    """What the writer needs of a sample."""

    name: str
    audio: np.ndarray  # int16
    loop: tuple[int, int] | None  # start, end in points
    rate: int


@dataclass
class Zone:
    """One key range of an instrument: the sample it plays, at which root key, looped or not."""

    keys: tuple[int, int]
    sample: int  # index into the font's samples
    root_key: int
    fine_tune: int = 0  # cents
    looped: bool = False
    envelope: list[tuple[int, int]] = field(default_factory=list)  # (generator, amount)


def timecents(seconds: float) -> int:
    """A duration as SoundFont timecents (clipped to the range FluidSynth accepts)."""
    return int(np.clip(round(1200 * math.log2(max(seconds, 0.001))), -12000, 8000))


def soundfont_bytes(name: str, samples: list[Sample], instruments: list[tuple[str, list[Zone]]],
                    presets: dict[tuple[int, int], list[int]]) -> bytes:
    """A whole .sf2 file; ``presets`` maps (bank, program) to the indices of its instruments."""
    smpl, shdr, position = [], [], 0
    for sample in samples:
        smpl.append(sample.audio.astype("<i2").tobytes() + bytes(2 * GUARD_POINTS))
        start, end = position, position + len(sample.audio)
        loop = sample.loop or (0, min(len(sample.audio), 8))
        shdr.append(SHDR_RECORD.pack(sample.name.encode("latin-1", "replace")[:20], start, end, start + loop[0],
                                     start + loop[1], sample.rate, 60, 0, 0, 1))
        position = end + GUARD_POINTS
    shdr.append(SHDR_RECORD.pack(b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0))

    inst, ibag, igen = [], [], []
    for inst_name, zones in instruments:
        inst.append(INST_RECORD.pack(inst_name.encode("latin-1", "replace")[:20], len(ibag)))
        for zone in zones:
            ibag.append(BAG_RECORD.pack(len(igen), 0))
            gens = [(GEN_KEY_RANGE, zone.keys[0] | zone.keys[1] << 8), *zone.envelope, (ROOT_KEY, zone.root_key),
                    (FINE_TUNE, zone.fine_tune), (SAMPLE_MODES, 1 if zone.looped else 0), (GEN_SAMPLE_ID, zone.sample)]
            igen.extend(GEN_RECORD.pack(op, amount & 0xFFFF) for op, amount in gens)  # signed amounts as 16 bits
    inst.append(INST_RECORD.pack(b"EOI", len(ibag)))
    ibag.append(BAG_RECORD.pack(len(igen), 0))
    igen.append(GEN_RECORD.pack(0, 0))

    phdr, pbag, pgen = [], [], []
    for (bank, program), members in sorted(presets.items()):
        label = f"{'kit' if bank == DRUM_BANK else 'program'} {program}"
        phdr.append(PHDR_RECORD.pack(label.encode(), program, bank, len(pbag), 0, 0, 0))
        for member in members:
            pbag.append(BAG_RECORD.pack(len(pgen), 0))
            pgen.append(GEN_RECORD.pack(GEN_INSTRUMENT, member))
    phdr.append(PHDR_RECORD.pack(b"EOP", 0, 0, len(pbag), 0, 0, 0))
    pbag.append(BAG_RECORD.pack(len(pgen), 0))
    pgen.append(GEN_RECORD.pack(0, 0))
    terminal_mod = bytes(10)

    def chunk(tag: bytes, body: bytes) -> bytes:
        body += b"\0" * (len(body) % 2)  # sub-chunks have even sizes (FluidSynth refuses odd INFO strings)
        return tag + struct.pack("<I", len(body)) + body

    def listed(tag: bytes, *chunks: bytes) -> bytes:
        return chunk(b"LIST", tag + b"".join(chunks))

    info = listed(b"INFO", chunk(b"ifil", struct.pack("<HH", 2, 1)), chunk(b"isng", b"EMU8000\0"),
                  chunk(b"INAM", name.encode("latin-1", "replace") + b"\0"))
    sdta = listed(b"sdta", chunk(b"smpl", b"".join(smpl)))
    pdta = listed(b"pdta", chunk(b"phdr", b"".join(phdr)), chunk(b"pbag", b"".join(pbag)),
                  chunk(b"pmod", terminal_mod), chunk(b"pgen", b"".join(pgen)), chunk(b"inst", b"".join(inst)),
                  chunk(b"ibag", b"".join(ibag)), chunk(b"imod", terminal_mod), chunk(b"igen", b"".join(igen)),
                  chunk(b"shdr", b"".join(shdr)))
    return chunk(b"RIFF", b"sfbk" + info + sdta + pdta)
