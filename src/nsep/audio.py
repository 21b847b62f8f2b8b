"""Audio in and out: decode with soundfile, fit channels and rate with torchaudio, write atomically.

Every function here speaks torch tensors shaped ``[channels, frames]`` in float32.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from nsep.errors import InputError, NsepError, OutputExistsError

AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".caf", ".w64", ".rf64"}
)
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 64
SILENCE_PEAK = 1e-6  # about -120 dBFS
GLOB_CHARS = frozenset("*?[")  # an input holding these is a pattern (nsep.inputs expands it)
SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "float": "FLOAT"}
WRITABLE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
STDIN = "-"
LOWPASS_WIDTH = 6  # zero crossings of the resampling sinc on each side (torchaudio's default)
ROLLOFF = 0.99


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, read from its header."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


@dataclass
class Audio:
    """Decoded samples, ``[channels, frames]`` float32, at ``sample_rate``."""

    samples: torch.Tensor
    sample_rate: int
    path: str = ""

    @property
    def duration(self) -> float:
        return self.samples.shape[-1] / self.sample_rate


_stdin_cache: bytes | None = None


def _source(path: str):
    """A path or, for ``-``, the bytes of stdin (read once, so it can be opened more than once)."""
    global _stdin_cache
    if path != STDIN:
        return path
    if _stdin_cache is None:
        _stdin_cache = sys.stdin.buffer.read()
    return io.BytesIO(_stdin_cache)


def buffer_stdin() -> None:
    """Read stdin's audio now, so that every later reader (worker processes forked after this too)
    gets the same bytes: for commands that read their input twice."""
    _source(STDIN)


def _open(path: str) -> sf.SoundFile:
    if path != STDIN:
        try:
            status = os.stat(path)
        except FileNotFoundError:
            missing = "no file matches this pattern" if GLOB_CHARS & set(path) else "no such file"
            raise InputError(path, missing) from None
        except OSError as err:
            raise InputError(path, err.strerror or "cannot be read") from None
        if stat.S_ISDIR(status.st_mode):
            raise InputError(path, "is a folder, not an audio file")
        if not os.access(path, os.R_OK):
            raise InputError(path, "permission denied")
        if status.st_size == 0:
            raise InputError(path, "empty file (0 bytes)")
    try:
        handle = sf.SoundFile(_source(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise _undecodable(path, err) from None
    try:
        _check_header(path, handle.samplerate, handle.channels, handle.frames)
    except InputError:
        handle.close()
        raise
    return handle


def _undecodable(path: str, err: Exception) -> InputError:
    detail = str(err).split(":")[-1].strip() or "unknown format"
    return InputError(path, f"cannot decode audio ({detail})")


def _read(handle: sf.SoundFile, path: str, start: int, count: int) -> torch.Tensor:
    """``count`` frames from ``start`` as ``[channels, frames]``; decoder failures become InputError."""
    pcm16 = handle.subtype == "PCM_16"
    try:
        handle.seek(start)
        data = handle.read(count, dtype="int16" if pcm16 else "float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise _undecodable(path, err) from None
    if data.shape[0] == 0:
        raise InputError(path, "no audio frames" if start == 0 else f"audio ends at frame {start} of {handle.frames}")
    if pcm16:  # libsndfile's own float scaling, done here in one pass: the read takes half the time
        scaled = np.empty(data.shape[::-1], dtype=np.float32)
        np.multiply(data.T, np.float32(1 / 32768), out=scaled)
        return torch.from_numpy(scaled)
    return torch.from_numpy(np.ascontiguousarray(data.T))


def _check_header(path: str, sample_rate: int, channels: int, frames: int) -> None:
    if channels < 1:
        raise InputError(path, "no audio channels")
    if channels > MAX_CHANNELS:
        raise InputError(path, f"{channels} channels (at most {MAX_CHANNELS} supported)")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise InputError(path, f"implausible sample rate {sample_rate} Hz")
    if frames <= 0:
        raise InputError(path, "no audio frames")


def info(path: str) -> AudioInfo:
    """Header facts of an audio file, validated."""
    with _open(path) as handle:
        return AudioInfo(path, handle.samplerate, handle.channels, handle.frames, handle.format, handle.subtype)


def check_samples(path: str, samples: torch.Tensor, allow_silent: bool = False) -> float:
    """Refuse NaN/Inf and (unless allowed) all-silent signals; return the peak magnitude."""
    low, high = torch.aminmax(samples)  # one pass; NaN propagates into both
    peak = max(-float(low), float(high))
    if not math.isfinite(peak) or math.isnan(float(low)):
        raise InputError(path, "contains NaN or infinite samples")
    if not allow_silent and peak < SILENCE_PEAK:
        raise InputError(path, "audio is silent")
    return peak


def fit_channels(samples: torch.Tensor, channels: int | None) -> torch.Tensor:
    """Mix down to mono, or repeat mono to N channels; ``None`` keeps what is there."""
    have = samples.shape[0]
    if channels is None or channels == have:
        return samples
    if channels == 1:
        return samples.mean(dim=0, keepdim=True)
    if have == 1:
        return samples.expand(channels, -1).clone()
    if have > channels:
        mono = samples.mean(dim=0, keepdim=True)
        return mono.expand(channels, -1).clone()
    raise NsepError(f"cannot map {have} channels to {channels}")


def resample(samples: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Band-limited resampling (torchaudio's windowed sinc)."""
    if orig == new:
        return samples
    return AF.resample(samples, orig, new, lowpass_filter_width=LOWPASS_WIDTH, rolloff=ROLLOFF)


def _resample_context(orig: int, new: int) -> int:
    """Input frames either side of a block that resampling it needs: the sinc's reach, in whole steps."""
    if orig == new:
        return 0
    divisor = math.gcd(orig, new)
    step, out = orig // divisor, new // divisor
    reach = math.ceil(LOWPASS_WIDTH * step / (ROLLOFF * min(step, out))) + step
    return step * math.ceil(reach / step)


def load(
    path: str,
    sample_rate: int | None = None,
    channels: int | None = None,
    max_seconds: float | None = None,
    allow_silent: bool = False,
) -> Audio:
    """Decode a whole file (or its first ``max_seconds``) to ``[channels, frames]`` float32."""
    with _open(path) as handle:
        rate = handle.samplerate
        frames = handle.frames if max_seconds is None else min(handle.frames, int(max_seconds * rate))
        samples = _read(handle, path, 0, frames)
    check_samples(path, samples, allow_silent)
    samples = fit_channels(samples, channels)
    if sample_rate is not None:
        samples = resample(samples, rate, sample_rate)
        rate = sample_rate
    return Audio(samples, rate, path)


def stream(
    path: str,
    block_seconds: float,
    sample_rate: int | None = None,
    channels: int | None = None,
    min_seconds: float = 0.0,
) -> Iterator[torch.Tensor]:
    """Yield consecutive blocks of a file, resampled and channel-fitted, memory bounded by a block.

    Resampling uses context from the neighbouring blocks, so the concatenated output equals
    resampling the whole file (up to float rounding). A file shorter than ``min_seconds`` is refused
    before anything is decoded.
    """
    with _open(path) as handle:
        rate = handle.samplerate
        if handle.frames < min_seconds * rate:
            raise InputError(path, f"too short to analyse ({_duration(handle.frames, rate)}; at least "
                                   f"{min_seconds * 1000:g} ms needed)")
        target = sample_rate or rate
        step = rate // math.gcd(rate, target)  # input frames that map to a whole number of output frames
        block = max(step, int(block_seconds * rate) // step * step)
        context = _resample_context(rate, target)
        position = 0
        any_audio = False
        while position < handle.frames:
            start = max(0, position - context)
            stop = min(handle.frames, position + block + context)
            samples = _read(handle, path, start, stop - start)
            any_audio = check_samples(path, samples, allow_silent=True) >= SILENCE_PEAK or any_audio
            samples = resample(fit_channels(samples, channels), rate, target)
            head = (position - start) * target // rate
            length = math.ceil((min(position + block, handle.frames) - position) * target / rate)
            yield samples[:, head : head + length]
            position += block
        if not any_audio:
            raise InputError(path, "audio is silent")


def _duration(frames: int, rate: int) -> str:
    seconds = frames / rate
    return f"{frames} samples" if seconds < 0.001 else f"{seconds * 1000:.0f} ms"


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    target = Path(path)
    if target.exists() and not overwrite:
        raise OutputExistsError(str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o666 & ~current_umask())  # mkstemp makes it private; the output should not be
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def save(
    path: str | Path,
    samples: torch.Tensor,
    sample_rate: int,
    bits: str = "16",
    overwrite: bool = False,
) -> Path:
    """Write ``[channels, frames]`` to wav or flac atomically; ``bits`` is 16, 24 or float."""
    target = Path(path)
    fmt = WRITABLE_FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise NsepError(f"{target}: cannot write {target.suffix or 'extensionless'} files (use .wav or .flac)")
    subtype = SUBTYPES[bits]
    if fmt == "FLAC" and subtype == "FLOAT":
        raise NsepError(f"{target}: FLAC cannot hold float samples (use .wav or 16/24 bits)")
    data, _ = to_pcm(samples.detach().cpu(), bits)
    with atomic_output(target, overwrite) as tmp:
        sf.write(tmp, data, sample_rate, subtype=subtype, format=fmt)
    return target


PCM_SCALE = {"16": (1 << 15, np.int16, 0), "24": (1 << 23, np.int32, 8)}  # full scale, container, shift


def to_pcm(samples: torch.Tensor, bits: str) -> tuple[np.ndarray, int]:
    """``[channels, frames]`` floats -> interleaved ``[frames, channels]`` samples for soundfile to
    write as they are, and how many lay beyond full scale (clipped).

    Integer formats are quantised here, rounding to the nearest step (libsndfile's own conversion
    rounds towards minus infinity, a half-step bias, and costs more); 24-bit samples go in the top
    three bytes of int32s, as libsndfile reads them. ``float`` passes through unclipped.
    """
    data = samples.to(torch.float32).numpy().T
    if bits == "float":
        return data, 0
    scale, dtype, shift = PCM_SCALE[bits]
    clipped = int(np.count_nonzero(np.abs(data) > 1.0))
    pcm = np.rint(data * np.float32(scale)).clip(-scale, scale - 1).astype(dtype)
    if shift:
        pcm <<= shift
    return pcm, clipped


def resample_stream(blocks: Iterator[torch.Tensor], orig: int, new: int, block: int) -> Iterator[torch.Tensor]:
    """Resample a stream of ``[channels, n]`` blocks; the concatenated output equals resampling the
    concatenated input (up to float rounding), with memory bounded by ``block`` and the sinc's reach."""
    if orig == new:
        yield from blocks
        return
    step = orig // math.gcd(orig, new)
    block = max(step, block // step * step)
    context = _resample_context(orig, new)
    source = iter(blocks)
    buffer: torch.Tensor | None = None
    buffer_start = position = 0
    exhausted = False
    while True:
        while not exhausted and (buffer is None or buffer_start + buffer.shape[-1] < position + block + context):
            piece = next(source, None)
            if piece is None:
                exhausted = True
            else:
                buffer = piece if buffer is None else torch.cat([buffer, piece], dim=-1)
        end = buffer_start + (0 if buffer is None else buffer.shape[-1])
        if position >= end:
            return
        start, stop = max(0, position - context), min(end, position + block + context)
        out = resample(buffer[:, start - buffer_start : stop - buffer_start], orig, new)
        head = (position - start) * new // orig
        yield out[:, head : head + math.ceil((min(position + block, end) - position) * new / orig)]
        position += block
        drop = max(0, position - context - buffer_start)
        buffer, buffer_start = buffer[:, drop:], buffer_start + drop
