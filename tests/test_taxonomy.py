"""The family/source label space and the General-MIDI program table."""

import pytest

from nsep import taxonomy
from nsep.taxonomy import FAMILIES, GM_PROGRAMS, SOURCES, classify_program, pitch_range, programs_of


def test_families_keep_nsynth_indices_and_add_drums():
    assert FAMILIES[:11] == ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string",
                             "synth_lead", "vocal")
    assert FAMILIES[11] == "drums"
    assert SOURCES == ("acoustic", "electronic", "synthetic")
    assert len(taxonomy.QUALITIES) == 10


def test_every_program_is_classified_or_left_out():
    assert len(GM_PROGRAMS) == 128
    for program, (name, family, source) in enumerate(GM_PROGRAMS):
        assert name
        assert (family is None) == (source is None), program
        if family is not None:
            assert family in FAMILIES[:11] and source in SOURCES, program


@pytest.mark.parametrize(
    ("program", "family", "source"),
    [
        (0, "keyboard", "acoustic"), (4, "keyboard", "electronic"), (6, "keyboard", "acoustic"),
        (7, "keyboard", "electronic"), (8, "mallet", "acoustic"), (15, "mallet", "acoustic"),
        (16, "organ", "electronic"), (19, "organ", "acoustic"), (21, "reed", "acoustic"), (22, "reed", "acoustic"),
        (24, "guitar", "acoustic"), (27, "guitar", "electronic"), (32, "bass", "acoustic"),
        (33, "bass", "electronic"), (38, "bass", "synthetic"), (40, "string", "acoustic"),
        (46, "string", "acoustic"), (50, "string", "synthetic"), (52, "vocal", "acoustic"),
        (54, "vocal", "synthetic"), (56, "brass", "acoustic"), (62, "brass", "synthetic"), (65, "reed", "acoustic"),
        (73, "flute", "acoustic"), (81, "synth_lead", "synthetic"), (104, "guitar", "acoustic"),
        (108, "mallet", "acoustic"), (109, "reed", "acoustic"), (110, "string", "acoustic"),
    ],
)
def test_program_labels(program, family, source):
    found = classify_program(program)
    assert found is not None and (found.family, found.source) == (family, source)


@pytest.mark.parametrize("program", [47, 55, *range(88, 104), *range(112, 128)])
def test_programs_left_out(program):
    assert classify_program(program) is None


def test_bad_program_and_family_are_refused():
    with pytest.raises(ValueError):
        classify_program(128)
    with pytest.raises(ValueError, match="unknown family"):
        programs_of(["piano"])


def test_programs_of_and_pitch_ranges():
    assert programs_of(["bass"]) == list(range(32, 40))
    assert programs_of(["drums"]) == []
    for family in FAMILIES:
        low, high = taxonomy.PITCH_RANGES[family]
        assert 0 <= low < high <= 127
        assert pitch_range(family) == range(low, high + 1)
    assert pitch_range("drums") == taxonomy.DRUM_KEYS
    assert set(taxonomy.DRUM_KITS) >= {0}
