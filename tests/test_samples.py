"""Folders of note recordings built into SoundFonts, then rendered by the real FluidSynth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from nsep.data.plan import RenderConfig, plan
from nsep.data.samples import convert, note_key, program_number
from nsep.data.soundfont import Synth, presets
from nsep.errors import InputError, OutputExistsError, UsageError

RATE = 44_100


def _f0(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), 8 * len(x)))
    return float(np.argmax(spectrum) * rate / (8 * len(x)))


def _recording(path: Path, key: int, seconds: float = 2.0, lead: float = 0.05) -> Path:
    """A decaying two-partial tone at ``key``, after ``lead`` seconds of silence, in stereo."""
    t = np.arange(int(seconds * RATE)) / RATE
    hz = 440 * 2 ** ((key - 69) / 12)
    tone = (np.sin(2 * np.pi * hz * t) + 0.3 * np.sin(4 * np.pi * hz * t)) * np.exp(-t)
    audio = np.concatenate([np.zeros(int(lead * RATE)), 0.4 * tone])
    soundfile.write(path, np.stack([audio, 0.5 * audio], axis=1), RATE)
    return path


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    violin, flute = tmp_path / "violin", tmp_path / "flute"
    violin.mkdir(), flute.mkdir()
    _recording(violin / "A3.wav", 57)
    _recording(violin / "Cs4.flac", 61)
    _recording(violin / "72.wav", 72, seconds=6.0)
    (violin / "notes.txt").write_text("not a recording")
    _recording(flute / "C#5.wav", 73)
    return violin, flute


def test_note_names_and_programs():
    assert [note_key(s) for s in ("A4", "Cs4", "C#4", "Db4", "Bb1", "C-1", "60", "G9", "H4", "take2")] == [
        69, 61, 61, 61, 34, 0, 60, 127, None, None]
    assert program_number("40") == program_number("violin") == program_number("Violin") == 40
    assert program_number("french horn") == program_number("French-Horn") == 60
    with pytest.raises(UsageError, match="kazoo"):
        program_number("kazoo")


def test_folders_render_in_tune_from_the_nearest_recording(folders: tuple[Path, Path], tmp_path: Path):
    violin, flute = folders
    out = tmp_path / "rec.sf2"
    assert convert([(40, violin), (73, flute), (40, flute)], out, "test", sample_rate=22_050, max_seconds=3.0) == 5
    assert {(p.bank, p.program) for p in presets(out)} == {(0, 40), (0, 73), (1, 40)}
    with Synth(16_000) as synth:
        font = synth.load(out)
        synth.select(0, font, 0, 40)
        for key in (57, 59, 61, 66, 72, 76):  # recorded, between recordings, and past the last one
            note = synth.note(0, key, 100, held=32_000, total=40_000)
            assert _f0(note[1_000:9_000], 16_000) == pytest.approx(440 * 2 ** ((key - 69) / 12), rel=0.01)
            onset = int(np.argmax(np.abs(note) > 0.05 * np.abs(note).max()))
            assert onset < 16_000 * 0.02  # the recording's leading silence was trimmed
        long_note = synth.note(0, 72, 100, held=64_000, total=80_000)
        assert np.abs(long_note[16_000 * 3 + 1_000 :]).max() == 0  # cut after max_seconds (3 s)
    instruments = plan([out], RenderConfig(variations=True))
    assert {(i.program, i.family, i.source) for i in instruments} == {(40, "string", "acoustic"),
                                                                      (73, "flute", "acoustic")}
    assert len(instruments) == 3


def test_bad_folders_and_existing_output(folders: tuple[Path, Path], tmp_path: Path):
    violin, _ = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no recordings named by note"):
        convert([(40, empty)], tmp_path / "a.sf2")
    (violin / "B3.wav").write_bytes(b"RIFF\0\0\0\0WAVEjunk")
    with pytest.raises(InputError, match="B3.wav"):
        convert([(40, violin)], tmp_path / "b.sf2")
    (violin / "B3.wav").unlink()
    out = tmp_path / "c.sf2"
    convert([(40, violin)], out)
    with pytest.raises(OutputExistsError):
        convert([(40, violin)], out)


def test_samples_command_line(folders: tuple[Path, Path], tmp_path: Path, cli):
    violin, flute = folders
    code, out, err = cli("data", "samples", f"violin={violin}", f"73={flute}", "-o", str(tmp_path / "x.sf2"), "--json")
    assert code == 0, err
    assert '"recordings": 4' in out and '"instruments": 2' in out
    code, _, err = cli("data", "samples", str(violin), "-o", str(tmp_path / "y.sf2"))
    assert code == 2 and "PROGRAM=FOLDER" in err
    code, _, err = cli("data", "samples", f"violin={tmp_path / 'missing'}", "-o", str(tmp_path / "z.sf2"))
    assert code == 1 and "missing" in err and "Traceback" not in err
