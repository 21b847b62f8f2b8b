"""``nsep train``: train nsep's models on NSynth-format note banks."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from nsep.cli import common
from nsep.errors import OutputExistsError, UsageError

app = typer.Typer(rich_markup_mode=common.HELP_MARKUP, help="Train a model on NSynth-format data (rendered by `nsep data render`, or NSynth itself).",
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
        elif kind == "average":
            epochs, score = event["epochs"], next((k, v) for k, v in event.items() if k.startswith("valid_"))
            common.log(f"mean of the weights of epochs {epochs[0]}-{epochs[-1]}: {score[0].replace('_', ' ')} "
                       f"{score[1]:.4f} -> {event['path']}")
        else:
            common.log(" ".join(f"{k}={v}" for k, v in event.items() if k != "event"), level=0)


DEVICES_OPTION = typer.Option(1, "--devices", min=1, help="Train in this many processes, one a GPU (on the CPU: "
                              "gloo); each takes its part of every batch. Not needed under torchrun.")
AVERAGE_TAIL_OPTION = typer.Option(0.0, "--average-tail", min=0.0, max=1.0,
                                   help="Also write OUT.average.pt: the mean of the weights at the end of each epoch "
                                        "in this last share of the run (0.5: its second half), validated.")
MAX_MINUTES_OPTION = typer.Option(None, "--max-minutes", min=0.1, help="Training-time budget: the learning rate anneals "
                                  "to zero within it, and the run stops after the epoch that crosses it.")


def _rerun(argv: list[str]) -> None:
    """One process of ``--devices N``: this same command line, through the CLI's entry point."""
    from nsep.cli import main

    sys.argv = argv
    main()


def _spread(devices: int, batch_size: int) -> None:
    """With ``--devices N`` (N > 1), run this command line in N processes of one group, as torchrun
    would, and exit with their status; return in a process that is to train, alone or in a group."""
    from nsep import distributed

    if distributed.world() > 1:
        if devices not in (1, distributed.world()):
            raise UsageError(f"--devices {devices} in a group of {distributed.world()} processes: torchrun decides")
        return
    if devices > 1:
        distributed.local_batch(batch_size, devices)
        raise typer.Exit(distributed.launch(devices, _rerun, sys.argv))


@app.command("classify")
def classify(
    data: list[Path] = typer.Option(..., "--data", help="NSynth-format folder(s) with a train/valid split by instrument."),
    out: Path = typer.Option(..., "--out", "-o", help="Weights file to write (.pt; .ubj for xgb)."),
    model: str = typer.Option("cnn", "--model", "-m", help="Architecture: cnn, resnet18 or xgb."),
    families: str = typer.Option(None, "--families", help="Comma-separated families (default: NSynth's 11)."),
    epochs: int = typer.Option(30, min=1),
    batch_size: int = typer.Option(128, "--batch-size", "-b", min=2),
    lr: float = typer.Option(2e-3, "--lr"),
    steps_per_epoch: int = typer.Option(None, "--steps-per-epoch", min=1, help="(default: one pass over the notes)"),
    patience: int = typer.Option(8, help="Stop after this many epochs without a better validation accuracy."),
    max_minutes: float = MAX_MINUTES_OPTION,
    width: int = typer.Option(None, help="Channel width of the cnn architecture."),
    max_notes: int = typer.Option(None, "--max-notes", min=10, help="Use a random subset of the notes."),
    no_augment: bool = typer.Option(False, "--no-augment", help="Train on the clean notes only."),
    mixup: float = typer.Option(0.0, "--mixup", min=0.0, help="Mix each note with another at a Beta(A, A) weight, targets mixed alike (0: off)."),
    balance: str = typer.Option("family", "--balance", help="Draw notes family-balanced (family) or also balanced "
                                "across the --data banks within each family (library), so a large bank cannot crowd out the rest."),
    lowpass: float = typer.Option(0.0, "--lowpass", min=0.0, max=1.0, help="Share of notes band-limited at a random 2.5-7 kHz cutoff, as low-rate samples and lo-fi recordings are (0: off)."),
    init: str = typer.Option(None, "--init", help="Start from a trained classifier's weights (name or file, same architecture): fine-tuning."),
    teacher: str = typer.Option(None, "--teacher", help="Also learn a trained classifier's softened outputs (name or file, e.g. classify-ensemble): knowledge distillation."),
    distill: float = typer.Option(0.5, "--distill", min=0.0, max=1.0, help="Weight of the teacher's term in the loss (with --teacher)."),
    average_tail: float = AVERAGE_TAIL_OPTION,
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", "--device", "-d"),
    devices: int = DEVICES_OPTION,
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT's .last.pt checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", "-y"),
) -> None:
    """Train a family classifier; validation uses instruments never trained on."""
    if out.exists() and not (overwrite or resume):
        raise OutputExistsError(str(out))
    chosen = _families(families)
    if balance not in ("family", "library"):
        raise UsageError(f"--balance {balance}: choose family or library")
    if model == "xgb" and (devices > 1 or balance != "family" or max_minutes or average_tail):
        which = ("--devices" if devices > 1 else "--balance" if balance != "family" else "--max-minutes" if max_minutes
                 else "--average-tail")
        raise UsageError(f"{which} applies to the neural models, not xgb")
    _spread(devices, batch_size)
    if model == "xgb":
        from nsep.train.xgb import train_xgb

        metrics = train_xgb([str(d) for d in data], str(out), chosen, seed=seed, max_notes=max_notes or 4000)
    else:
        from nsep.train.classify import TrainConfig, train

        config = {"width": width} if width and model == "cnn" else {}
        cfg = TrainConfig(data=[str(d) for d in data], out=str(out), architecture=model, families=chosen, epochs=epochs,
                          batch_size=batch_size, lr=lr, patience=patience, steps_per_epoch=steps_per_epoch,
                          augment=not no_augment, mixup=mixup, lowpass=lowpass, teacher=teacher, distill=distill, init=init, seed=seed, device=device, model_config=config,
                          max_notes=max_notes, max_seconds=max_minutes * 60 if max_minutes else None, balance=balance,
                          average_tail=average_tail)
        with common.progress(None, "train") as bar:
            metrics = train(cfg, resume=resume, report=_Reporter(bar))
    common.log(f"best validation accuracy {metrics.get('valid_accuracy')} -> {out}")


SEED_OPTION = typer.Option(0, help="Seed of the run: the same command line gives the same model.")
DEVICE_OPTION = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda, cuda:N or mps.")
RESUME_OPTION = typer.Option(False, "--resume", help="Continue from OUT's .last.pt checkpoint.")
OVERWRITE_OPTION = typer.Option(False, "--overwrite", "-y", help="Replace OUT if it exists.")


class _DetectReporter(_Reporter):
    """The classifier's progress and epoch lines, plus the detection scores of each epoch."""

    def __call__(self, event: dict) -> None:
        super().__call__(event)
        if event["event"] == "epoch":
            common.log(f"  valid mAP {event['valid_map']}, micro F1 {event['valid_micro_f1']}, "
                       f"frame F1 {event['valid_frame_f1']}")


@app.command("detect")
def detect(
    data: list[Path] = typer.Option(..., "--data", help="NSynth-format folder(s) with a train/valid split by instrument."),
    out: Path = typer.Option(..., "--out", "-o", help="Weights file to write (.pt; .ubj for xgb)."),
    model: str = typer.Option("cnn", "--model", "-m", help="cnn (nsep's frame-level detector), mlp, seedcnn, resnet18 or xgb."),
    mode: str = typer.Option("seed,music", "--mode", help="Mixture kinds: seed (notes at t=0), music (notes in time), or both."),
    k: str = typer.Option("1..6", "--k", help="Instruments per mixture: a number or a range."),
    epochs: int = typer.Option(20, min=1),
    steps_per_epoch: int = typer.Option(200, "--steps-per-epoch", min=1),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=2),
    lr: float = typer.Option(1e-3, "--lr"),
    patience: int = typer.Option(6, help="Stop after this many epochs without a better validation mAP."),
    max_minutes: float = MAX_MINUTES_OPTION,
    valid_mixtures: int = typer.Option(512, "--valid-mixtures", min=8, help="Validation mixtures per mode."),
    frame_weight: float = typer.Option(1.0, "--frame-weight", min=0.0, help="Weight of the frame-activity loss (cnn)."),
    width: int = typer.Option(None, help="Channel width of the cnn detector."),
    init: Path = typer.Option(None, "--init", help="Start from these weights (e.g. a torchvision resnet18 state dict)."),
    mixtures: int = typer.Option(4000, "--mixtures", min=10, help="Training mixtures for xgb (the seed used 4,000)."),
    colsample: float = typer.Option(0.1, "--colsample", min=0.01, max=1.0,
                                    help="Share of the 129,150 features each xgb tree may use (1 is slow)."),
    workers: int = typer.Option(None, "--workers", "-j", min=0, help="Mixture-making processes (default: automatic)."),
    no_augment: bool = typer.Option(False, "--no-augment", help="Train on the clean mixtures only."),
    average_tail: float = AVERAGE_TAIL_OPTION,
    seed: int = SEED_OPTION,
    device: str = DEVICE_OPTION,
    devices: int = DEVICES_OPTION,
    resume: bool = RESUME_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
) -> None:
    """Train a family detector on mixtures of the train instruments; thresholds are chosen on valid ones."""
    from nsep.cli.detect import parse_k, parse_modes
    from nsep.train.detect import ARCHITECTURES, DetectConfig

    if out.exists() and not (overwrite or resume):
        raise OutputExistsError(str(out))
    if model not in (*ARCHITECTURES, "xgb"):
        raise UsageError(f"--model {model}: choose one of {', '.join((*ARCHITECTURES, 'xgb'))}")
    if model == "xgb" and (init or devices > 1 or max_minutes or average_tail):
        which = "--init" if init else "--devices" if devices > 1 else "--max-minutes" if max_minutes else "--average-tail"
        raise UsageError(f"{which} applies to the neural models, not xgb")
    cfg = DetectConfig(data=[str(d) for d in data], out=str(out), architecture=ARCHITECTURES.get(model, model),
                       modes=parse_modes(mode), k=parse_k(k), epochs=epochs, steps_per_epoch=steps_per_epoch,
                       batch_size=batch_size, lr=lr, frame_weight=frame_weight, valid_mixtures=valid_mixtures,
                       patience=patience, augment=not no_augment, workers=workers, seed=seed, device=device,
                       model_config={"width": width} if width and model == "cnn" else {},
                       init=str(init) if init else None, max_seconds=max_minutes * 60 if max_minutes else None,
                       average_tail=average_tail)
    _spread(devices, batch_size)
    with common.progress(None, "train") as bar:
        if model == "xgb":
            from nsep.train.detect_xgb import train_xgb

            metrics = train_xgb(cfg, mixtures, colsample, report=_DetectReporter(bar))
        else:
            from nsep.train.detect import train

            metrics = train(cfg, resume=resume, report=_DetectReporter(bar))
    common.log(f"best validation mAP {metrics.get('valid', {}).get('map')} -> {out}")


class _SeparateReporter(_Reporter):
    """Progress bar while training; one line per epoch with the validation SI-SDR scores."""

    def __call__(self, event: dict) -> None:
        if event["event"] != "epoch":
            return super().__call__(event)
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None
        common.log(f"epoch {event['epoch']}: train loss {event['train_loss']:.3f} dB, valid SI-SDR "
                   f"{event['valid_si_sdr']:.2f} dB, SI-SDRi {event['valid_si_sdri']:.2f} dB ({event['seconds']} s)")


@app.command("separate")
def separate(
    data: list[Path] = typer.Option(..., "--data", help="NSynth-format folder(s) with a train/valid split by instrument."),
    out: Path = typer.Option(..., "--out", "-o", help="Weights file to write (.pt)."),
    model: str = typer.Option("unet-bilstm", "--model", "-m", help="unet-bilstm (the shipped default), unet, bandsplit, or htdemucs (demucs' architecture)."),
    mode: str = typer.Option("music", "--mode", help="Mixture kinds: seed (notes at t=0), music (notes in time), or both."),
    k: str = typer.Option("1..4", "--k", help="Families per mixture: a number or a range."),
    clip_seconds: float = typer.Option(2.0, "--clip-seconds", min=0.5, max=30.0, help="Length of the training mixtures."),
    epochs: int = typer.Option(20, min=1),
    steps_per_epoch: int = typer.Option(200, "--steps-per-epoch", min=1),
    batch_size: int = typer.Option(32, "--batch-size", "-b", min=1),
    lr: float = typer.Option(1e-3, "--lr"),
    patience: int = typer.Option(6, help="Stop after this many epochs without a better validation SI-SDRi."),
    max_minutes: float = MAX_MINUTES_OPTION,
    valid_mixtures: int = typer.Option(256, "--valid-mixtures", min=8, help="Validation mixtures per mode."),
    width: int = typer.Option(None, help="Channel width (unet, unet-bilstm, htdemucs) or band feature size (bandsplit)."),
    init: Path = typer.Option(None, "--init", help="Start from these weights (an earlier run of the same model); an nsep separator's config and gate settings come with them."),
    gated: bool = typer.Option(False, "--gated", help="Learn the gated task: only the playing families' masks open "
                               "(plus false alarms, --gate-extra); the model then separates with --gate by default."),
    gate_extra: float = typer.Option(0.1, "--gate-extra", min=0.0, max=1.0, help="With --gated: chance that an absent family's mask stays open."),
    average_tail: float = AVERAGE_TAIL_OPTION,
    workers: int = typer.Option(None, "--workers", "-j", min=0, help="Mixture-making processes (default: automatic)."),
    seed: int = SEED_OPTION,
    device: str = DEVICE_OPTION,
    devices: int = DEVICES_OPTION,
    resume: bool = RESUME_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
) -> None:
    """Train a separator on mixtures of the train instruments; the best epoch on valid ones is kept."""
    from nsep.cli.detect import parse_k, parse_modes
    from nsep.train.separate import SAMPLE_RATE, SeparateConfig, train

    if out.exists() and not (overwrite or resume):
        raise OutputExistsError(str(out))
    if model not in ("unet-bilstm", "unet", "bandsplit", "htdemucs"):
        raise UsageError(f"--model {model}: choose one of unet-bilstm, unet, bandsplit, htdemucs")
    if gated and model == "htdemucs":
        raise UsageError("--gated: htdemucs has no masks to close; use unet-bilstm, unet or bandsplit")
    width_name = {"bandsplit": "dim", "htdemucs": "channels"}.get(model, "width")
    config = {} if width is None else {width_name: width}
    cfg = SeparateConfig(data=[str(d) for d in data], out=str(out), architecture=model, modes=parse_modes(mode),
                         k=parse_k(k), clip_samples=int(clip_seconds * SAMPLE_RATE), epochs=epochs,
                         steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr, patience=patience,
                         max_seconds=max_minutes * 60 if max_minutes else None, valid_mixtures=valid_mixtures,
                         workers=workers, seed=seed, device=device, model_config=config,
                         init=str(init) if init else None, gated=gated, gate_extra=gate_extra, average_tail=average_tail)
    _spread(devices, batch_size)
    with common.progress(None, "train") as bar:
        metrics = train(cfg, resume=resume, report=_SeparateReporter(bar))
    common.log(f"best validation SI-SDRi {metrics.get('valid', {}).get('si_sdri')} dB -> {out}")
