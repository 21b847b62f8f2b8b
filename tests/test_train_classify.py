"""A tiny training run on real rendered notes learns to tell families apart on unseen instruments; mixup;
distillation from a trained teacher."""

import json
import math
from pathlib import Path

import pytest
import torch

from nsep.data.plan import RenderConfig
from nsep.data.render import render
from nsep.models import registry
from nsep.errors import UsageError
from nsep.train.classify import TrainConfig, distillation_loss, mix_notes, train

FONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("notes") / "bank"
    config = RenderConfig(velocities=(100,), programs=(32, 33, 34, 35, 36, 72, 73, 74, 75, 79), families=("bass", "flute"),
                          oversample=1)
    render([FONT], folder, config, workers=2, valid_fraction=0.4)
    return folder


@pytest.fixture(scope="module")
def tiny_run(bank: Path, tmp_path_factory) -> tuple[Path, dict, list[dict]]:
    out = tmp_path_factory.mktemp("run") / "tiny.pt"
    cfg = TrainConfig(data=[str(bank)], out=str(out), families=["bass", "flute"], epochs=5, batch_size=32, lr=3e-3,
                      augment=False, device="cpu", model_config={"width": 8}, steps_per_epoch=12)
    events: list[dict] = []
    metrics = train(cfg, report=events.append)
    return out, metrics, events


def test_tiny_run_beats_chance_on_unseen_instruments(tiny_run):
    out, metrics, events = tiny_run
    data = next(e for e in events if e["event"] == "data")
    assert data["valid_instruments"] >= 2 and data["train_instruments"] >= 4
    assert metrics["valid_accuracy"] >= 0.9  # chance is 0.5; valid instruments were never trained on
    assert out.with_suffix(".log.jsonl").exists() and out.with_suffix(".curves.png").exists()
    predictor = registry.load(str(out), "classify", "cpu")
    assert predictor.info.labels == ["bass", "flute"]


def test_eval_classify_reports_accuracy_and_calibration(bank: Path, tiny_run, cli):
    out = tiny_run[0]
    code, stdout, stderr = cli("-q", "eval", "classify", "--data", str(bank), "--split", "valid", "--model", str(out), "--json")
    assert code == 0, stderr
    scores = json.loads(stdout)
    assert scores["accuracy"] >= 0.9 and set(scores["per_family"]) == {"bass", "flute"}
    assert 0 <= scores["nll"] < math.log(2) and 0 <= scores["ece"] < 0.5  # better than a coin's log-loss
    low, high = scores["accuracy_ci95"]  # drawn by instrument
    assert low <= scores["accuracy"] <= high


def test_eval_classify_items_compare_two_models(bank: Path, tiny_run, cli, tmp_path):
    out = tiny_run[0]
    args = ("-q", "eval", "classify", "--data", str(bank), "--split", "valid", "--json")
    code, stdout, stderr = cli(*args, "--model", str(out), "--items", str(tmp_path / "tiny.jsonl"))
    assert code == 0, stderr
    notes = json.loads(stdout)["notes"]
    items = [json.loads(line) for line in (tmp_path / "tiny.jsonl").read_text().splitlines()]
    assert len(items) == notes and {i["family"] for i in items} == {"bass", "flute"}
    other_name = tmp_path / "bank-link"  # the same notes under another name pair all the same
    other_name.symlink_to(bank)
    code, _, stderr = cli("-q", "eval", "classify", "--data", str(other_name), "--split", "valid", "--json", "--model", "cnn",
                          "--families", "bass,flute", "--items", str(tmp_path / "cnn.jsonl"))
    assert code == 0, stderr
    code, stdout, stderr = cli("eval", "compare", str(tmp_path / "cnn.jsonl"), str(tmp_path / "tiny.jsonl"))
    assert code == 0, stderr
    assert "accuracy" in stdout and "95 % interval" in stdout
    code, stdout, _ = cli("eval", "compare", str(tmp_path / "cnn.jsonl"), str(tmp_path / "tiny.jsonl"), "--json")
    result = json.loads(stdout)
    row, = result["metrics"]
    assert row["b"] == pytest.approx(sum(i["correct"] for i in items) / notes, abs=1e-4)
    assert result["only_a_right"] + result["only_b_right"] <= notes
    code, _, stderr = cli("eval", "compare", str(tmp_path / "cnn.jsonl"), str(tmp_path / "missing.jsonl"))
    assert code == 2 and "missing.jsonl" in stderr


def test_average_tail_keeps_a_validated_mean_of_the_last_epochs(bank: Path, cli, tmp_path):
    from nsep.models.base import read_checkpoint
    from nsep.train.state import average_path

    out = tmp_path / "avg.pt"
    code, _, err = cli("train", "classify", "--data", str(bank), "--out", str(out), "--families", "bass,flute",
                       "--width", "8", "--epochs", "3", "--steps-per-epoch", "3", "--batch-size", "16", "--no-augment",
                       "--device", "cpu", "--average-tail", "0.4")
    assert code == 0, err
    assert "mean of the weights of epochs 2-3" in err  # epochs ending in the last 40 % of a 3-epoch run
    info, _ = read_checkpoint(average_path(out))
    assert info.metrics["averaged_epochs"] == [2, 3] and 0 <= info.metrics["valid_accuracy"] <= 1
    assert registry.load(str(average_path(out)), "classify", "cpu").info.labels == ["bass", "flute"]


def test_mixup_pairs_each_note_with_a_partner_reproducibly():
    wave = torch.randn(16, 4000)
    target = torch.arange(16)
    mixed, partner, lam = mix_notes(wave, target, 0.4, torch.Generator().manual_seed(1))
    again = mix_notes(wave, target, 0.4, torch.Generator().manual_seed(1))
    assert torch.equal(mixed, again[0]) and torch.equal(partner, again[1])
    assert mixed.shape == wave.shape and sorted(partner.tolist()) == list(range(16))
    assert bool(((lam >= 0) & (lam <= 1)).all()) and float(mixed.abs().max()) <= 0.9 + 1e-6
    # a note's weight in the mix is lam (both at equal loudness before the peak is set)
    unit = wave / wave.square().mean(-1, keepdim=True).sqrt()
    expected = lam[:, None] * unit + (1 - lam[:, None]) * unit[partner]
    assert torch.allclose(mixed, 0.9 * expected / expected.abs().amax(-1, keepdim=True), atol=1e-6)


def test_distillation_loss_is_zero_only_when_student_matches_teacher():
    teacher = torch.randn(8, 5)
    assert float(distillation_loss(teacher.clone(), teacher)) == pytest.approx(0, abs=1e-6)
    assert float(distillation_loss(torch.zeros(8, 5), teacher)) > 0.01


def test_a_student_learns_from_the_teacher_alone(bank: Path, tiny_run, tmp_path):
    teacher, _, _ = tiny_run
    cfg = TrainConfig(data=[str(bank)], out=str(tmp_path / "student.pt"), families=["bass", "flute"], epochs=5,
                      batch_size=32, lr=3e-3, augment=False, device="cpu", model_config={"width": 8},
                      steps_per_epoch=12, teacher=str(teacher), distill=1.0, seed=1)
    metrics = train(cfg, report=lambda event: None)  # distill 1.0: the labels play no part in the loss
    assert metrics["valid_accuracy"] >= 0.85
    wrong = TrainConfig(data=[str(bank)], out=str(tmp_path / "x.pt"), families=["flute", "bass"], epochs=1,
                        device="cpu", model_config={"width": 8}, teacher=str(teacher))
    with pytest.raises(UsageError, match="labels"):
        train(wrong, report=lambda event: None)


def test_fine_tuning_starts_from_the_given_weights(bank: Path, tiny_run, tmp_path):
    start, metrics, _ = tiny_run
    cfg = TrainConfig(data=[str(bank)], out=str(tmp_path / "tuned.pt"), families=["bass", "flute"], epochs=1,
                      batch_size=32, lr=1e-5, augment=False, device="cpu", steps_per_epoch=1, init=str(start))
    tuned = train(cfg, report=lambda event: None)
    assert cfg.model_config == {"width": 8}  # taken from the starting model
    assert tuned["valid_accuracy"] >= metrics["valid_accuracy"] - 0.05  # one tiny step keeps what it knew
    other = TrainConfig(data=[str(bank)], out=str(tmp_path / "r.pt"), families=["bass", "flute"], epochs=1,
                        architecture="resnet18", device="cpu", init=str(start))
    with pytest.raises(UsageError, match="not a resnet18"):
        train(other, report=lambda event: None)


def test_a_time_budget_stops_the_run_after_the_epoch_that_crosses_it(bank: Path, tmp_path):
    cfg = TrainConfig(data=[str(bank)], out=str(tmp_path / "timed.pt"), families=["bass", "flute"], epochs=50,
                      batch_size=16, augment=False, device="cpu", model_config={"width": 8}, steps_per_epoch=2,
                      max_seconds=0.01)
    events: list[dict] = []
    train(cfg, report=events.append)
    epochs = [e for e in events if e["event"] == "epoch"]
    assert len(epochs) == 1 and epochs[0]["lr"] < 1e-9  # annealed within the budget
    assert {"event": "time_limit", "epoch": 1} in events


def test_library_balance_draws_every_bank_equally_often_within_a_family():
    from nsep.train.classify import NoteSet, sampling_weights

    # family 0: 6 notes in bank a, 2 in bank b; family 1: 4 notes in bank a only
    labels = torch.tensor([0] * 8 + [1] * 4)
    banks = ["a"] * 6 + ["b"] * 2 + ["a"] * 4
    notes = NoteSet(torch.zeros(12, 4, dtype=torch.int16), labels, [f"{b}:x" for b in banks], banks)
    by_family = sampling_weights(notes, "family")
    assert by_family[:8].sum() == pytest.approx(by_family[8:].sum())  # families equally often
    assert by_family[:6].sum() == pytest.approx(3 * by_family[6:8].sum())  # bank a dominates family 0
    by_library = sampling_weights(notes, "library")
    assert by_library[:8].sum() == pytest.approx(by_library[8:].sum())
    assert by_library[:6].sum() == pytest.approx(by_library[6:8].sum())  # both banks alike within family 0
    with pytest.raises(UsageError):
        sampling_weights(notes, "instrument")
