"""The seed project's MLP: two hidden layers over a flattened log spectrogram.

The seed fed the 1025 x 126 magnitude STFT of a 4-s clip (n_fft 2048, hop 512 at 16 kHz),
min-max scaled, into layers of 64 and 32 units. Here the spectrogram is in dB and standardised
per clip (:class:`~nsep.models.cnn.ClipNorm`), so level does not matter.
"""

from __future__ import annotations

import torch
from torch import nn

from nsep.features import FeatureSpec, Spectrogram
from nsep.models.cnn import ClipNorm

MLP_FEATURE = FeatureSpec(scale="linear", sample_rate=16_000, n_fft=2048, hop=512, db=True, top_db=80.0)


class MLP(nn.Module):
    """Waveform ``[B, clip_samples]`` -> logits ``[B, n_labels]``; the input length is fixed by ``clip_samples``."""

    def __init__(self, n_labels: int, clip_samples: int = 64_000, hidden: tuple[int, ...] = (64, 32), dropout: float = 0.2):
        super().__init__()
        self.frontend = Spectrogram(MLP_FEATURE)
        self.norm = ClipNorm()
        inputs = (MLP_FEATURE.n_fft // 2 + 1) * (clip_samples // MLP_FEATURE.hop + 1)
        layers: list[nn.Module] = [nn.Flatten()]
        for size in hidden:
            layers += [nn.Linear(inputs, size), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            inputs = size
        layers.append(nn.Linear(inputs, n_labels))
        self.net = nn.Sequential(*layers)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(wave.device.type, enabled=False):
            spec = self.norm(self.frontend(wave.float()))
        return self.net(spec)
