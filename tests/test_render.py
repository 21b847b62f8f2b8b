"""Rendering real notes with FluidSynth and the TimGM6mb font, and reading them back.

Needs libfluidsynth and /usr/share/sounds/sf2/TimGM6mb.sf2 (Debian: fluidsynth timgm6mb-soundfont);
without them these tests fail, they never skip.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from nsep.data import splits
from nsep.data.nsynth import load_bank
from nsep.data.plan import RenderConfig, plan
from nsep.data.render import decimate2, render
from nsep.data.sfwriter import Zone, soundfont_bytes
from nsep.data.soundfont import library, presets, sample_signatures, shared_keys
from nsep.errors import InputError, UsageError
from nsep.taxonomy import FAMILIES, SOURCES, classify_program

FONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
# two instruments each of keyboard, guitar and bass, plus the drum kits; a few pitches, two velocities
CONFIG = RenderConfig(families=("keyboard", "guitar", "bass", "drums"), programs=(0, 1, 24, 25, 33, 34),
                      pitches=(38, 41), velocities=(64, 127))
NOTE_STR = re.compile(r"^([a-z_]+)_(acoustic|electronic|synthetic)_(\d{3})-(\d{3})-(\d{3})$")


def _wavs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "audio").iterdir())}


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert FONT.is_file(), f"{FONT} missing: install the Debian package timgm6mb-soundfont"
    library()  # raises if libfluidsynth is missing
    out = tmp_path_factory.mktemp("bank")
    summary = render([FONT], out, CONFIG, workers=1, valid_fraction=0.5)
    assert summary.rendered > 0 and summary.rendered + summary.silent == summary.planned
    return out


def test_presets_are_read_from_the_font():
    found = presets(FONT)
    assert {p.program for p in found if p.bank == 0} == set(range(128))
    assert any(p.bank == 128 and p.program == 0 for p in found)


def test_not_a_soundfont(tmp_path: Path):
    bad = tmp_path / "x.sf2"
    bad.write_bytes(b"RIFF\0\0\0\0WAVE")
    with pytest.raises(InputError, match="not a SoundFont"):
        presets(bad)


def test_plan_numbers_instruments_within_family_source():
    instruments = plan([FONT], CONFIG)
    strs = [i.instrument_str for i in instruments]
    assert len(set(strs)) == len(strs)
    assert "keyboard_acoustic_000" in strs and "keyboard_acoustic_001" in strs
    assert "bass_electronic_000" in strs and "bass_electronic_001" in strs
    drums = [i for i in instruments if i.family == "drums"]
    assert drums and all(i.bank == 128 for i in drums) and drums[0].program == 0
    assert all(i.pitches == (38, 39, 40, 41) for i in instruments if i.family in ("keyboard", "bass", "drums"))
    assert all(i.pitches == (40, 41) for i in instruments if i.family == "guitar")  # guitar starts at E2


def test_bad_config_is_refused():
    with pytest.raises(UsageError):
        RenderConfig(velocities=(0,))
    with pytest.raises(UsageError):
        RenderConfig(families=("piano",))


def test_bank_reads_back_with_every_field(bank: Path):
    examples = load_bank(bank)
    raw = json.loads((bank / "examples.json").read_text())
    assert len(examples) == len(raw) == len(list((bank / "audio").iterdir()))
    for e in examples:
        family, source, number, pitch, velocity = NOTE_STR.match(e.note_str).groups()
        assert (family, source) == (e.instrument_family_str, e.instrument_source_str)
        assert e.instrument_str == f"{family}_{source}_{number}"
        assert (int(pitch), int(velocity)) == (e.pitch, e.velocity)
        assert FAMILIES[e.instrument_family] == family and SOURCES[e.instrument_source] == source
        assert e.sample_rate == 16_000 and e.qualities == (0,) * 10 and e.soundfont == FONT.name
        if family != "drums":
            assert (classify_program(e.program).family, classify_program(e.program).source) == (family, source)
        assert e.split in ("train", "valid")
        info = sf.info(str(e.path))
        assert (info.frames, info.samplerate, info.channels, info.subtype) == (64_000, 16_000, 1, "PCM_16")
    data, _ = sf.read(str(examples[0].path))
    assert 0.85 < np.abs(data).max() < 0.95  # normalised to a 0.9 peak
    assert np.abs(data[:48_000]).mean() > 1e-3  # sounding while held
    assert {r["note"] for r in raw.values()} == set(range(len(raw)))


def test_same_config_same_bytes_with_any_worker_count(bank: Path, tmp_path: Path):
    render([FONT], tmp_path, CONFIG, workers=2, valid_fraction=0.5)
    assert _wavs(tmp_path) == _wavs(bank)
    assert (tmp_path / "examples.json").read_bytes() == (bank / "examples.json").read_bytes()


def test_resume_renders_only_what_is_missing(bank: Path, tmp_path: Path):
    copy = tmp_path / "copy"
    shutil.copytree(bank, copy)
    names = sorted((copy / "audio").iterdir())
    for path in names[:3]:
        path.unlink()
    names[3].write_bytes(names[3].read_bytes()[:1000])  # an incomplete file from an old crash
    summary = render([FONT], copy, CONFIG, workers=1, valid_fraction=0.5)
    assert summary.rendered == 4 and summary.skipped == len(names) - 4
    assert _wavs(copy) == _wavs(bank)
    assert (copy / "examples.json").read_bytes() == (bank / "examples.json").read_bytes()


def test_instruments_never_straddle_splits(bank: Path):
    examples = load_bank(bank)
    by_instrument: dict[str, set[str]] = defaultdict(set)
    by_family: dict[str, set[str]] = defaultdict(set)
    for e in examples:
        by_instrument[e.instrument_str].add(e.split)
        by_family[e.instrument_family_str].add(e.split)
    assert all(len(s) == 1 for s in by_instrument.values())
    assert all(s == {"train", "valid"} for s in by_family.values())  # every family here has >= 2 instruments


def test_split_groups_one_program_across_fonts():
    records = {}
    for font in ("a.sf2", "b.sf2"):
        for program, number in ((0, 0), (1, 1), (2, 2), (3, 3)):
            name = f"keyboard_acoustic_{number + (4 if font == 'b.sf2' else 0):03d}"
            records[f"{name}-060-100"] = {"instrument_family_str": "keyboard", "instrument_str": name,
                                          "program": program, "soundfont": font}
    splits.assign(records, 0.5, seed=3)
    by_program: dict[int, set[str]] = defaultdict(set)
    for r in records.values():
        by_program[r["program"]].add(r["split"])
    assert all(len(s) == 1 for s in by_program.values())
    assert {s for v in by_program.values() for s in v} == {"train", "valid"}
    splits.assign(records, 0.5, seed=3, split="test")
    assert {r["split"] for r in records.values()} == {"test"}


def test_decimate2_passes_the_band_and_stops_aliases():
    t = np.arange(32_000) / 32_000
    low = decimate2(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    high = decimate2(np.sin(2 * np.pi * 11_000 * t).astype(np.float32))
    assert abs(np.abs(low[500:-500]).max() - 1) < 1e-3
    assert np.abs(high[500:-500]).max() < 1e-3


def test_cli_render_info_split(cli, tmp_path: Path):
    out = tmp_path / "cli"
    code, stdout, _ = cli("data", "render", str(FONT), "-o", str(out), "--programs", "0,1", "--families", "keyboard",
                          "--pitches", "60-61", "--velocities", "100", "-j", "1", "--split", "test", "--json")
    assert code == 0 and json.loads(stdout)[0]["rendered"] == 4
    code, stdout, _ = cli("data", "info", str(out), "--json")
    rows = json.loads(stdout)
    assert code == 0
    assert {(r["by"], r["name"]): (r["instruments"], r["notes"]) for r in rows}[("split", "test")] == (2, 4)
    code, stdout, _ = cli("data", "split", str(out), "--valid-fraction", "0.5", "--seed", "1", "--json")
    assert code == 0 and {r["name"] for r in json.loads(stdout) if r["by"] == "split"} == {"train", "valid"}
    code, _, stderr = cli("data", "render", str(tmp_path / "none.sf2"), "-o", str(out))
    assert code == 1 and "none.sf2" in stderr


FLUID = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


def test_a_font_shares_every_sounding_key_with_itself():
    shared = shared_keys(FONT, [FONT])
    assert shared[(0, 0)] >= frozenset(range(21, 109))  # the piano sounds a sample on every key
    sounding = sample_signatures(FONT)
    left = plan([FONT], RenderConfig(exclude_shared_with=(str(FONT),)))
    assert len(left) < 5  # only presets with keys that play no sample at all (silent notes) remain
    assert all(not set(i.pitches) & set(sounding[(i.bank, i.program)]) for i in left)


def test_shared_samples_are_left_out_key_by_key():
    assert FLUID.is_file(), f"{FLUID} missing: install the Debian package fluid-soundfont-gm"
    shared = shared_keys(FLUID, [FONT])
    # FluidR3's clavinet plays a sample named like TimGM6mb's ("Clavinet C4") on keys 44-48 only
    assert shared[(0, 7)] == frozenset(range(44, 49))
    assert (0, 0) not in shared and (0, 40) not in shared  # its piano and violin share nothing
    config = RenderConfig(programs=(0, 7), families=("keyboard",))
    full = {i.program: i.pitches for i in plan([FLUID], config)}
    kept = {i.program: i.pitches for i in plan([FLUID], replace(config, exclude_shared_with=(str(FONT),)))}
    assert kept[0] == full[0]
    assert set(kept[7]) == set(full[7]) - set(range(44, 49))


def test_split_of_several_banks_keeps_a_program_on_one_side(bank: Path, tmp_path: Path, cli):
    copies = []
    for name in ("a", "b"):
        copy = tmp_path / name
        copy.mkdir()
        shutil.copy(bank / "examples.json", copy / "examples.json")
        copies.append(copy)
    code, _, err = cli("data", "split", *map(str, copies), "--valid-fraction", "0.5", "--seed", "1", "--json")
    assert code == 0, err
    sides: dict[tuple, set[str]] = defaultdict(set)
    for copy in copies:
        for record in json.loads((copy / "examples.json").read_text()).values():
            sides[(record["instrument_family_str"], record["program"])].add(record["split"])
    assert all(len(s) == 1 for s in sides.values())
    assert {s for v in sides.values() for s in v} == {"train", "valid"}


@dataclass
class _Sample:
    name: str
    audio: np.ndarray
    loop: tuple[int, int] | None
    rate: int


def _font(path: Path, samples: list[_Sample]) -> Path:
    """One preset per sample (program i plays sample i on keys 40-80)."""
    instruments = [(s.name, [Zone(keys=(40, 80), sample=i, root_key=60)]) for i, s in enumerate(samples)]
    path.write_bytes(soundfont_bytes(path.stem, samples, instruments, {(0, i): [i] for i in range(len(samples))}))
    return path


def test_a_copied_recording_is_found_renamed_relooped_and_at_another_rate(tmp_path: Path):
    recording = (np.random.default_rng(0).standard_normal(4000) * 3000).astype(np.int16)
    other = (np.random.default_rng(1).standard_normal(4000) * 3000).astype(np.int16)
    silence = np.zeros(4000, np.int16)
    test_font = _font(tmp_path / "test.sf2", [_Sample("Oboe C5", recording, (100, 3000), 44100),
                                               _Sample("Hush", silence, None, 22050)])
    # the same points under another name, loop and rate; a different recording; a silent sample
    training_font = _font(tmp_path / "train.sf2", [_Sample("Qboe", recording, (10, 200), 44348),
                                                   _Sample("Flute A4", other, (100, 2900), 44100),
                                                   _Sample("Quiet", silence, (5, 50), 32000)])
    shared = shared_keys(training_font, [test_font])
    assert shared == {(0, 0): frozenset(range(40, 81))}
    with pytest.raises(UsageError, match="every chosen note sounds a sample of"):  # not "no preset matches"
        render([training_font], tmp_path / "bank", RenderConfig(programs=(0,), pitches=(50, 60),
                                                                exclude_shared_with=(str(test_font),)))
