"""Training a detector on mixtures of a small synthesised note bank; evaluating it on fresh mixtures."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from test_mixtures import one_thread  # noqa: F401  (one torch thread for this module, too)

from nsep.features import FeatureSpec
from nsep.models import registry
from nsep.taxonomy import FAMILIES, family_index
from nsep.train.detect import DetectConfig, load_init, train

RATE = 16_000


def _note(family: str, pitch: int, variant: int, rng: np.random.Generator) -> np.ndarray:
    """4 s of a tone whose timbre marks its family: a low hum, a pure whistle, or noise hits."""
    t = np.arange(4 * RATE) / RATE
    f0 = 440 * 2 ** ((pitch - 69) / 12)
    if family == "bass":
        wave = sum(np.sin(2 * np.pi * f0 * h * t) / h ** (1 + 0.3 * variant) for h in range(1, 6))
    elif family == "flute":
        wave = np.sin(2 * np.pi * f0 * t) + 0.05 * (1 + variant) * np.sin(4 * np.pi * f0 * t)
    else:
        hits = (np.arange(len(t)) % (RATE // (2 + variant))) < 1600
        wave = rng.standard_normal(len(t)) * hits * np.exp(-30 * ((t * (2 + variant)) % 1))
    envelope = np.minimum(1, np.maximum(0, 3.2 - t) / 0.2)
    return (0.8 * wave * envelope / np.abs(wave).max()).astype(np.float32)


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """Three families, two instruments each (variant 0 trains, variant 1 validates), five pitches."""
    folder = tmp_path_factory.mktemp("bank")
    (folder / "audio").mkdir()
    rng = np.random.default_rng(0)
    examples = {}
    pitches = {"bass": range(36, 41), "flute": range(72, 77), "drums": range(36, 41)}
    for family, notes in pitches.items():
        for variant, split in ((0, "train"), (1, "valid")):
            name = f"{family}_synthetic_{variant:03d}"
            for pitch in notes:
                note_str = f"{name}-{pitch:03d}-100"
                sf.write(folder / "audio" / f"{note_str}.wav", _note(family, pitch, variant, rng), RATE, subtype="PCM_16")
                examples[note_str] = {
                    "note": len(examples), "note_str": note_str, "instrument": variant, "instrument_str": name,
                    "pitch": pitch, "velocity": 100, "sample_rate": RATE, "qualities": [0] * 10, "qualities_str": [],
                    "instrument_family": family_index(family), "instrument_family_str": family,
                    "instrument_source": 2, "instrument_source_str": "synthetic", "split": split,
                }
    (folder / "examples.json").write_text(json.dumps(examples))
    return folder


@pytest.fixture(scope="module")
def trained(bank, tmp_path_factory):
    """A tiny frame-level detector, trained one epoch, then resumed for a second."""
    out = tmp_path_factory.mktemp("model") / "detect-tiny.pt"
    small = FeatureSpec(scale="mel", n_fft=1024, hop=512, n_bands=32, fmin=20.0, fmax=8000.0).to_dict()
    cfg = DetectConfig(data=[str(bank)], out=str(out), modes=("seed", "music"), k=(1, 2), epochs=1, steps_per_epoch=12,
                       batch_size=16, lr=3e-3, valid_mixtures=24, workers=0, augment=False,
                       model_config={"width": 4, "feature": small})
    events: list[dict] = []
    train(cfg, report=events.append)
    cfg.epochs = 2
    metrics = train(cfg, resume=True, report=events.append)
    return out, metrics, events


def test_training_learns_above_chance_and_resumes(trained):
    out, metrics, events = trained
    epochs = [e["epoch"] for e in events if e["event"] == "epoch"]
    assert epochs == [1, 2]
    log = [json.loads(line) for line in out.with_suffix(".log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2]
    valid = metrics["valid"]
    assert set(valid["families"]) == {"bass", "flute", "drums"}
    # chance: a family is present in about half of the 1-2-family mixtures of 3 families
    assert valid["map"] > 0.75 and valid["micro_f1"] > 0.66
    assert out.with_suffix(".curves.png").stat().st_size > 0


def test_thresholds_load_with_the_model(trained):
    out, metrics, _ = trained
    predictor = registry.load(str(out), "detect", "cpu")
    for thresholds in (predictor.info.thresholds, predictor.info.frame_thresholds):
        assert len(thresholds) == len(FAMILIES) and all(0 <= t <= 1 for t in thresholds)
        assert thresholds[FAMILIES.index("brass")] == 0.5  # never seen in validation: the default
    assert predictor.info.metrics["valid"]["map"] == metrics["valid"]["map"]


def test_eval_detect_reports_by_instrument_count(cli, bank, trained):
    out, _, _ = trained
    code, stdout, err = cli("eval", "detect", "--data", str(bank), "--model", str(out), "--mode", "music",
                            "--k", "1..2", "--mixtures", "6", "--split", "valid", "--json")
    assert code == 0, err
    scores = json.loads(stdout)
    assert scores["mode"] == "music" and set(scores["by_instruments"]) == {"1", "2"}
    assert scores["mixtures"] == 12 and scores["frame_f1"] is not None
    assert set(scores["per_family"]) <= {"bass", "flute", "drums"}
    assert scores["map_ci95"][0] <= scores["map"] <= scores["map_ci95"][1]
    assert scores["per_label_accuracy_ci95"][0] <= scores["per_label_accuracy"] <= scores["per_label_accuracy_ci95"][1]
    code, again, _ = cli("eval", "detect", "--data", str(bank), "--model", str(out), "--mode", "music",
                         "--k", "1..2", "--mixtures", "6", "--split", "valid", "--json")
    assert again == stdout  # the same seed gives the same mixtures and scores


def test_eval_detect_items_compare(cli, bank, trained, tmp_path):
    out, _, _ = trained
    args = ("-q", "eval", "detect", "--data", str(bank), "--mode", "music", "--k", "1..2", "--mixtures", "6",
            "--split", "valid", "--json")
    code, stdout, err = cli(*args, "--model", str(out), "--items", str(tmp_path / "tiny.jsonl"))
    assert code == 0, err
    scores = json.loads(stdout)
    code, _, err = cli(*args, "--model", "detect-cnn", "--items", str(tmp_path / "shipped.jsonl"))
    assert code == 0, err
    code, stdout, err = cli("eval", "compare", str(tmp_path / "shipped.jsonl"), str(tmp_path / "tiny.jsonl"), "--json")
    assert code == 0, err
    result = json.loads(stdout)
    by_name = {r["metric"]: r for r in result["metrics"]}
    assert result["items"] == 12 and set(result["families"]) == set(scores["families"])
    assert by_name["map"]["b"] == pytest.approx(scores["map"], abs=1e-3)
    assert by_name["per_label_accuracy"]["b"] == pytest.approx(scores["per_label_accuracy"], abs=1e-3)


def test_average_tail_writes_a_validated_mean_with_its_own_thresholds(cli, bank, tmp_path):
    from nsep.models.base import read_checkpoint
    from nsep.train.state import average_path

    out = tmp_path / "avg.pt"
    code, _, err = cli("train", "detect", "--data", str(bank), "--out", str(out), "--width", "4", "--k", "1..2",
                       "--epochs", "2", "--steps-per-epoch", "4", "-b", "8", "--valid-mixtures", "12", "-j", "0",
                       "--no-augment", "--device", "cpu", "--average-tail", "0.5")
    assert code == 0, err
    assert "mean of the weights of epochs 1-2" in err
    info, _ = read_checkpoint(average_path(out))
    assert info.metrics["averaged_epochs"] == [1, 2] and info.metrics["valid"]["map"] is not None
    assert len(info.thresholds) == len(FAMILIES) and len(info.frame_thresholds) == len(FAMILIES)
    assert registry.load(str(average_path(out)), "detect", "cpu").info.labels == list(FAMILIES)
    code, _, err = cli("train", "detect", "--data", str(bank), "--out", str(tmp_path / "x.ubj"), "--model", "xgb",
                       "--average-tail", "0.5")
    assert code == 2 and "--average-tail" in err


def test_init_loads_what_fits(tmp_path):
    from torchvision.models import resnet18

    path = tmp_path / "imagenet-shaped.pt"
    torch.save(resnet18(weights=None).state_dict(), path)
    model = registry.build("resnet18", len(FAMILIES))
    loaded, skipped = load_init(model, str(path))
    assert loaded > 100 and skipped == 2  # everything but the 1000-class head


def test_thresholds_stay_above_the_floor():
    from nsep.evaluate_detect import Collected
    from nsep.train.detect import THRESHOLD_FLOOR, choose_thresholds

    rng = np.random.default_rng(0)
    truth = rng.random((200, 2)) < 0.5
    # label 0 separates at 0.5; label 1's scores are tiny and tell nothing, so its best F1 is "always yes"
    probs = np.stack([np.where(truth[:, 0], 0.9, 0.1), rng.random(200) * 0.01], axis=1).astype(np.float32)
    frames = np.repeat(probs[:, :, None], 4, axis=2)
    chosen = choose_thresholds(Collected(probs, truth, frames, np.repeat(truth[:, :, None], 4, axis=2),
                                         np.ones(200, dtype=int)))
    assert 0.1 < chosen.clip[0] <= 0.9 and 0.1 < chosen.frame[0] <= 0.9
    assert chosen.clip[1] == THRESHOLD_FLOOR and chosen.frame[1] == THRESHOLD_FLOOR
