"""The reader accepts folders laid out exactly like NSynth's published jsonwav archives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from nsep.data.nsynth import NoteDataset, load_bank, load_note
from nsep.errors import InputError
from nsep.taxonomy import FAMILIES, QUALITIES, SOURCES

# (family, source, instrument number, pitch, velocity, qualities set)
NOTES = [
    ("guitar", "electronic", 22, 76, 25, {"bright"}),
    ("guitar", "electronic", 22, 77, 127, set()),
    ("keyboard", "acoustic", 4, 60, 100, {"percussive", "reverb"}),
    ("bass", "synthetic", 9, 33, 50, {"dark"}),
    ("vocal", "acoustic", 1, 64, 75, set()),
]


def make_nsynth(root: Path, split: str, notes: list[tuple] = NOTES) -> Path:
    """``nsynth-{split}/examples.json`` + ``audio/{note_str}.wav``, fields as NSynth documents them."""
    folder = root / f"nsynth-{split}"
    (folder / "audio").mkdir(parents=True)
    examples = {}
    for number, (family, source, inst, pitch, velocity, qualities) in enumerate(notes):
        note_str = f"{family}_{source}_{inst:03d}-{pitch:03d}-{velocity:03d}"
        examples[note_str] = {
            "note": 1000 + number,
            "note_str": note_str,
            "instrument": 300 + inst,
            "instrument_str": f"{family}_{source}_{inst:03d}",
            "pitch": pitch,
            "velocity": velocity,
            "sample_rate": 16000,
            "qualities": [int(q in qualities) for q in QUALITIES],
            "qualities_str": sorted(qualities),
            "instrument_family": FAMILIES.index(family),
            "instrument_family_str": family,
            "instrument_source": SOURCES.index(source),
            "instrument_source_str": source,
        }
        t = np.arange(64_000) / 16_000
        tone = 0.5 * np.sin(2 * np.pi * 440 * 2 ** ((pitch - 69) / 12) * t) * np.exp(-t)
        sf.write(folder / "audio" / f"{note_str}.wav", tone, 16_000, subtype="PCM_16")
    (folder / "examples.json").write_text(json.dumps(examples))
    return folder


def test_official_layout_reads_every_field(tmp_path: Path):
    folder = make_nsynth(tmp_path, "valid")
    examples = load_bank(folder)
    assert [e.note_str for e in examples] == sorted(e.note_str for e in examples) and len(examples) == len(NOTES)
    e = next(e for e in examples if e.note_str == "keyboard_acoustic_004-060-100")
    assert (e.note, e.instrument, e.instrument_str, e.pitch, e.velocity, e.sample_rate) == (
        1002, 304, "keyboard_acoustic_004", 60, 100, 16000)
    assert (e.instrument_family, e.instrument_family_str, e.instrument_source, e.instrument_source_str) == (
        4, "keyboard", 0, "acoustic")
    assert e.qualities_str == ("percussive", "reverb") and sum(e.qualities) == 2
    assert e.split == "valid" and e.dataset == folder and e.path.is_file()
    assert e.soundfont is None and e.program is None
    assert e.instrument_key == (str(folder), "keyboard_acoustic_004")


def test_filters(tmp_path: Path):
    folder = make_nsynth(tmp_path, "test")
    assert {e.instrument_family_str for e in load_bank(folder, families=["guitar", "bass"])} == {"guitar", "bass"}
    assert [e.velocity for e in load_bank(folder, families="guitar", velocities={127})] == [127]
    assert {e.pitch for e in load_bank(folder, pitches=range(60, 70))} == {60, 64}
    assert {e.instrument_source_str for e in load_bank(folder, sources="synthetic")} == {"synthetic"}
    assert len(load_bank(folder, instruments=["guitar_electronic_022"])) == 2
    assert len(load_bank(folder, split="test")) == len(NOTES) and load_bank(folder, split="train") == []


def test_instrument_identity_spans_folders(tmp_path: Path):
    a = make_nsynth(tmp_path / "a", "train")
    b = make_nsynth(tmp_path / "b", "train")
    examples = load_bank([a, b], instruments="guitar_electronic_022")
    assert len(examples) == 4 and len({e.instrument_key for e in examples}) == 2


def test_dataset_returns_waveform_and_family(tmp_path: Path):
    examples = load_bank(make_nsynth(tmp_path, "valid"))
    data = NoteDataset(examples)
    wave, label = data[0]
    assert wave.shape == (1, 64_000) and wave.dtype == torch.float32
    assert FAMILIES[label] == examples[0].instrument_family_str
    wave, label = NoteDataset(examples, labels=["bass", "guitar", "keyboard", "vocal"])[0]
    assert label == ["bass", "guitar", "keyboard", "vocal"].index(examples[0].instrument_family_str)
    with pytest.raises(ValueError, match="not among the labels"):
        NoteDataset(examples, labels=["bass"])
    assert load_note(examples[0], sample_rate=8_000, frames=32_000).shape == (32_000,)


def test_bad_banks_fail_naming_the_file(tmp_path: Path):
    with pytest.raises(InputError, match="no examples.json"):
        load_bank(tmp_path)
    folder = make_nsynth(tmp_path, "train")
    data = json.loads((folder / "examples.json").read_text())
    del next(iter(data.values()))["sample_rate"]
    (folder / "examples.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="sample_rate"):
        load_bank(folder)
    (folder / "examples.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="examples.json"):
        load_bank(folder)
