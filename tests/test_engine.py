"""Batched inference over files: windows, order, failures, combination."""

import os

import numpy as np
import soundfile as sf
import torch

from nsep import engine
from nsep.models.base import Later, ModelInfo, Predictor


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


def test_worker_processes_give_the_same_results_in_the_same_order(tmp_path):
    paths = []
    for i, seconds in enumerate([0.5, 3.0, 1.0, 2.2, 0.3, 1.7]):
        path = tmp_path / f"f{i}.wav"
        sf.write(path, (0.1 + 0.05 * i) * np.sin(np.arange(int(16_000 * seconds)) * 0.05), 16_000)
        paths.append(str(path))
    paths.insert(3, str(tmp_path / "missing.wav"))
    alone = list(engine.run(EnergyPredictor(), paths, batch_size=3, workers=0))
    shared = list(engine.run(EnergyPredictor(), paths, batch_size=3, workers=2))
    assert [r.path for r in shared] == paths
    assert [r.error is None for r in shared] == [r.error is None for r in alone]
    for a, b in zip(alone, shared):
        if a.error is None:
            assert np.allclose(a.probabilities, b.probabilities) and np.allclose(a.window_starts, b.window_starts)


def test_half_precision_hand_over_keeps_windows_close(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, 0.3 * np.sin(np.arange(20_000) * 0.05), 8_000, subtype="FLOAT")
    full, half = (next(iter(engine.WindowBatches([str(path)], 8_000, 1_000, 500, 64, 64, dtype=dtype)))
                  for dtype in (torch.float32, torch.float16))
    assert half.windows.dtype == torch.float16 and half.windows.shape == full.windows.shape == (39, 1_000)
    assert (half.windows.float() - full.windows).abs().max() < 3e-4
    assert half.closed == full.closed == [(0, 2.5, None)]


def test_lookahead_finishes_each_batch_after_the_next_is_submitted():
    events = []

    def submit(batch):
        events.append(("submit", batch))
        return batch * 10

    def finish(batch, later):
        events.append(("finish", batch))
        yield later

    assert list(engine.lookahead(iter([1, 2, 3]), submit, finish)) == [10, 20, 30]
    assert events == [("submit", 1), ("submit", 2), ("finish", 1), ("submit", 3), ("finish", 2), ("finish", 3)]
    assert list(engine.lookahead(iter([]), submit, finish)) == []


def test_later_hands_back_arrays_added_after_it_was_made():
    later = Later(torch.arange(3.0)).add(np.ones(2), torch.zeros(1, dtype=torch.bool))
    first, second, third = later.get()
    assert first.tolist() == [0.0, 1.0, 2.0] and second.tolist() == [1.0, 1.0] and third.tolist() == [False]


def test_the_gpu_allocator_setting_is_a_default_the_user_can_override(monkeypatch):
    from nsep import memory

    monkeypatch.delenv("PYTORCH_CUDA_ALLOC_CONF", raising=False)
    memory.limit_gpu_fragmentation()
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == memory.GPU_ALLOCATOR
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:128")
    memory.limit_gpu_fragmentation()
    assert os.environ["PYTORCH_CUDA_ALLOC_CONF"] == "max_split_size_mb:128"
