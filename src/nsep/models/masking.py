"""Separation by masks on the mixture's STFT: the shared front and back end of nsep's own separators.

A separator network sees the mixture's normalised log magnitude and returns one logit map per
source; a softmax across sources turns them into masks that share out every time-frequency bin,
so the stems' STFTs sum to the mixture's and, the inverse STFT being linear, the stems sum back to
the mixture (to float precision). The STFT runs in float32 even under autocast.
"""

from __future__ import annotations

import torch
from torch import nn


class MaskSeparator(nn.Module):
    """Waveforms ``[B, T]`` -> stems ``[B, S, T]``; subclasses implement :meth:`mask_logits`.

    ``mask_temperature`` divides the logits before the softmax: above 1 the masks are softer (each
    bin shared out more evenly), trading a little bleed for fewer bins given to the wrong source.
    """

    def __init__(self, n_sources: int, n_fft: int = 1024, hop: int = 256, mask_temperature: float = 1.0):
        super().__init__()
        self.n_sources, self.n_fft, self.hop = n_sources, n_fft, hop
        self.mask_temperature = mask_temperature
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def mask_logits(self, features: torch.Tensor, spec: torch.Tensor) -> torch.Tensor:
        """``features [B, F, N]`` (normalised log magnitude) and ``spec`` (complex) -> logits ``[B, S, F, N]``."""
        raise NotImplementedError

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.stft(wave.float(), self.n_fft, self.hop, window=self.window, return_complex=True)

    def forward(self, wave: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """``allowed`` (bool ``[S]`` or ``[B, S]``) closes the masks of the other sources: the mixture is
        shared out among the allowed ones only (presence gating); None or no source allowed: all open."""
        batch, length = wave.shape
        with torch.autocast(wave.device.type, enabled=False):
            spec = self.stft(wave)
            scale = spec.abs().square().mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-8)
            features = torch.log(spec.abs() / scale + 1e-3)
        logits = self.mask_logits(features, spec).float()
        if allowed is not None:
            allowed = allowed.to(logits.device).view(-1, self.n_sources)
            allowed = allowed | ~allowed.any(dim=1, keepdim=True)  # nothing allowed: leave every mask open
            logits = logits.masked_fill(~allowed[:, :, None, None], float("-inf"))
        masks = torch.softmax(logits / self.mask_temperature, dim=1)
        with torch.autocast(wave.device.type, enabled=False):
            stems = masks * spec[:, None]
            out = torch.istft(stems.flatten(0, 1), self.n_fft, self.hop, window=self.window, length=length)
        return out.view(batch, self.n_sources, length)
