"""``nsep train``: train nsep's models on NSynth-format note banks."""

from __future__ import annotations

from pathlib import Path

import typer

from nsep.cli import common
from nsep.errors import OutputExistsError, UsageError

app = typer.Typer(help="Train a model on NSynth-format data (rendered by `nsep data render`, or NSynth itself).",
                  no_args_is_help=True)


def _families(text: str | None) -> list[str]:
    from nsep.taxonomy import NSYNTH_FAMILIES

    if not text:
        return list(NSYNTH_FAMILIES)
    chosen = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in NSYNTH_FAMILIES]
    if unknown or len(chosen) < 2:
        raise UsageError(f"--families wants two or more of {', '.join(NSYNTH_FAMILIES)}")
    return chosen


class _Reporter:
    """Turns training events into a live progress bar and one log line per epoch on stderr."""

    def __init__(self, bar) -> None:
        self.bar, self.task = bar, None

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        if kind == "step":
            if self.task is None:
                self.task = self.bar.add_task("train", total=event["steps"])
            self.bar.update(self.task, completed=event["step"], description=f"epoch {event['epoch']} loss {event['loss']:.3f}")
        elif kind == "epoch":
            if self.task is not None:
                self.bar.remove_task(self.task)
                self.task = None
            common.log(f"epoch {event['epoch']}: train loss {event['train_loss']:.4f}, valid loss {event['valid_loss']:.4f}, "
                       f"valid accuracy {event['valid_accuracy']:.4f} ({event['seconds']} s)")
        else:
            common.log(" ".join(f"{k}={v}" for k, v in event.items() if k != "event"), level=0)


@app.command("classify")
def classify(
    data: list[Path] = typer.Option(..., "--data", help="NSynth-format folder(s) with a train/valid split by instrument."),
    out: Path = typer.Option(..., "--out", "-o", help="Weights file to write (.pt; .ubj for xgb)."),
    model: str = typer.Option("cnn", "--model", "-m", help="Architecture: cnn, resnet18 or xgb."),
    families: str = typer.Option(None, "--families", help="Comma-separated families [default: NSynth's 11]."),
    epochs: int = typer.Option(30, min=1),
    batch_size: int = typer.Option(128, "--batch-size", "-b", min=2),
    lr: float = typer.Option(2e-3, "--lr"),
    steps_per_epoch: int = typer.Option(None, "--steps-per-epoch", min=1, help="[default: one pass over the notes]"),
    patience: int = typer.Option(8, help="Stop after this many epochs without a better validation accuracy."),
    width: int = typer.Option(None, help="Channel width of the cnn architecture."),
    max_notes: int = typer.Option(None, "--max-notes", min=10, help="Use a random subset of the notes."),
    no_augment: bool = typer.Option(False, "--no-augment", help="Train on the clean notes only."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", "--device", "-d"),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT's .last.pt checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", "-y"),
) -> None:
    """Train a family classifier; validation uses instruments never trained on."""
    if out.exists() and not (overwrite or resume):
        raise OutputExistsError(str(out))
    chosen = _families(families)
    if model == "xgb":
        from nsep.train.xgb import train_xgb

        metrics = train_xgb([str(d) for d in data], str(out), chosen, seed=seed, max_notes=max_notes or 4000)
    else:
        from nsep.train.classify import TrainConfig, train

        config = {"width": width} if width and model == "cnn" else {}
        cfg = TrainConfig(data=[str(d) for d in data], out=str(out), architecture=model, families=chosen, epochs=epochs,
                          batch_size=batch_size, lr=lr, patience=patience, steps_per_epoch=steps_per_epoch,
                          augment=not no_augment, seed=seed, device=device, model_config=config, max_notes=max_notes)
        with common.progress(None, "train") as bar:
            metrics = train(cfg, resume=resume, report=_Reporter(bar))
    common.log(f"best validation accuracy {metrics.get('valid_accuracy')} -> {out}")
