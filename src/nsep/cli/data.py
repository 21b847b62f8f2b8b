"""``nsep data``: render SoundFonts (or STK's models) into NSynth-format note banks, split them, count them."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import typer
from rich.table import Table

from nsep.cli import common
from nsep.errors import UsageError

app = typer.Typer(
    rich_markup_mode=common.HELP_MARKUP,
    help="Training data: render note banks from SoundFonts (or STK's instrument models), split them by instrument, inspect them.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _ints(text: str, option: str) -> tuple[int, ...]:
    """``"0-7,24,30-31"`` -> (0, 1, ..., 7, 24, 30, 31)."""
    values: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            low, _, high = part.partition("-")
            values.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise UsageError(f"{option} wants numbers and ranges like 0-7,24, got {text!r}") from None
    if not values:
        raise UsageError(f"{option} is empty")
    return tuple(dict.fromkeys(values))


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


def _summary_table(records: list[dict]) -> Table:
    table = Table(box=None)
    for column in records[0]:
        table.add_column(column, justify="left" if column == "output" else "right")
    for r in records:
        table.add_row(*(f"{v:.1f}" if isinstance(v, float) else str(v) for v in r.values()))
    return table


@app.command()
def render(
    fonts: list[Path] = typer.Argument(..., help="SoundFonts (.sf2, .sf3) to render.", show_default=False),
    output: Path = typer.Option(..., "--output", "-o", help="Bank folder to write (resumed if it exists)."),
    workers: int = typer.Option(os.cpu_count() or 1, "--workers", "-j", help="Parallel rendering processes."),
    families: str = typer.Option(None, "--families", help="Comma-separated families to render (default: all 12)."),
    programs: str = typer.Option(None, "--programs", help="General-MIDI programs to render, e.g. 0-7,24 (default: all with a family)."),
    variations: bool = typer.Option(False, "--variations", help="Also render the GS variation banks 1-127."),
    synthetic: list[Path] = typer.Option([], "--synthetic", help="A font whose every sound is synthesised (FM/OPL): label it synthetic (repeatable; rendered too)."),
    exclude_shared_with: list[Path] = typer.Option([], "--exclude-shared-with", help="Leave out every note that sounds a sample of this font (same name, or same length, loop and rate): keep a test font's recordings out of training (repeatable)."),
    sample_rate: int = typer.Option(16_000, "--sample-rate", "-r", help="Sample rate of the notes (Hz)."),
    held: float = typer.Option(3.0, "--held", help="Seconds from note-on to note-off."),
    release: float = typer.Option(1.0, "--release", help="Seconds kept after note-off."),
    velocities: str = typer.Option("25,50,75,100,127", "--velocities", help="MIDI velocities."),
    pitches: str = typer.Option("21-108", "--pitches", help="MIDI pitch range LOW-HIGH."),
    family_ranges: bool = typer.Option(True, "--family-ranges/--full-range", help="Keep each family in its plausible pitch range."),
    peak: float = typer.Option(0.9, "--peak", help="Normalise every note to this peak."),
    peak_jitter_db: float = typer.Option(0.0, "--peak-jitter-db", help="Lower each note's peak by a seeded random 0..N dB."),
    oversample: int = typer.Option(2, "--oversample", help="Render at N times the rate, then decimate (FluidSynth does not band-limit)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split and the peak jitter."),
    valid_fraction: float = typer.Option(0.15, "--valid-fraction", help="Share of instrument groups per family put in the valid split."),
    split: str = typer.Option(None, "--split", help="Put every instrument in this split instead (e.g. test)."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Render SoundFonts into an NSynth-format note bank (examples.json + audio/*.wav)."""
    from nsep.data.plan import RenderConfig
    from nsep.data.render import render as render_bank

    fmt = common.output_format(json_, False, False)
    low_high = _ints(pitches, "--pitches")
    config = RenderConfig(
        sample_rate=sample_rate, held=held, release=release, velocities=_ints(velocities, "--velocities"),
        pitches=(min(low_high), max(low_high)), family_ranges=family_ranges,
        families=_names(families) if families else RenderConfig.families,
        programs=_ints(programs, "--programs") if programs else None, variations=variations,
        synthetic_fonts=tuple(p.name for p in synthetic),
        exclude_shared_with=tuple(str(p) for p in exclude_shared_with), peak=peak, peak_jitter_db=peak_jitter_db,
        oversample=oversample, seed=seed,
    )
    if workers < 1:
        raise UsageError("--workers must be 1 or more")
    all_fonts = list(dict.fromkeys([*fonts, *synthetic]))
    with common.progress(None, "render") as bar:
        task = bar.add_task("render", total=None)
        summary = render_bank(all_fonts, output, config, workers, valid_fraction, split,
                              on_progress=lambda done, total: bar.update(task, completed=done, total=total))
    record = {"output": str(output), "instruments": summary.instruments, "planned": summary.planned,
              "rendered": summary.rendered, "skipped": summary.skipped, "silent": summary.silent, "shared": summary.shared,
              "seconds": round(summary.seconds, 1),
              "notes_per_s": round(summary.rendered / summary.seconds, 1) if summary.seconds else 0.0}
    reporter = common.Reporter(fmt, _summary_table)
    reporter.add(record)
    raise typer.Exit(reporter.finish())


@app.command("stk")
def stk_command(
    output: Path = typer.Option(..., "--output", "-o", help="Bank folder to write (resumed if it exists)."),
    workers: int = typer.Option(os.cpu_count() or 1, "--workers", "-j", help="Notes rendered at once (stk-demo processes)."),
    families: str = typer.Option(None, "--families", help="Comma-separated families to render (default: all STK has)."),
    sample_rate: int = typer.Option(16_000, "--sample-rate", "-r", help="Sample rate of the notes (Hz)."),
    held: float = typer.Option(3.0, "--held", help="Seconds from note-on to note-off."),
    release: float = typer.Option(1.0, "--release", help="Seconds kept after note-off."),
    velocities: str = typer.Option("25,50,75,100,127", "--velocities", help="MIDI velocities."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split."),
    valid_fraction: float = typer.Option(0.15, "--valid-fraction", help="Share of instrument groups per family put in the valid split."),
    split: str = typer.Option(None, "--split", help="Put every instrument in this split instead (e.g. test)."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Render the Synthesis ToolKit's physical and FM models (stk-demo) into an NSynth-format note bank."""
    from nsep.data import stk
    from nsep.data.plan import RenderConfig

    config = RenderConfig(sample_rate=sample_rate, held=held, release=release,
                          velocities=_ints(velocities, "--velocities"),
                          families=_names(families) if families else RenderConfig.families, seed=seed)
    if workers < 1:
        raise UsageError("--workers must be 1 or more")
    with common.progress(None, "render") as bar:
        task = bar.add_task("render", total=None)
        summary = stk.render(output, config, workers, valid_fraction, split,
                             on_progress=lambda done, total: bar.update(task, completed=done, total=total))
    reporter = common.Reporter(common.output_format(json_, False, False), _summary_table)
    reporter.add({"output": str(output), "instruments": summary.instruments, "planned": summary.planned,
                  "rendered": summary.rendered, "skipped": summary.skipped, "silent": summary.silent,
                  "seconds": round(summary.seconds, 1)})
    raise typer.Exit(reporter.finish())


@app.command("gus")
def gus_command(
    config: Path = typer.Argument(..., help="TiMidity configuration listing the patches (FreePats: freepats.cfg)."),
    output: Path = typer.Option(..., "--output", "-o", help="SoundFont (.sf2) to write."),
    name: str = typer.Option(None, "--name", help="Name stored in the SoundFont (default: the configuration's name)."),
    overwrite: bool = typer.Option(False, "--overwrite", "-y", help="Replace OUTPUT if it exists."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Convert a GUS patch set (e.g. FreePats) into a SoundFont, so `nsep data render` can render it."""
    from nsep.data.gus import convert

    presets = convert(config, output, name or config.stem, overwrite=overwrite)
    reporter = common.Reporter(common.output_format(json_, False, False), _summary_table)
    reporter.add({"output": str(output), "presets": presets, "bytes": output.stat().st_size})
    raise typer.Exit(reporter.finish())


@app.command("samples")
def samples_command(
    instruments: list[str] = typer.Argument(..., help="PROGRAM=FOLDER pairs: a General-MIDI program (number or name, e.g. 40 or violin) and a folder of its note recordings (A4.wav, Cs4.mp3, 60.flac).", show_default=False),
    output: Path = typer.Option(..., "--output", "-o", help="SoundFont (.sf2) to write."),
    name: str = typer.Option(None, "--name", help="Name stored in the SoundFont (default: OUTPUT's name)."),
    sample_rate: int = typer.Option(22_050, "--sample-rate", "-r", help="Rate the recordings are stored at (Hz)."),
    max_seconds: float = typer.Option(4.5, "--max-seconds", help="Longest stretch of a recording kept (seconds after its onset)."),
    overwrite: bool = typer.Option(False, "--overwrite", "-y", help="Replace OUTPUT if it exists."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Build a SoundFont from folders of single-note recordings, so `nsep data render` can render them."""
    from nsep.data.samples import convert, program_number

    pairs = []
    for spec in instruments:
        program, sep, folder = spec.partition("=")
        if not sep or not folder:
            raise UsageError(f"instruments are PROGRAM=FOLDER, got {spec!r}")
        pairs.append((program_number(program.strip()), Path(folder)))
    if sample_rate < 8_000 or max_seconds <= 0:
        raise UsageError("--sample-rate must be at least 8000 and --max-seconds above 0")
    recordings = convert(pairs, output, name or output.stem, sample_rate, max_seconds, overwrite=overwrite)
    reporter = common.Reporter(common.output_format(json_, False, False), _summary_table)
    reporter.add({"output": str(output), "instruments": len(pairs), "recordings": recordings,
                  "bytes": output.stat().st_size})
    raise typer.Exit(reporter.finish())


@app.command("split")
def split_command(
    folders: list[Path] = typer.Argument(..., help="Note bank folders (examples.json + audio/), split together.", show_default=False),
    valid_fraction: float = typer.Option(0.15, "--valid-fraction", help="Share of instrument groups per family put in valid."),
    seed: int = typer.Option(0, "--seed", help="Seed of the assignment."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Assign whole instruments to train/valid, stratified by family; stored as each note's split.

    Several banks are split as one: a General-MIDI program of a family lands on the same side in
    every bank (fonts reuse each other's samples).
    """
    from nsep.data import splits
    from nsep.data.nsynth import read_examples
    from nsep.data.render import save_examples

    banks = {folder: read_examples(folder) for folder in dict.fromkeys(folders)}
    joined = {(folder, note): record for folder, examples in banks.items() for note, record in examples.items()}
    try:
        splits.assign(joined, valid_fraction, seed)
    except ValueError as err:
        raise UsageError(str(err)) from None
    reporter = common.Reporter(common.output_format(json_, False, False), _info_table)
    for folder, examples in banks.items():
        save_examples(folder, examples)
        for record in _counts(folder, examples, ("split",)):
            reporter.add(record)
    raise typer.Exit(reporter.finish())


def _counts(folder: Path, examples: dict[str, dict], kinds: tuple[str, ...]) -> list[dict]:
    fields = {"family": "instrument_family_str", "source": "instrument_source_str", "split": "split"}
    records = []
    for kind in kinds:
        notes: dict[str, int] = defaultdict(int)
        instruments: dict[str, set] = defaultdict(set)
        for record in examples.values():
            name = str(record.get(fields[kind]))
            notes[name] += 1
            instruments[name].add(record["instrument_str"])
        for name in sorted(notes):
            records.append({"bank": str(folder), "by": kind, "name": name, "instruments": len(instruments[name]),
                            "notes": notes[name]})
    records.append({"bank": str(folder), "by": "total", "name": "all",
                    "instruments": len({r["instrument_str"] for r in examples.values()}), "notes": len(examples)})
    return records


def _info_table(records: list[dict]) -> Table:
    table = Table(box=None)
    for column in ("bank", "by", "name", "instruments", "notes"):
        table.add_column(column, justify="right" if column in ("instruments", "notes") else "left")
    for r in records:
        table.add_row(r["bank"], r["by"], r["name"], str(r["instruments"]), str(r["notes"]))
    return table


@app.command()
def info(
    folders: list[Path] = typer.Argument(..., help="Note bank folders (nsep's or NSynth's).", show_default=False),
    json_: bool = common.JSON_OPTION,
    jsonl: bool = common.JSONL_OPTION,
    csv_: bool = common.CSV_OPTION,
) -> None:
    """Count notes and instruments by family, source and split."""
    from nsep.data.nsynth import load_bank

    reporter = common.Reporter(common.output_format(json_, jsonl, csv_), _info_table)
    for folder in folders:
        def work(folder: Path = folder) -> None:
            examples = {e.note_str: {"instrument_family_str": e.instrument_family_str,
                                     "instrument_source_str": e.instrument_source_str,
                                     "split": e.split, "instrument_str": e.instrument_str}
                        for e in load_bank(folder)}
            for record in _counts(folder, examples, ("family", "source", "split")):
                reporter.add(record)

        common.guarded(reporter, str(folder), work)
    raise typer.Exit(reporter.finish())
