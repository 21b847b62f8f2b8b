"""A tiny training run on real rendered notes learns to tell families apart on unseen instruments; mixup."""

from pathlib import Path

import torch

from nsep.data.plan import RenderConfig
from nsep.data.render import render
from nsep.models import registry
from nsep.train.classify import TrainConfig, mix_notes, train

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
