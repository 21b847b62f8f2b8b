"""The band above a separator's Nyquist frequency, shared out among its stems (``nsep separate --highs follow``).

nsep's own separators run at 16 kHz, so what a 44.1 kHz input holds above 8 kHz never reaches them
and, by default, goes to ``other``. Following instead, each stem takes that band in proportion to
its share of the top octave it does have (4-8 kHz for a 16 kHz model), frame by frame (about 23
ms), with gains interpolated between frame centres. This is the extension Spleeter applies to its
masks above 11 kHz, done on time frames rather than bins. In frames where no stem has energy in the
top octave, the band stays in ``other``. It is a heuristic: the band is judged from the one below
it, not heard.
"""

from __future__ import annotations

import math

import torch

FRAME_SECONDS = 0.023


class HighBandSplitter:
    """Gains ``[S, n]`` for the stems' shares of the high band, block after block of one stream.

    Frames lie on one grid over the whole stream (a block's last, incomplete frame is finished with
    the next block's first samples). Gains are interpolated between frame centres. After a block's
    last centre they hold its value, and the next block starts from that value, so blocks join
    without a step.
    """

    def __init__(self, rate: int, model_rate: int):
        self.frame = 2 ** round(math.log2(rate * FRAME_SECONDS))
        freqs = torch.fft.rfftfreq(self.frame, 1 / rate)
        nyquist = model_rate / 2
        self.band = (freqs >= nyquist / 2) & (freqs < nyquist * 0.95)  # the top octave, clear of the resampler's roll-off
        self.window = torch.hann_window(self.frame, periodic=True)
        self.carry: torch.Tensor | None = None  # the samples of an unfinished frame, [S, r]
        self.held: torch.Tensor | None = None  # the gains at the end of the last block, [S]

    def shares(self, mono: torch.Tensor) -> torch.Tensor:
        """Each stem's share ``[S, m]`` of the top-octave energy in each whole frame of ``mono [S, m * frame]``
        (all zero where no stem has any)."""
        frames = mono.shape[-1] // self.frame
        if frames == 0:
            return mono.new_zeros(len(mono), 0)
        spectrum = torch.fft.rfft(mono[:, : frames * self.frame].reshape(len(mono), frames, self.frame) * self.window, dim=-1)
        energy = spectrum[..., self.band].abs().square().sum(-1)
        total = energy.sum(0, keepdim=True)
        floor = 1e-12 * self.frame  # about -120 dB below full scale: nothing there
        return torch.where(total > floor, energy / total.clamp_min(floor), torch.zeros_like(energy))

    def _anchors(self, stems: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame centres (in this block's samples) and the shares ``[S, a]`` at them, for the next block
        ``stems [S, C, n]`` of the stream; the previous block's last gains anchor sample 0."""
        mono = stems.float().mean(dim=1)
        before = 0 if self.carry is None else self.carry.shape[-1]
        if self.carry is not None:
            mono = torch.cat([self.carry, mono], dim=-1)
        whole = mono.shape[-1] // self.frame
        if whole == 0 and self.held is None:  # a stream shorter than one frame: judge what there is
            mono = torch.nn.functional.pad(mono, (0, self.frame - mono.shape[-1]))
            whole = 1
        shares = self.shares(mono)
        self.carry = mono[:, whole * self.frame:].clone() if mono.shape[-1] > whole * self.frame else None
        centres = (torch.arange(whole, dtype=torch.float64) + 0.5) * self.frame - before
        keep = centres > 0 if self.held is not None else torch.ones(whole, dtype=torch.bool)
        centres, shares = centres[keep], shares[:, keep]
        if self.held is not None:
            centres = torch.cat([torch.zeros(1, dtype=torch.float64), centres])
            shares = torch.cat([self.held[:, None], shares], dim=1)
        return centres, shares

    @staticmethod
    def _between(centres: torch.Tensor, shares: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Gains ``[S, stop - start]``: ``shares`` interpolated between ``centres``, held beyond the ends."""
        if len(centres) == 1:
            return shares[:, :1].expand(-1, stop - start)
        at = torch.arange(start, stop, dtype=torch.float64)
        index = torch.searchsorted(centres, at, right=True).clamp(1, len(centres) - 1)
        left, right = centres[index - 1], centres[index]
        weight = ((at - left) / (right - left)).clamp(0, 1).float()
        return shares[:, index - 1] * (1 - weight) + shares[:, index] * weight

    def gains(self, stems: torch.Tensor) -> torch.Tensor:
        """Per-sample gains ``[S, n]`` for the next block ``stems [S, C, n]`` of the stream."""
        centres, shares = self._anchors(stems)
        result = self._between(centres, shares, 0, stems.shape[-1]).clone()
        self.held = result[:, -1].clone()
        return result

    def apply(self, stems: torch.Tensor, mix: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
        """``stems [S, C, n]`` with each one's share of what they miss of ``mix [C, n]`` added, in place,
        a chunk of samples at a time (so a 30-s block costs megabytes, not hundreds of them)."""
        centres, shares = self._anchors(stems)
        n = stems.shape[-1]
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            part = stems[..., start:stop]
            residual = mix[:, start:stop] - part.sum(dim=0)
            gains = self._between(centres, shares, start, stop)
            part += gains[:, None, :] * residual
            if stop == n:
                self.held = gains[:, -1].clone()
        return stems
