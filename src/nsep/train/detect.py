"""Train a multi-label family detector on mixtures made on the fly from note banks.

Training mixtures come from the banks' train instruments, in the sampler's ``seed`` mode (notes
summed at t=0, as the seed project did) and ``music`` mode (notes placed in time); worker
processes make them while the device trains. Validation uses a fixed set of mixtures of the valid
instruments; the best epoch by validation mAP is kept, with each family's decision threshold
chosen there for the best F1. Frame-level models also learn each family's activity over time.

In a group of processes (:mod:`nsep.distributed`) each trains on its part of every batch (the
parts together are the batch one process would draw), validates its share of the validation
mixtures, and gets everyone's outputs back, so all choose the same thresholds and epochs; only
the first process writes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nsep import distributed, evaluate_detect, metrics
from nsep.evaluate_detect import CLIP_SAMPLES, SAMPLE_RATE, mixture_loader, run_seed
from nsep.augment import AugmentConfig, augment
from nsep.detection import Thresholds
from nsep.data.nsynth import Example, load_bank
from nsep.errors import UsageError
from nsep.models import registry
from nsep.models.base import ModelInfo, Predictor, TorchPredictor, save_checkpoint
from nsep.taxonomy import FAMILIES
from nsep.train import state
from nsep.train.schedule import TrainingSchedule

MODES = ("seed", "music")
# ``--model`` names -> registry architectures (``cnn`` is nsep's frame-level detector)
ARCHITECTURES = {"cnn": "detector", "mlp": "mlp", "seedcnn": "seedcnn", "resnet18": "resnet18"}
# augmentation that keeps time where it is, so frame targets stay true
TIME_PRESERVING = AugmentConfig(shift_seconds=0.0, speed_semitones=0.0)


@dataclass
class DetectConfig:
    data: list[str]
    out: str
    architecture: str = "detector"
    modes: tuple[str, ...] = MODES
    k: tuple[int, int] = (1, 6)
    epochs: int = 20
    steps_per_epoch: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    frame_weight: float = 1.0
    valid_mixtures: int = 512  # per mode
    patience: int = 6
    augment: bool = True
    workers: int | None = None
    seed: int = 0
    device: str = "auto"
    model_config: dict = field(default_factory=dict)
    init: str | None = None
    max_seconds: float | None = None  # stop after the epoch that crosses this much training time
    average_tail: float = 0.0  # average the weights of the epochs ending in this last share of the run (0: off)


def split_banks(folders: list[str]) -> tuple[list[Example], list[Example]]:
    """Notes of the train and the valid instruments (the banks' ``split`` field)."""
    examples = load_bank(folders)
    train = [e for e in examples if e.split == "train"]
    valid = [e for e in examples if e.split == "valid"]
    if not train or not valid:
        raise UsageError("the note banks need a train/valid split by instrument (run `nsep data split`)")
    return train, valid


def auto_workers(device: torch.device) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cores //= distributed.local_world()  # the machine's processes share its cores
    return max(1, min(12, cores - 2)) if device.type == "cuda" else 0


class Outputs(nn.Module):
    """What the loss needs from ``net`` in one forward call (the call DistributedDataParallel watches):
    clip logits, or ``(clip logits, frame logits)`` from frame-level models."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, wave: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.net.forward_frames(wave) if hasattr(self.net, "forward_frames") else self.net(wave)


def detection_loss(outputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor], presence: torch.Tensor,
                   activity: torch.Tensor, frame_weight: float) -> torch.Tensor:
    """BCE on clip presence, plus (for frame-level models) BCE on activity averaged onto the model's frames."""
    if isinstance(outputs, torch.Tensor):
        return F.binary_cross_entropy_with_logits(outputs.float(), presence.float())
    clip_logits, frame_logits = outputs
    target = F.interpolate(activity.float(), size=frame_logits.shape[-1], mode="area")
    return (F.binary_cross_entropy_with_logits(clip_logits.float(), presence.float())
            + frame_weight * F.binary_cross_entropy_with_logits(frame_logits.float(), target))


def load_init(model: torch.nn.Module, path: str) -> tuple[int, int]:
    """Start from a user's weights (an nsep checkpoint or a plain state dict, torchvision's included).

    Tensors are matched by name (also under the model's ``net.`` prefix); a 3-channel first
    convolution is summed to one channel; tensors of other shapes are skipped. Returns
    (loaded, skipped).
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file gets the same one-line refusal
        raise UsageError(f"--init {path}: not a loadable weights file ({type(err).__name__})") from None
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise UsageError(f"--init {path}: no state dict inside")
    own = model.state_dict()
    chosen, skipped = {}, 0
    for name, tensor in state.items():
        target = name if name in own else f"net.{name}"
        if target not in own or not isinstance(tensor, torch.Tensor):
            skipped += 1
            continue
        if tensor.dim() == 4 and tensor.shape[1] == 3 and own[target].shape[1] == 1:
            tensor = tensor.sum(dim=1, keepdim=True)
        if tensor.shape != own[target].shape:
            skipped += 1
            continue
        chosen[target] = tensor
    if not chosen:
        raise UsageError(f"--init {path}: no tensor fits this architecture")
    model.load_state_dict(chosen, strict=False)
    return len(chosen), skipped


def validate(predictor: Predictor, batches: Iterable) -> tuple[evaluate_detect.Collected, float]:
    """Outputs on the validation mixtures and their clip-level BCE.

    In a group each process passes its share of the mixtures and gets back everyone's outputs, in order.
    """
    mine = evaluate_detect.collect(predictor, batches)
    rows = distributed.gather(list(zip(mine.probs, mine.truth, mine.frame_probs, mine.frame_truth, mine.counts)))
    collected = evaluate_detect.Collected(*(np.stack(column) for column in zip(*rows)))
    p = np.clip(collected.probs, 1e-7, 1 - 1e-7)
    t = collected.truth
    return collected, float(-(t * np.log(p) + (~t) * np.log(1 - p)).mean())


THRESHOLD_FLOOR = 0.05  # below this a family is "present" in almost anything: validation could not separate it


def choose_thresholds(collected: evaluate_detect.Collected) -> Thresholds:
    """Each family's thresholds for the best F1 on validation, of clips and then of frames in the
    mixtures the clip thresholds find the family in (0.5 where validation has none of it).

    Thresholds are kept at or above :data:`THRESHOLD_FLOOR`: a family the model cannot tell apart on
    validation gets its best F1 by saying yes to nearly everything, which would flood real files
    with false detections.
    """
    clip = np.maximum(metrics.best_thresholds(collected.probs, collected.truth), THRESHOLD_FLOOR)
    # frames count only where their family is decided present (as nsep detect keeps segments)
    present = collected.probs >= clip
    frame = metrics.best_thresholds(evaluate_detect.frames_by_label(collected.frame_probs.astype(np.float32) * present[:, :, None]),
                                    evaluate_detect.frames_by_label(collected.frame_truth))
    return Thresholds(clip, np.maximum(frame, THRESHOLD_FLOOR))


def store_thresholds(info: ModelInfo, thresholds: Thresholds) -> None:
    """Put the chosen thresholds into the weights' metadata."""
    info.thresholds = [round(float(t), 4) for t in thresholds.clip]
    info.frame_thresholds = [round(float(t), 4) for t in thresholds.frame]


def _update(model: torch.nn.Module, optimiser: torch.optim.Optimizer, schedule, loss: torch.Tensor) -> float:
    """One optimiser step on ``loss`` (gradients clipped); returns the loss."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimiser.step()
    schedule.step()
    return loss.item()


def _finish_average(tail: state.TailAverage, net: nn.Module, info: ModelInfo, valid: list, device: torch.device,
                    path: Path, main: bool, report: Callable[[dict], None]) -> None:
    """Validate the tail's mean as the epochs were, choose its own thresholds, and write it."""
    averaged = tail.network(net)
    averaged.eval()
    record = replace(info, name=path.name.removesuffix(".pt"))
    collected, _ = validate(TorchPredictor(averaged, record, device, multi_label=True), valid)
    thresholds = choose_thresholds(collected)
    scores = evaluate_detect.scores(collected, record.labels, thresholds)
    store_thresholds(record, thresholds)
    record.metrics = {"valid": scores, "averaged_epochs": tail.epochs}
    report({"event": "average", "epochs": tail.epochs, "valid_map": scores["map"], "path": str(path)})
    if main:
        save_checkpoint(path, averaged, record)


def train(cfg: DetectConfig, resume: bool = False, report: Callable[[dict], None] = print) -> dict:
    """Run the training loop; writes ``cfg.out`` (best epoch), ``.last.pt``, ``.log.jsonl`` and ``.curves.png``,
    and with ``average_tail`` the tail's weight mean, validated and given thresholds, as ``OUT.average.pt``."""
    device = distributed.setup(cfg.device)
    rank, world, main = distributed.rank(), distributed.world(), distributed.is_main()
    part = distributed.local_batch(cfg.batch_size)
    report = report if main else distributed.silent
    torch.manual_seed(cfg.seed + rank)  # dropout and masks differ by process; all start from rank 0's weights
    workers = auto_workers(device) if cfg.workers is None else cfg.workers
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    last_path, log_path = out.with_suffix(".last.pt"), out.with_suffix(".log.jsonl")
    train_notes, valid_notes = split_banks(cfg.data)
    report({"event": "data", "train_notes": len(train_notes), "valid_notes": len(valid_notes),
            "modes": ",".join(cfg.modes), "workers": workers})
    labels = list(FAMILIES)
    net = registry.build(cfg.architecture, len(labels), cfg.model_config).to(device)
    if cfg.init and not resume:
        loaded, skipped = load_init(net, cfg.init)
        report({"event": "init", "path": cfg.init, "loaded": loaded, "skipped": skipped})
    valid = list(mixture_loader(valid_notes, cfg.modes, cfg.valid_mixtures, run_seed(cfg.seed, "valid"), cfg.k,
                                cfg.batch_size, workers, device, shuffle=False, rank=rank, world=world))
    optimiser = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.steps_per_epoch
    schedule = TrainingSchedule(optimiser, steps, cfg.epochs, cfg.max_seconds)
    gen = torch.Generator(device=device)
    history: list[dict] = []
    best, start_epoch, stale = -1.0, 0, 0
    tail = state.TailAverage(cfg.average_tail)
    info = ModelInfo(
        name=out.stem, architecture=cfg.architecture, task="detect", labels=labels, sample_rate=SAMPLE_RATE,
        clip_samples=CLIP_SAMPLES, config=cfg.model_config,
        training={"config": asdict(cfg), "train_notes": len(train_notes), "valid_notes": len(valid_notes)},
    )
    if not resume:
        if main:
            log_path.unlink(missing_ok=True)
    elif last_path.exists():
        loop = state.restore_last(last_path, net, optimiser, schedule)
        history, best, start_epoch, stale = loop["history"], loop["best"], loop["epoch"] + 1, loop["stale"]
        info.metrics = loop["metrics"]
        info.thresholds, info.frame_thresholds = loop["thresholds"], loop["frame_thresholds"]
        tail = state.TailAverage(cfg.average_tail, loop.get("average"))
    model = distributed.wrap(Outputs(net), device)
    predictor = TorchPredictor(net, info, device, multi_label=True)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        gen.manual_seed(run_seed(cfg.seed, "augment", epoch, rank))
        began, running = time.time(), 0.0
        schedule.begin_epoch()
        batches = mixture_loader(train_notes, cfg.modes, math.ceil(steps * cfg.batch_size / len(cfg.modes)),
                                 run_seed(cfg.seed, "train", epoch), cfg.k, part, workers, device, rank=rank, world=world)
        for step, (mix, presence, activity, _) in enumerate(batches):
            if step == steps:
                break
            wave = mix.to(device, non_blocking=True)
            if cfg.augment:
                wave = augment(wave, TIME_PRESERVING, SAMPLE_RATE, gen)
            presence, activity = presence.to(device, non_blocking=True), activity.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = detection_loss(model(wave), presence, activity, cfg.frame_weight)
            running += _update(model, optimiser, schedule, loss)
            if step % 10 == 9 or step == steps - 1:
                report({"event": "step", "epoch": epoch + 1, "step": step + 1, "steps": steps, "loss": running / (step + 1)})
        schedule.end_epoch()
        train_loss = distributed.all_sum([running])[0] / (steps * world)
        net.eval()
        collected, valid_loss = validate(predictor, valid)
        thresholds = choose_thresholds(collected)
        scores = evaluate_detect.scores(collected, labels, thresholds)
        row = {"epoch": epoch + 1, "train_loss": train_loss, "valid_loss": valid_loss,
               "valid_map": scores["map"], "valid_micro_f1": scores["micro_f1"],
               "valid_accuracy": scores["per_label_accuracy"], "valid_frame_f1": scores["frame_f1"],
               "lr": schedule.get_last_lr()[0], "seconds": round(time.time() - began, 1)}
        history.append(row)
        report({"event": "epoch", **row})
        if (scores["map"] or 0.0) > best:
            best, stale = scores["map"], 0
            store_thresholds(info, thresholds)
            info.metrics = {"valid": scores, "epoch": epoch + 1}
        else:
            stale += 1
        if tail.due(schedule.progress(epoch + 1)):
            tail.add(net, epoch + 1)
        if main:
            loop = {"history": history, "best": best, "epoch": epoch, "stale": stale, "metrics": info.metrics,
                    "thresholds": info.thresholds, "frame_thresholds": info.frame_thresholds, "average": tail.state()}
            state.end_epoch(out, row, stale == 0, net, info, optimiser, schedule, loop)
        if stale >= cfg.patience:
            report({"event": "early_stop", "epoch": epoch + 1})
            break
        if schedule.out_of_time():
            report({"event": "time_limit", "epoch": epoch + 1})
            break
    if tail.mean is not None:
        _finish_average(tail, net, info, valid, device, state.average_path(out), main, report)
    if main and history:
        from nsep.plot import curves_png

        curves_png(history, out.with_suffix(".curves.png"), f"detect {cfg.architecture} on {', '.join(Path(d).name for d in cfg.data)}")
    return info.metrics
