"""U-Net separators on the magnitude spectrogram: the seed project's idea, masks applied to the
mixture's complex STFT and trained on the waveform; ``unet-bilstm`` adds a BiLSTM over time at
the bottleneck, as the seed's second model did."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nsep.models.masking import MaskSeparator


def _block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.GELU(),
        nn.Conv2d(outputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.GELU(),
    )


class UNetSeparator(MaskSeparator):
    """Encoder of strided convolutions, decoder of transposed ones with skip connections."""

    def __init__(self, n_sources: int, width: int = 16, depth: int = 4, bilstm: bool = False,
                 n_fft: int = 1024, hop: int = 256, mask_temperature: float = 1.0):
        super().__init__(n_sources, n_fft, hop, mask_temperature)
        self.depth = depth
        widths = [width * 2**i for i in range(depth + 1)]
        self.stem = _block(1, widths[0])
        self.down = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1) for i in range(depth))
        self.encode = nn.ModuleList(_block(widths[i + 1], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(depth))
        self.decode = nn.ModuleList(_block(2 * widths[i], widths[i]) for i in range(depth))
        self.head = nn.Conv2d(widths[0], n_sources, 1)
        self.lstm = None
        if bilstm:
            bins = (n_fft // 2) // 2**depth
            self.squeeze = nn.Conv2d(widths[depth], 32, 1)
            self.lstm_in = nn.Linear(32 * bins, 256)
            self.lstm = nn.LSTM(256, 128, num_layers=2, batch_first=True, bidirectional=True)
            self.lstm_out = nn.Linear(256, 32 * bins)
            self.expand = nn.Conv2d(32, widths[depth], 1)

    def _bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        if self.lstm is None:
            return x
        batch, channels, bins, frames = x.shape
        seq = self.squeeze(x).permute(0, 3, 1, 2).reshape(batch, frames, -1)
        seq, _ = self.lstm(self.lstm_in(seq))
        seq = self.lstm_out(seq).view(batch, frames, -1, bins).permute(0, 2, 3, 1)
        return x + self.expand(seq)

    def mask_logits(self, features: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
        bins, frames = features.shape[1] - 1, features.shape[2]  # the top bin takes the mask of the one below
        unit = 2**self.depth
        x = F.pad(features[:, None, :bins], (0, -frames % unit))
        x = self.stem(x)
        skips = []
        for down, encode in zip(self.down, self.encode):
            skips.append(x)
            x = encode(down(x))
        x = self._bottleneck(x)
        for i in reversed(range(self.depth)):
            x = self.decode[i](torch.cat([self.up[i](x), skips[i]], dim=1))
        logits = self.head(x)[..., :frames]
        return torch.cat([logits, logits[:, :, -1:]], dim=2)


def unet_bilstm(n_sources: int, **config) -> UNetSeparator:
    return UNetSeparator(n_sources, bilstm=True, **config)
