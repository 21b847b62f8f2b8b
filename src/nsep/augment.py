"""Waveform augmentation on batches ``[B, T]``, on whatever device the batch lives on.

SoundFont notes are dry, clean and start at t=0; real recordings are not. Each transform draws
its own random numbers from a ``torch.Generator`` so a training run is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    shift_seconds: float = 0.25  # random delay of the onset
    speed_semitones: float = 1.0  # resampling by up to this many semitones (pitch and tempo)
    eq_db: float = 6.0  # standard deviation of a smooth random EQ curve
    reverb_p: float = 0.5
    reverb_rt60: tuple[float, float] = (0.15, 1.5)
    reverb_wet: tuple[float, float] = (0.1, 0.7)
    noise_p: float = 0.3
    noise_snr_db: tuple[float, float] = (15.0, 50.0)
    lowpass_p: float = 0.0  # share of items band-limited, as low-rate samples and lo-fi recordings are
    lowpass_hz: tuple[float, float] = (2_500.0, 7_000.0)  # cutoff range (log-uniform)


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, device=device)


def shift(x: torch.Tensor, max_samples: int, gen: torch.Generator) -> torch.Tensor:
    """Delay each item by a random number of samples (zeros in front, tail dropped)."""
    if max_samples <= 0:
        return x
    b, t = x.shape
    delay = torch.randint(0, max_samples + 1, (b, 1), generator=gen, device=x.device)
    index = torch.arange(t, device=x.device)[None] - delay
    return torch.where(index >= 0, x.gather(1, index.clamp(min=0)), torch.zeros((), device=x.device))


def speed(x: torch.Tensor, semitones: float, gen: torch.Generator) -> torch.Tensor:
    """Resample each item by a random factor (linear interpolation), keeping the length."""
    if semitones <= 0:
        return x
    b, t = x.shape
    factor = 2 ** (_uniform(b, -semitones, semitones, gen, x.device) / 12)
    position = torch.linspace(-1, 1, t, device=x.device)[None] * factor[:, None]
    grid = torch.stack([position, torch.zeros_like(position)], dim=-1)[:, None]  # [B, 1, T, 2]
    out = F.grid_sample(x[:, None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out[:, 0, 0]


def equalise(x: torch.Tensor, std_db: float, gen: torch.Generator, points: int = 8) -> torch.Tensor:
    """A smooth random EQ: gains at log-spaced points, interpolated over the spectrum."""
    if std_db <= 0:
        return x
    b, t = x.shape
    spectrum = torch.fft.rfft(x, dim=-1)
    bins = spectrum.shape[-1]
    gains_db = torch.randn(b, 1, points, generator=gen, device=x.device) * std_db
    log_pos = torch.log1p(torch.arange(bins, device=x.device, dtype=torch.float32))
    grid_x = log_pos / log_pos[-1] * 2 - 1
    grid = torch.stack([grid_x, torch.zeros_like(grid_x)], dim=-1)[None, None].expand(b, 1, bins, 2)
    curve = F.grid_sample(gains_db[:, None], grid, mode="bilinear", align_corners=True)[:, 0, 0]
    return torch.fft.irfft(spectrum * 10 ** (curve / 20), n=t, dim=-1)


def reverb(x: torch.Tensor, cfg: AugmentConfig, sample_rate: int, gen: torch.Generator) -> torch.Tensor:
    """Convolve a random share of items with exponentially decaying noise (a synthetic room)."""
    b, t = x.shape
    length = int(cfg.reverb_rt60[1] * sample_rate)
    rt60 = _uniform(b, *cfg.reverb_rt60, gen, x.device)
    time = torch.arange(length, device=x.device)[None] / sample_rate
    ir = torch.randn(b, length, generator=gen, device=x.device) * torch.exp(-6.9 * time / rt60[:, None])
    ir = ir / ir.square().sum(dim=-1, keepdim=True).sqrt()
    n = 1 << math.ceil(math.log2(t + length))
    wet = torch.fft.irfft(torch.fft.rfft(x, n) * torch.fft.rfft(ir, n), n)[:, :t]
    mix = _uniform(b, *cfg.reverb_wet, gen, x.device) * (torch.rand(b, generator=gen, device=x.device) < cfg.reverb_p)
    scale = x.square().mean(-1).sqrt() / wet.square().mean(-1).sqrt().clamp(min=1e-8)
    return (1 - mix[:, None]) * x + mix[:, None] * wet * scale[:, None]


def noise(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Add white noise at a random SNR to a random share of items."""
    b, _ = x.shape
    snr = _uniform(b, *cfg.noise_snr_db, gen, x.device)
    power = x.square().mean(-1)
    sigma = (power / 10 ** (snr / 10)).sqrt() * (torch.rand(b, generator=gen, device=x.device) < cfg.noise_p)
    return x + sigma[:, None] * torch.randn(x.shape, generator=gen, device=x.device)


def lowpass(x: torch.Tensor, cfg: AugmentConfig, sample_rate: int, gen: torch.Generator) -> torch.Tensor:
    """Band-limit a random share of items at a random cutoff, with a roll-off 5 % of the cutoff wide."""
    b, t = x.shape
    low, high = (math.log(hz) for hz in cfg.lowpass_hz)
    cutoff = torch.exp(_uniform(b, low, high, gen, x.device))[:, None]
    chosen = (torch.rand(b, generator=gen, device=x.device) < cfg.lowpass_p)[:, None]
    freqs = torch.fft.rfftfreq(t, 1 / sample_rate, device=x.device)[None]
    gain = torch.where(chosen, torch.sigmoid((cutoff - freqs) / (0.05 * cutoff)), torch.ones((), device=x.device))
    return torch.fft.irfft(torch.fft.rfft(x, dim=-1) * gain, n=t, dim=-1)


def augment(x: torch.Tensor, cfg: AugmentConfig, sample_rate: int, gen: torch.Generator) -> torch.Tensor:
    """All transforms in a fixed order; peaks renormalised to 0.9."""
    x = shift(x, int(cfg.shift_seconds * sample_rate), gen)
    x = speed(x, cfg.speed_semitones, gen)
    x = equalise(x, cfg.eq_db, gen)
    if cfg.reverb_p > 0:
        x = reverb(x, cfg, sample_rate, gen)
    if cfg.lowpass_p > 0:
        x = lowpass(x, cfg, sample_rate, gen)
    if cfg.noise_p > 0:
        x = noise(x, cfg, gen)
    return 0.9 * x / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-6)
