"""Train a single-label family classifier on NSynth-format note banks.

Notes are decoded once into an int16 tensor (on the training device when it is a GPU), batches
are drawn family-balanced (``balance="library"``: each bank equally often within a family too),
augmented on the device, and validated each epoch on instruments the model never trains on. The
best checkpoint by validation accuracy is kept.

In a group of processes (:mod:`nsep.distributed`) every process draws the same batch and trains
on its part of it, so a step sees the same notes whatever the number of processes; validation is
shared out and gathered, and only the first process writes.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from nsep import distributed
from nsep.audio import atomic_output
from nsep.augment import AugmentConfig, augment
from nsep.data.nsynth import load_bank
from nsep.errors import UsageError
from nsep.evaluate_detect import run_seed
from nsep.models import registry
from nsep.models.base import ModelInfo, read_checkpoint, save_checkpoint
from nsep.taxonomy import NSYNTH_FAMILIES
from nsep.train.schedule import TrainingSchedule
from nsep.train.state import TailAverage, average_path

SAMPLE_RATE = 16_000
CLIP_SAMPLES = 64_000
DISTILL_TEMPERATURE = 2.0


@dataclass
class TrainConfig:
    data: list[str]
    out: str
    architecture: str = "cnn"
    families: list[str] = field(default_factory=lambda: list(NSYNTH_FAMILIES))
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.02
    label_smoothing: float = 0.1
    mixup: float = 0.0  # Beta(a, a) mixing weight of a random partner note; 0: off
    lowpass: float = 0.0  # share of notes band-limited at a random cutoff (augmentation)
    teacher: str | None = None  # a classifier (name or file) whose softened outputs the model also learns
    init: str | None = None  # start from this classifier's weights (same architecture): fine-tuning
    distill: float = 0.5  # weight of the teacher's term in the loss
    patience: int = 8
    steps_per_epoch: int | None = None
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    model_config: dict = field(default_factory=dict)
    max_notes: int | None = None
    max_seconds: float | None = None  # stop after the epoch that crosses this much training time
    balance: str = "family"  # draw families equally often; "library": and each library within a family
    average_tail: float = 0.0  # average the weights of the epochs ending in this last share of the run (0: off)


@dataclass
class NoteSet:
    """Decoded notes ``[N, T]`` int16, family indices, instrument keys and the bank each note is from."""

    audio: torch.Tensor
    labels: torch.Tensor
    instruments: list[str]
    banks: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def _read_int16(path: str) -> np.ndarray:
    data, rate = sf.read(path, dtype="int16", always_2d=True)
    if rate != SAMPLE_RATE:
        raise UsageError(f"{path}: {rate} Hz; training expects {SAMPLE_RATE} Hz notes")
    mono = data.mean(axis=1).astype(np.int16) if data.shape[1] > 1 else data[:, 0]
    out = np.zeros(CLIP_SAMPLES, dtype=np.int16)
    out[: min(len(mono), CLIP_SAMPLES)] = mono[:CLIP_SAMPLES]
    return out


def load_notes(folders: list[str], families: list[str], seed: int, max_notes: int | None = None) -> tuple[NoteSet, NoteSet]:
    """Train and valid note sets; valid holds whole instruments only (the bank's ``split`` field)."""
    examples = [e for folder in folders for e in load_bank(folder) if e.instrument_family_str in families]
    if not examples:
        raise UsageError(f"no notes of families {', '.join(families)} in {', '.join(folders)}")
    if max_notes and len(examples) > max_notes:
        keep = np.random.default_rng(seed).choice(len(examples), max_notes, replace=False)
        examples = [examples[i] for i in sorted(keep)]
    examples.sort(key=lambda e: e.split == "valid")  # train notes, then valid: each split is a view of one array
    n_train = sum(e.split != "valid" for e in examples)
    if not 0 < n_train < len(examples):
        raise UsageError("the note banks need a train/valid split by instrument (run `nsep data split`)")
    audio = np.empty((len(examples), CLIP_SAMPLES), dtype=np.int16)  # filled in place: peak memory is the notes once

    def decode(index: int) -> None:
        audio[index] = _read_int16(str(examples[index].path))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(decode, range(len(examples))))
    labels = np.asarray([families.index(e.instrument_family_str) for e in examples])
    keys = [f"{e.dataset}:{e.instrument_str}" for e in examples]
    banks = [str(e.dataset) for e in examples]

    def subset(part: slice) -> NoteSet:
        return NoteSet(torch.from_numpy(audio[part]), torch.from_numpy(labels[part]), keys[part], banks[part])

    return subset(slice(0, n_train)), subset(slice(n_train, None))


def sampling_weights(notes: NoteSet, balance: str = "family") -> torch.Tensor:
    """Each note's chance of being drawn: every family equally often; with ``balance="library"``,
    also every library (bank) equally often within a family, so a large library cannot crowd out
    the rest."""
    families = notes.labels
    if balance == "family":
        counts = torch.bincount(families).float()
        return 1.0 / counts[families]
    if balance != "library":
        raise UsageError(f"balance {balance!r}: choose family or library")
    cells = Counter(zip(notes.banks, families.tolist()))
    per_family = Counter(family for _, family in cells)  # banks that hold each family
    return torch.tensor([1.0 / (per_family[f] * cells[(bank, f)]) for bank, f in zip(notes.banks, families.tolist())])


def _to_float(batch: torch.Tensor) -> torch.Tensor:
    return batch.float() / 32768.0


@torch.no_grad()
def evaluate(model: torch.nn.Module, notes: NoteSet, device: torch.device, batch_size: int = 256) -> dict:
    """Loss, accuracy and per-family accuracy on unaugmented notes; each process of a group scores its share."""
    model.eval()
    mine = torch.as_tensor(distributed.shard(range(len(notes))), dtype=torch.long)
    scored: list[tuple[float, int]] = []
    for start in range(0, len(mine), batch_size):
        index = mine[start : start + batch_size]
        wave = _to_float(notes.audio[index.to(notes.audio.device)].to(device))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(wave).float()
        losses = F.cross_entropy(logits, notes.labels[index].to(device), reduction="none")
        scored += zip(losses.tolist(), logits.argmax(-1).tolist())
    losses, predicted = (torch.tensor(column) for column in zip(*distributed.gather(scored)))
    correct = (predicted == notes.labels).float()
    per_family = {}
    for index in notes.labels.unique().tolist():
        mask = notes.labels == index
        per_family[index] = round(correct[mask].mean().item(), 4)
    return {"loss": losses.sum().item() / len(notes), "accuracy": correct.mean().item(), "per_family": per_family}


def mix_notes(wave: torch.Tensor, target: torch.Tensor, alpha: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mixup on waveforms: each item plus a random partner of the batch, both at equal loudness.

    Returns the mixed batch, the partners' targets and each item's weight ``lam`` (the loss is
    ``lam * CE(target) + (1 - lam) * CE(partner)``). ``lam`` is Beta(alpha, alpha) drawn through
    two Gamma variates from ``gen`` so runs stay reproducible.
    """
    b = wave.shape[0]
    partner = torch.randperm(b, generator=gen, device=wave.device)
    ga, gb = (torch._standard_gamma(torch.full((b,), alpha, device=wave.device), generator=gen) for _ in range(2))
    lam = ga / (ga + gb).clamp(min=1e-12)
    level = wave.square().mean(-1, keepdim=True).sqrt().clamp(min=1e-6)
    unit = wave / level
    mixed = lam[:, None] * unit + (1 - lam[:, None]) * unit[partner]
    return 0.9 * mixed / mixed.abs().amax(-1, keepdim=True).clamp(min=1e-6), target[partner], lam


def trained_classifier(name: str, families: list[str], role: str) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    """A trained torch classifier's checkpoint (name or file), checked to fit this run's labels."""
    path, _ = registry.locate(name, "classify")
    if path.suffix != ".pt":
        raise UsageError(f"{name}: {role} must be a torch classifier, not {path.suffix}")
    info, state = read_checkpoint(path)
    if info.labels != list(families) or info.sample_rate != SAMPLE_RATE:
        raise UsageError(f"{name}: the {role}'s labels or sample rate differ from this run's")
    return info, state


def load_teacher(name: str, families: list[str], device: torch.device) -> torch.nn.Module:
    """A trained classifier (any torch architecture, an ensemble too) on the same labels, frozen."""
    info, state = trained_classifier(name, families, "teacher")
    teacher = registry.build(info.architecture, len(info.labels), info.config)
    teacher.load_state_dict(state)
    return teacher.eval().requires_grad_(False).to(device)


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = DISTILL_TEMPERATURE) -> torch.Tensor:
    """KL divergence from the teacher's softened distribution to the student's, scaled by T^2 (Hinton et al.)."""
    soft = F.softmax(teacher_logits.float() / temperature, dim=-1)
    return F.kl_div(F.log_softmax(logits / temperature, dim=-1), soft, reduction="batchmean") * temperature**2


def _finish_average(tail: TailAverage, net: torch.nn.Module, info: ModelInfo, valid_notes: NoteSet, device: torch.device,
                    path: Path, main: bool, report: Callable[[dict], None], families: list[str]) -> None:
    """Validate the tail's mean as the epochs were, and write it with that score."""
    averaged = tail.network(net)
    metrics = evaluate(averaged, valid_notes, device)
    report({"event": "average", "epochs": tail.epochs, "valid_accuracy": metrics["accuracy"], "path": str(path)})
    if main:
        save_checkpoint(path, averaged, replace(info, name=path.name.removesuffix(".pt"), metrics={
            "valid_accuracy": round(metrics["accuracy"], 4), "averaged_epochs": tail.epochs,
            "valid_per_family": {families[k]: v for k, v in metrics["per_family"].items()}}))


def train(cfg: TrainConfig, resume: bool = False, report: Callable[[dict], None] = print) -> dict:
    """Run the training loop; returns the best validation metrics. Writes ``cfg.out`` and logs beside it
    (and with ``average_tail`` the tail's weight mean, validated, as ``OUT.average.pt``)."""
    device = distributed.setup(cfg.device)
    rank, main, part = distributed.rank(), distributed.is_main(), distributed.local_batch(cfg.batch_size)
    report = report if main else distributed.silent
    torch.manual_seed(cfg.seed + rank)  # dropout and masks differ by process; all start from rank 0's weights
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    last_path, log_path = out.with_suffix(".last.pt"), out.with_suffix(".log.jsonl")
    train_notes, valid_notes = load_notes(cfg.data, cfg.families, cfg.seed, cfg.max_notes)
    report({"event": "data", "train_notes": len(train_notes), "valid_notes": len(valid_notes),
            "train_instruments": len(set(train_notes.instruments)), "valid_instruments": len(set(valid_notes.instruments))})
    if device.type == "cuda":
        train_notes.audio = train_notes.audio.to(device)
    initial = trained_classifier(cfg.init, cfg.families, "starting model") if cfg.init else None
    if initial is not None:
        if initial[0].architecture != cfg.architecture:
            raise UsageError(f"{cfg.init}: a {initial[0].architecture}, not a {cfg.architecture}")
        cfg.model_config = {**initial[0].config, **cfg.model_config}
    net = registry.build(cfg.architecture, len(cfg.families), cfg.model_config)
    if initial is not None and not resume:  # a resumed run takes its weights from the last checkpoint
        try:
            net.load_state_dict(initial[1])
        except RuntimeError:
            raise UsageError(f"{cfg.init}: its weights do not fit {cfg.model_config}") from None
    net = net.to(device)
    teacher = load_teacher(cfg.teacher, cfg.families, device) if cfg.teacher else None
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    steps = cfg.steps_per_epoch or max(1, len(train_notes) // cfg.batch_size)
    optimiser = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = TrainingSchedule(optimiser, steps, cfg.epochs, cfg.max_seconds)
    weights = sampling_weights(train_notes, cfg.balance)
    gen = torch.Generator(device=device)
    sample_gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    best, start_epoch, stale = -1.0, 0, 0
    tail = TailAverage(cfg.average_tail)
    if not resume:
        if main:
            log_path.unlink(missing_ok=True)
    elif last_path.exists():
        state = torch.load(last_path, map_location="cpu", weights_only=True)
        net.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        sample_gen.set_state(state["sample_gen"])
        history, best, start_epoch, stale = state["history"], state["best"], state["epoch"] + 1, state["stale"]
        tail = TailAverage(cfg.average_tail, state.get("average"))
    model = distributed.wrap(net, device)
    info = ModelInfo(
        name=out.stem, architecture=cfg.architecture, task="classify", labels=list(cfg.families),
        sample_rate=SAMPLE_RATE, clip_samples=CLIP_SAMPLES, config=cfg.model_config,
        training={"config": asdict(cfg), "train_notes": len(train_notes), "valid_notes": len(valid_notes)},
    )
    augment_cfg = AugmentConfig(lowpass_p=cfg.lowpass)
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        gen.manual_seed(run_seed(cfg.seed, "augment", epoch, rank))
        began, running = time.time(), 0.0
        schedule.begin_epoch()
        for step in range(steps):
            index = torch.multinomial(weights, cfg.batch_size, replacement=True, generator=sample_gen)
            index = index[rank * part : (rank + 1) * part]  # every process draws the whole batch and keeps its part
            wave = _to_float(train_notes.audio[index.to(train_notes.audio.device)].to(device))
            if cfg.augment:
                wave = augment(wave, augment_cfg, SAMPLE_RATE, gen)
            target = train_notes.labels[index].to(device)
            if cfg.mixup > 0:
                wave, partner, lam = mix_notes(wave, target, cfg.mixup, gen)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(wave).float()
            if cfg.mixup > 0:
                loss = (lam * F.cross_entropy(logits, target, label_smoothing=cfg.label_smoothing, reduction="none")
                        + (1 - lam) * F.cross_entropy(logits, partner, label_smoothing=cfg.label_smoothing, reduction="none")).mean()
            else:
                loss = F.cross_entropy(logits, target, label_smoothing=cfg.label_smoothing)
            if teacher is not None:
                with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    teacher_logits = teacher(wave)
                loss = (1 - cfg.distill) * loss + cfg.distill * distillation_loss(logits, teacher_logits)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimiser.step()
            schedule.step()
            running += loss.item()
            if step % 10 == 9 or step == steps - 1:
                report({"event": "step", "epoch": epoch + 1, "step": step + 1, "steps": steps, "loss": running / (step + 1)})
        schedule.end_epoch()
        train_loss = distributed.all_sum([running])[0] / (steps * distributed.world())
        metrics = evaluate(net, valid_notes, device)
        row = {"epoch": epoch + 1, "train_loss": train_loss, "valid_loss": metrics["loss"],
               "valid_accuracy": metrics["accuracy"], "lr": schedule.get_last_lr()[0],
               "seconds": round(time.time() - began, 1)}
        history.append(row)
        report({"event": "epoch", **row})
        if metrics["accuracy"] > best:
            best, stale = metrics["accuracy"], 0
            info.metrics = {"valid_accuracy": round(best, 4), "valid_per_family": {
                cfg.families[k]: v for k, v in metrics["per_family"].items()}, "epoch": epoch + 1}
        else:
            stale += 1
        if tail.due(schedule.progress(epoch + 1)):
            tail.add(net, epoch + 1)
        if main:
            with log_path.open("a") as log:
                log.write(json.dumps(row) + "\n")
            if stale == 0:
                save_checkpoint(out, net, info)
            with atomic_output(last_path, overwrite=True) as tmp:
                torch.save({"model": net.state_dict(), "optimiser": optimiser.state_dict(),
                            "schedule": schedule.state_dict(), "sample_gen": sample_gen.get_state(),
                            "history": history, "best": best, "epoch": epoch, "stale": stale,
                            "average": tail.state()}, tmp)
        if stale >= cfg.patience:
            report({"event": "early_stop", "epoch": epoch + 1})
            break
        if schedule.out_of_time():
            report({"event": "time_limit", "epoch": epoch + 1})
            break
    if tail.mean is not None:
        _finish_average(tail, net, info, valid_notes, device, average_path(out), main, report, cfg.families)
    if main:
        from nsep.plot import curves_png

        curves_png(history, out.with_suffix(".curves.png"), f"{cfg.architecture} on {', '.join(Path(d).name for d in cfg.data)}")
    return info.metrics
