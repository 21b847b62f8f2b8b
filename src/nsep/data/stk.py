"""Render the Synthesis ToolKit's instruments into an NSynth-format note bank.

STK (Debian's ``stk``: ``stk-demo``) models instruments physically (waveguide clarinets, flutes,
bowed strings, plucked strings, modal bars) or by FM synthesis (Rhodes, B3 organ, voices). Such
sounds are far from any sample library, which is what a classifier trained on SoundFonts lacks.
Each :class:`Voice` is one STK model with some control settings, labelled with the family and the
General-MIDI program it imitates (the split groups instruments by program, as for SoundFonts), and
every note is ``synthetic``. A note is rendered by ``stk-demo`` from a two-line SKINI score at twice
the bank's rate, decimated, and kept only if it sounds: physical models fall silent outside the
range they can speak in, so a sustained voice must still sound after its attack.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from nsep.data.plan import Instrument, RenderConfig
from nsep.data.render import RenderSummary, decimate2, note_complete, write_examples, write_manifest, write_wav16
from nsep.errors import NsepError, UsageError
from nsep.taxonomy import classify_program, pitch_range

STK_DEMO = "stk-demo"


@dataclass(frozen=True)
class Voice:
    """One STK model with control settings (SKINI control changes sent after note-on)."""

    model: str  # stk-demo's instrument name
    program: int  # the General-MIDI program it imitates: its family and split group
    pitches: tuple[int, int]  # MIDI range it speaks in (intersected with the family's range)
    controls: tuple[tuple[int, int], ...] = ()  # (controller, value) pairs
    preset: int | None = None  # SKINI ProgramChange (ModalBar's and BandedWG's presets)
    sustained: bool = True  # a held note keeps sounding (not plucked or struck)

    @property
    def family(self) -> str:
        found = classify_program(self.program)
        assert found is not None, self.program
        return found.family


VIBRATO = ((1, 40), (11, 60))  # modulation wheel (vibrato depth) and vibrato rate
VOICES: tuple[Voice, ...] = (
    Voice("Clarinet", 71, (50, 94)), Voice("Clarinet", 71, (50, 94), ((2, 100), *VIBRATO)),
    Voice("BlowHole", 71, (50, 94), ((11, 40),)), Voice("BlowHole", 71, (50, 94), ((4, 60),)),
    Voice("Saxofony", 65, (44, 88)), Voice("Saxofony", 66, (40, 84), ((11, 90), *VIBRATO)),
    Voice("Flute", 73, (60, 96)), Voice("Flute", 73, (60, 96), ((4, 60), *VIBRATO)),
    Voice("Recorder", 74, (60, 96)), Voice("Recorder", 74, (60, 96), VIBRATO),
    Voice("BlowBotl", 76, (60, 90)), Voice("PercFlut", 72, (60, 96)),
    Voice("Brass", 56, (54, 84)), Voice("Brass", 61, (54, 84), VIBRATO),
    Voice("Bowed", 40, (55, 100)), Voice("Bowed", 42, (36, 76), ((2, 90), (4, 30))),
    Voice("Bowed", 41, (48, 88), ((2, 50), *VIBRATO)),
    Voice("Plucked", 24, (40, 88), sustained=False), Voice("StifKarp", 25, (40, 88), sustained=False),
    Voice("StifKarp", 32, (28, 55), ((4, 110),), sustained=False),
    Voice("Mandolin", 105, (55, 88), sustained=False), Voice("Mandolin", 105, (55, 88), ((2, 30),), sustained=False),
    Voice("Sitar", 104, (48, 84), sustained=False),
    Voice("Rhodey", 4, (28, 100), sustained=False), Voice("Rhodey", 4, (28, 100), ((2, 90),), sustained=False),
    Voice("Wurley", 5, (28, 100), sustained=False),
    Voice("TubeBell", 14, (48, 96), sustained=False),
    Voice("ModalBar", 12, (48, 96), preset=0, sustained=False),
    Voice("ModalBar", 11, (53, 89), preset=1, sustained=False),
    Voice("ModalBar", 13, (60, 108), preset=4, sustained=False),
    Voice("BandedWG", 9, (60, 100), preset=1, sustained=False),
    Voice("BeeThree", 16, (24, 96)), Voice("BeeThree", 17, (24, 96), ((2, 100), (4, 30))),
    Voice("BeeThree", 18, (24, 96), ((1, 60), (11, 90))),
    Voice("HevyMetl", 84, (36, 96)), Voice("Moog", 81, (36, 96)), Voice("Moog", 38, (28, 55), ((2, 100),)),
    Voice("Simple", 80, (36, 96)),
    Voice("FMVoices", 52, (40, 84), ((2, 0),)), Voice("FMVoices", 53, (40, 84), ((2, 64),)),
    Voice("VoicForm", 54, (40, 76), ((4, 0),)), Voice("VoicForm", 54, (40, 76), ((4, 20), *VIBRATO)),
)


def available(binary: str = STK_DEMO) -> str | None:
    """The path of ``stk-demo``, or None when STK is not installed."""
    return shutil.which(binary)


def instruments(voices: tuple[Voice, ...], config: RenderConfig) -> list[Instrument]:
    """One :class:`Instrument` per voice, numbered within family_source like a SoundFont render."""
    counters: dict[str, int] = {}
    found = []
    for bank, voice in enumerate(voices):
        family = voice.family
        if family not in config.families:
            continue
        allowed = pitch_range(family) if config.family_ranges else range(0, 128)
        low = max(voice.pitches[0], config.pitches[0], allowed.start)
        high = min(voice.pitches[1], config.pitches[1], allowed.stop - 1)
        if low > high:
            continue
        number = counters.get(family, 0)
        counters[family] = number + 1
        found.append(Instrument(len(found), f"stk:{voice.model}", bank, voice.program, voice.model, family,
                                "synthetic", number, tuple(range(low, high + 1))))
    return found


def score(voice: Voice, pitch: int, velocity: int, held: float, release: float) -> str:
    """A SKINI score (delta times in seconds) that plays one note for ``held`` seconds."""
    lines = [] if voice.preset is None else [f"ProgramChange 0.0 1 {voice.preset}"]
    lines.append(f"NoteOn 0.0 1 {pitch} {velocity}")
    lines += [f"ControlChange 0.0 1 {number} {value}" for number, value in voice.controls]
    lines.append(f"NoteOff {held} 1 {pitch} 64")
    lines.append(f"NoteOn {release} 1 {pitch} 0")  # keeps the score running through the release
    return "\n".join(lines) + "\n"


def play(voice: Voice, pitch: int, velocity: int, config: RenderConfig, binary: str) -> np.ndarray:
    """One note at the bank's rate (``config.frames`` samples), straight from ``stk-demo``."""
    rate = config.sample_rate * config.oversample
    with tempfile.TemporaryDirectory(prefix="nsep-stk-") as work:
        ski, wav = Path(work, "note.ski"), Path(work, "note.wav")
        ski.write_text(score(voice, pitch, velocity, config.held, config.release))
        done = subprocess.run([binary, voice.model, "-s", str(rate), "-ow", str(wav), "-if", str(ski)],
                              capture_output=True, timeout=60)
        if done.returncode != 0 or not wav.exists():
            raise NsepError(f"stk-demo {voice.model} failed: {done.stderr.decode(errors='replace').strip()[-200:]}")
        samples, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    samples = samples.mean(axis=1)
    total = config.frames * config.oversample
    samples = np.pad(samples[:total], (0, max(0, total - len(samples))))
    return decimate2(samples) if config.oversample == 2 else samples


def sounds(samples: np.ndarray, sustained: bool, config: RenderConfig) -> bool:
    """Loud enough, and for a sustained voice still sounding in the second half of the held time."""
    if not np.isfinite(samples).all() or np.abs(samples).max() < config.silence:
        return False
    if not sustained:
        return True
    rate = config.sample_rate

    def rms(a: float, b: float) -> float:
        return float(np.sqrt(np.mean(samples[round(a * rate):round(b * rate)] ** 2)))

    return rms(config.held / 2, config.held) >= 0.1 * rms(0.0, config.held / 2)


def render(
    out: str | Path,
    config: RenderConfig = RenderConfig(),
    workers: int = 1,
    valid_fraction: float = 0.15,
    split: str | None = None,
    voices: tuple[Voice, ...] = VOICES,
    on_progress: Callable[[int, int], None] | None = None,
    binary: str = STK_DEMO,
) -> RenderSummary:
    """Render ``voices`` into the note bank ``out`` (resuming what is there) and write ``examples.json``."""
    start = time.perf_counter()
    path = available(binary)
    if path is None:
        raise UsageError(f"{binary} not found: install the Synthesis ToolKit (Debian/Ubuntu: apt-get install stk)")
    out = Path(out)
    chosen = instruments(voices, config)
    if not chosen:
        raise UsageError("nothing to render: no STK voice matches the chosen families and pitches")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    jobs = [(instrument, pitch, velocity) for instrument in chosen for pitch in instrument.pitches
            for velocity in config.velocities]
    summary = RenderSummary(instruments=len(chosen), planned=len(jobs))

    def one(job: tuple[Instrument, int, int]) -> str:
        instrument, pitch, velocity = job
        target = out / "audio" / f"{instrument.note_str(pitch, velocity)}.wav"
        if target.exists() and note_complete(target, config):
            return "skipped"
        voice = voices[instrument.bank]
        samples = play(voice, pitch, velocity, config, path)
        if not sounds(samples, voice.sustained, config):
            return "silent"
        write_wav16(target, samples * (config.peak / np.abs(samples).max()), config.sample_rate)
        return "rendered"

    with ThreadPoolExecutor(max(1, workers)) as pool:  # each note is its own stk-demo process
        for done, outcome in enumerate(pool.map(one, jobs), 1):
            setattr(summary, outcome, getattr(summary, outcome) + 1)
            if on_progress:
                on_progress(done, len(jobs))
    write_examples(out, chosen, config, valid_fraction, split)
    summary.seconds = time.perf_counter() - start
    write_manifest(out, [f"{path} ({len(voices)} voices)"], config, summary,
                   {"valid_fraction": valid_fraction, "split": split})
    return summary

