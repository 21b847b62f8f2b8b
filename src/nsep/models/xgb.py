"""The seed project's baseline: XGBoost on the flattened magnitude STFT (n_fft 2048, hop 512, 16 kHz).

Classification fits one softmax booster; detection one logistic booster per family, as the seed did.

A 4-s note gives 1025 x 126 = 129,150 features. Hyper-parameters are the seed's: 100 rounds,
depth 3, learning rate 0.1. Each waveform is peak-normalised first (the seed's raw features
depended on level). nsep metadata travels inside the booster as the attribute ``nsep``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from nsep.features import FeatureSpec, Spectrogram
from nsep.models.base import ModelInfo, Predictor

SEED_FEATURE = FeatureSpec(scale="linear", sample_rate=16_000, n_fft=2048, hop=512, db=False, top_db=None)
SEED_PARAMS = {"max_depth": 3, "eta": 0.1, "tree_method": "hist", "max_bin": 64}
SEED_ROUNDS = 100


def seed_features(waves: torch.Tensor, chunk: int = 256) -> np.ndarray:
    """Flattened |STFT| of peak-normalised waveforms ``[B, T]`` -> ``[B, 1025 * frames]`` float32.

    Computed ``chunk`` clips at a time, so the complex STFT never holds the whole batch."""
    front = Spectrogram(SEED_FEATURE)
    parts = []
    for part in waves.split(chunk):
        peak = part.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8)
        parts.append(front.power(part.float() / peak).sqrt().flatten(1).numpy())
    return np.concatenate(parts)


def train(waves: torch.Tensor, labels: np.ndarray, n_labels: int, rounds: int = SEED_ROUNDS, threads: int = 0, seed: int = 0):
    """Fit a softmax booster on seed features; returns an ``xgboost.Booster``."""
    import xgboost as xgb

    data = xgb.QuantileDMatrix(seed_features(waves), label=labels, max_bin=SEED_PARAMS["max_bin"])
    params = {**SEED_PARAMS, "objective": "multi:softprob", "num_class": n_labels, "nthread": threads, "seed": seed}
    return xgb.train(params, data, num_boost_round=rounds)


def train_multilabel(features: np.ndarray, targets: np.ndarray, rounds: int = SEED_ROUNDS, threads: int = 0,
                     seed: int = 0, colsample: float = 1.0):
    """Fit one logistic booster per label (the columns of ``targets``) in one model; ``colsample`` < 1 speeds it up."""
    import xgboost as xgb

    data = xgb.QuantileDMatrix(features, label=targets, max_bin=SEED_PARAMS["max_bin"])
    params = {**SEED_PARAMS, "objective": "binary:logistic", "multi_strategy": "one_output_per_tree",
              "colsample_bytree": colsample, "nthread": threads, "seed": seed}
    return xgb.train(params, data, num_boost_round=rounds)


def save(booster, info: ModelInfo, path: Path) -> None:
    from nsep.audio import atomic_output

    booster.set_attr(nsep=json.dumps({
        "architecture": info.architecture, "task": info.task, "labels": info.labels,
        "sample_rate": info.sample_rate, "clip_samples": info.clip_samples,
        "metrics": info.metrics, "training": info.training, "thresholds": info.thresholds,
        "frame_thresholds": info.frame_thresholds,
    }))
    with atomic_output(path, overwrite=True) as tmp:
        booster.save_model(str(tmp.with_suffix(".ubj")))
        tmp.with_suffix(".ubj").replace(tmp)


class XGBPredictor(Predictor):
    """Loads a booster saved by :func:`save` and predicts class probabilities."""

    def __init__(self, path: Path, name: str):
        import xgboost as xgb

        from nsep.errors import NsepError

        self.booster = xgb.Booster()
        try:
            self.booster.load_model(str(path))
            meta = json.loads(self.booster.attr("nsep") or "")
        except (xgb.core.XGBoostError, json.JSONDecodeError):
            raise NsepError(f"{path}: not an nsep XGBoost model") from None
        self.info = ModelInfo(
            name=name, architecture="xgb", task=meta["task"], labels=meta["labels"],
            sample_rate=meta["sample_rate"], clip_samples=meta["clip_samples"],
            metrics=meta.get("metrics", {}), training=meta.get("training", {}), thresholds=meta.get("thresholds"),
            frame_thresholds=meta.get("frame_thresholds"),
        )

    def predict(self, waves: torch.Tensor) -> np.ndarray:
        """Class probabilities (softmax boosters) or per-label probabilities (logistic ones)."""
        return self.booster.inplace_predict(seed_features(waves.cpu())).reshape(len(waves), -1)
