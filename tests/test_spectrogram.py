"""Spectrograms in blocks equal the whole-signal STFT; the command draws pictures of wav, flac and mp3."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tone, write

from nsep import audio, spectrogram
from nsep.errors import InputError
from nsep.features import FeatureSpec, Spectrogram


@pytest.fixture(scope="module")
def long_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """70 s of a tone over noise at 22.05 kHz stereo: many blocks, a resampling step, a mix-down."""
    rng = np.random.default_rng(7)
    data = tone(70.0, 22_050, 1000.0, channels=2) + 0.05 * rng.standard_normal((70 * 22_050, 2)).astype(np.float32)
    return write(tmp_path_factory.mktemp("long") / "long.flac", data, 22_050, "PCM_24")


def whole_power(path: Path, spec: FeatureSpec) -> np.ndarray:
    """Power of a centred STFT of the whole file at once (the reference for block processing)."""
    wave = audio.load(str(path), sample_rate=spec.sample_rate, channels=1).samples[0]
    if spec.scale != "linear":
        return Spectrogram(spec).power(wave).double().numpy()
    window = torch.hann_window(spec.n_fft)
    stft = torch.stft(wave, spec.n_fft, spec.hop, window=window, center=True, pad_mode="constant", return_complex=True)
    return stft.abs().square().double().numpy()


@pytest.mark.parametrize(
    "spec",
    [
        FeatureSpec(),
        FeatureSpec(n_fft=999, hop=300),
        FeatureSpec(scale="mel", sample_rate=22_050, n_fft=1024, hop=256, n_bands=64),
        FeatureSpec(scale="log", sample_rate=8_000, n_fft=512, hop=512, n_bands=48),
    ],
    ids=["linear", "odd-fft", "mel", "log"],
)
def test_blocks_equal_whole_signal_stft(long_file: Path, spec: FeatureSpec, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spectrogram, "BLOCK_SECONDS", 3.3)
    npy = tmp_path / "full.npy"
    result = spectrogram.compute(str(long_file), spec, max_columns=1, npy_out=npy)
    reference = whole_power(long_file, spec)
    blocks = np.load(npy)
    assert blocks.shape == reference.shape == (reference.shape[0], result.frames)
    assert np.allclose(10 ** (blocks / 10), reference, rtol=1e-3, atol=1e-6 * reference.max())
    assert result.duration == pytest.approx(70.0)


def test_columns_average_frames(long_file: Path, tmp_path: Path) -> None:
    spec = FeatureSpec(top_db=None)
    npy = tmp_path / "full.npy"
    full = spectrogram.compute(str(long_file), spec, max_columns=1, npy_out=npy)
    pooled = spectrogram.compute(str(long_file), spec, max_columns=500)
    power = 10 ** (np.load(npy).astype(np.float64) / 10)
    group = pooled.frames_per_column
    assert pooled.db.shape[1] <= 500 and pooled.db.shape[1] == -(-full.frames // group)
    expected = [power[:, i : i + group].mean(axis=1) for i in range(0, full.frames, group)]
    assert np.allclose(pooled.db, 10 * np.log10(np.stack(expected, axis=1)), atol=1e-3)
    assert pooled.seconds_per_column == pytest.approx(group * spec.hop / spec.sample_rate)


def test_a_tone_peaks_at_its_frequency(long_file: Path) -> None:
    result = spectrogram.compute(str(long_file), FeatureSpec(scale="mel"), max_columns=50)
    peak = result.frequencies[int(np.argmax(result.db.mean(axis=1)))]
    assert peak == pytest.approx(1000.0, rel=0.05)
    assert result.db.max() - result.db.min() <= 80.0 + 1e-3


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize(
    "name,rate,channels",
    [("mono.wav", 16_000, 1), ("hi-res.flac", 96_000, 1), ("stereo.mp3", 44_100, 2), ("low.wav", 8_000, 2)],
)
def test_command_draws_each_format(cli, make_audio, tmp_path: Path, name: str, rate: int, channels: int) -> None:
    path = make_audio(name, seconds=2.0, rate=rate, channels=channels)
    out = tmp_path / "pictures" / "x.png"
    code, stdout, stderr = cli("spectrogram", str(path), "-o", str(out), "--size", "640x300", "--json")
    assert (code, stderr) == (0, "")
    assert png_size(out) == (640, 300)
    [record] = json.loads(stdout)
    assert record["output"] == str(out) and record["duration_s"] == pytest.approx(2.0, abs=0.06)


def test_command_writes_full_arrays(cli, make_audio, tmp_path: Path) -> None:
    path = make_audio("a.wav", seconds=1.0)
    code, stdout, _ = cli("spectrogram", str(path), "-o", str(tmp_path / "out"), "--npy", "--scale", "mel",
                          "--bands", "40", "--jsonl")
    assert code == 0
    record = json.loads(stdout)
    assert record["output"] == str(tmp_path / "out" / "a.npy")
    assert np.load(record["output"]).shape == (40, record["frames"]) == (40, 1 + 16_000 // 512)


def test_a_file_that_ends_before_its_header_says_is_an_input_error(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "a.wav", tone(1.0, 16_000), 16_000)
    real = audio.info

    def longer(p: str) -> audio.AudioInfo:
        head = real(p)
        return audio.AudioInfo(head.path, head.sample_rate, head.channels, head.frames * 2, head.format, head.subtype)

    monkeypatch.setattr(audio, "info", longer)
    with pytest.raises(InputError, match="audio ends early"):
        spectrogram.compute(str(path), FeatureSpec(), max_columns=100)
