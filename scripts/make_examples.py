"""Synthesise the bundled example recordings in examples/ (plucked strings, Karplus-Strong; CC0).

    python scripts/make_examples.py

The output is seeded, so running it again gives the same samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def pluck(freq: float, seconds: float, rate: int, rng: np.random.Generator, decay: float = 0.996) -> np.ndarray:
    """One Karplus-Strong note: a burst of noise circulating in a delay line with a two-point average."""
    period = max(2, round(rate / freq))
    total = int(seconds * rate)
    out = np.zeros(total + period + 1)
    out[1 : period + 1] = rng.uniform(-1.0, 1.0, period)
    for start in range(period + 1, len(out), period):
        stop = min(start + period, len(out))
        out[start:stop] = decay * 0.5 * (out[start - period : stop - period] + out[start - period - 1 : stop - period - 1])
    note = out[1 : total + 1]
    return note - note.mean()


def melody(rate: int, notes: list[tuple[float, float]], seconds: float, seed: int) -> np.ndarray:
    """Notes ``(start_s, freq_hz)`` rung over each other, normalised to a -3 dBFS peak."""
    rng = np.random.default_rng(seed)
    mix = np.zeros(int(seconds * rate))
    for start, freq in notes:
        first = int(start * rate)
        note = pluck(freq, seconds - start, rate, rng)
        mix[first : first + len(note)] += note
    fade = np.minimum(1.0, (len(mix) - np.arange(len(mix))) / (0.05 * rate))  # no click at the end
    mix *= fade
    return 0.708 * mix / np.abs(mix).max()


def main() -> None:
    EXAMPLES.mkdir(exist_ok=True)
    a_minor = [(0.0, 220.0), (0.5, 261.63), (1.0, 329.63), (1.5, 440.0), (2.0, 329.63), (2.5, 261.63)]
    sf.write(EXAMPLES / "pluck.wav", melody(16_000, a_minor, 4.0, seed=1), 16_000, subtype="PCM_16")
    strum = [(0.02 * i, f) for i, f in enumerate((82.41, 110.0, 146.83, 196.0, 246.94, 329.63))]
    left, right = melody(22_050, strum, 3.0, seed=2), melody(22_050, strum, 3.0, seed=3)
    sf.write(EXAMPLES / "strum.flac", np.stack([left, right], axis=1), 22_050, subtype="PCM_16")
    for path in sorted(EXAMPLES.glob("*.*")):
        print(f"{path.relative_to(EXAMPLES.parent)}: {path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
