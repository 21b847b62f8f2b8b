"""Sharing out the band above a separator's rate (nsep.highband, `nsep separate --highs follow`)."""

import json
import math

import numpy as np
import soundfile as sf
import torch

from nsep.highband import HighBandSplitter

RATE = 44_100


def _stems() -> torch.Tensor:
    """Three sources over 3 s: a 6 kHz tone for the first half, a 5 kHz tone for the second, a low hum throughout."""
    t = torch.arange(3 * RATE) / RATE
    top_first = torch.sin(2 * math.pi * 6000 * t) * (t < 1.5)
    top_second = torch.sin(2 * math.pi * 5000 * t) * (t >= 1.5)
    low = torch.sin(2 * math.pi * 300 * t)
    return torch.stack([top_first, top_second, low])[:, None, :]


def _gains(stems: torch.Tensor, blocks: list[int]) -> torch.Tensor:
    splitter, parts, at = HighBandSplitter(RATE, 16_000), [], 0
    for n in blocks:
        parts.append(splitter.gains(stems[..., at : at + n]))
        at += n
    return torch.cat(parts, dim=1)


def test_the_band_follows_the_stem_with_energy_in_the_octave_below():
    gains = _gains(_stems(), [3 * RATE])
    assert torch.allclose(gains[:, RATE], torch.tensor([1.0, 0.0, 0.0]), atol=1e-3)
    assert torch.allclose(gains[:, 2 * RATE], torch.tensor([0.0, 1.0, 0.0]), atol=1e-3)
    assert float((gains.sum(0) - 1).abs().max()) < 1e-5  # all of it is given out where any stem has the octave
    silent = _gains(torch.zeros(2, 1, RATE), [RATE])
    assert float(silent.abs().max()) == 0  # no stem has it: it stays in `other`


def test_blocks_of_any_size_join_without_a_step():
    reference = _gains(_stems(), [3 * RATE])
    for blocks in ([RATE, RATE, RATE], [1000, 43_100, 2 * RATE], [300, 300, 3 * RATE - 600]):
        gains = _gains(_stems(), blocks)
        assert gains.shape == reference.shape
        assert float((gains[:, 1:] - gains[:, :-1]).abs().max()) < 2e-3  # a frame's change spread over a frame
        away = (torch.arange(3 * RATE) - 1.5 * RATE).abs() > 2048  # where the sources change, frames may fall otherwise
        assert float((gains - reference)[:, away].abs().max()) < 0.01


def test_separate_highs_follow_keeps_the_sum_and_empties_other_above_8_khz(cli, tmp_path):
    t = np.arange(3 * RATE) / RATE
    rng = np.random.default_rng(0)
    bursts = 0.05 * rng.standard_normal(len(t)) * np.exp(-10 * (t % 0.5))  # bright noise bursts, above 8 kHz too
    data = np.stack([0.3 * np.sin(2 * np.pi * 220 * t) + bursts, 0.2 * np.sin(2 * np.pi * 220 * t) + bursts], 1)
    sf.write(tmp_path / "song.wav", data.astype(np.float32), RATE, subtype="FLOAT")

    def high_energy(path) -> float:
        wave, rate = sf.read(path)
        spectrum = np.abs(np.fft.rfft(wave[:, 0])) ** 2
        return float(spectrum[np.fft.rfftfreq(len(wave), 1 / rate) > 8500].sum())

    written = {}
    for highs in ("other", "follow"):
        code, out, err = cli("-q", "separate", str(tmp_path / "song.wav"), "-o", str(tmp_path / highs), "--bits", "float",
                             "--stems", "drums,mallet,keyboard,bass", "--highs", highs, "--jsonl")
        assert code == 0, err
        written[highs] = json.loads(out)["stems"]
        total = sum(sf.read(p)[0] for p in written[highs].values())
        assert np.abs(total - data).max() < 1e-5  # the stems still sum to the input
    assert high_energy(written["follow"]["other"]) < 0.2 * high_energy(written["other"]["other"])
    code, _, err = cli("separate", str(tmp_path / "song.wav"), "-o", str(tmp_path / "x"), "--highs", "treble")
    assert code == 2 and "--highs" in err


def test_apply_in_chunks_adds_what_gains_say():
    stems = _stems() * 0.5
    mix = stems.sum(dim=0) + 0.01 * torch.randn(1, stems.shape[-1], generator=torch.Generator().manual_seed(0))
    expected = stems + _gains(stems, [RATE, 2 * RATE])[:, None, :] * (mix - stems.sum(dim=0))
    splitter, parts = HighBandSplitter(RATE, 16_000), []
    for start, stop in ((0, RATE), (RATE, 3 * RATE)):
        parts.append(splitter.apply(stems[..., start:stop].clone(), mix[:, start:stop], chunk=5000))
    assert torch.allclose(torch.cat(parts, dim=-1), expected, atol=1e-6)
