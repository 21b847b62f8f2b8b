"""Waveform augmentation: the band-limiting transform."""

from __future__ import annotations

import math

import torch

from nsep.augment import AugmentConfig, augment, lowpass

RATE = 16_000


def _band_power(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    power = torch.fft.rfft(x, dim=-1).abs().square()
    freqs = torch.fft.rfftfreq(x.shape[-1], 1 / RATE)
    return power[:, (freqs >= low) & (freqs < high)].sum(-1)


def test_lowpass_removes_the_top_of_chosen_items_only():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, RATE, generator=gen)
    cfg = AugmentConfig(lowpass_p=0.5, lowpass_hz=(3_000.0, 4_000.0))
    y = lowpass(x, cfg, RATE, gen)
    top = _band_power(y, 5_000, 8_000) / _band_power(x, 5_000, 8_000)
    bottom = _band_power(y, 100, 2_000) / _band_power(x, 100, 2_000)
    chosen = top < 1e-3
    assert 16 < int(chosen.sum()) < 48  # about half, drawn at random
    assert torch.allclose(y[~chosen], x[~chosen], atol=1e-4)  # the others pass unchanged
    assert bool(((bottom[chosen] - 1).abs() < 0.02).all())  # the pass band is kept


def test_augment_runs_lowpass_only_when_asked():
    x = torch.sin(2 * math.pi * 440 * torch.arange(RATE) / RATE).repeat(4, 1) * 0.5
    plain = augment(x, AugmentConfig(), RATE, torch.Generator().manual_seed(1))
    again = augment(x, AugmentConfig(lowpass_p=0.0), RATE, torch.Generator().manual_seed(1))
    assert torch.equal(plain, again)  # lowpass_p=0 draws no random numbers: old runs stay reproducible
    limited = augment(x, AugmentConfig(lowpass_p=1.0), RATE, torch.Generator().manual_seed(1))
    assert limited.shape == x.shape and torch.isfinite(limited).all()
