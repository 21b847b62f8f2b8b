"""Held-out evaluation of a predictor on an NSynth-format folder, end to end from the wav files."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from nsep import engine, metrics
from nsep.models.base import Predictor


def classify_scores(
    predictor: Predictor,
    examples: list,
    families: list[str] | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    on_done: Callable[[], None] | None = None,
) -> dict:
    """Accuracy (with a 95 % bootstrap interval that draws whole instruments: the notes of one
    instrument are not independent), per-family accuracy, confusion and calibration (the mean negative
    log-likelihood of the true family, and the expected calibration error) on ``examples`` (NSynth
    reader examples); ``items`` holds one record per note scored, keyed by the note's real path, so runs
    given the folder by other names still pair (:mod:`nsep.compare`).

    With ``families``, only notes of those families count and the decision is the most probable
    of those families (the seed's 4-class task scored with an 11-family model), their
    probabilities renormalised among them.
    """
    labels = predictor.info.labels
    chosen = families or labels
    columns = engine.label_columns(labels, chosen)
    kept = [e for e in examples if e.instrument_family_str in chosen]
    truth = np.asarray([chosen.index(e.instrument_family_str) for e in kept], dtype=np.int64)
    predicted = np.full(len(kept), -1, dtype=np.int64)
    chosen_probabilities = np.zeros((len(kept), len(chosen)))
    failures: list[str] = []
    for result in engine.run(predictor, [str(e.path) for e in kept], batch_size, workers, on_done=on_done):
        if result.error:
            failures.append(result.error)
            continue
        probabilities = engine.restrict(engine.combine(result), columns)
        chosen_probabilities[result.index] = probabilities
        predicted[result.index] = int(probabilities.argmax())
    ok = predicted >= 0
    p_true = chosen_probabilities[ok, truth[ok]]
    confidence = chosen_probabilities[ok].max(axis=1)
    matrix = metrics.confusion(truth[ok], predicted[ok], len(chosen))
    correct = predicted[ok] == truth[ok]
    scored = [e for e, good in zip(kept, ok) if good]
    instruments = _instruments(scored)
    interval = metrics.bootstrap_interval(lambda drawn: correct[drawn].mean(), instruments)
    items = [{"task": "classify", "model": predictor.info.name, "key": os.path.realpath(e.path), "group": str(group),
              "family": chosen[t], "predicted": chosen[p], "correct": bool(c), "p_true": round(float(q), 6)}
             for e, group, t, p, c, q in zip(scored, instruments, truth[ok], predicted[ok], correct, p_true)]
    per_family = metrics.per_class_accuracy(matrix)
    return {
        "model": predictor.info.name,
        "notes": int(ok.sum()),
        "skipped_other_families": len(examples) - len(kept),
        "failed": failures,
        "labels": list(chosen),
        "accuracy": round(metrics.accuracy(matrix), 4),
        "accuracy_ci95": interval,
        "nll": round(float(-np.log(np.maximum(p_true, 1e-12)).mean()), 4) if ok.any() else None,
        "ece": round(metrics.expected_calibration_error(confidence, correct), 4) if ok.any() else None,
        "per_family": {f: (None if np.isnan(a) else round(float(a), 4)) for f, a in zip(chosen, per_family)},
        "support": {f: int(n) for f, n in zip(chosen, matrix.sum(axis=1))},
        "confusion": matrix.tolist(),
        "items": items,
    }


def _instruments(examples: list) -> np.ndarray:
    """Each note's instrument (bank and name) as a group for the bootstrap; a note of unknown
    instrument is a group of its own."""
    return np.asarray([f"{e.dataset}/{e.instrument_str}" if e.instrument_str else str(e.path) for e in examples])
