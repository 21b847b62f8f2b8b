"""``nsep separate``: one audio file per instrument family (or per demucs stem) of each input."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from nsep.cli import common
from nsep.cli.classify import DEVICE_OPTION, FILES_FROM_OPTION, PATHS_ARGUMENT
from nsep.errors import UsageError


def _table(records: list[dict]) -> Table:
    table = Table(box=None)
    for column in ("path", "stems", "duration_s", "folder"):
        table.add_column(column, justify="right" if column == "duration_s" else "left")
    for r in records:
        folders = sorted({str(Path(p).parent) for p in r["stems"].values()})
        table.add_row(r["path"], ", ".join(r["stems"]), f"{r['duration_s']:.2f}", ", ".join(folders))
    return table


def _stem_list(stems: str | None, two_stems: str | None) -> list[str] | None:
    if stems and two_stems:
        raise UsageError("choose one of --stems and --two-stems")
    if two_stems:
        return [two_stems.strip()]
    if stems:
        return [s.strip() for s in stems.split(",") if s.strip()]
    return None


def separate(
    paths: list[str] = PATHS_ARGUMENT,
    output: Path = typer.Option(..., "--output", "-o", help="Folder the stems go into."),
    model: str = typer.Option(None, "--model", "-m",
                              help="unet-bilstm (default), unet, bandsplit, htdemucs, htdemucs_6s, htdemucs_ft, or a weights file."),
    filename: str = typer.Option("{track}/{stem}.{ext}", "--filename", help="Stem file names under OUTPUT: {track}, {stem}, {ext}."),
    stems: str = typer.Option(None, "--stems", help="Comma-separated stems to write; the rest is summed into `other` "
                                                    "(default: every stem that is not silent)."),
    two_stems: str = typer.Option(None, "--two-stems", help="Write STEM and `other` (everything else)."),
    flac: bool = typer.Option(False, "--flac", help="Write FLAC instead of WAV."),
    bits: str = typer.Option("16", "--bits", help="Sample format: 16, 24 or float (wav only)."),
    segment: float = typer.Option(None, "--segment", min=0.1, help="Seconds per model window (default: the model's)."),
    overlap: float = typer.Option(0.25, "--overlap", min=0.0, max=0.95, help="Overlap of consecutive windows."),
    shifts: int = typer.Option(0, "--shifts", min=0, help="Passes with random delays, averaged (slower, a little better)."),
    batch_size: int = typer.Option(None, "--batch-size", "-b", min=1,
                                   help="Windows per forward pass (default: 16 on a GPU, under 8 GB for htdemucs; "
                                        "2 on a CPU, where memory, not speed, grows with it)."),
    fp32: bool = typer.Option(False, "--fp32", help="Run in float32 on a GPU (default: bf16 autocast there; stems differ by "
                                                    "under 1e-3, see docs/PERFORMANCE.md). CPUs always run separators in float32."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --shifts delays."),
    families: str = typer.Option(None, "--families", help="Comma-separated families known to play: the mix is shared out "
                                                          "among these only (nsep's own models)."),
    gate: bool = typer.Option(None, "--gate/--no-gate", help="Run the detector on each file first and share the mix out among "
                                                             "the families it finds only (nsep's own models; default: on for "
                                                             "models trained with --gated)."),
    detect_model: str = typer.Option(None, "--detect-model", help="Detector for --gate (default: the one the model's "
                                                                            "gate was chosen with, else detect-cnn)."),
    gate_threshold: float = typer.Option(None, "--gate-threshold", min=0.0, max=1.0,
                                         help="Presence a family needs to pass --gate (default: the model's, chosen on validation mixtures; else 0.05)."),
    highs: str = typer.Option("other", "--highs", help="The band above the model's (above 8 kHz for nsep's 16 kHz "
                                                       "models): `other`, or `follow` to share it out among the stems by "
                                                       "their shares of the octave below (a heuristic; docs/MODELS.md)."),
    device: str = DEVICE_OPTION,
    overwrite: bool = typer.Option(False, "--overwrite", "-y", help="Replace stem files that exist."),
    files_from: str = FILES_FROM_OPTION,
    json_: bool = common.JSON_OPTION,
    jsonl: bool = common.JSONL_OPTION,
    csv_: bool = common.CSV_OPTION,
) -> None:
    """Split each input into one file per instrument family.

    Stems keep the input's sample rate and channels and sum back to the input: what the model
    leaves out (e.g. the band above 8 kHz for nsep's 16 kHz models) goes to `other`, unless
    --highs follow shares that band out among the stems. Files of any
    length stream through in windows, with memory bounded by --batch-size windows. Each stem is
    written to a temporary file and renamed into place when its input is done.
    """
    fmt = common.output_format(json_, jsonl, csv_)
    files = common.input_files(paths, files_from)
    from nsep import separation, stemfiles
    from nsep.models import separator as separators

    if highs not in stemfiles.HIGHS:
        raise UsageError(f"--highs {highs}: choose {' or '.join(stemfiles.HIGHS)}")
    out = stemfiles.Output(output, filename, "flac" if flac else "wav", bits, overwrite)
    wanted = _stem_list(stems, two_stems)
    model_ = separators.load(model, device, autocast=not fp32)
    default_batch = model_.gpu_batch_size if model_.device.type == "cuda" else 2
    settings = separation.Settings(segment, overlap, shifts, batch_size or default_batch, seed)
    stemfiles.plan(model_.sources, wanted)  # unknown stem names fail before any work
    named = _named_families(families, bool(gate), model_)
    if gate is None:  # a model trained with --gated separates with the detector's gate unless told otherwise
        gate = model_.gated and named is None
    present = _detected(files, detect_model, gate_threshold, device, model_) if gate else {}
    reporter = common.Reporter(fmt, _table)
    taken: dict[str, int] = {}
    for path in common.each_input(files, reporter, "separate"):
        track = stemfiles.track_name(path, taken)

        def work(path: str = path, track: str = track) -> None:
            if gate:  # --families gated the model once, above
                model_.gate(present.get(path))
            done = stemfiles.separate_file(model_, path, track, out, settings, wanted, highs)
            if done.clipped:
                common.warn(f"{path}: {done.clipped} samples beyond full scale were clipped in {bits}-bit stems "
                            "(use --bits float to keep them)")
            reporter.add({"path": path, "stems": done.stems, "duration_s": round(done.duration, 3),
                          "sample_rate": done.sample_rate, "channels": done.channels, "model": model_.name})

        common.guarded(reporter, path, work)
    if model_.device.type == "cuda":
        import torch

        common.log(f"peak GPU memory: {torch.cuda.max_memory_allocated(model_.device) / 1e9:.2f} GB in tensors, "
                   f"{torch.cuda.max_memory_reserved(model_.device) / 1e9:.2f} GB held by PyTorch's allocator", level=1)
    raise typer.Exit(reporter.finish())


def _named_families(families: str | None, gate: bool, separator) -> set[str] | None:
    """The families given with --families, checked against the model's sources."""
    if not families:
        return None
    if gate:
        raise UsageError("choose one of --families and --gate")
    named = {f.strip() for f in families.split(",") if f.strip()}
    unknown = sorted(named - set(separator.sources))
    if unknown or not named:
        raise UsageError(f"--families: this model has no {', '.join(unknown) or 'such family'} "
                         f"(it has {', '.join(separator.sources)})")
    separator.gate(named)  # refuses models that cannot be gated, before any work
    return named


def _detected(files: list[str], detect_model: str | None, threshold: float | None, device: str,
              separator) -> dict[str, set[str]]:
    """The families the detector finds in each file (files it cannot read are left out: they fail later)."""
    from nsep import audio, detection
    from nsep.models import registry
    from nsep.models import separator as separators

    if audio.STDIN in files:
        audio.buffer_stdin()  # read twice: by the detector, then by the separator
    separator.gate(set())  # refuses models that cannot be gated, before any work
    detector = registry.load(detect_model or separator.gate_detector, "detect", device, autocast=separator.autocast)
    common.log(f"gate: {detector.info.name}", level=1)
    thresholds = detection.Thresholds.of(detector.info, separator.gate_threshold if threshold is None else threshold)
    found = {}
    for result in detection.run(detector, files, thresholds):
        if result.error is None and result.present is not None:
            found[result.path] = set(thresholds.present(detector.info.labels, result.present))
            common.log(f"{result.path}: detected {', '.join(sorted(found[result.path])) or 'nothing'}", level=1)
    return found


def register(app: typer.Typer) -> None:
    app.command("separate")(separate)
