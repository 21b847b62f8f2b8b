"""``nsep classify``: the instrument family of single-instrument clips."""

from __future__ import annotations

import typer
from rich.table import Table

from nsep.cli import common
from nsep.errors import UsageError

MODEL_OPTION = typer.Option(None, "--model", "-m", help="Model name (see `nsep models list`) or weights file.")
DEVICE_OPTION = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda, cuda:N or mps.")
FP32_OPTION = typer.Option(False, "--fp32", help="Run in float32 (default: bf16 autocast on a GPU or a CPU with native "
                                                 "bf16, 1.3-1.9x faster on such a CPU; see docs/PERFORMANCE.md).")
BATCH_OPTION = typer.Option(None, "--batch-size", "-b", min=1, help="Windows per forward pass (default: 512 on a GPU, 64 on the CPU).")
WORKERS_OPTION = typer.Option(None, "--workers", "-j", min=0, help="Decoder processes (default: automatic).")
FILES_FROM_OPTION = typer.Option(None, "--files-from", help="Read more input paths from FILE (- for stdin), one a line.")
PATHS_ARGUMENT = typer.Argument(None, help="Audio files, folders, globs, or - for stdin.", show_default=False)


def _table(records: list[dict]) -> Table:
    table = Table(box=None)
    table.add_column("path")
    table.add_column("family")
    table.add_column("confidence", justify="right")
    table.add_column("runners-up")
    for r in records:
        others = ", ".join(f"{t['family']} {t['probability']:.2f}" for t in r["top_k"][1:])
        table.add_row(r["path"], r["family"], f"{r['confidence']:.3f}", others)
    return table


def classify(
    paths: list[str] = PATHS_ARGUMENT,
    model: str = MODEL_OPTION,
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="Families listed per file, most likely first."),
    families: str = typer.Option(None, "--families", help="Decide among these families only, comma-separated (e.g. "
                                 "the seed's bass,flute,guitar,keyboard); their probabilities are renormalised among them."),
    device: str = DEVICE_OPTION,
    fp32: bool = FP32_OPTION,
    batch_size: int = BATCH_OPTION,
    workers: int = WORKERS_OPTION,
    files_from: str = FILES_FROM_OPTION,
    json_: bool = common.JSON_OPTION,
    jsonl: bool = common.JSONL_OPTION,
    csv_: bool = common.CSV_OPTION,
) -> None:
    """Name the instrument family playing in each clip (NSynth's 11 families).

    Clips longer than the model's window are judged window by window and the windows averaged.

    Under torchrun each process takes its share of the files; the first prints every result, in input order.
    """
    fmt = common.output_format(json_, jsonl, csv_)
    files = common.input_files(paths, files_from)
    from nsep import distributed, engine
    from nsep.models import registry

    predictor = registry.load(model, "classify", str(distributed.setup(device)), autocast=not fp32)
    labels = predictor.info.labels
    if families:
        try:
            columns = engine.label_columns(labels, [f.strip() for f in families.split(",") if f.strip()])
        except ValueError as err:
            raise UsageError(f"--families: {err}") from None
        labels = [labels[i] for i in columns]
    k = min(top_k, len(labels))
    reporter = common.Reporter(fmt, _table, sharded=True)
    mine = list(distributed.shard(files))
    with common.progress(len(mine), "classify") as bar:
        task = bar.add_task("classify", total=len(mine))
        for result in engine.run(predictor, mine, batch_size, workers, on_done=lambda: bar.advance(task)):
            if result.error:
                reporter.fail(result.error)
                continue
            probs = engine.combine(result)
            if families:
                probs = engine.restrict(probs, columns)
            order = (-probs).argsort(kind="stable")[:k].tolist()  # ties: the first family
            rounded = probs.astype(float).round(4).tolist()
            reporter.add({
                "path": result.path,
                "family": labels[order[0]],
                "confidence": rounded[order[0]],
                "top_k": [{"family": labels[i], "probability": rounded[i]} for i in order],
                "probabilities": dict(zip(labels, rounded)),
                "windows": len(result.probabilities),
                "model": predictor.info.name,
            })
    raise typer.Exit(reporter.finish())


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)
