"""Batched inference over files: windows, order, failures, combination."""

import numpy as np
import soundfile as sf
import torch

from nsep import engine
from nsep.models.base import ModelInfo, Predictor


class EnergyPredictor(Predictor):
    """Two labels: probability of 'loud' grows with window RMS (a transparent stand-in model)."""

    def __init__(self):
        self.info = ModelInfo(name="energy", architecture="test", task="classify", labels=["quiet", "loud"],
                              sample_rate=8_000, clip_samples=8_000)
        self.batches = []

    def predict(self, waves):
        self.batches.append(len(waves))
        rms = waves.square().mean(-1).sqrt().numpy()
        loud = np.clip(rms * 2, 0, 1)
        return np.stack([1 - loud, loud], axis=1)


def test_split_windows_pads_short_and_covers_long():
    windows, starts = engine.split_windows(torch.ones(300), 1000, 500)
    assert windows.shape == (1, 1000) and windows[0, 300:].abs().sum() == 0
    windows, starts = engine.split_windows(torch.arange(2300.0), 1000, 500)
    assert list(starts) == [0, 500, 1000, 1300]
    assert windows[-1, -1] == 2299


def test_results_come_in_input_order_with_failures_in_place(tmp_path):
    paths = []
    for i, seconds in enumerate([0.5, 3.0, 1.0]):
        path = tmp_path / f"f{i}.wav"
        sf.write(path, 0.3 * np.sin(np.arange(int(16_000 * seconds)) * 0.05), 16_000)
        paths.append(str(path))
    paths.insert(1, str(tmp_path / "missing.wav"))
    predictor = EnergyPredictor()
    results = list(engine.run(predictor, paths, batch_size=4, workers=0))
    assert [r.path for r in results] == paths
    assert results[1].error and "no such file" in results[1].error
    assert results[2].probabilities.shape[0] == 5  # 3 s at 8 kHz in 1-s windows, hop 0.5 s
    assert max(predictor.batches) <= 4 + 5  # batches fill across files, bounded by one file's windows


def test_combine_ignores_silent_windows():
    result = engine.FileResult(0, "x", probabilities=np.array([[0.9, 0.1], [0.1, 0.9]]),
                               window_rms=np.array([0.5, 1e-6]))
    assert np.allclose(engine.combine(result), [0.9, 0.1])
