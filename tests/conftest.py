"""Shared fixtures: audio files synthesised with numpy + soundfile, and ways to run the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
Result = tuple[int, str, str]


def tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    """A sine ``[frames, channels]``; channel ``c`` is scaled by ``1 / (c + 1)`` so channels differ."""
    t = np.arange(int(round(seconds * rate))) / rate
    wave = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([wave / (c + 1) for c in range(channels)], axis=1).astype(np.float32)


def write(path: Path, data: np.ndarray, rate: int, subtype: str | None = None, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, subtype=subtype, format=fmt)
    return path


def bad_header(path: Path, offset: int, value: int, size: int) -> Path:
    """A valid 16-bit mono wav with one header field overwritten."""
    write(path, tone(0.1, 16000), 16000, "PCM_16")
    data = bytearray(path.read_bytes())
    data[offset : offset + size] = value.to_bytes(size, "little")
    path.write_bytes(bytes(data))
    return path


def raw(data: bytes):
    """A maker of a file holding exactly ``data``."""

    def make(path: Path) -> Path:
        path.write_bytes(data)
        return path

    return make


def truncated(path: Path) -> Path:
    """A flac cut in the middle of its audio."""
    write(path, tone(2.0, 16000), 16000)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


# name -> (maker of a file with that problem at a given path, what the error says about it)
BAD_FILES = {
    "missing.wav": (lambda p: p, "no such file"),
    "empty.wav": (raw(b""), "empty file (0 bytes)"),
    "no-frames.wav": (lambda p: write(p, np.zeros((0, 1)), 16000), "no audio frames"),
    "text.wav": (raw(b"not audio\n" * 50), "cannot decode audio"),
    "no-data.wav": (raw(b"RIFF\0\0\0\0WAVEfmt " + b"\0" * 40), "cannot decode audio"),
    "zero-channels.wav": (lambda p: bad_header(p, 22, 0, 2), "cannot decode audio"),
    "zero-rate.wav": (lambda p: bad_header(p, 24, 0, 4), "cannot decode audio"),
    "rate-1hz.wav": (lambda p: write(p, tone(0.1, 16000), 1), "implausible sample rate 1 Hz"),
    "rate-2mhz.wav": (lambda p: write(p, tone(0.1, 16000), 2_000_000), "implausible sample rate 2000000 Hz"),
    "65-channels.wav": (lambda p: write(p, tone(0.01, 16000, channels=65), 16000), "65 channels (at most 64"),
    "silent.wav": (lambda p: write(p, np.zeros((8000, 1)), 16000), "audio is silent"),
    "truncated.flac": (truncated, "cannot decode audio"),
    "nan.wav": (lambda p: write(p, np.where(np.arange(8000) == 99, np.nan, 0.1)[:, None], 16000, "FLOAT"),
                "contains NaN or infinite samples"),
    "inf.wav": (lambda p: write(p, np.where(np.arange(8000) == 7, -np.inf, 0.1)[:, None], 16000, "FLOAT"),
                "contains NaN or infinite samples"),
}


@pytest.fixture
def make_audio(tmp_path: Path) -> Callable[..., Path]:
    """``make_audio("a.wav", seconds=1, rate=16000, channels=1, freq=440, subtype=None)`` -> path."""

    def make(name: str, seconds: float = 1.0, rate: int = 16_000, channels: int = 1, freq: float = 440.0,
             subtype: str | None = None) -> Path:
        fmt = "MP3" if name.endswith(".mp3") else None
        return write(tmp_path / name, tone(seconds, rate, freq, channels), rate, subtype, fmt)

    return make


def run_cli(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> Result:
    """Run ``python -m nsep ARGS`` in a subprocess; return (exit code, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", "nsep", *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        timeout=300,
    )
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run the CLI in this process (fast: torch is already imported); return (exit code, stdout, stderr)."""
    from nsep.cli import main

    def invoke(*args: str) -> Result:
        monkeypatch.setattr(sys, "argv", ["nsep", *args])
        capsys.readouterr()
        handler = signal.getsignal(signal.SIGTERM)  # main() installs its own
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        finally:
            signal.signal(signal.SIGTERM, handler)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("nsep: error: ")]
