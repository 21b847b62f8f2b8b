"""Instrument families and sources (NSynth's, plus drums) and the General-MIDI program table.

Families 0-10 and sources 0-2 keep NSynth's names and indices, so NSynth's own ``examples.json``
and nsep's rendered banks share one label space; ``drums`` is added as family 11.

``GM_PROGRAMS`` maps every General-MIDI program (0-127) to ``(name, family, source)``; family
``None`` means the program is left out of training data because no NSynth family describes it
honestly. Decisions beyond the obvious ones:

- Harpsichord and clavinet are keyboards (NSynth files them there); the clavinet is electronic
  (electro-mechanical with pickups), the harpsichord acoustic.
- Chromatic percussion 8-15 is ``mallet``, the dulcimer included (it is struck with hammers).
- Accordions (21, 23) and the harmonica (22) are free-reed instruments: ``reed``, not ``organ``.
  The reed organ (20) stays an organ: it is played and voiced like one.
- The orchestral harp (46) is ``string``: NSynth's string family is the orchestra's string
  section, and a harp sits there; timpani (47) and the orchestra hit (55) are left out.
- Synth strings (50-51), synth voice (54) and synth brass (62-63) keep their family with source
  ``synthetic``; synth basses (38-39) are ``bass``/``synthetic``.
- Synth pads (88-95) are left out: NSynth has no pad family, and labelling slow-attack pads as
  ``synth_lead`` would teach a classifier that any sustained synthesiser is a lead.
- Ethnic 104-111: sitar, banjo, shamisen and koto are plucked strings (``guitar``), the kalimba
  is ``mallet`` (a tuned idiophone), bagpipe and shanai are ``reed``, the fiddle is ``string``.
- Synth effects (96-103), percussive (112-119) and sound effects (120-127) are left out.
- The percussion kits of bank 128 (channel 10) are ``drums``; see ``DRUM_KITS``.

Sources follow NSynth: ``acoustic`` for instruments that sound without electricity,
``electronic`` for electric ones (electric pianos, guitars, basses and organs), ``synthetic``
for synthesiser programs. A SoundFont that synthesises every sound (an FM/OPL font) labels all of
its instruments ``synthetic`` (see ``nsep.data.plan``).
"""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES: tuple[str, ...] = (
    "bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal", "drums",
)
NSYNTH_FAMILIES: tuple[str, ...] = FAMILIES[:11]
SOURCES: tuple[str, ...] = ("acoustic", "electronic", "synthetic")
QUALITIES: tuple[str, ...] = (
    "bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic", "nonlinear_env", "percussive",
    "reverb", "tempo-synced",
)

DRUM_BANK = 128
DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0
DRUM_KEYS = range(35, 82)  # General MIDI percussion key map: acoustic bass drum (35) to open triangle (81)

# Plausible MIDI pitch range per family, the default range notes are rendered in, so a font's
# programs are not asked for notes no player of the instrument would play.
PITCH_RANGES: dict[str, tuple[int, int]] = {
    "bass": (28, 67),  # E1 (4-string bass, double bass) to G4
    "brass": (34, 84),  # tuba and horn lows (Bb1) to trumpet highs (C6)
    "flute": (60, 96),  # flute C4 to C7; piccolo and whistles reach higher, but rarely
    "guitar": (40, 88),  # E2 open string to E6 (24th fret)
    "keyboard": (21, 108),  # the 88-key piano
    "mallet": (48, 108),  # marimba lows (C3) to glockenspiel and celesta highs (C8)
    "organ": (24, 96),  # pedal C1 to top of the manuals C7
    "reed": (34, 94),  # bassoon Bb1 to clarinet/soprano sax highs
    "string": (28, 100),  # contrabass E1 to violin E7
    "synth_lead": (36, 96),
    "vocal": (40, 84),  # choir: bass E2 to soprano C6
    "drums": (DRUM_KEYS.start, DRUM_KEYS.stop - 1),
}

# Percussion kits in bank 128 (GS/GM2 numbering) that are rendered as ``drums`` instruments.
# The SFX kit (56) is left out: it holds sound effects, not drums.
DRUM_KITS: dict[int, tuple[str, str]] = {
    0: ("Standard", "acoustic"),
    8: ("Room", "acoustic"),
    16: ("Power", "acoustic"),
    24: ("Electronic", "electronic"),
    25: ("TR-808", "electronic"),
    32: ("Jazz", "acoustic"),
    40: ("Brush", "acoustic"),
    48: ("Orchestra", "acoustic"),
}

_A, _E, _S = "acoustic", "electronic", "synthetic"

GM_PROGRAMS: tuple[tuple[str, str | None, str | None], ...] = (
    # 0-7 piano
    ("Acoustic Grand Piano", "keyboard", _A), ("Bright Acoustic Piano", "keyboard", _A),
    ("Electric Grand Piano", "keyboard", _E), ("Honky-tonk Piano", "keyboard", _A),
    ("Electric Piano 1", "keyboard", _E), ("Electric Piano 2", "keyboard", _E),
    ("Harpsichord", "keyboard", _A), ("Clavinet", "keyboard", _E),
    # 8-15 chromatic percussion
    ("Celesta", "mallet", _A), ("Glockenspiel", "mallet", _A), ("Music Box", "mallet", _A),
    ("Vibraphone", "mallet", _A), ("Marimba", "mallet", _A), ("Xylophone", "mallet", _A),
    ("Tubular Bells", "mallet", _A), ("Dulcimer", "mallet", _A),
    # 16-23 organ
    ("Drawbar Organ", "organ", _E), ("Percussive Organ", "organ", _E), ("Rock Organ", "organ", _E),
    ("Church Organ", "organ", _A), ("Reed Organ", "organ", _A), ("Accordion", "reed", _A),
    ("Harmonica", "reed", _A), ("Tango Accordion", "reed", _A),
    # 24-31 guitar
    ("Acoustic Guitar (nylon)", "guitar", _A), ("Acoustic Guitar (steel)", "guitar", _A),
    ("Electric Guitar (jazz)", "guitar", _E), ("Electric Guitar (clean)", "guitar", _E),
    ("Electric Guitar (muted)", "guitar", _E), ("Overdriven Guitar", "guitar", _E),
    ("Distortion Guitar", "guitar", _E), ("Guitar Harmonics", "guitar", _E),
    # 32-39 bass
    ("Acoustic Bass", "bass", _A), ("Electric Bass (finger)", "bass", _E), ("Electric Bass (pick)", "bass", _E),
    ("Fretless Bass", "bass", _E), ("Slap Bass 1", "bass", _E), ("Slap Bass 2", "bass", _E),
    ("Synth Bass 1", "bass", _S), ("Synth Bass 2", "bass", _S),
    # 40-47 strings
    ("Violin", "string", _A), ("Viola", "string", _A), ("Cello", "string", _A), ("Contrabass", "string", _A),
    ("Tremolo Strings", "string", _A), ("Pizzicato Strings", "string", _A), ("Orchestral Harp", "string", _A),
    ("Timpani", None, None),
    # 48-55 ensemble
    ("String Ensemble 1", "string", _A), ("String Ensemble 2", "string", _A), ("Synth Strings 1", "string", _S),
    ("Synth Strings 2", "string", _S), ("Choir Aahs", "vocal", _A), ("Voice Oohs", "vocal", _A),
    ("Synth Voice", "vocal", _S), ("Orchestra Hit", None, None),
    # 56-63 brass
    ("Trumpet", "brass", _A), ("Trombone", "brass", _A), ("Tuba", "brass", _A), ("Muted Trumpet", "brass", _A),
    ("French Horn", "brass", _A), ("Brass Section", "brass", _A), ("Synth Brass 1", "brass", _S),
    ("Synth Brass 2", "brass", _S),
    # 64-71 reed
    ("Soprano Sax", "reed", _A), ("Alto Sax", "reed", _A), ("Tenor Sax", "reed", _A), ("Baritone Sax", "reed", _A),
    ("Oboe", "reed", _A), ("English Horn", "reed", _A), ("Bassoon", "reed", _A), ("Clarinet", "reed", _A),
    # 72-79 pipe
    ("Piccolo", "flute", _A), ("Flute", "flute", _A), ("Recorder", "flute", _A), ("Pan Flute", "flute", _A),
    ("Blown Bottle", "flute", _A), ("Shakuhachi", "flute", _A), ("Whistle", "flute", _A), ("Ocarina", "flute", _A),
    # 80-87 synth lead
    ("Lead 1 (square)", "synth_lead", _S), ("Lead 2 (sawtooth)", "synth_lead", _S),
    ("Lead 3 (calliope)", "synth_lead", _S), ("Lead 4 (chiff)", "synth_lead", _S),
    ("Lead 5 (charang)", "synth_lead", _S), ("Lead 6 (voice)", "synth_lead", _S),
    ("Lead 7 (fifths)", "synth_lead", _S), ("Lead 8 (bass + lead)", "synth_lead", _S),
    # 88-95 synth pad (no NSynth family)
    ("Pad 1 (new age)", None, None), ("Pad 2 (warm)", None, None), ("Pad 3 (polysynth)", None, None),
    ("Pad 4 (choir)", None, None), ("Pad 5 (bowed)", None, None), ("Pad 6 (metallic)", None, None),
    ("Pad 7 (halo)", None, None), ("Pad 8 (sweep)", None, None),
    # 96-103 synth effects
    ("FX 1 (rain)", None, None), ("FX 2 (soundtrack)", None, None), ("FX 3 (crystal)", None, None),
    ("FX 4 (atmosphere)", None, None), ("FX 5 (brightness)", None, None), ("FX 6 (goblins)", None, None),
    ("FX 7 (echoes)", None, None), ("FX 8 (sci-fi)", None, None),
    # 104-111 ethnic
    ("Sitar", "guitar", _A), ("Banjo", "guitar", _A), ("Shamisen", "guitar", _A), ("Koto", "guitar", _A),
    ("Kalimba", "mallet", _A), ("Bagpipe", "reed", _A), ("Fiddle", "string", _A), ("Shanai", "reed", _A),
    # 112-119 percussive
    ("Tinkle Bell", None, None), ("Agogo", None, None), ("Steel Drums", None, None), ("Woodblock", None, None),
    ("Taiko Drum", None, None), ("Melodic Tom", None, None), ("Synth Drum", None, None),
    ("Reverse Cymbal", None, None),
    # 120-127 sound effects
    ("Guitar Fret Noise", None, None), ("Breath Noise", None, None), ("Seashore", None, None),
    ("Bird Tweet", None, None), ("Telephone Ring", None, None), ("Helicopter", None, None),
    ("Applause", None, None), ("Gunshot", None, None),
)


@dataclass(frozen=True)
class ProgramClass:
    """Where one General-MIDI program lands: its name, family and source."""

    program: int
    name: str
    family: str
    source: str


def classify_program(program: int) -> ProgramClass | None:
    """The family and source of a General-MIDI program (0-127), or ``None`` if it is left out."""
    if not 0 <= program < 128:
        raise ValueError(f"General-MIDI programs are 0-127, got {program}")
    name, family, source = GM_PROGRAMS[program]
    if family is None or source is None:
        return None
    return ProgramClass(program, name, family, source)


def programs_of(families: list[str] | tuple[str, ...]) -> list[int]:
    """The General-MIDI programs whose family is one of ``families``, in program order."""
    wanted = set(check_families(families))
    return [p for p, (_, family, _) in enumerate(GM_PROGRAMS) if family in wanted]


def check_families(families: list[str] | tuple[str, ...]) -> list[str]:
    """Validate family names; raise ValueError naming the unknown one."""
    for family in families:
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
    return list(families)


def family_index(family: str) -> int:
    return FAMILIES.index(family)


def source_index(source: str) -> int:
    return SOURCES.index(source)


def pitch_range(family: str) -> range:
    """The family's plausible MIDI pitches, as a range."""
    low, high = PITCH_RANGES[family]
    return range(low, high + 1)
