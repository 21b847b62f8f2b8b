"""GUS patch sets converted into SoundFonts, then rendered by the real FluidSynth."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from nsep.data.gus import convert, read_patch
from nsep.data.soundfont import Synth, presets, shared_keys
from nsep.errors import InputError, OutputExistsError

RATE = 22_050


def _patch(path: Path, root_hz: float, modes: int, envelope: tuple[bytes, bytes] | None = None,
           cycles: int = 40) -> Path:
    """A one-sample patch: a tone of ``root_hz`` with a 20-period loop.

    Cosines, so that the tone mirrored at a loop point (a bidirectional loop) goes on in phase.
    """
    period = RATE / root_hz
    n = int(round(period * cycles))
    t = np.arange(n)
    tone = (0.5 * np.cos(2 * np.pi * t / period) + 0.25 * np.cos(4 * np.pi * t / period)) * 20_000
    pcm = tone.astype("<i2").tobytes()
    loop = (int(round(period * 10)) * 2, int(round(period * 30)) * 2)  # bytes, whole periods
    rates, offsets = envelope or (bytes([63] * 6), bytes([250, 250, 250, 0, 0, 0]))
    header = b"GF1PATCH110\0ID#000002\0" + bytes(60) + bytes([1, 14, 0]) + struct.pack("<HHI", 1, 127, len(pcm))
    header += bytes(129 - len(header))
    instrument = struct.pack("<H16sIB", 0, b"test", len(pcm), 1) + bytes(40)
    layer = struct.pack("<BBIB", 0, 0, len(pcm), 1) + bytes(40)
    sample = struct.pack("<7sBIIIHIIIhB6s6s3s3sBHH36s", b"tone", 0, len(pcm), *loop, RATE, 20_000, 20_000_000,
                         int(root_hz * 1000), 0, 7, rates, offsets, bytes(3), bytes(3), modes, 60, 1024, bytes(36))
    path.write_bytes(header + instrument + layer + sample + pcm)
    return path


def _f0(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), 8 * len(x)))
    return float(np.argmax(spectrum) * rate / (8 * len(x)))


@pytest.fixture
def patch_set(tmp_path: Path) -> Path:
    _patch(tmp_path / "tone.pat", 440.0, modes=0x01 | 0x04 | 0x20 | 0x40)  # 16-bit, looped, sustained
    _patch(tmp_path / "pingpong.pat", 220.0, modes=0x01 | 0x04 | 0x08)  # bidirectional loop, no envelope
    _patch(tmp_path / "kick.pat", 110.0, modes=0x01)  # one-shot
    config = tmp_path / "set.cfg"
    config.write_text("# a test set\nbank 0\n 0 tone\n 73 pingpong.pat\n\ndrumset 0\n 36 kick.pat\n")
    return config


def test_patches_are_read_with_their_loops(patch_set: Path):
    tone, = read_patch(patch_set.parent / "tone.pat")
    period = RATE / 440
    assert tone.rate == RATE and tone.root_hz == pytest.approx(440.0)
    assert tone.loop == (round(period * 10), round(period * 30))
    pingpong, = read_patch(patch_set.parent / "pingpong.pat")
    start, end = pingpong.loop
    assert end - start == 2 * (round(RATE / 220 * 20)) - 2  # the loop, then the loop backwards
    with pytest.raises(InputError, match="not a GUS patch"):
        bad = patch_set.parent / "bad.pat"
        bad.write_bytes(b"RIFF" + bytes(300))
        read_patch(bad)


def test_converted_set_renders_in_tune_and_sustains(patch_set: Path, tmp_path: Path):
    out = tmp_path / "set.sf2"
    assert convert(patch_set, out, "test set") == 3
    assert {(p.bank, p.program) for p in presets(out)} == {(0, 0), (0, 73), (128, 0)}
    assert shared_keys(out, [out])[(0, 0)] == frozenset(range(128))  # every key plays the one sample
    with Synth(16_000) as synth:
        font = synth.load(out)
        for program, key in ((0, 69), (0, 57), (73, 81)):
            synth.select(0, font, 0, program)
            note = synth.note(0, key, 100, held=32_000, total=40_000)
            assert _f0(note[8_000:24_000], 16_000) == pytest.approx(440 * 2 ** ((key - 69) / 12), rel=0.01)
            held = np.sqrt(np.mean(note[24_000:32_000] ** 2))
            assert held > 0.3 * np.sqrt(np.mean(note[2_000:10_000] ** 2))  # the loop keeps it sounding
            assert np.abs(note[-4_000:]).max() < 0.01 * np.abs(note).max()  # released
        synth.select(9, font, 128, 0)
        kick = synth.note(9, 36, 100, held=16_000, total=20_000)
        assert _f0(kick[:1_000], 16_000) == pytest.approx(110, rel=0.05)  # plays at its own pitch
        assert np.abs(kick[8_000:]).max() == 0  # a one-shot ends with its sample
    with pytest.raises(OutputExistsError):
        convert(patch_set, out)


def test_gus_command_line(patch_set: Path, tmp_path: Path, cli):
    code, out, err = cli("data", "gus", str(patch_set), "-o", str(tmp_path / "x.sf2"), "--json")
    assert code == 0, err
    assert '"presets": 3' in out
    code, _, err = cli("data", "gus", str(tmp_path / "missing.cfg"), "-o", str(tmp_path / "y.sf2"))
    assert code == 1 and "missing.cfg" in err and "Traceback" not in err
