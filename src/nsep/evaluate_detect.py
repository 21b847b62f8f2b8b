"""Detection scores on labelled mixtures: the seed's per-label accuracy, mAP, micro/macro F1, frame F1.

Frame-level scores compare every model on the reference activity's own grid: a model's frames
are interpolated onto it, and a model without a time axis holds its clip output over the clip.
Only families that occur in the scored mixtures count, so a bank without drums does not flatter
a model with 12 easy negatives.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from nsep import metrics
from nsep.compare import fingerprint
from nsep.data import mixtures
from nsep.data.nsynth import Example
from nsep.detection import Thresholds
from nsep.models.base import Predictor

SAMPLE_RATE = 16_000
CLIP_SAMPLES = 64_000


@dataclass
class Collected:
    """Model outputs and references for a set of mixtures."""

    probs: np.ndarray  # [N, L] clip probabilities
    truth: np.ndarray  # [N, L] bool presence
    frame_probs: np.ndarray  # [N, L, R] on the reference grid
    frame_truth: np.ndarray  # [N, L, R] bool activity
    counts: np.ndarray  # [N] instruments in each mixture
    fingerprints: np.ndarray | None = None  # [N] checksums of the mixtures' samples (nsep.compare.fingerprint)


def run_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed derived from the run's seed and a purpose, stable across runs and platforms."""
    return zlib.crc32(":".join(map(str, (seed, *parts))).encode()) & 0x7FFFFFFF


def mixture_loader(examples: list[Example], modes: tuple[str, ...], count: int, seed: int, k: tuple[int, int],
                   batch_size: int, workers: int, device: torch.device, shuffle: bool = True, rank: int = 0,
                   world: int = 1):
    """Batches ``(mix [B, T], presence [B, L], activity [B, L, R], counts [B])`` of ``count`` mixtures per mode.

    Process ``rank`` of ``world`` gets its part: shuffled, the processes' batches together are the
    batches one process would get with ``world`` times ``batch_size``; in order, every
    ``world``-th mixture (:func:`nsep.distributed.shard`).
    """
    sets = [mixtures.dataset(examples, mode, count, run_seed(seed, mode), k, SAMPLE_RATE, CLIP_SAMPLES) for mode in modes]
    data = torch.utils.data.ConcatDataset(sets)
    order = (torch.utils.data.DistributedSampler(data, world, rank, shuffle=True, seed=seed) if shuffle
             else range(rank, len(data), world))
    return torch.utils.data.DataLoader(
        data, batch_size=batch_size, sampler=order, num_workers=workers,
        generator=torch.Generator().manual_seed(seed), pin_memory=device.type == "cuda",
        persistent_workers=False, collate_fn=mixtures.collate,
    )


def to_grid(frames: np.ndarray, size: int) -> np.ndarray:
    """``[B, L, F]`` frames spread evenly over a clip -> ``[B, L, size]``, linearly interpolated at cell centres."""
    if frames.shape[-1] == size:
        return frames
    tensor = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
    if frames.shape[-1] == 1:
        return tensor.expand(-1, -1, size).numpy()
    return torch.nn.functional.interpolate(tensor, size=size, mode="linear", align_corners=False).numpy()


def collect(predictor: Predictor, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
            on_batch: Callable[[int], None] | None = None) -> Collected:
    """Run ``predictor`` over ``(mix [B, T], presence [B, L], activity [B, L, R], counts [B])`` batches."""
    parts: list[tuple[np.ndarray, ...]] = []
    for mix, presence, activity, counts in batches:
        clip, frames = predictor.predict_frames(mix)
        parts.append((clip, presence.numpy() > 0.5, to_grid(frames, activity.shape[-1]).astype(np.float16),
                      activity.numpy() > 0.5, counts.numpy(), np.asarray([fingerprint(m) for m in mix.cpu().numpy()])))
        if on_batch:
            on_batch(len(mix))
    return Collected(*(np.concatenate(column) for column in zip(*parts)))


def _round(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def frames_by_label(frames: np.ndarray) -> np.ndarray:
    """``[N, L, R]`` -> ``[N * R, L]``: every (mixture, frame) as one item."""
    return frames.transpose(0, 2, 1).reshape(-1, frames.shape[1])


def _summary(c: Collected, columns: np.ndarray, thresholds: Thresholds) -> tuple[dict, dict]:
    """Headline scores, and per-label arrays (AP, F1, accuracy, frame F1) for ``columns``. A frame is
    decided active only in a mixture its family is decided present in, as ``nsep detect`` keeps
    segments of present families only."""
    probs, truth = c.probs[:, columns], c.truth[:, columns]
    decided = probs >= thresholds.clip[columns]
    f1 = metrics.multilabel_f1(decided, truth)
    active = (c.frame_probs[:, columns] >= thresholds.frame[columns, None]) & decided[:, :, None]
    frames = metrics.multilabel_f1(frames_by_label(active), frames_by_label(c.frame_truth[:, columns]))
    accuracy = metrics.label_accuracy(decided, truth)
    ap = metrics.label_average_precision(probs, truth)
    headline = {
        "map": _round(np.nanmean(ap) if np.isfinite(ap).any() else np.nan),
        "micro_f1": _round(f1["micro"]),
        "macro_f1": _round(f1["macro"]),
        "per_label_accuracy": _round(accuracy.mean()),
        "frame_f1": _round(frames["micro"]),
        "frame_macro_f1": _round(frames["macro"]),
        "mixtures": len(probs),
    }
    return headline, {"ap": ap, "f1": f1["per_label"], "accuracy": accuracy, "frame_f1": frames["per_label"]}


def scores(c: Collected, labels: list[str], thresholds: Thresholds) -> dict:
    """Overall, per-family and per-instrument-count scores over the families that occur in ``c``."""
    columns = np.flatnonzero(c.truth.any(axis=0))
    headline, per_label = _summary(c, columns, thresholds)
    headline.update(_intervals(c, columns, thresholds))
    per_family = {
        labels[j]: {**{name: _round(values[i]) for name, values in per_label.items()},
                    "threshold": round(float(thresholds.clip[j]), 4),
                    "frame_threshold": round(float(thresholds.frame[j]), 4), "support": int(c.truth[:, j].sum())}
        for i, j in enumerate(columns)
    }
    by_count = {int(k): _summary(_subset(c, c.counts == k), columns, thresholds)[0] for k in np.unique(c.counts)}
    return {**headline, "families": [labels[j] for j in columns], "per_family": per_family, "by_instruments": by_count}


def _intervals(c: Collected, columns: np.ndarray, thresholds: Thresholds) -> dict:
    """95 % bootstrap intervals of mAP and per-label accuracy, drawing whole mixtures."""
    probs, truth = c.probs[:, columns], c.truth[:, columns]
    right = (probs >= thresholds.clip[columns]) == truth
    mixtures = np.arange(len(probs))
    return {"map_ci95": metrics.bootstrap_interval(lambda drawn: metrics.mean_average_precision(probs[drawn], truth[drawn]), mixtures),
            "per_label_accuracy_ci95": metrics.bootstrap_interval(lambda drawn: right[drawn].mean(), mixtures)}


def _subset(c: Collected, mask: np.ndarray) -> Collected:
    return Collected(c.probs[mask], c.truth[mask], c.frame_probs[mask], c.frame_truth[mask], c.counts[mask],
                     None if c.fingerprints is None else c.fingerprints[mask])


def mixture_scores(predictor: Predictor, examples: list[Example], mode: str, k: tuple[int, int], count: int,
                   seed: int, thresholds: Thresholds, batch_size: int = 32, workers: int = 0,
                   on_batch: Callable[[int], None] | None = None) -> dict:
    """:func:`scores` on ``count`` fresh mixtures of each size in ``k`` (seeded), made from ``examples``;
    ``items`` holds one record per mixture (:mod:`nsep.compare`)."""
    loaders = [mixture_loader(examples, (mode,), count, run_seed(seed, "eval", n), (n, n), batch_size, workers,
                              predictor.device, shuffle=False) for n in range(k[0], k[1] + 1)]
    collected = collect(predictor, itertools.chain(*loaders), on_batch)
    return {"model": predictor.info.name, "mode": mode, "k": list(k), "mixtures_per_k": count, "seed": seed,
            **scores(collected, predictor.info.labels, thresholds),
            "items": _items(collected, predictor.info.name, predictor.info.labels, thresholds, mode)}


def _items(c: Collected, model: str, labels: list[str], thresholds: Thresholds, mode: str) -> list[dict]:
    """One record per mixture: which families play, the clip probabilities and the decisions."""
    decided = c.probs >= thresholds.clip
    items = []
    for i in range(len(c.probs)):
        key = f"{mode}/{int(c.counts[i])}/{i}/{c.fingerprints[i]}"
        items.append({"task": "detect", "model": model, "key": key, "group": key,
                      "truth": {f: bool(t) for f, t in zip(labels, c.truth[i])},
                      "probs": {f: round(float(p), 6) for f, p in zip(labels, c.probs[i])},
                      "decided": {f: bool(d) for f, d in zip(labels, decided[i])}})
    return items
