"""Render SoundFonts into an NSynth-format note bank: ``examples.json`` plus ``audio/{note_str}.wav``.

Every note of the plan (``nsep.data.plan``) is held, released, mixed to mono, checked for silence,
peak-normalised and written atomically as 16-bit wav. Notes whose wav already exists are skipped,
so an interrupted render resumes; ``examples.json`` is rebuilt at the end from the notes on disk.
FluidSynth runs at twice the target rate (``oversample=2``) and a half-band filter decimates: its
sample interpolation has no anti-aliasing, so bright notes rendered directly at 16 kHz fold
their upper harmonics down into the band.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import struct
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from nsep import __version__
from nsep.audio import atomic_output
from nsep.data import splits
from nsep.data.plan import Instrument, RenderConfig, plan
from nsep.data.soundfont import Synth, single_threaded_openmp
from nsep.errors import NsepError, UsageError
from nsep.taxonomy import QUALITIES, family_index, source_index

CHUNK_NOTES = 40  # notes per work unit handed to a worker


@dataclass
class RenderSummary:
    """What a render did, counted in notes."""

    instruments: int = 0
    planned: int = 0
    rendered: int = 0
    skipped: int = 0  # already on disk
    silent: int = 0
    shared: int = 0  # left out: they sound a sample of a font in ``exclude_shared_with``
    seconds: float = 0.0


def _peak(note_str: str, config: RenderConfig) -> float:
    if config.peak_jitter_db == 0:
        return config.peak
    rng = np.random.default_rng([config.seed, zlib.crc32(note_str.encode())])
    return config.peak * 10 ** (-rng.uniform(0, config.peak_jitter_db) / 20)


def note_complete(path: Path, config: RenderConfig) -> bool:
    """Whether a note's wav on disk has the render's length, rate and one channel (so a resume keeps it)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        return False
    return info.frames == config.frames and info.samplerate == config.sample_rate and info.channels == 1


def _halfband(pairs: int = 12, beta: float = 8.0) -> np.ndarray:
    """Taps at odd offsets 1, 3, ... of a Kaiser-windowed half-band low-pass (the even ones are 0).

    With 12 pairs (47 taps): -0.45 dB at 0.44 x Nyquist of the output, -26 dB at 0.56, -80 dB past 0.63.
    """
    offsets = np.arange(1, 2 * pairs, 2)
    half = 2 * pairs - 1
    window = np.kaiser(2 * half + 1, beta)[half + offsets]
    return (0.5 * np.sinc(offsets / 2) * window).astype(np.float32)


_HALFBAND = _halfband()


def decimate2(x: np.ndarray, taps: np.ndarray = _HALFBAND) -> np.ndarray:
    """Low-pass and keep every other sample of an even-length signal (a polyphase half-band filter)."""
    pairs = len(taps)
    odd = np.pad(x[1::2], (pairs, pairs))
    n = len(x) // 2
    y = 0.5 * x[0::2]
    for j, tap in enumerate(taps):  # x[2n + o] and x[2n - o] for odd o = 2j + 1
        y += tap * (odd[pairs + j : pairs + j + n] + odd[pairs - j - 1 : pairs - j - 1 + n])
    return y


def write_wav16(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono 16-bit PCM wav atomically.

    The file is written into the fresh temporary file without truncating it: on ext4, rewriting a
    truncated file forces a flush at close, which costs milliseconds per note.
    """
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(pcm), b"WAVE", b"fmt ", 16, 1, 1, sample_rate,
                         sample_rate * 2, 2, 16, b"data", len(pcm))
    with atomic_output(path, overwrite=True) as tmp, open(tmp, "r+b") as handle:
        handle.write(header + pcm)


class NoteRenderer:
    """Renders notes of any instrument into ``out/audio``; one per process (it owns a synth)."""

    def __init__(self, out: Path, config: RenderConfig):
        self.audio = out / "audio"
        self.config = config
        self.rate = config.sample_rate * config.oversample
        self.synth = Synth(self.rate)

    def render(self, instrument: Instrument, notes: list[tuple[int, int]]) -> tuple[int, int, int]:
        """Render the notes not yet on disk; return (rendered, skipped, silent)."""
        config = self.config
        rendered = skipped = silent = 0
        selected = False
        for pitch, velocity in notes:
            target = self.audio / f"{instrument.note_str(pitch, velocity)}.wav"
            if target.exists() and note_complete(target, config):
                skipped += 1
                continue
            if not selected:
                font_id = self.synth.load(instrument.soundfont)
                self.synth.select(instrument.channel, font_id, instrument.bank, instrument.program)
                selected = True
            held = round(config.held * self.rate)
            total = config.frames * config.oversample
            samples = self.synth.note(instrument.channel, pitch, velocity, held, total)
            if config.oversample == 2:
                samples = decimate2(samples)
            peak = float(np.abs(samples).max())
            if peak < config.silence:
                silent += 1
                continue
            write_wav16(target, samples * (_peak(target.stem, config) / peak), config.sample_rate)
            rendered += 1
        return rendered, skipped, silent

    def close(self) -> None:
        self.synth.close()


_worker: NoteRenderer | None = None


def _init_worker(out: Path, config: RenderConfig) -> None:
    global _worker
    single_threaded_openmp()
    _worker = NoteRenderer(out, config)


def _work(unit: tuple[Instrument, list[tuple[int, int]]]) -> tuple[int, int, int, int]:
    assert _worker is not None
    instrument, notes = unit
    return (len(notes), *_worker.render(instrument, notes))


def _units(instruments: list[Instrument], config: RenderConfig) -> list[tuple[Instrument, list[tuple[int, int]]]]:
    units = []
    for instrument in instruments:
        notes = [(p, v) for p in instrument.pitches for v in config.velocities]
        units.extend((instrument, notes[i : i + CHUNK_NOTES]) for i in range(0, len(notes), CHUNK_NOTES))
    return units


def render(
    fonts: list[str | Path],
    out: str | Path,
    config: RenderConfig = RenderConfig(),
    workers: int = 1,
    valid_fraction: float = 0.15,
    split: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RenderSummary:
    """Render ``fonts`` into the note bank ``out`` (resuming what is there) and write ``examples.json``.

    Whole instruments go to ``train``/``valid`` (``valid_fraction``, seeded by ``config.seed``),
    or every instrument to ``split`` when given (e.g. ``test``).
    """
    start = time.perf_counter()
    for font in fonts:
        if not Path(font).is_file():
            raise NsepError(f"{font}: no such SoundFont")
    out = Path(out)
    instruments = plan(fonts, config)
    if not instruments:
        if config.exclude_shared_with and plan(fonts, replace(config, exclude_shared_with=())):
            raise UsageError("nothing to render: every chosen note sounds a sample of "
                             f"{', '.join(map(str, config.exclude_shared_with))} (--exclude-shared-with)")
        raise UsageError("nothing to render: no preset of these fonts matches the chosen families and programs")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    units = _units(instruments, config)
    summary = RenderSummary(instruments=len(instruments), planned=sum(len(n) for _, n in units))
    if config.exclude_shared_with:
        unfiltered = plan(fonts, replace(config, exclude_shared_with=()))
        summary.shared = sum(len(i.pitches) for i in unfiltered) * len(config.velocities) - summary.planned
    done = 0
    for notes, rendered, skipped, silent in _run(units, out, config, workers):
        summary.rendered += rendered
        summary.skipped += skipped
        summary.silent += silent
        done += notes
        if on_progress:
            on_progress(done, summary.planned)
    write_examples(out, instruments, config, valid_fraction, split)
    summary.seconds = time.perf_counter() - start
    write_manifest(out, fonts, config, summary, {"valid_fraction": valid_fraction, "split": split})
    return summary


def _run(units, out: Path, config: RenderConfig, workers: int):
    if workers <= 1:
        renderer = NoteRenderer(out, config)
        try:
            for instrument, notes in units:
                yield (len(notes), *renderer.render(instrument, notes))
        finally:
            renderer.close()
        return
    # fork starts workers at once; spawn (elsewhere) re-imports the command line and torch in each
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(out, config)) as pool:
        futures = [pool.submit(_work, unit) for unit in units]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BrokenProcessPool:
            raise NsepError("a rendering worker died (out of memory?); run again to resume") from None
        finally:
            for future in futures:
                future.cancel()


def example_record(instrument: Instrument, pitch: int, velocity: int, note: int, config: RenderConfig) -> dict:
    """One ``examples.json`` entry with every NSynth field plus soundfont, bank and program."""
    return {
        "note": note,
        "note_str": instrument.note_str(pitch, velocity),
        "instrument": instrument.index,
        "instrument_str": instrument.instrument_str,
        "pitch": pitch,
        "velocity": velocity,
        "sample_rate": config.sample_rate,
        "qualities": [0] * len(QUALITIES),
        "qualities_str": [],
        "instrument_family": family_index(instrument.family),
        "instrument_family_str": instrument.family,
        "instrument_source": source_index(instrument.source),
        "instrument_source_str": instrument.source,
        "soundfont": Path(instrument.soundfont).name,
        "bank": instrument.bank,
        "program": instrument.program,
    }


def write_examples(
    out: Path, instruments: list[Instrument], config: RenderConfig, valid_fraction: float, split: str | None
) -> dict[str, dict]:
    """Rebuild ``examples.json`` from the planned notes whose wav is on disk; assign splits."""
    on_disk = set(os.listdir(out / "audio"))
    examples: dict[str, dict] = {}
    for instrument in instruments:
        for pitch in instrument.pitches:
            for velocity in config.velocities:
                if f"{instrument.note_str(pitch, velocity)}.wav" in on_disk:
                    record = example_record(instrument, pitch, velocity, len(examples), config)
                    examples[record["note_str"]] = record
    splits.assign(examples, valid_fraction, config.seed, split)
    save_examples(out, examples)
    return examples


def save_examples(out: Path, examples: dict[str, dict]) -> None:
    """Write ``examples.json`` atomically."""
    with atomic_output(out / "examples.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(examples, indent=1))


def write_manifest(out: Path, fonts: list[str | Path], config: RenderConfig, summary: RenderSummary,
                   splitting: dict) -> None:
    manifest = {
        "nsep_version": __version__,
        "fonts": [str(f) for f in fonts],
        "config": asdict(config),
        "splitting": splitting,
        "summary": asdict(summary),
    }
    with atomic_output(out / "render.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))
