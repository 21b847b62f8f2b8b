"""Train the seed's XGBoost detector (one logistic booster per family) on the same mixtures as the networks."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from nsep import evaluate_detect
from nsep.models import xgb
from nsep.models.base import ModelInfo
from nsep.taxonomy import FAMILIES
from nsep.train.detect import (
    CLIP_SAMPLES, SAMPLE_RATE, DetectConfig, auto_workers, choose_thresholds, mixture_loader, run_seed, split_banks,
    store_thresholds, validate,
)

SEED_MIXTURES = 4000  # the seed trained each booster on 4,000 mixtures


def train_xgb(cfg: DetectConfig, mixtures: int = SEED_MIXTURES, colsample: float = 0.1,
              report: Callable[[dict], None] = print) -> dict:
    """Fit on ``mixtures`` training mixtures; thresholds and scores from the validation mixtures."""
    device = torch.device("cpu")
    workers = auto_workers(torch.device("cuda")) if cfg.workers is None else cfg.workers
    train_notes, valid_notes = split_banks(cfg.data)
    report({"event": "data", "train_notes": len(train_notes), "valid_notes": len(valid_notes),
            "modes": ",".join(cfg.modes), "workers": workers})
    per_mode = math.ceil(mixtures / len(cfg.modes))
    loader = mixture_loader(train_notes, cfg.modes, per_mode, run_seed(cfg.seed, "train", 0), cfg.k,
                            cfg.batch_size, workers, device)
    n = per_mode * len(cfg.modes)
    features: np.ndarray | None = None
    targets = np.zeros((n, len(FAMILIES)), dtype=np.float32)
    filled = 0
    for mix, presence, _, _ in loader:
        batch = xgb.seed_features(mix)
        if features is None:
            features = np.empty((n, batch.shape[1]), dtype=np.float32)
        features[filled : filled + len(batch)], targets[filled : filled + len(batch)] = batch, presence.numpy()
        filled += len(batch)
    report({"event": "features", "mixtures": n, "features": features.shape[1], "boosting_rounds": xgb.SEED_ROUNDS})
    booster = xgb.train_multilabel(features, targets, seed=cfg.seed, colsample=colsample)
    del features
    info = ModelInfo(name=Path(cfg.out).stem, architecture="xgb", task="detect", labels=list(FAMILIES),
                     sample_rate=SAMPLE_RATE, clip_samples=CLIP_SAMPLES,
                     training={"data": cfg.data, "modes": list(cfg.modes), "k": list(cfg.k), "mixtures": n,
                               "seed": cfg.seed, "params": {**xgb.SEED_PARAMS, "rounds": xgb.SEED_ROUNDS,
                                                            "colsample_bytree": colsample}})
    xgb.save(booster, info, Path(cfg.out))
    predictor = xgb.XGBPredictor(Path(cfg.out), info.name)
    valid = mixture_loader(valid_notes, cfg.modes, cfg.valid_mixtures, run_seed(cfg.seed, "valid"), cfg.k,
                           cfg.batch_size, workers, device, shuffle=False)
    collected, _ = validate(predictor, valid)
    thresholds = choose_thresholds(collected)
    store_thresholds(info, thresholds)
    info.metrics = {"valid": evaluate_detect.scores(collected, info.labels, thresholds)}
    xgb.save(booster, info, Path(cfg.out))
    return info.metrics
