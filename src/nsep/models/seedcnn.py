"""The seed project's small CNN over the min-max scaled magnitude STFT (n_fft 2048, hop 512).

Its layers, as the seed described them: a convolution whose kernel spans two frequency bins and
the whole 4-s clip (126 frames), 2x2 max pooling, a 3x3 convolution, 2x2 max pooling, dropout
0.2, then dense layers of 512 and 32 units. The seed flattened 8,192 values into the first
dense layer; an adaptive pooling to 32 x 16 x 16 gives that size from any spectrogram.
"""

from __future__ import annotations

import torch
from torch import nn

from nsep.models.xgb import SEED_FEATURE
from nsep.features import Spectrogram


class SeedCNN(nn.Module):
    """Waveform ``[B, T]`` -> logits ``[B, n_labels]``."""

    def __init__(self, n_labels: int, channels: tuple[int, int] = (64, 32), time_kernel: int = 126):
        super().__init__()
        self.frontend = Spectrogram(SEED_FEATURE)
        first, second = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, first, (2, time_kernel), padding=(1, time_kernel // 2)),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(first, second, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Dropout(0.2),
            nn.AdaptiveAvgPool2d(16),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(second * 16 * 16, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, 32),
            nn.ReLU(inplace=True),
            nn.Linear(32, n_labels),
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(wave.device.type, enabled=False):
            magnitude = self.frontend(wave.float()).sqrt()
            low = magnitude.amin(dim=(-2, -1), keepdim=True)
            high = magnitude.amax(dim=(-2, -1), keepdim=True)
            scaled = (magnitude - low) / (high - low).clamp(min=1e-8)
        return self.head(self.features(scaled.unsqueeze(1)))
