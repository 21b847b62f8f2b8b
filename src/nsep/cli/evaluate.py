"""``nsep eval``: measure a model on held-out NSynth-format data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from nsep.cli import common
from nsep.cli.classify import BATCH_OPTION, DEVICE_OPTION, MODEL_OPTION, WORKERS_OPTION
from nsep.errors import UsageError

app = typer.Typer(help="Measure a model on held-out data.", no_args_is_help=True)


def _scores_table(scores: dict) -> Table:
    table = Table(title=f"{scores['model']}: accuracy {scores['accuracy']:.4f} on {scores['notes']} notes", box=None)
    table.add_column("family")
    table.add_column("notes", justify="right")
    table.add_column("accuracy", justify="right")
    for family in scores["labels"]:
        acc = scores["per_family"][family]
        table.add_row(family, str(scores["support"][family]), "-" if acc is None else f"{acc:.4f}")
    return table


@app.command("classify")
def classify(
    data: Path = typer.Option(..., "--data", help="NSynth-format folder to score on."),
    model: str = MODEL_OPTION,
    families: str = typer.Option(None, "--families", help="Score only these families, deciding among them alone."),
    split: str = typer.Option(None, "--split", help="Use only notes of this split (train, valid, test)."),
    plot: Path = typer.Option(None, "--plot", help="Write the confusion matrix as a PNG."),
    device: str = DEVICE_OPTION,
    batch_size: int = BATCH_OPTION,
    workers: int = WORKERS_OPTION,
    json_: bool = common.JSON_OPTION,
) -> None:
    """Accuracy, per-family accuracy and the confusion matrix."""
    from nsep.data.nsynth import load_bank
    from nsep.evaluate import classify_scores
    from nsep.models import registry

    predictor = registry.load(model, "classify", device)
    examples = load_bank(str(data), split=split) if split else load_bank(str(data))
    chosen = [f.strip() for f in families.split(",")] if families else None
    with common.progress(len(examples), "eval") as bar:
        task = bar.add_task("eval", total=len(examples))
        try:
            scores = classify_scores(predictor, examples, chosen, batch_size, workers, on_done=lambda: bar.advance(task))
        except ValueError as err:
            raise UsageError(str(err)) from None
    for failure in scores["failed"]:
        common.error(failure)
    if plot:
        from nsep.audio import atomic_output
        from nsep.plot import confusion_png
        import numpy as np

        with atomic_output(plot, overwrite=True) as tmp:
            confusion_png(np.asarray(scores["confusion"]), scores["labels"],
                          f"{scores['model']} on {data.name}: {scores['accuracy']:.1%}", tmp)
    if json_:
        sys.stdout.write(json.dumps(scores, indent=2) + "\n")
    else:
        common.stdout.print(_scores_table(scores))
    raise typer.Exit(1 if scores["failed"] else 0)
