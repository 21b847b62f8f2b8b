"""The demucs package's HTDemucs architecture as an nsep separator: mono 16 kHz in, one stem per family.

This is what ``nsep train separate --model htdemucs`` trains on nsep's family stems (the
pretrained ``htdemucs`` models run through :class:`nsep.models.separator.DemucsSeparator`
instead). Its stems need not sum to the mixture; the engine's residual policy puts the difference
into ``other``.
"""

from __future__ import annotations

import torch
from torch import nn


class HTDemucsSeparator(nn.Module):
    def __init__(self, n_sources: int, channels: int = 16, depth: int = 4, t_layers: int = 2, sample_rate: int = 16_000):
        super().__init__()
        from demucs.htdemucs import HTDemucs

        self.net = HTDemucs(sources=[f"s{i}" for i in range(n_sources)], audio_channels=1, samplerate=sample_rate,
                            segment=4, channels=channels, depth=depth, t_layers=t_layers, use_train_segment=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` -> ``[B, S, T]``."""
        return self.net(wave[:, None])[:, :, 0]
