"""`nsep detect`: output fields, segments, thresholds, long files and bad inputs (untrained tiny models)."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from nsep import detection
from nsep.models import registry
from nsep.models.base import ModelInfo, Predictor, save_checkpoint
from nsep.taxonomy import FAMILIES
from nsep.timeline import Timeline

from conftest import error_lines

LABELS = list(FAMILIES)


def _save(path, architecture: str, config: dict, thresholds: list[float] | None = None) -> str:
    info = ModelInfo(name=path.stem, architecture=architecture, task="detect", labels=LABELS, sample_rate=16_000,
                     clip_samples=64_000, config=config, thresholds=thresholds)
    save_checkpoint(path, registry.build(architecture, len(LABELS), config), info)
    return str(path)


@pytest.fixture
def detector_file(tmp_path):
    return _save(tmp_path / "tiny-detector.pt", "detector", {"width": 4}, thresholds=[0.5] * len(LABELS))


class Loudness(Predictor):
    """A stand-in model: family 0 plays wherever the window is loud, clip and frames alike."""

    def __init__(self):
        self.info = ModelInfo(name="loudness", architecture="test", task="detect", labels=["a", "b"],
                              sample_rate=16_000, clip_samples=16_000)

    def predict(self, waves: torch.Tensor) -> np.ndarray:
        return self.predict_frames(waves)[0]

    def predict_frames(self, waves: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        frames = waves.reshape(len(waves), 10, -1).abs().amax(dim=-1).numpy() > 0.1  # [B, 10]
        stacked = np.stack([frames, np.zeros_like(frames)], axis=1).astype(np.float32)
        return stacked.max(axis=-1), stacked


def test_jsonl_fields_segments_and_labels(cli, make_audio, detector_file):
    a, b = make_audio("a.wav", seconds=2), make_audio("b.flac", seconds=9, rate=44_100, channels=2)
    code, out, err = cli("detect", str(a), str(b), "--model", detector_file, "--jsonl", "--threshold", "0.3",
                         "--min-duration", "0")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in rows] == [str(a), str(b)]
    for row in rows:
        assert set(row) >= {"path", "present", "labels", "segments", "model", "duration"}
        assert list(row["present"]) == LABELS and row["model"] == "tiny-detector"
        assert row["labels"] == [f for f, p in row["present"].items() if p >= 0.3]
        for s in row["segments"]:
            assert s["family"] in LABELS and 0 <= s["start"] < s["end"] <= row["duration"] + 1e-6
            assert 0 <= s["confidence"] <= 1
        starts = [(s["start"], LABELS.index(s["family"])) for s in row["segments"]]
        assert starts == sorted(starts)
    assert rows[1]["windows"] > 1 and rows[1]["duration"] == pytest.approx(9.0)


def test_table_shows_a_timeline_bar(cli, make_audio, detector_file):
    a = make_audio("a.wav", seconds=3)
    code, out, _ = cli("detect", str(a), "--model", detector_file, "--threshold", "0")
    assert code == 0 and str(a) in out and "█" in out and "bass" in out


def test_clip_models_load_with_thresholds_and_give_one_frame_per_window(tmp_path):
    path = _save(tmp_path / "m.pt", "mlp", {}, thresholds=[0.25] * len(LABELS))
    predictor = registry.load(path, "detect", "cpu")
    assert predictor.info.thresholds == [0.25] * len(LABELS)
    thresholds = detection.Thresholds.of(predictor.info)
    assert list(thresholds.clip) == list(thresholds.frame) == [0.25] * len(LABELS)  # frames default to clip's
    assert list(detection.Thresholds.of(predictor.info, 0.7).frame) == [0.7] * len(LABELS)
    clip, frames = predictor.predict_frames(torch.randn(2, 64_000))
    assert clip.shape == (2, len(LABELS)) and frames.shape == (2, len(LABELS), 1)


def test_a_long_file_gets_a_timeline_over_all_of_it(tmp_path):
    rate, seconds = 16_000, 600
    t = np.arange(rate * seconds) / rate
    wave = np.where((t >= 100) & (t < 400), 0.5 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    wave[:10] = 0.01  # not all silent at the start
    path = tmp_path / "ten-minutes.wav"
    sf.write(path, wave, rate)
    thresholds = detection.Thresholds(np.array([0.5, 0.5]), np.array([0.5, 0.5]))
    (result,) = detection.run(Loudness(), [str(path)], thresholds, min_duration=1.0)
    assert result.error is None and result.duration == pytest.approx(seconds)
    assert result.windows == 2 * seconds - 1
    assert [(s.family, round(s.start, 1), round(s.end, 1)) for s in result.segments] == [("a", 100.0, 400.0)]
    assert list(result.present) == [1.0, 0.0]


def test_segments_are_kept_only_for_families_present_in_the_file(tmp_path):
    rate = 16_000
    paths = []
    for seconds in (1, 3):  # one window, and several
        path = tmp_path / f"{seconds}s.wav"
        sf.write(path, (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate * seconds) / rate)).astype(np.float32), rate)
        paths.append(str(path))
    frame_only = detection.Thresholds(np.array([1.5, 0.5]), np.array([0.5, 0.5]))  # frames pass, presence never does
    both = detection.Thresholds(np.array([0.5, 0.5]), np.array([0.5, 0.5]))
    for result in detection.run(Loudness(), paths, frame_only):
        assert result.error is None and result.segments == []
    for result in detection.run(Loudness(), paths, both):
        assert [s.family for s in result.segments] == ["a"]


def test_timeline_holds_only_the_windows_in_flight():
    timeline = Timeline(2, step=0.1)
    released = 0
    for n in range(1000):
        timeline.add(n * 2.0, 4.0, np.ones((2, 40)))
        released += timeline.pop(n * 2.0)[1].shape[1]
        assert timeline.weight.shape[0] <= 41
    assert released + timeline.finish(2002.0)[1].shape[1] == 20020


def test_bad_inputs_fail_alone_with_one_line_each(cli, make_audio, tmp_path, detector_file):
    good = make_audio("good.wav")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16_000), 16_000)
    code, out, err = cli("detect", str(good), str(silent), str(tmp_path / "gone.wav"), "--model", detector_file, "--jsonl")
    assert code == 1 and [json.loads(line)["path"] for line in out.splitlines()] == [str(good)]
    lines = error_lines(err)
    assert len(lines) == 2 and "silent" in lines[0] and "no such file" in lines[1]


def test_a_classifier_is_refused_and_options_are_checked(cli, make_audio, tmp_path):
    info = ModelInfo(name="c", architecture="cnn", task="classify", labels=LABELS[:11], sample_rate=16_000,
                     clip_samples=64_000, config={"width": 4})
    save_checkpoint(tmp_path / "c.pt", registry.build("cnn", 11, {"width": 4}), info)
    a = make_audio("a.wav")
    code, _, err = cli("detect", str(a), "--model", str(tmp_path / "c.pt"))
    assert code == 2 and "classify model, not detect" in err
    code, _, err = cli("detect", str(a), "--threshold", "1.5")
    assert code == 2


def test_xgb_detector_predicts_every_family_and_keeps_its_thresholds(tmp_path):
    from nsep.models import xgb

    gen = torch.Generator().manual_seed(0)
    t = torch.arange(64_000) / 16_000
    level = torch.rand(12, 1, generator=gen)
    waves = torch.sin(2 * torch.pi * 110 * t) * level + 0.01 * torch.randn(12, 64_000, generator=gen)
    targets = np.zeros((12, len(LABELS)), dtype=np.float32)
    targets[::2, 0] = 1
    booster = xgb.train_multilabel(xgb.seed_features(waves), targets, rounds=2)
    info = ModelInfo(name="x", architecture="xgb", task="detect", labels=LABELS, sample_rate=16_000, clip_samples=64_000,
                     thresholds=[0.3] * len(LABELS), frame_thresholds=[0.4] * len(LABELS))
    xgb.save(booster, info, tmp_path / "x.ubj")
    predictor = registry.load(str(tmp_path / "x.ubj"), "detect", "cpu")
    assert predictor.info.thresholds == [0.3] * len(LABELS) and predictor.info.frame_thresholds == [0.4] * len(LABELS)
    clip, frames = predictor.predict_frames(waves[:3])
    assert clip.shape == (3, len(LABELS)) and frames.shape == (3, len(LABELS), 1)
    assert ((clip >= 0) & (clip <= 1)).all()
