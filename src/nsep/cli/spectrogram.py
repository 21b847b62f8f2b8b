"""``nsep spectrogram``: readable spectrogram pictures (or arrays) of audio files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from nsep.audio import STDIN, atomic_output
from nsep.cli import common
from nsep.errors import UsageError
from nsep.features import SCALES, WINDOWS, FeatureSpec


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size wants WIDTHxHEIGHT in pixels, got {text!r}") from None
    if not (200 <= width <= 20000 and 150 <= height <= 20000):
        raise UsageError("--size must be between 200x150 and 20000x20000 pixels")
    return width, height


def _table(records: list[dict]) -> Table:
    table = Table(box=None)
    for column in ("path", "output", "bands", "frames", "duration_s"):
        table.add_column(column, justify="right" if column in ("bands", "frames", "duration_s") else "left")
    for r in records:
        table.add_row(r["path"], r["output"], str(r["bands"]), str(r["frames"]), f"{r['duration_s']:.2f}")
    return table


def _targets(paths: list[str], out: Path, suffix: str) -> list[Path]:
    """One output per input: ``out`` itself for a single input to a file name, else files in folder ``out``."""
    if len(paths) == 1 and not out.is_dir() and out.suffix:
        return [out]
    names: dict[str, int] = {}
    targets = []
    for path in paths:
        stem = "stdin" if path == STDIN else Path(path).stem
        names[stem] = names.get(stem, 0) + 1
        name = stem if names[stem] == 1 else f"{stem}-{names[stem]}"
        targets.append(out / f"{name}{suffix}")
    return targets


def spectrogram(
    paths: list[str] = typer.Argument(None, help="Audio files, folders, globs, or - for stdin.", show_default=False),
    output: Path = typer.Option(..., "--output", "-o", help="Output file (one input) or folder."),
    files_from: str = typer.Option(None, "--files-from", help="Read more input paths from FILE (- for stdin), one a line."),
    scale: str = typer.Option("linear", help=f"Frequency scale: {', '.join(SCALES)}."),
    sample_rate: int = typer.Option(16_000, "--sample-rate", "-r", help="Resample to this rate first (Hz)."),
    n_fft: int = typer.Option(2048, "--n-fft", help="STFT size in samples."),
    hop: int = typer.Option(512, "--hop", help="STFT hop in samples."),
    window: str = typer.Option("hann", help=f"STFT window: {', '.join(WINDOWS)}."),
    bands: int = typer.Option(128, "--bands", "--n-mels", help="Bands of the mel or log scale."),
    fmin: float = typer.Option(0.0, "--fmin", help="Lowest frequency shown (Hz); log scale starts at 27.5 Hz if 0."),
    fmax: float = typer.Option(None, "--fmax", help="Highest frequency shown (Hz) (default: half the sample rate)."),
    top_db: float = typer.Option(80.0, "--db-range", help="Dynamic range shown below the peak (dB)."),
    size: str = typer.Option("1200x500", "--size", help="Picture size WIDTHxHEIGHT in pixels."),
    npy: bool = typer.Option(False, "--npy", help="Save the full-resolution dB array (.npy) instead of a picture."),
    overwrite: bool = typer.Option(False, "--overwrite", "-y", help="Replace existing output files."),
    json_: bool = common.JSON_OPTION,
    jsonl: bool = common.JSONL_OPTION,
    csv_: bool = common.CSV_OPTION,
) -> None:
    """Draw a spectrogram: time in seconds, frequency in Hz, a colour bar in dB."""
    fmt = common.output_format(json_, jsonl, csv_)
    try:
        spec = FeatureSpec(scale=scale, sample_rate=sample_rate, n_fft=n_fft, hop=hop, window=window,
                           n_bands=bands, fmin=fmin, fmax=fmax, top_db=top_db)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if spec.upper > sample_rate / 2 or spec.lower >= spec.upper:
        raise UsageError("need 0 <= --fmin < --fmax <= sample rate / 2")
    if hop > n_fft:
        raise UsageError("--hop must not exceed --n-fft")
    width, height = _parse_size(size)
    paths = common.input_files(paths, files_from)
    if len(paths) > 1 and output.suffix and not output.is_dir():
        raise UsageError(f"{len(paths)} inputs need --output to be a folder, not {output}")
    suffix = ".npy" if npy else ".png"
    if output.suffix and not output.is_dir() and output.suffix.lower() != suffix:
        raise UsageError(f"--output {output} should end in {suffix}, or name a folder")
    from nsep import plot, spectrogram as engine  # heavy imports only when there is work

    reporter = common.Reporter(fmt, _table)
    for path, target in zip(common.each_input(paths, reporter, "spectrogram"), _targets(paths, output, suffix)):
        def work(path: str = path, target: Path = target) -> None:
            with atomic_output(target, overwrite) as tmp:
                if npy:
                    result = engine.compute(path, spec, max_columns=1, npy_out=tmp)
                    bands_, frames = result.db.shape[0], result.frames
                else:
                    result = engine.compute(path, spec, max_columns=width)
                    plot.spectrogram_png(result, f"{Path(path).name} ({spec.scale}, n_fft {n_fft}, hop {hop}, {sample_rate} Hz)", tmp, (width, height))
                    bands_, frames = result.db.shape[0], result.frames
            reporter.add({"path": path, "output": str(target), "bands": bands_, "frames": frames,
                          "duration_s": round(result.duration, 3)})

        common.guarded(reporter, path, work)
    raise typer.Exit(reporter.finish())


def register(app: typer.Typer) -> None:
    app.command("spectrogram")(spectrogram)
