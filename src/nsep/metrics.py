"""Metrics: accuracy and confusion for classification, AP and F1 for detection, SI-SDR and SDR for
separation, and bootstrap intervals for any of them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BOOTSTRAP_RESAMPLES = 1000


def confusion(truth: np.ndarray, predicted: np.ndarray, n_labels: int) -> np.ndarray:
    """``[true, predicted]`` counts."""
    matrix = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall of each true class (NaN where a class has no examples)."""
    rows = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, np.diag(matrix) / rows, np.nan)


def accuracy(matrix: np.ndarray) -> float:
    total = matrix.sum()
    return float(np.trace(matrix) / total) if total else float("nan")


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """How far confidence is from accuracy: the mean over equal-width confidence bins of
    ``|accuracy - mean confidence|``, weighed by each bin's share of the examples (Guo et al. 2017)."""
    if not len(confidence):
        return float("nan")
    which = np.clip(np.ceil(np.asarray(confidence) * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.mean() * abs(float(np.mean(correct[inside])) - float(np.mean(confidence[inside])))
    return total


def average_precision(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the precision-recall steps (as sklearn computes it; ties form one step); NaN without positives."""
    truth = np.asarray(truth, dtype=bool)
    positives = int(truth.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    sorted_scores, hits = np.asarray(scores)[order], truth[order]
    last_of_tie = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    tp = np.cumsum(hits)[last_of_tie]
    seen = np.flatnonzero(last_of_tie) + 1
    recall = tp / positives
    precision = tp / seen
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def label_average_precision(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """AP of each label (column) of ``[items, labels]`` scores; NaN for labels never present."""
    return np.asarray([average_precision(scores[:, j], truth[:, j]) for j in range(scores.shape[1])])


def mean_average_precision(scores: np.ndarray, truth: np.ndarray) -> float:
    """Mean AP over the labels that occur at least once."""
    ap = label_average_precision(scores, truth)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), np.nan)


def multilabel_f1(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """Micro F1, macro F1 (over labels present in truth or predictions) and per-label F1 of boolean ``[items, labels]``."""
    predicted, truth = np.asarray(predicted, dtype=bool), np.asarray(truth, dtype=bool)
    tp = (predicted & truth).sum(axis=0)
    fp = (predicted & ~truth).sum(axis=0)
    fn = (~predicted & truth).sum(axis=0)
    per_label = _f1(tp, fp, fn)
    micro = _f1(tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True))[0]
    macro = float(np.nanmean(per_label)) if np.isfinite(per_label).any() else float("nan")
    return {"micro": float(micro), "macro": macro, "per_label": per_label}


def label_accuracy(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Share of items on which each label's yes/no decision is right (the seed's per-label accuracy)."""
    return (np.asarray(predicted, dtype=bool) == np.asarray(truth, dtype=bool)).mean(axis=0)


def best_threshold(scores: np.ndarray, truth: np.ndarray, default: float = 0.5) -> float:
    """The decision threshold (``score >= t``) with the highest F1, halfway to the next lower score; ``default`` without positives."""
    truth = np.asarray(truth, dtype=bool)
    positives = int(truth.sum())
    if positives == 0 or positives == len(truth):
        return default
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    sorted_scores, hits = np.asarray(scores, dtype=np.float64)[order], truth[order]
    last_of_tie = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
    tp = np.cumsum(hits)[last_of_tie]
    fp = last_of_tie + 1 - tp
    f1 = 2 * tp / (2 * tp + fp + (positives - tp))
    best = int(np.argmax(f1))
    cut = sorted_scores[last_of_tie[best]]
    lower = sorted_scores[last_of_tie[best] + 1] if last_of_tie[best] + 1 < len(sorted_scores) else 0.0
    return float((cut + lower) / 2)


def best_thresholds(scores: np.ndarray, truth: np.ndarray, default: float = 0.5) -> np.ndarray:
    """:func:`best_threshold` for each label (column)."""
    return np.asarray([best_threshold(scores[:, j], truth[:, j], default) for j in range(scores.shape[1])])


def si_sdr(estimate: np.ndarray, reference: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """Scale-invariant SDR in dB over the last axis (Le Roux et al. 2019); NaN where the reference is silent,
    -inf where the estimate is (a stem given nothing, e.g. closed by presence gating)."""
    estimate, reference = np.asarray(estimate, np.float64), np.asarray(reference, np.float64)
    energy = (reference**2).sum(-1)
    scale = (estimate * reference).sum(-1) / np.maximum(energy, eps)
    target = scale[..., None] * reference
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 10 * np.log10((target**2).sum(-1) / np.maximum(((estimate - target) ** 2).sum(-1), eps))
    return np.where(energy > eps, value, np.nan)


def sdr(estimate: np.ndarray, reference: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """Track-level SDR in dB over the last axis (MDX challenge's nSDR: no scaling, no framing)."""
    estimate, reference = np.asarray(estimate, np.float64), np.asarray(reference, np.float64)
    return 10 * np.log10(((reference**2).sum(-1) + eps) / (((reference - estimate) ** 2).sum(-1) + eps))


def bootstrap_interval(statistic: Callable[[np.ndarray], float], groups: np.ndarray, level: float = 0.95,
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> list[float] | None:
    """A percentile bootstrap interval ``[low, high]`` of ``statistic(indices)`` over items labelled by
    ``groups``: whole groups are drawn with replacement (the notes of one instrument, the stems of one
    mixture are not independent of each other), and the statistic is computed on the items drawn.
    Seeded, so the same data give the same interval; None for fewer than two groups, and a bound that
    is not finite (a median among silenced stems' -inf) is None."""
    _, inverse, sizes = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    if len(sizes) < 2:
        return None
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(sizes)[:-1])
    draw = np.random.default_rng(seed)
    values = [statistic(np.concatenate([members[g] for g in draw.integers(0, len(members), len(members))]))
              for _ in range(resamples)]
    with np.errstate(invalid="ignore"):  # between -inf and a number the interpolation is undefined: None below
        bounds = np.nanpercentile(values, [50 * (1 - level), 50 * (1 + level)])
    return [round(float(b), 4) if np.isfinite(b) else None for b in bounds]
