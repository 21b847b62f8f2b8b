"""Separate audio files into stem files: stream in, separate, write every stem atomically.

Stems come out at the input's sample rate and channel count. **Residual policy**: the model's
stems are resampled back to the input's rate, and whatever the input holds that they do not (for
nsep's 16 kHz models the band above 8 kHz; for any model, its reconstruction error) goes to the
``other`` stem, so the written stems always sum to the input (to the output format's precision).
Nothing is rescaled. With ``highs="follow"`` the band above the model's Nyquist frequency is shared
out among the stems instead (:mod:`nsep.highband`); what they do not take stays in ``other``, and
the stems still sum to the input. Families not asked for (``stems``) are summed into ``other`` as well; with
``stems=None``, stems that stay near-silent (``SILENT_DB`` below the input's energy) are dropped
into ``other`` after the pass.

Each stem is written to a temporary file beside its target and renamed into place only when the
whole file has been separated; an error or an interrupt removes the temporary files.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from nsep import audio, separation
from nsep.errors import InputError, NsepError, OutputExistsError, UsageError
from nsep.highband import HighBandSplitter

OTHER = "other"
HIGHS = ("other", "follow")  # where the band above the model's Nyquist frequency goes (--highs)
SILENT_DB = -50.0  # a stem this far below the input's energy counts as absent
BLOCK_SECONDS = 30.0


@dataclass(frozen=True)
class Output:
    """Where and how stems are written."""

    folder: Path
    template: str = "{track}/{stem}.{ext}"
    ext: str = "wav"
    bits: str = "16"  # 16, 24 or float
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.ext not in ("wav", "flac"):
            raise UsageError(f"cannot write .{self.ext} stems (use wav or flac)")
        if self.bits not in audio.SUBTYPES:
            raise UsageError(f"--bits must be one of {', '.join(audio.SUBTYPES)}")
        if self.ext == "flac" and self.bits == "float":
            raise UsageError("FLAC cannot hold float samples (use wav, or 16/24 bits)")
        try:
            self.template.format(track="t", stem="s", ext="e")
        except (KeyError, IndexError, ValueError) as err:
            raise UsageError(f"--filename {self.template!r}: use only {{track}}, {{stem}} and {{ext}} ({err})") from None

    def path(self, track: str, stem: str) -> Path:
        return self.folder / self.template.format(track=track, stem=stem, ext=self.ext)


@dataclass
class Written:
    path: str
    stems: dict[str, str] = field(default_factory=dict)  # stem -> file
    duration: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    clipped: int = 0  # samples clamped to [-1, 1] for an integer format


def plan(sources: list[str], wanted: list[str] | None) -> list[str]:
    """The stems to write, ``other`` last; unknown names are a usage error."""
    if wanted is not None:
        unknown = [s for s in wanted if s not in sources and s != OTHER]
        if unknown:
            raise UsageError(f"--stems: this model has no {', '.join(unknown)} (it has {', '.join(sources)})")
        return [s for s in sources if s in wanted and s != OTHER] + [OTHER]
    return [s for s in sources if s != OTHER] + [OTHER]


def track_name(path: str, taken: dict[str, int]) -> str:
    """The input's file stem, numbered when two inputs share one."""
    stem = "stdin" if path == audio.STDIN else Path(path).stem
    taken[stem] = taken.get(stem, 0) + 1
    return stem if taken[stem] == 1 else f"{stem}-{taken[stem]}"


class _StemWriters:
    """One temporary file per stem; :meth:`commit` renames them all into place."""

    def __init__(self, targets: dict[str, Path], rate: int, channels: int, output: Output):
        self.targets, self.output = targets, output
        self.temps: dict[str, Path] = {}
        self.files: dict[str, sf.SoundFile] = {}
        self.energy = dict.fromkeys(targets, 0.0)
        self.clipped = 0
        fmt, subtype = audio.WRITABLE_FORMATS[f".{output.ext}"], audio.SUBTYPES[output.bits]
        for stem, target in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part.{output.ext}", dir=target.parent)
            os.close(fd)
            self.temps[stem] = Path(tmp)
            self.files[stem] = sf.SoundFile(tmp, "w", rate, channels, subtype, format=fmt)

    def write(self, stems: dict[str, torch.Tensor]) -> None:
        for stem, samples in stems.items():
            self.energy[stem] += float(torch.linalg.vector_norm(samples)) ** 2
            data, clipped = audio.to_pcm(samples, self.output.bits)
            self.clipped += clipped
            self.files[stem].write(data)

    def merge_into_other(self, stems: list[str], rate: int, channels: int) -> None:
        """Add the given stems' files into ``other`` (a second pass over the temporary files)."""
        for f in self.files.values():
            f.close()
        other = self.temps[OTHER]
        fmt, subtype = audio.WRITABLE_FORMATS[f".{self.output.ext}"], audio.SUBTYPES[self.output.bits]
        fd, tmp = tempfile.mkstemp(prefix=".other.", suffix=f".part.{self.output.ext}", dir=other.parent)
        os.close(fd)
        readers = [sf.SoundFile(self.temps[s]) for s in [OTHER, *stems]]
        try:
            with sf.SoundFile(tmp, "w", rate, channels, subtype, format=fmt) as out:
                while True:
                    blocks = [r.read(1 << 16, dtype="float32", always_2d=True) for r in readers]
                    if not len(blocks[0]):
                        break
                    total = torch.from_numpy(np.sum(blocks, axis=0).T)
                    out.write(audio.to_pcm(total, self.output.bits)[0])
        finally:
            for r in readers:
                r.close()
        os.replace(tmp, other)
        for stem in stems:
            self.temps.pop(stem).unlink(missing_ok=True)
            self.targets.pop(stem)

    def commit(self) -> dict[str, str]:
        for f in self.files.values():
            f.close()
        mask = audio.current_umask()
        for stem, tmp in self.temps.items():
            tmp.chmod(0o666 & ~mask)
            os.replace(tmp, self.targets[stem])
        return {stem: str(path) for stem, path in self.targets.items()}

    def discard(self) -> None:
        for f in self.files.values():
            with contextlib.suppress(Exception):
                f.close()
        for tmp in self.temps.values():
            tmp.unlink(missing_ok=True)


def _model_blocks(path: str, native: deque, rate: int, model_rate: int) -> Iterator[torch.Tensor]:
    """The input at the model's rate, block by block; the native-rate blocks are queued for the residual."""
    def tee() -> Iterator[torch.Tensor]:
        for block in audio.stream(path, BLOCK_SECONDS):
            native.append(block)
            yield block

    return audio.resample_stream(tee(), rate, model_rate, int(BLOCK_SECONDS * rate))


def _take(queue: deque, count: int) -> torch.Tensor:
    """The next ``count`` samples of a queue of ``[C, n]`` blocks."""
    parts, have = [], 0
    while have < count:
        block = queue.popleft()
        need = count - have
        if block.shape[-1] > need:
            queue.appendleft(block[:, need:])
            block = block[:, :need]
        parts.append(block)
        have += block.shape[-1]
    return torch.cat(parts, dim=-1)


def separate_file(separator: separation.Separator, path: str, track: str, output: Output,
                  settings: separation.Settings = separation.Settings(), stems: list[str] | None = None,
                  highs: str = "other") -> Written:
    """Separate one file into stem files (see the module's description)."""
    head = audio.info(path)
    rate, channels, frames = head.sample_rate, head.channels, head.frames
    model_rate = separator.sample_rate
    chosen = plan(separator.sources, stems)
    targets = {stem: output.path(track, stem) for stem in chosen}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not output.overwrite:
        raise OutputExistsError(existing[0])
    stats = None
    if separator.normalise:
        stats = separation.input_stats(audio.resample_stream(audio.stream(path, BLOCK_SECONDS), rate, model_rate,
                                                             int(BLOCK_SECONDS * rate)))
    native: deque = deque()
    total = math.ceil(frames * model_rate / rate)
    model_stems = separation.run(separator, _model_blocks(path, native, rate, model_rate), total, channels, settings, stats)
    index = {s: i for i, s in enumerate(separator.sources)}
    n_sources = len(separator.sources)

    def back_to_input_rate() -> Iterator[torch.Tensor]:
        flat = (s.reshape(n_sources * channels, -1) for s in model_stems)
        for block in audio.resample_stream(flat, model_rate, rate, int(BLOCK_SECONDS * model_rate)):
            yield block.view(n_sources, channels, -1)

    splitter = HighBandSplitter(rate, model_rate) if highs == "follow" and rate > model_rate else None
    writers = _StemWriters(targets, rate, channels, output)
    try:
        written, mix_energy, peak = 0, 0.0, 0.0
        for block in back_to_input_rate():
            n = min(block.shape[-1], frames - written)
            if n <= 0:
                break
            block, mix = block[..., :n], _take(native, n)
            if splitter is not None:  # every source takes its share of what the model could not hear
                block = splitter.apply(block.contiguous(), mix)
            out = {s: block[index[s]] for s in chosen if s != OTHER}
            out[OTHER] = mix - sum(out.values()) if out else mix.clone()
            writers.write(out)
            written += n
            mix_energy += float(mix.double().square().sum())
            peak = max(peak, float(mix.abs().max()))
        if written < frames:
            raise NsepError(f"{path}: separation ended at frame {written} of {frames}")
        if peak < audio.SILENCE_PEAK:
            raise InputError(path, "audio is silent")
        if stems is None:
            floor = mix_energy * 10 ** (SILENT_DB / 10)
            quiet = [s for s in chosen if s != OTHER and writers.energy[s] <= floor]
            if quiet:
                writers.merge_into_other(quiet, rate, channels)
        result = Written(path, writers.commit(), frames / rate, rate, channels, writers.clipped)
    except BaseException:
        writers.discard()
        raise
    return result
