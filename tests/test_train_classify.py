"""A tiny training run on real rendered notes learns to tell families apart on unseen instruments."""

from pathlib import Path

from nsep.data.plan import RenderConfig
from nsep.data.render import render
from nsep.models import registry
from nsep.train.classify import TrainConfig, train

FONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


def test_tiny_run_beats_chance_on_unseen_instruments(tmp_path):
    bank = tmp_path / "bank"
    config = RenderConfig(velocities=(100,), programs=(32, 33, 34, 35, 36, 72, 73, 74, 75, 79), families=("bass", "flute"),
                          oversample=1)
    render([FONT], bank, config, workers=2, valid_fraction=0.4)
    out = tmp_path / "tiny.pt"
    cfg = TrainConfig(data=[str(bank)], out=str(out), families=["bass", "flute"], epochs=5, batch_size=32, lr=3e-3,
                      augment=False, device="cpu", model_config={"width": 8}, steps_per_epoch=12)
    events = []
    metrics = train(cfg, report=events.append)
    data = next(e for e in events if e["event"] == "data")
    assert data["valid_instruments"] >= 2 and data["train_instruments"] >= 4
    assert metrics["valid_accuracy"] >= 0.9  # chance is 0.5; valid instruments were never trained on
    assert out.with_suffix(".log.jsonl").exists() and out.with_suffix(".curves.png").exists()
    predictor = registry.load(str(out), "classify", "cpu")
    assert predictor.info.labels == ["bass", "flute"]
