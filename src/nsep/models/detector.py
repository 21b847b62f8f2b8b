"""nsep's default detector: per-family activity over time and clip-level presence, from one CNN.

The residual backbone is the classifier's (:mod:`nsep.models.cnn`), but it pools time only 4x over
a 16-ms hop, so each output frame spans 64 ms (63 frames per 4-s clip). Dilated 1-D convolutions give every
frame a few seconds of context; a frame head scores each family per frame, and attention pooling
over frames gives the clip's logits (a soft maximum: a family that plays briefly still counts).
"""

from __future__ import annotations

import torch
from torch import nn

from nsep.features import FeatureSpec, Spectrogram
from nsep.models.cnn import Backbone, ClipNorm, SpecMask

DETECT_FEATURE = FeatureSpec(scale="mel", sample_rate=16_000, n_fft=1024, hop=256, n_bands=128, fmin=20.0, fmax=8000.0, top_db=80.0)


class TemporalBlock(nn.Module):
    """A residual dilated 1-D convolution over frames."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class CNNDetector(nn.Module):
    """Waveform ``[B, T]`` -> clip logits ``[B, L]``; :meth:`forward_frames` also gives frame logits ``[B, L, F]``."""

    def __init__(self, n_labels: int, feature: dict | None = None, width: int = 32, dropout: float = 0.2,
                 dilations: tuple[int, ...] = (1, 2, 4, 8)):
        super().__init__()
        self.feature = FeatureSpec.from_dict(feature) if feature else DETECT_FEATURE
        self.frontend = Spectrogram(self.feature)
        self.norm = ClipNorm()
        self.mask = SpecMask(frames=0)  # bands only: masking frames would contradict the frame targets
        self.backbone = Backbone(width, time_pools=(2, 1, 1, 1))
        channels = self.backbone.out_channels
        self.temporal = nn.Sequential(*(TemporalBlock(channels, d) for d in dilations), nn.Dropout(dropout))
        self.frame_head = nn.Conv1d(channels, n_labels, 1)
        self.attention = nn.Conv1d(channels, n_labels, 1)

    def forward_frames(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip logits ``[B, L]`` and frame logits ``[B, L, F]``."""
        with torch.autocast(wave.device.type, enabled=False):
            spec = self.mask(self.norm(self.frontend(wave.float())))
        x = self.temporal(self.backbone(spec.unsqueeze(1)))
        frames = self.frame_head(x)
        weights = torch.softmax(self.attention(x).float(), dim=-1)
        return (weights * frames.float()).sum(dim=-1), frames

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.forward_frames(wave)[0]
