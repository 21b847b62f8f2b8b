"""``nsep detect``: which instrument families play in each file, and when."""

from __future__ import annotations

import math

import typer
from rich.table import Table
from rich.text import Text

from nsep.cli import common
from nsep.cli.classify import (BATCH_OPTION, DEVICE_OPTION, FILES_FROM_OPTION, FP32_OPTION, MODEL_OPTION, PATHS_ARGUMENT,
                               WORKERS_OPTION)
from nsep.errors import UsageError

BAR_WIDTH = 48
MAX_INSTRUMENTS = 6


def parse_k(text: str) -> tuple[int, int]:
    """``3`` or ``1..6``: how many instruments a mixture holds, as an inclusive range."""
    low, _, high = text.partition("..")
    try:
        k = (int(low), int(high or low))
    except ValueError:
        raise UsageError(f"--k {text}: give a number or a range such as 1..6") from None
    if not 1 <= k[0] <= k[1] <= MAX_INSTRUMENTS:
        raise UsageError(f"--k {text}: instruments per mixture must lie in 1..{MAX_INSTRUMENTS}")
    return k


def parse_modes(text: str) -> tuple[str, ...]:
    """``seed``, ``music`` or ``seed,music``."""
    modes = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    if not modes or any(m not in ("seed", "music") for m in modes):
        raise UsageError(f"--mode {text}: choose seed, music or seed,music")
    return modes


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}:{rest:04.1f}"


def _bar(segments: list[dict], duration: float, width: int = BAR_WIDTH) -> Text:
    """One character per ``duration / width`` seconds: a block where the family plays."""
    cells = [False] * width
    scale = width / max(duration, 1e-9)
    for s in segments:
        first = min(int(s["start"] * scale), width - 1)
        for i in range(first, max(first + 1, min(math.ceil(s["end"] * scale), width))):
            cells[i] = True
    text = Text()
    for on in cells:
        text.append("█" if on else "·", style="green" if on else "dim")
    return text


def _table(records: list[dict]) -> Table:
    table = Table(box=None)
    table.add_column("path")
    table.add_column("family")
    table.add_column("p", justify="right")
    table.add_column("timeline")
    table.add_column("segments")
    for r in records:
        by_family: dict[str, list[dict]] = {}
        for s in r["segments"]:
            by_family.setdefault(s["family"], []).append(s)
        shown = [f for f in r["present"] if f in r["labels"] or f in by_family]
        head = f"{r['path']} ({_clock(r['duration'])})"
        if not shown:
            table.add_row(head, "-", "", "", "nothing detected")
        for i, family in enumerate(shown):
            runs = by_family.get(family, [])
            spans = ", ".join(f"{_clock(s['start'])}-{_clock(s['end'])}" for s in runs[:3])
            more = f" +{len(runs) - 3}" if len(runs) > 3 else ""
            name = Text(family, style="bold" if family in r["labels"] else "dim")
            table.add_row(head if i == 0 else "", name, f"{r['present'][family]:.2f}",
                          _bar(runs, r["duration"]), spans + more)
    return table


def detect(
    paths: list[str] = PATHS_ARGUMENT,
    model: str = MODEL_OPTION,
    threshold: float = typer.Option(None, "--threshold", "-t", min=0.0, max=1.0,
                                    help="One decision threshold for every family (default: the model's, chosen on validation)."),
    min_duration: float = typer.Option(0.5, "--min-duration", min=0.0, help="Drop timeline segments shorter than this (seconds)."),
    device: str = DEVICE_OPTION,
    fp32: bool = FP32_OPTION,
    batch_size: int = BATCH_OPTION,
    workers: int = WORKERS_OPTION,
    files_from: str = FILES_FROM_OPTION,
    json_: bool = common.JSON_OPTION,
    jsonl: bool = common.JSONL_OPTION,
    csv_: bool = common.CSV_OPTION,
) -> None:
    """Name the instrument families playing in each file, with a timeline of when each plays.

    Files of any length are read in overlapping windows as a stream, so memory does not grow with
    the file. A family is present when its probability reaches its threshold somewhere in the file.

    Under torchrun each process takes its share of the files; the first prints every result, in input order.
    """
    fmt = common.output_format(json_, jsonl, csv_)
    files = common.input_files(paths, files_from)
    from nsep import detection, distributed
    from nsep.models import registry

    predictor = registry.load(model, "detect", str(distributed.setup(device)), autocast=not fp32)
    labels = predictor.info.labels
    thresholds = detection.Thresholds.of(predictor.info, threshold)
    reporter = common.Reporter(fmt, _table, sharded=True)
    mine = list(distributed.shard(files))
    with common.progress(len(mine), "detect") as bar:
        task = bar.add_task("detect", total=len(mine))
        for result in detection.run(predictor, mine, thresholds, min_duration, batch_size, workers,
                                    on_done=lambda: bar.advance(task)):
            if result.error:
                reporter.fail(result.error)
                continue
            present = result.present.astype(float).round(4).tolist()
            reporter.add({
                "path": result.path,
                "duration": round(result.duration, 3),
                "present": dict(zip(labels, present)),
                "labels": thresholds.present(labels, result.present),
                "segments": [s.to_dict() for s in result.segments],
                "windows": result.windows,
                "model": predictor.info.name,
            })
    raise typer.Exit(reporter.finish())


def register(app: typer.Typer) -> None:
    app.command("detect")(detect)
