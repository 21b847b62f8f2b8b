"""Train a mask separator on mixtures made on the fly from note banks.

Mixtures of the banks' train instruments come from the sampler (``music`` mode by default: lines
of notes with their own timing and gain per family); their stems are the targets. The loss is a
thresholded SNR on the waveform (after Wisdom et al. 2020): the negative SNR of each playing
family's stem, capped at ``snr_cap`` dB. (A term pushing absent families' stems to silence, as in
that paper, stalled training here: it is met by zeroing masks and drowns the playing stems' terms.)
Validation uses a fixed set of mixtures of the valid
instruments; the best epoch by median SI-SDR improvement is kept. With ``average_tail``, the mean
of the weights of the run's last epochs is kept beside it (:class:`nsep.train.state.TailAverage`).

With ``gated``, the network learns the task ``nsep separate --gate`` gives it: the masks of absent
families are closed (the mixture is shared out among the playing families only), and each absent
family is let through with probability ``gate_extra``, as a detector's false alarms would be
(``detect-cnn`` at the gate's 0.05 opens 2-5 absent families of a validation mixture, so 0.3-0.5
matches it). Validation gates the same way, with the open families drawn once for every epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from nsep import distributed, metrics
from nsep.data import mixtures
from nsep.evaluate_detect import run_seed
from nsep.models import registry
from nsep.errors import NsepError
from nsep.models.base import ModelInfo, read_checkpoint, save_checkpoint
from nsep.taxonomy import FAMILIES
from nsep.train import state
from nsep.train.schedule import TrainingSchedule
from nsep.train.detect import auto_workers, load_init, split_banks

SAMPLE_RATE = 16_000
SEGMENT_SAMPLES = 64_000  # inference window stored with the weights


@dataclass
class SeparateConfig:
    data: list[str]
    out: str
    architecture: str = "unet-bilstm"
    modes: tuple[str, ...] = ("music",)
    k: tuple[int, int] = (1, 4)
    clip_samples: int = 32_000
    epochs: int = 20
    steps_per_epoch: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    snr_cap: float = 30.0
    valid_mixtures: int = 256
    patience: int = 6
    max_seconds: float | None = None  # stop after the epoch that crosses this much training time
    init: str | None = None  # start from these weights
    gated: bool = False  # train with presence gating (see the module's description)
    gate_extra: float = 0.1  # chance that an absent family's mask stays open while gated
    average_tail: float = 0.0  # average the weights of the epochs ending in this last share of the run (0: off)
    preload: bool | None = None  # decode all notes into memory first (default: on a GPU)
    workers: int | None = None
    seed: int = 0
    device: str = "auto"
    model_config: dict = field(default_factory=dict)


def playing(stems: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """Which stems ``[B, S, T]`` of mixes ``[B, T]`` are not silent."""
    return stems.square().sum(-1) > 1e-8 * mix.square().sum(-1, keepdim=True).clamp_min(1e-8)


def separation_loss(estimate: torch.Tensor, stems: torch.Tensor, mix: torch.Tensor, cap_db: float = 30.0,
                    count: float | None = None) -> torch.Tensor:
    """Negative SNR in dB of the playing stems, each capped at ``cap_db``, summed and divided by ``count``
    (default: their number): ``estimate``/``stems [B, S, T]``, ``mix [B, T]``.

    Absent families need no term of their own: the masks share out the mixture, so whatever a mask
    gives an absent family is missing from a playing one.
    """
    tau = 10 ** (-cap_db / 10)
    energy = stems.square().sum(-1)
    error = (estimate - stems).square().sum(-1)
    mask = playing(stems, mix)
    snr = 10 * torch.log10(error + tau * energy + 1e-8) - 10 * torch.log10(energy + 1e-8)
    return (snr * mask).sum() / (count if count is not None else mask.sum().clamp_min(1))


def loader(examples, cfg: SeparateConfig, count: int, seed: int, k: tuple[int, int], workers: int,
           device: torch.device, shuffle: bool = True, store: mixtures.NoteStore | None = None,
           batch_size: int | None = None, rank: int = 0, world: int = 1) -> torch.utils.data.DataLoader:
    """Batches ``(mix [B, 1, T], stems [B, S, T], presence [B, S])`` of ``count`` mixtures per mode; process
    ``rank`` of ``world`` gets its part of each shuffled batch (all of them, in order, unshuffled)."""
    sets = [mixtures.dataset(examples, mode, count, run_seed(seed, mode), k, SAMPLE_RATE, cfg.clip_samples, store)
            for mode in cfg.modes]
    data = torch.utils.data.ConcatDataset(sets)
    order = torch.utils.data.DistributedSampler(data, world, rank, shuffle=True, seed=seed) if shuffle else None
    return torch.utils.data.DataLoader(
        data, batch_size=batch_size or cfg.batch_size, sampler=order, num_workers=workers,
        pin_memory=device.type == "cuda", collate_fn=mixtures.collate_stems,
    )


def inherited(init: str | None, architecture: str) -> tuple[dict, dict]:
    """What a fine-tune keeps of the nsep separator it starts from (same architecture): its model
    config (such as the mask temperature) and its gate settings (presence threshold, gate detector),
    so that it runs as its start did and can be averaged with it. Nothing for other weights files."""
    if not init:
        return {}, {}
    try:
        info, _ = read_checkpoint(Path(init))
    except NsepError:  # a plain state dict: nothing to keep
        return {}, {}
    if info.task != "separate" or info.architecture != architecture:
        return {}, {}
    return dict(info.config), {key: info.training[key] for key in ("gate_threshold", "gate_detector") if key in info.training}


def gate(presence: torch.Tensor, extra: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Open masks ``[B, S]`` (bool): the playing families, and each other one with probability ``extra``."""
    chance = torch.rand(presence.shape, generator=generator)
    return (presence > 0.5) | (chance < extra)


@torch.inference_mode()
def validate(model: torch.nn.Module, batches, device: torch.device, gates: list[torch.Tensor] | None = None) -> dict:
    """Median SI-SDR and SI-SDR improvement over the playing stems of the validation mixtures
    (``gates``: each batch's open masks, as :func:`gate` draws them)."""
    model.eval()
    improvement, value = [], []
    for i, (mix, stems, presence) in enumerate(batches):
        wave = mix[:, 0].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            estimate = (model(wave, gates[i].to(device)) if gates is not None else model(wave)).float().cpu().numpy()
        stems, playing = stems.numpy(), presence.numpy() > 0.5
        score = metrics.si_sdr(estimate, stems)
        baseline = metrics.si_sdr(np.broadcast_to(mix.numpy(), stems.shape), stems)
        value.append(score[playing])
        improvement.append((score - baseline)[playing])
    model.train()
    return {"si_sdr": float(np.median(np.concatenate(value))), "si_sdri": float(np.median(np.concatenate(improvement)))}


def _finish_average(tail: state.TailAverage, net: torch.nn.Module, info: ModelInfo, valid, device: torch.device,
                    valid_gates, path: Path, main: bool, report: Callable[[dict], None]) -> None:
    """Validate the tail's mean as the epochs were, and write it with that score."""
    averaged = tail.network(net)
    scores = validate(averaged, valid, device, valid_gates)
    report({"event": "average", "epochs": tail.epochs, "valid_si_sdri": scores["si_sdri"], "path": str(path)})
    if main:
        save_checkpoint(path, averaged, replace(info, name=path.name.removesuffix(".pt"),
                                                metrics={"valid": scores, "averaged_epochs": tail.epochs}))


def train(cfg: SeparateConfig, resume: bool = False, report: Callable[[dict], None] = print) -> dict:
    """Run the loop; writes ``cfg.out`` (best epoch), ``.last.pt``, ``.log.jsonl`` and ``.curves.png``,
    and with ``average_tail`` the tail's weight mean, validated at the end, as ``OUT.average.pt``."""
    device = distributed.setup(cfg.device)
    rank, world, main = distributed.rank(), distributed.world(), distributed.is_main()
    part = distributed.local_batch(cfg.batch_size)
    report = report if main else distributed.silent
    torch.manual_seed(cfg.seed)
    workers = auto_workers(device) if cfg.workers is None else cfg.workers
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    last_path, log_path = out.with_suffix(".last.pt"), out.with_suffix(".log.jsonl")
    train_notes, valid_notes = split_banks(cfg.data)
    report({"event": "data", "train_notes": len(train_notes), "valid_notes": len(valid_notes), "workers": workers})
    labels = list(FAMILIES)
    start_config, gate_settings = inherited(cfg.init, cfg.architecture)
    model_config = {**start_config, **cfg.model_config}  # what the command line says wins
    model = registry.build(cfg.architecture, len(labels), model_config).to(device)
    if cfg.init and not resume:
        loaded, skipped = load_init(model, cfg.init)
        report({"event": "init", "path": cfg.init, "loaded": loaded, "skipped": skipped})
    store = None
    if cfg.preload if cfg.preload is not None else device.type == "cuda":
        began = time.time()
        store = mixtures.NoteStore(train_notes, SAMPLE_RATE, cfg.clip_samples)
        report({"event": "preload", "notes": len(train_notes), "seconds": round(time.time() - began, 1)})
    valid = list(loader(valid_notes, cfg, cfg.valid_mixtures, run_seed(cfg.seed, "valid"), (2, cfg.k[1]),
                        workers, device, shuffle=False))
    # validation opens the same share of absent families as training does, drawn once for every epoch
    fixed = torch.Generator().manual_seed(run_seed(cfg.seed, "valid-gate"))
    valid_gates = [gate(presence, cfg.gate_extra, fixed) for _, _, presence in valid] if cfg.gated else None
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.steps_per_epoch
    schedule = TrainingSchedule(optimiser, steps, cfg.epochs, cfg.max_seconds)
    info = ModelInfo(
        name=out.stem, architecture=cfg.architecture, task="separate", labels=labels, sample_rate=SAMPLE_RATE,
        clip_samples=SEGMENT_SAMPLES, config=model_config,
        training={"config": asdict(cfg), "train_notes": len(train_notes), "valid_notes": len(valid_notes),
                  "gated": cfg.gated, **gate_settings},
    )
    history: list[dict] = []
    best, start_epoch, stale = -math.inf, 0, 0
    tail = state.TailAverage(cfg.average_tail)
    if not resume:
        if main:
            log_path.unlink(missing_ok=True)
    elif last_path.exists():
        loop = state.restore_last(last_path, model, optimiser, schedule)
        history, best, start_epoch, stale = loop["history"], loop["best"], loop["epoch"] + 1, loop["stale"]
        info.metrics = loop["metrics"]
        tail = state.TailAverage(cfg.average_tail, loop.get("average"))
    net, model = model, distributed.wrap(model, device)
    model.train()
    for epoch in range(start_epoch, cfg.epochs):
        began, running = time.time(), 0.0
        schedule.begin_epoch()
        batches = loader(train_notes, cfg, math.ceil(steps * cfg.batch_size / len(cfg.modes)),
                         run_seed(cfg.seed, "train", epoch), cfg.k, workers, device, store=store, batch_size=part,
                         rank=rank, world=world)
        chance = torch.Generator().manual_seed(run_seed(cfg.seed, "gate", epoch) + rank)  # absent families let through
        for step, (mix, stems, presence) in enumerate(batches):
            if step == steps:
                break
            wave, stems = mix[:, 0].to(device, non_blocking=True), stems.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                estimate = model(wave, gate(presence, cfg.gate_extra, chance).to(device)) if cfg.gated else model(wave)
            # over the group's playing stems, so that the processes' averaged gradients are one batch's
            count = distributed.all_sum([float(playing(stems, wave).sum())])[0] / world
            loss = separation_loss(estimate.float(), stems, wave, cfg.snr_cap, max(count, 1.0))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimiser.step()
            schedule.step()
            running += loss.item()
            if step % 10 == 9 or step == steps - 1:
                report({"event": "step", "epoch": epoch + 1, "step": step + 1, "steps": steps, "loss": running / (step + 1)})
        schedule.end_epoch()  # validation is not training time, as in the other trainers
        scores = validate(net, valid, device, valid_gates)
        running = distributed.all_sum([running])[0] / world
        row = {"epoch": epoch + 1, "train_loss": running / steps, "valid_si_sdr": scores["si_sdr"],
               "valid_si_sdri": scores["si_sdri"], "lr": schedule.get_last_lr()[0], "seconds": round(time.time() - began, 1)}
        history.append(row)
        report({"event": "epoch", **row})
        if scores["si_sdri"] > best:
            best, stale = scores["si_sdri"], 0
            info.metrics = {"valid": scores, "epoch": epoch + 1}
        else:
            stale += 1
        if tail.due(schedule.progress(epoch + 1)):
            tail.add(net, epoch + 1)
        if main:
            loop = {"history": history, "best": best, "epoch": epoch, "stale": stale, "metrics": info.metrics,
                    "average": tail.state()}
            state.end_epoch(out, row, stale == 0, net, info, optimiser, schedule, loop)
        if stale >= cfg.patience:
            report({"event": "early_stop", "epoch": epoch + 1})
            break
        if schedule.out_of_time():
            report({"event": "time_limit", "epoch": epoch + 1})
            break
    if tail.mean is not None:
        _finish_average(tail, net, info, valid, device, valid_gates, state.average_path(out), main, report)
    from nsep.plot import curves_png

    if history and main:
        curves_png(history, out.with_suffix(".curves.png"), f"separate {cfg.architecture} on {', '.join(Path(d).name for d in cfg.data)}")
    return info.metrics
