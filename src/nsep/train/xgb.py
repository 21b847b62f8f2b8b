"""Train the seed's XGBoost baseline on the same note banks and splits as the networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nsep.models import xgb
from nsep.models.base import ModelInfo
from nsep.train.classify import CLIP_SAMPLES, SAMPLE_RATE, load_notes


def train_xgb(folders: list[str], out: str, families: list[str], seed: int = 0, max_notes: int = 4000) -> dict:
    """Fit on at most ``max_notes`` notes (the seed used 4,000), score on the valid instruments."""
    train_notes, valid_notes = load_notes(folders, families, seed, max_notes)
    booster = xgb.train(train_notes.audio.float() / 32768.0, train_notes.labels.numpy(), len(families), seed=seed)
    probs = booster.inplace_predict(xgb.seed_features(valid_notes.audio.float() / 32768.0))
    correct = probs.reshape(len(valid_notes), -1).argmax(-1) == valid_notes.labels.numpy()
    metrics = {"valid_accuracy": round(float(correct.mean()), 4), "valid_per_family": {
        families[i]: round(float(correct[valid_notes.labels.numpy() == i].mean()), 4)
        for i in np.unique(valid_notes.labels.numpy())}}
    info = ModelInfo(name=Path(out).stem, architecture="xgb", task="classify", labels=families,
                     sample_rate=SAMPLE_RATE, clip_samples=CLIP_SAMPLES, metrics=metrics,
                     training={"data": folders, "train_notes": len(train_notes), "seed": seed,
                               "params": {**xgb.SEED_PARAMS, "rounds": xgb.SEED_ROUNDS}})
    xgb.save(booster, info, Path(out))
    return metrics
