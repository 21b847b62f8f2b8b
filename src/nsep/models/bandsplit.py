"""Band-split separator (after BSRNN, Luo & Yu 2023), small enough for a laptop CPU.

The spectrum is cut into bands, narrow in the bass and wide in the treble; each band's complex
bins become one feature vector. Layers of BiLSTMs then alternate along time (each band's
sequence of frames) and along frequency (each frame's sequence of bands), and a per-band head
turns each vector back into mask logits for every source and bin of the band.
"""

from __future__ import annotations

import torch
from torch import nn

from nsep.models.masking import MaskSeparator


def band_edges(bins: int, widths: tuple[tuple[int, int], ...] = ((64, 4), (192, 8), (384, 16), (10**9, 32))) -> list[int]:
    """Start bins of the bands (and the end): ``widths`` are (up to bin, band width) pairs."""
    edges, start = [0], 0
    for limit, width in widths:
        while start < min(limit, bins):
            start = min(start + width, bins)
            edges.append(start)
    if len(edges) > 2 and edges[-1] - edges[-2] < 4:  # a sliver at the top joins the band below
        edges.pop(-2)
    return edges


class _Residual(nn.Module):
    """Normalise, BiLSTM along the sequence axis, project back, add."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [batch, sequence, dim]
        y, _ = self.lstm(self.norm(x))
        return x + self.proj(y)


class BandSplitSeparator(MaskSeparator):
    def __init__(self, n_sources: int, dim: int = 64, hidden: int = 96, layers: int = 4, n_fft: int = 1024, hop: int = 256,
                 mask_temperature: float = 1.0):
        super().__init__(n_sources, n_fft, hop, mask_temperature)
        self.edges = band_edges(n_fft // 2 + 1)
        sizes = [b - a for a, b in zip(self.edges, self.edges[1:])]
        self.embed = nn.ModuleList(nn.Sequential(nn.LayerNorm(3 * n), nn.Linear(3 * n, dim)) for n in sizes)
        self.time = nn.ModuleList(_Residual(dim, hidden) for _ in range(layers))
        self.band = nn.ModuleList(_Residual(dim, hidden) for _ in range(layers))
        self.heads = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, n * n_sources))
            for n in sizes
        )

    def mask_logits(self, features: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
        batch, _, frames = features.shape
        phase = spec / spec.abs().clamp_min(1e-8)
        inputs = torch.cat([features, phase.real, phase.imag], dim=1)  # [B, 3F, N] in blocks of F
        bins = features.shape[1]
        x = torch.stack([
            embed(torch.cat([inputs[:, a:b], inputs[:, bins + a:bins + b], inputs[:, 2 * bins + a:2 * bins + b]], 1).transpose(1, 2))
            for embed, a, b in zip(self.embed, self.edges, self.edges[1:])
        ], dim=1)  # [B, K, N, D]
        bands = x.shape[1]
        for time, band in zip(self.time, self.band):
            x = time(x.reshape(batch * bands, frames, -1)).view(batch, bands, frames, -1)
            x = band(x.transpose(1, 2).reshape(batch * frames, bands, -1)).view(batch, frames, bands, -1).transpose(1, 2)
        logits = [
            head(x[:, i]).view(batch, frames, self.n_sources, b - a).permute(0, 2, 3, 1)
            for i, (head, a, b) in enumerate(zip(self.heads, self.edges, self.edges[1:]))
        ]
        return torch.cat(logits, dim=2)
