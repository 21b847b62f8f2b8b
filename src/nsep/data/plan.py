"""What a render makes: its settings, and every instrument of the fonts, labelled and numbered.

An instrument is one (SoundFont, bank, program) preset. Melodic presets come from the General-MIDI
programs of bank 0 (and, with ``variations``, the GS variation banks 1-127, labelled by their
program number); percussion kits from bank 128 become ``drums`` instruments whose notes are the
kit pieces (GM keys 35-81). Keys that sound a sample of a font in ``exclude_shared_with`` (same
name, or same length, loop and rate) are left out, so a test font's recordings never reach
training. Instruments are numbered NNN within their family_source, in the order of the fonts
given and then of bank and program, so a render is reproducible from its command line.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from nsep.data.soundfont import presets, shared_keys
from nsep.errors import UsageError
from nsep.taxonomy import (
    DRUM_BANK, DRUM_CHANNEL, DRUM_KITS, FAMILIES, check_families, classify_program, pitch_range,
)

MELODIC_CHANNEL = 0
NSYNTH_VELOCITIES = (25, 50, 75, 100, 127)


@dataclass(frozen=True)
class RenderConfig:
    """What to render and how; every field has NSynth's default."""

    sample_rate: int = 16_000
    held: float = 3.0  # seconds between note-on and note-off
    release: float = 1.0  # seconds kept after note-off
    velocities: tuple[int, ...] = NSYNTH_VELOCITIES
    pitches: tuple[int, int] = (21, 108)  # inclusive MIDI range, intersected with the family's range
    family_ranges: bool = True  # keep each family inside its plausible pitch range
    families: tuple[str, ...] = FAMILIES
    programs: tuple[int, ...] | None = None  # General-MIDI programs to render; None: all with a family
    variations: bool = False  # also render GS variation banks 1-127
    synthetic_fonts: tuple[str, ...] = ()  # font file names whose every sound is synthesised (FM/OPL)
    exclude_shared_with: tuple[str, ...] = ()  # fonts (e.g. the test font) whose samples must not be rendered
    peak: float = 0.9  # each note is normalised to this peak ...
    peak_jitter_db: float = 0.0  # ... lowered by a seeded random 0..jitter dB per note
    silence: float = 1e-4  # notes whose raw peak is below this are dropped
    oversample: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not 8_000 <= self.sample_rate * self.oversample <= 96_000:
            problems.append("sample rate x oversample must lie in 8,000-96,000 Hz (FluidSynth's range)")
        if self.held <= 0 or self.release < 0:
            problems.append("held time must be positive and release time not negative")
        if not self.velocities or any(not 1 <= v <= 127 for v in self.velocities):
            problems.append("velocities must be 1-127")
        if not 0 <= self.pitches[0] <= self.pitches[1] <= 127:
            problems.append("pitch range must lie in 0-127, low <= high")
        if not 0 < self.peak <= 1 or self.peak_jitter_db < 0:
            problems.append("peak must be in (0, 1] and peak jitter not negative")
        if self.oversample not in (1, 2):
            problems.append("oversample must be 1 or 2")
        try:
            check_families(self.families)
        except ValueError as err:
            problems.append(str(err))
        if problems:
            raise UsageError("; ".join(problems))

    @property
    def frames(self) -> int:
        return round((self.held + self.release) * self.sample_rate)


@dataclass(frozen=True)
class Instrument:
    """One preset of one SoundFont, labelled and numbered."""

    index: int  # NSynth's ``instrument``: unique within the bank
    soundfont: str  # path of the font
    bank: int
    program: int
    name: str
    family: str
    source: str
    number: int  # NNN within family_source
    pitches: tuple[int, ...] = field(repr=False)

    @property
    def instrument_str(self) -> str:
        return f"{self.family}_{self.source}_{self.number:03d}"

    @property
    def channel(self) -> int:
        return DRUM_CHANNEL if self.family == "drums" else MELODIC_CHANNEL

    def note_str(self, pitch: int, velocity: int) -> str:
        return f"{self.instrument_str}-{pitch:03d}-{velocity:03d}"


def _labels(preset_bank: int, program: int, synthetic: bool) -> tuple[str, str] | None:
    if preset_bank == DRUM_BANK:
        if program not in DRUM_KITS:
            return None
        return "drums", "synthetic" if synthetic else DRUM_KITS[program][1]
    found = classify_program(program)
    if found is None:
        return None
    return found.family, "synthetic" if synthetic else found.source


def _pitches(family: str, config: RenderConfig) -> tuple[int, ...]:
    low, high = config.pitches
    wanted = range(low, high + 1)
    if family == "drums" or config.family_ranges:
        allowed = pitch_range(family)
        wanted = range(max(low, allowed.start), min(high + 1, allowed.stop))
    return tuple(wanted)


def plan(fonts: Iterable[str | Path], config: RenderConfig) -> list[Instrument]:
    """Every instrument the render makes, numbered, in a reproducible order."""
    counters: dict[tuple[str, str], int] = defaultdict(int)
    instruments: list[Instrument] = []
    seen: set[str] = set()
    for font in fonts:
        path = str(Path(font))
        if str(Path(path).resolve()) in seen:
            continue
        seen.add(str(Path(path).resolve()))
        synthetic = Path(path).name in config.synthetic_fonts
        shared = shared_keys(path, config.exclude_shared_with) if config.exclude_shared_with else {}
        for preset in presets(path):
            melodic = preset.bank == 0 or (config.variations and 0 < preset.bank < DRUM_BANK)
            if not melodic and preset.bank != DRUM_BANK:
                continue
            if melodic and config.programs is not None and preset.program not in config.programs:
                continue
            labels = _labels(preset.bank, preset.program, synthetic)
            if labels is None or labels[0] not in config.families:
                continue
            taken = shared.get((preset.bank, preset.program), frozenset())
            pitches = tuple(p for p in _pitches(labels[0], config) if p not in taken)
            if not pitches:
                continue
            number = counters[labels]
            counters[labels] += 1
            instruments.append(Instrument(len(instruments), path, preset.bank, preset.program, preset.name,
                                          *labels, number, pitches))
    return instruments
