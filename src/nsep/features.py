"""Spectral front ends as ``nn.Module``s, so models compute their own features on their own device.

A :class:`FeatureSpec` names a front end completely; it is stored with every model's weights.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torchaudio.functional as AF
from torch import nn

WINDOWS = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
    "rect": torch.ones,
}
SCALES = ("linear", "mel", "log")


@dataclass(frozen=True)
class FeatureSpec:
    """A spectrogram front end: scale (linear STFT, mel, log-frequency), STFT and band settings."""

    scale: str = "linear"
    sample_rate: int = 16_000
    n_fft: int = 2048
    hop: int = 512
    window: str = "hann"
    n_bands: int = 128  # mel bands, or log-frequency bins
    fmin: float = 0.0
    fmax: float | None = None
    db: bool = True
    top_db: float | None = 80.0

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}")
        if self.window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
        if self.hop <= 0 or self.n_fft <= 0:
            raise ValueError("n_fft and hop must be positive")

    @property
    def upper(self) -> float:
        return self.fmax if self.fmax is not None else self.sample_rate / 2

    @property
    def lower(self) -> float:
        """Lowest band edge; the log scale cannot start at 0 Hz."""
        return self.fmin if (self.fmin > 0 or self.scale != "log") else 27.5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpec:
        return cls(**data)


def log_frequency_filterbank(n_freqs: int, sample_rate: int, fmin: float, fmax: float, n_bins: int) -> torch.Tensor:
    """Triangular filters with centres evenly spaced in log-frequency, ``[n_freqs, n_bins]``."""
    freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)
    edges = torch.logspace(math.log2(fmin), math.log2(fmax), n_bins + 2, base=2.0, dtype=torch.float64)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    f = freqs[:, None]
    rising = (f - lower) / (centre - lower)
    falling = (upper - f) / (upper - centre)
    bank = torch.clamp(torch.minimum(rising, falling), min=0.0)
    # bins narrower than one FFT bin would be empty: give each at least its nearest FFT bin
    nearest = torch.argmin((freqs[:, None] - centre[None, :]).abs(), dim=0)
    empty = bank.sum(dim=0) == 0
    bank[nearest[empty], torch.nonzero(empty).flatten()] = 1.0
    return bank.float()


def band_frequencies(spec: FeatureSpec) -> torch.Tensor:
    """Centre frequency in Hz of each output row of :class:`Spectrogram`."""
    if spec.scale == "linear":
        return torch.linspace(0, spec.sample_rate / 2, spec.n_fft // 2 + 1)
    if spec.scale == "mel":
        mels = torch.linspace(_hz_to_mel(spec.lower), _hz_to_mel(spec.upper), spec.n_bands + 2)[1:-1]
        return _mel_to_hz(mels)
    edges = torch.logspace(math.log2(spec.lower), math.log2(spec.upper), spec.n_bands + 2, base=2.0)
    return edges[1:-1]


def _hz_to_mel(f: float) -> float:
    return 2595.0 * math.log10(1.0 + f / 700.0)


def _mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10 ** (m / 2595.0) - 1.0)


class Spectrogram(nn.Module):
    """Waveform ``[..., time]`` -> power spectrogram ``[..., bands, frames]``, optionally in dB.

    ``center=True`` pads ``n_fft // 2`` zeros at each end, so a 4-s 16-kHz note with the default
    ``n_fft=2048, hop=512`` gives 1025 x 126, as in the seed project.
    """

    def __init__(self, spec: FeatureSpec, center: bool = True):
        super().__init__()
        self.spec = spec
        self.center = center
        self.register_buffer("window", WINDOWS[spec.window](spec.n_fft), persistent=False)
        n_freqs = spec.n_fft // 2 + 1
        if spec.scale == "mel":
            bank = AF.melscale_fbanks(n_freqs, spec.lower, spec.upper, spec.n_bands, spec.sample_rate, norm="slaney", mel_scale="htk")
        elif spec.scale == "log":
            bank = log_frequency_filterbank(n_freqs, spec.sample_rate, spec.lower, spec.upper, spec.n_bands)
        else:
            bank = None
        self.register_buffer("bank", bank, persistent=False)

    def power(self, wave: torch.Tensor) -> torch.Tensor:
        shape = wave.shape
        flat = wave.reshape(-1, shape[-1]).float()
        stft = torch.stft(
            flat,
            self.spec.n_fft,
            self.spec.hop,
            window=self.window,
            center=self.center,
            pad_mode="constant",
            return_complex=True,
        )
        power = stft.real.square() + stft.imag.square()
        if self.bank is not None:
            power = torch.matmul(power.transpose(-1, -2), self.bank).transpose(-1, -2)
        return power.reshape(*shape[:-1], *power.shape[-2:])

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        power = self.power(wave)
        if not self.spec.db:
            return power
        return to_db(power, self.spec.top_db)


def to_db(power: torch.Tensor, top_db: float | None = None, amin: float = 1e-10) -> torch.Tensor:
    """10 log10(power), floored ``top_db`` below each item's peak when given."""
    db = 10.0 * torch.log10(torch.clamp(power, min=amin))
    if top_db is not None:
        peak = db.amax(dim=(-2, -1), keepdim=True)
        db = torch.maximum(db, peak - top_db)
    return db
