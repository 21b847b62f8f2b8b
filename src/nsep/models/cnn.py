"""nsep's default classifier: a compact residual CNN over a log-mel front end.

Waveform in, logits out. The model owns its front end (log-mel in dB, normalised per clip so
level does not matter), so training and inference cannot compute different features.
"""

from __future__ import annotations

import torch
from torch import nn

from nsep.features import FeatureSpec, Spectrogram

DEFAULT_FEATURE = FeatureSpec(scale="mel", sample_rate=16_000, n_fft=1024, hop=512, n_bands=96, fmin=20.0, fmax=8000.0, top_db=80.0)


class ClipNorm(nn.Module):
    """Standardise each clip's log spectrogram (removes level and overall colouring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(-2, -1), keepdim=True)
        std = x.std(dim=(-2, -1), keepdim=True).clamp(min=1e-3)
        return (x - mean) / std


class SpecMask(nn.Module):
    """SpecAugment-style masking while training: random bands and frames set to the clip mean (0)."""

    def __init__(self, bands: int = 12, frames: int = 16, count: int = 2):
        super().__init__()
        self.bands, self.frames, self.count = bands, frames, count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        b, f, t = x.shape
        keep = torch.ones_like(x, dtype=torch.bool)
        for size, axis, length in ((self.bands, 1, f), (self.frames, 2, t)):
            for _ in range(self.count):
                width = torch.randint(0, size + 1, (b, 1, 1), device=x.device)
                start = (torch.rand(b, 1, 1, device=x.device) * (length - width)).long()
                position = torch.arange(length, device=x.device).view((1, -1, 1) if axis == 1 else (1, 1, -1))
                keep &= (position < start) | (position >= start + width)
        return x * keep


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut, then 2x2 average pooling."""

    def __init__(self, channels_in: int, channels_out: int, pool: tuple[int, int] = (2, 2)):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels_out),
        )
        self.shortcut = (
            nn.Identity()
            if channels_in == channels_out
            else nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, bias=False), nn.BatchNorm2d(channels_out))
        )
        self.pool = nn.AvgPool2d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.body(x) + self.shortcut(x)))


class Backbone(nn.Module):
    """Log-spectrogram ``[B, 1, F, T]`` -> embedding ``[B, E, T']`` (time kept for timelines)."""

    def __init__(self, width: int = 32, time_pools: tuple[int, int, int, int] = (2, 2, 2, 1)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        widths = (width, width, 2 * width, 4 * width, 8 * width)
        self.blocks = nn.Sequential(
            *(ResBlock(widths[i], widths[i + 1], pool=(2, time_pools[i])) for i in range(4))
        )
        self.out_channels = 8 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)  # with channels-last weights: 2x faster on CPU
        x = self.blocks(self.stem(x))
        return x.mean(dim=2)


class CNNClassifier(nn.Module):
    """Single-label classifier: waveform ``[B, T]`` -> logits ``[B, n_labels]``."""

    def __init__(self, n_labels: int, feature: dict | None = None, width: int = 32, dropout: float = 0.3):
        super().__init__()
        self.feature = FeatureSpec.from_dict(feature) if feature else DEFAULT_FEATURE
        self.frontend = Spectrogram(self.feature)
        self.norm = ClipNorm()
        self.mask = SpecMask()
        self.backbone = Backbone(width)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * self.backbone.out_channels, n_labels))

    def spectrogram(self, wave: torch.Tensor) -> torch.Tensor:
        """The network's input ``[B, F, T]``: log-mel, standardised per clip (and masked while training)."""
        with torch.autocast(wave.device.type, enabled=False):
            return self.mask(self.norm(self.frontend(wave.float())))

    def classify_spectrogram(self, spec: torch.Tensor) -> torch.Tensor:
        """Logits from :meth:`spectrogram`'s output (members of an ensemble share one spectrogram)."""
        frames = self.backbone(spec.unsqueeze(1))
        pooled = torch.cat([frames.mean(dim=-1), frames.amax(dim=-1)], dim=-1)
        return self.head(pooled)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.classify_spectrogram(self.spectrogram(wave))
