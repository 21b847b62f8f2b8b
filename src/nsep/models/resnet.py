"""ResNet18 (torchvision) on the log-mel front end, trained from scratch; the seed's stage-2 backbone."""

from __future__ import annotations

import torch
from torch import nn

from nsep.features import FeatureSpec, Spectrogram
from nsep.models.cnn import ClipNorm

RESNET_FEATURE = FeatureSpec(scale="mel", sample_rate=16_000, n_fft=1024, hop=256, n_bands=128, fmin=20.0, fmax=8000.0)


class ResNet18Classifier(nn.Module):
    """Waveform ``[B, T]`` -> logits ``[B, n_labels]`` through a one-channel ResNet18."""

    def __init__(self, n_labels: int, feature: dict | None = None):
        from torchvision.models import resnet18  # imported here: it costs seconds, and only this model needs it

        super().__init__()
        self.feature = FeatureSpec.from_dict(feature) if feature else RESNET_FEATURE
        self.frontend = Spectrogram(self.feature)
        self.norm = ClipNorm()
        self.net = resnet18(weights=None, num_classes=n_labels)
        self.net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        with torch.autocast(wave.device.type, enabled=False):
            spec = self.norm(self.frontend(wave.float()))
        return self.net(spec.unsqueeze(1))
