"""Audio I/O: round trips, resampling, channels, streaming, atomic writes, bad headers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import BAD_FILES, tone, write

from nsep import audio
from nsep.errors import InputError, NsepError, OutputExistsError

# (extension, bits, soundfile subtype, tolerance of one round trip)
DEPTHS = [
    (".wav", "16", "PCM_16", 1 / 2**15),
    (".wav", "24", "PCM_24", 1 / 2**23),
    (".wav", "float", "FLOAT", 0.0),
    (".flac", "16", "PCM_16", 1 / 2**15),
    (".flac", "24", "PCM_24", 1 / 2**23),
]


def peak_frequency(samples: torch.Tensor, rate: int) -> float:
    """Frequency of the largest FFT bin of the first channel, refined by parabolic interpolation."""
    spectrum = np.abs(np.fft.rfft(samples[0].numpy() * np.hanning(samples.shape[-1])))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / samples.shape[-1]


@pytest.mark.parametrize("ext,bits,subtype,tol", DEPTHS)
@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 96_000])
def test_save_load_round_trip(tmp_path: Path, ext: str, bits: str, subtype: str, tol: float, rate: int) -> None:
    original = torch.from_numpy(tone(0.25, rate, 997.0, channels=2).T.copy())
    path = audio.save(tmp_path / f"x{ext}", original, rate, bits=bits)
    head = audio.info(str(path))
    assert (head.sample_rate, head.channels, head.frames, head.subtype) == (rate, 2, original.shape[1], subtype)
    loaded = audio.load(str(path))
    assert loaded.sample_rate == rate and loaded.samples.dtype == torch.float32
    assert torch.allclose(loaded.samples, original, atol=tol, rtol=0)


@pytest.mark.parametrize("bits,full", [("16", 1 << 15), ("24", 1 << 23)])
def test_integer_samples_round_to_the_nearest_step(tmp_path: Path, bits: str, full: int) -> None:
    rng = np.random.default_rng(0)
    steps = rng.integers(-full, full, 4000)
    offsets = rng.uniform(-0.2, 0.2, 4000)  # float32 holds 24-bit samples to half a step
    wave = torch.from_numpy(((steps + offsets) / full).astype(np.float32)).reshape(2, -1)
    data, clipped = audio.to_pcm(wave, bits)
    assert clipped == 0 and data.shape == (2000, 2)
    path = tmp_path / "x.wav"
    sf.write(path, data, 8000, subtype=audio.SUBTYPES[bits])
    read, _ = sf.read(path, dtype="float64")
    assert np.array_equal(np.rint(read.T.reshape(-1) * full), steps)  # no half-step bias, unlike libsndfile's own


def test_full_scale_is_counted_and_clipped() -> None:
    data, clipped = audio.to_pcm(torch.tensor([[1.5, -1.5, 1.0, -1.0, 0.25]]), "16")
    assert clipped == 2 and data[:, 0].tolist() == [32767, -32768, 32767, -32768, 8192]
    floats, clipped = audio.to_pcm(torch.tensor([[1.5, -0.5]]), "float")
    assert clipped == 0 and floats[:, 0].tolist() == [1.5, -0.5]


def test_save_clips_integer_formats_and_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    loud = torch.tensor([[2.0, -2.0, 0.5]])
    assert audio.load(str(audio.save(tmp_path / "a.wav", loud, 8000))).samples.abs().max() <= 1.0
    assert audio.load(str(audio.save(tmp_path / "b.wav", loud, 8000, bits="float"))).samples.abs().max() == 2.0
    with pytest.raises(NsepError, match="FLAC cannot hold float"):
        audio.save(tmp_path / "c.flac", loud, 8000, bits="float")
    with pytest.raises(NsepError, match="cannot write .mp3"):
        audio.save(tmp_path / "d.mp3", loud, 8000)
    with pytest.raises(OutputExistsError):
        audio.save(tmp_path / "a.wav", loud, 8000)
    audio.save(tmp_path / "a.wav", loud * 0.1, 8000, overwrite=True)
    assert audio.load(str(tmp_path / "a.wav")).samples.abs().max() < 0.25


@pytest.mark.parametrize("orig,new", [(44_100, 16_000), (48_000, 22_050), (8_000, 48_000), (16_000, 16_000)])
def test_resampling_keeps_a_sine_at_its_frequency(tmp_path: Path, orig: int, new: int) -> None:
    path = write(tmp_path / "sine.wav", tone(1.0, orig, 1234.5), orig, "FLOAT")
    loaded = audio.load(str(path), sample_rate=new)
    assert loaded.sample_rate == new
    assert loaded.samples.shape[-1] == pytest.approx(new, abs=1)
    assert peak_frequency(loaded.samples, new) == pytest.approx(1234.5, abs=0.5)
    middle = loaded.samples[0, new // 4 : 3 * new // 4]
    assert middle.abs().max() == pytest.approx(0.5, abs=0.01)  # amplitude kept away from the edges


def test_channel_handling(tmp_path: Path) -> None:
    stereo = write(tmp_path / "s.wav", tone(0.1, 8000, channels=2), 8000, "FLOAT")
    both = audio.load(str(stereo)).samples
    assert both.shape[0] == 2
    assert torch.allclose(audio.load(str(stereo), channels=1).samples[0], both.mean(dim=0))
    mono = write(tmp_path / "m.wav", tone(0.1, 8000), 8000, "FLOAT")
    up = audio.load(str(mono), channels=2).samples
    assert up.shape[0] == 2 and torch.equal(up[0], up[1])
    six = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    down = audio.fit_channels(six, 2)
    assert down.shape == (2, 2) and torch.equal(down[0], six.mean(dim=0)) and torch.equal(down[0], down[1])
    assert audio.fit_channels(six, None) is six
    with pytest.raises(NsepError, match="cannot map 2 channels to 3"):
        audio.fit_channels(both, 3)


def test_many_channels_within_limit_are_read(tmp_path: Path) -> None:
    path = write(tmp_path / "many.wav", tone(0.1, 8000, channels=audio.MAX_CHANNELS), 8000)
    assert audio.load(str(path), channels=1).samples.shape[0] == 1


def test_max_seconds_reads_only_the_start(tmp_path: Path) -> None:
    path = write(tmp_path / "long.flac", tone(3.0, 8000), 8000)
    assert audio.load(str(path), max_seconds=1.25).samples.shape[-1] == 10_000


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_inputs_raise_input_error_naming_the_file(tmp_path: Path, name: str) -> None:
    make, reason = BAD_FILES[name]
    path = make(tmp_path / name)
    with pytest.raises(InputError) as caught:
        audio.load(str(path))
    assert caught.value.path == str(path) and reason in caught.value.reason
    assert str(caught.value) == f"{path}: {caught.value.reason}"
    with pytest.raises(InputError, match=reason.split("(")[0].strip()):
        for _ in audio.stream(str(path), 0.1):
            pass


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder"):
        audio.info(str(tmp_path))


def test_silent_allowed_when_asked(tmp_path: Path) -> None:
    path = write(tmp_path / "quiet.wav", np.zeros((800, 1)), 8000)
    assert audio.load(str(path), allow_silent=True).samples.abs().max() == 0


def noise_file(path: Path, seconds: float, rate: int, channels: int) -> Path:
    rng = np.random.default_rng(1)
    data = (0.2 * rng.standard_normal((int(seconds * rate), channels))).astype(np.float32)
    return write(path, data, rate, "PCM_24" if path.suffix == ".flac" else "FLOAT")


@pytest.mark.parametrize(
    "rate,target,channels",
    [(44_100, 16_000, 1), (16_000, 16_000, 2), (8_000, 22_050, 1), (22_050, 44_100, 2), (96_000, 1_000, 1)],
)
def test_stream_equals_whole_file(tmp_path: Path, rate: int, target: int, channels: int) -> None:
    path = str(noise_file(tmp_path / "noise.wav", 2.3, rate, 2))
    whole = audio.load(path, sample_rate=target, channels=channels).samples
    blocks = list(audio.stream(path, 0.31, sample_rate=target, channels=channels))
    assert len(blocks) > 5
    streamed = torch.cat(blocks, dim=-1)
    assert streamed.shape == whole.shape
    assert torch.allclose(streamed, whole, atol=2e-5, rtol=0)


def test_stream_of_a_long_file_in_small_blocks(tmp_path: Path) -> None:
    path = str(noise_file(tmp_path / "long.flac", 70.0, 22_050, 1))
    whole = audio.load(path, sample_rate=16_000).samples
    streamed = torch.cat(list(audio.stream(path, 4.0, sample_rate=16_000)), dim=-1)
    assert torch.allclose(streamed, whole, atol=2e-5, rtol=0)


def test_atomic_output_leaves_nothing_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.wav"
    with pytest.raises(RuntimeError, match="midway"):
        with audio.atomic_output(target) as tmp:
            with sf.SoundFile(tmp, "w", 8000, 1, format="WAV") as handle:
                handle.write(np.zeros(4000))
                raise RuntimeError("midway")
    assert list(target.parent.iterdir()) == []


def test_atomic_output_replaces_only_when_allowed(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    with audio.atomic_output(target) as tmp:
        tmp.write_text("first")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        with audio.atomic_output(target) as tmp:
            tmp.write_text("second")
    with pytest.raises(ValueError):
        with audio.atomic_output(target, overwrite=True) as tmp:
            tmp.write_text("half")
            raise ValueError
    assert target.read_text() == "first"
    with audio.atomic_output(target, overwrite=True) as tmp:
        tmp.write_text("second")
    assert target.read_text() == "second" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_outputs_get_the_usual_permissions(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        path = audio.save(tmp_path / "a.wav", torch.zeros(1, 100), 8000)
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
