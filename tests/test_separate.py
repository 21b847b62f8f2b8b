"""Separation: the engine against demucs' own apply_model, stem files, output options, bad inputs, training."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import error_lines, run_cli
from test_detect_train import bank  # noqa: F401  (a small synthesised note bank)
from test_mixtures import one_thread  # noqa: F401

from nsep import separation
from nsep.models import separator as separators

DEMUCS_SOURCES = ["drums", "bass", "other", "vocals"]


@pytest.fixture(scope="module")
def demucs_package(tmp_path_factory) -> Path:
    """A small, randomly initialised HTDemucs saved as a demucs package (official weights cannot be fetched here)."""
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    model = HTDemucs(sources=DEMUCS_SOURCES, channels=8, depth=2, t_layers=1, bottom_channels=0, segment=2,
                     samplerate=8000, nfft=512)
    args, kwargs = model._init_args_kwargs
    path = tmp_path_factory.mktemp("demucs") / "tiny.th"
    torch.save({"klass": HTDemucs, "args": args, "kwargs": kwargs, "state": model.state_dict()}, path)
    return path


@pytest.mark.parametrize("shifts", [0, 1])
def test_engine_matches_demucs_apply_model(demucs_package, shifts):
    from demucs.apply import apply_model

    sep = separators.load(str(demucs_package), "cpu", autocast=False)  # float32, as apply_model runs
    network = sep.networks[0]
    x = torch.randn(2, 8000 * 7 + 123, generator=torch.Generator().manual_seed(1)) * 0.1
    random.seed(5)
    with torch.no_grad():
        expected = apply_model(network, x[None], shifts=shifts, split=True, overlap=0.25)[0]
    got = separation.separate(sep, x, separation.Settings(shifts=shifts, batch_size=3, seed=5), normalise=False)
    assert sep.sources == ["drums", "bass", "other", "vocal"]
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 1e-4


def test_streamed_blocks_give_the_same_stems(demucs_package):
    """Memory is bounded by the batch: feeding the signal in small blocks changes nothing."""
    sep = separators.load(str(demucs_package), "cpu")
    x = torch.randn(2, 8000 * 9, generator=torch.Generator().manual_seed(2)) * 0.1
    settings = separation.Settings(batch_size=2)
    whole = separation.separate(sep, x, settings, normalise=False)
    parts = torch.cat(list(separation.run(sep, iter(x.split(3001, dim=-1)), x.shape[-1], 2, settings)), dim=-1)
    assert float((whole - parts).abs().max()) < 1e-6


def test_mono_input_to_a_stereo_model_gives_mono_stems(demucs_package):
    """Each input channel goes through the model on its own; the model's channels are averaged back."""
    sep = separators.load(str(demucs_package), "cpu")
    x = torch.randn(1, 8000 * 3, generator=torch.Generator().manual_seed(3)) * 0.1
    mono = separation.separate(sep, x, normalise=False)
    both = separation.separate(sep, x.expand(2, -1), normalise=False)
    assert mono.shape == (4, 1, x.shape[-1])
    assert float((mono - both.mean(dim=1, keepdim=True)).abs().max()) < 1e-6


def _stereo(path: Path, seconds: float = 3.0, rate: int = 44_100) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    data = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 660 * t) + 0.05 * np.sin(2 * np.pi * 3000 * t)], 1)
    sf.write(path, data.astype(np.float32), rate, subtype="FLOAT")
    return data


@pytest.mark.parametrize("precision", [[], ["--fp32"]])
def test_stems_sum_to_the_input_at_its_rate_and_channels(cli, tmp_path, precision):
    data = _stereo(tmp_path / "song.wav")
    result = cli("-q", "separate", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"), "--bits", "float", "--jsonl",
                 *precision)
    assert result[0] == 0, result[2]
    record = json.loads(result[1])
    assert record["sample_rate"] == 44_100 and record["channels"] == 2 and record["model"] == "separate-unet-bilstm"
    total = 0
    for stem, file in record["stems"].items():
        samples, rate = sf.read(file)
        assert rate == 44_100 and samples.shape == data.shape
        total = total + samples
    assert "other" in record["stems"]
    assert np.abs(total - data).max() < 1e-5
    assert not [p for p in (tmp_path / "out").rglob(".*")]  # no temporary files left


def test_stem_selection_formats_and_names(cli, tmp_path):
    _stereo(tmp_path / "a.wav", 2.0, 22_050)
    out = tmp_path / "out"
    result = cli("-q", "separate", str(tmp_path / "a.wav"), "-o", str(out), "--stems", "bass,drums", "--flac", "--bits", "24",
                 "--filename", "{stem}-{track}.{ext}")
    assert result[0] == 0, result[2]
    assert sorted(p.name for p in out.iterdir()) == ["bass-a.flac", "drums-a.flac", "other-a.flac"]
    info = sf.info(out / "bass-a.flac")
    assert (info.samplerate, info.channels, info.subtype) == (22_050, 2, "PCM_24")
    result = cli("-q", "separate", str(tmp_path / "a.wav"), "-o", str(tmp_path / "two"), "--two-stems", "flute")
    assert result[0] == 0
    assert sorted(p.name for p in (tmp_path / "two" / "a").iterdir()) == ["flute.wav", "other.wav"]


def test_existing_stems_are_kept_unless_overwrite(cli, tmp_path):
    _stereo(tmp_path / "a.wav", 1.0, 16_000)
    args = ("-q", "separate", str(tmp_path / "a.wav"), "-o", str(tmp_path / "out"), "--two-stems", "bass")
    assert cli(*args)[0] == 0
    before = (tmp_path / "out" / "a" / "bass.wav").read_bytes()
    again = cli(*args)
    assert again[0] == 1 and "exists" in again[2]
    assert (tmp_path / "out" / "a" / "bass.wav").read_bytes() == before
    assert cli(*args, "--overwrite")[0] == 0


def test_usage_errors(cli, tmp_path):
    _stereo(tmp_path / "a.wav", 1.0, 16_000)
    for extra in (["--stems", "kazoo"], ["--stems", "bass", "--two-stems", "flute"], ["--bits", "12"],
                  ["--filename", "{nope}.{ext}"], ["--flac", "--bits", "float"]):
        result = cli("separate", str(tmp_path / "a.wav"), "-o", str(tmp_path / "out"), *extra)
        assert result[0] == 2, (extra, result[2])
        assert len(error_lines(result[2])) == 1


def test_bad_inputs_fail_alone_and_leave_no_partial_stems(cli, tmp_path):
    rate = 16_000
    good = tmp_path / "good.wav"
    _stereo(good, 1.0, rate)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    sf.write(tmp_path / "silent.wav", np.zeros(rate, dtype=np.float32), rate)
    late_nan = np.full((45 * rate, 1), 0.1, dtype=np.float32)
    late_nan[40 * rate] = np.nan  # found only in the second block: stems are already being written
    sf.write(tmp_path / "late-nan.wav", late_nan, rate, subtype="FLOAT")
    out = tmp_path / "out"
    result = cli("separate", *(str(tmp_path / n) for n in ("corrupt.wav", "silent.wav", "late-nan.wav", "good.wav")),
                 "-o", str(out), "--two-stems", "bass")
    assert result[0] == 1
    lines = error_lines(result[2])
    assert len(lines) == 3 and all("Traceback" not in line for line in lines)
    assert any("late-nan.wav" in line and "NaN" in line for line in lines)
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["good/bass.wav", "good/other.wav"]


def test_tiny_training_run_improves_si_sdr(bank, tmp_path):  # noqa: F811
    from nsep.models import registry
    from nsep.train.separate import SeparateConfig, loader, split_banks, train, validate

    cfg = SeparateConfig(data=[str(bank)], out=str(tmp_path / "sep.pt"), architecture="unet", k=(2, 3),
                         clip_samples=16_000, epochs=4, steps_per_epoch=25, batch_size=8, lr=3e-3, valid_mixtures=24,
                         workers=0, device="cpu", model_config={"width": 4, "depth": 3}, patience=10)
    _, valid_notes = split_banks(cfg.data)
    batches = list(loader(valid_notes, cfg, 24, 99, (2, 3), 0, torch.device("cpu"), shuffle=False))
    torch.manual_seed(cfg.seed)
    before = validate(registry.build("unet", 12, cfg.model_config), batches, torch.device("cpu"))["si_sdri"]
    metrics = train(cfg, report=lambda event: None)
    after = validate(separators.load(cfg.out, "cpu").module, batches, torch.device("cpu"))["si_sdri"]
    assert metrics["valid"]["si_sdri"] > 0
    assert after > before + 1.5


def test_gated_training_opens_the_playing_families_and_records_it(bank, cli, tmp_path):  # noqa: F811
    from nsep.models import registry
    from nsep.models.base import read_checkpoint, save_state
    from nsep.train.separate import SeparateConfig, gate, train

    presence = torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    assert gate(presence, 0.0).tolist() == [[True, False, False, True], [False, False, True, False]]
    assert gate(presence, 1.0).all()
    some = gate(torch.zeros(400, 12), 0.25, torch.Generator().manual_seed(0)).float().mean().item()
    assert 0.2 < some < 0.3  # absent families let through at about the chance asked for
    cfg = SeparateConfig(data=[str(bank)], out=str(tmp_path / "gated.pt"), architecture="unet", k=(2, 3),
                         clip_samples=16_000, epochs=1, steps_per_epoch=3, batch_size=4, valid_mixtures=8,
                         workers=0, device="cpu", model_config={"width": 4, "depth": 2}, gated=True)
    metrics = train(cfg, report=lambda event: None)
    info, _ = read_checkpoint(tmp_path / "gated.pt")
    assert info.training["gated"] is True and np.isfinite(metrics["valid"]["si_sdri"])
    # a model trained gated separates with the detector's gate unless told --no-gate
    song = tmp_path / "a.wav"
    data = _stereo(song, 2.0, 16_000)
    code, _, err = cli("-v", "separate", str(song), "--model", cfg.out, "--bits", "float", "-o", str(tmp_path / "gated"))
    assert code == 0, err
    assert "detected" in err
    assert np.abs(sum(sf.read(p)[0] for p in (tmp_path / "gated" / "a").iterdir()) - data).max() < 1e-5
    assert "gate: detect-cnn" in err  # no detector named with the model: the default one
    code, _, err = cli("-v", "separate", str(song), "--model", cfg.out, "--no-gate", "-o", str(tmp_path / "open"))
    assert code == 0 and "detected" not in err, err
    # a model that names the detector its gate was chosen with is gated by that one unless told otherwise
    info, state = read_checkpoint(tmp_path / "gated.pt")
    info.training["gate_detector"] = str(tmp_path / "chosen-gate.pt")
    save_state(tmp_path / "paired.pt", state, info)
    shutil.copy(registry.locate("detect-cnn", "detect")[0], tmp_path / "chosen-gate.pt")
    code, _, err = cli("-v", "separate", str(song), "--model", str(tmp_path / "paired.pt"), "-o", str(tmp_path / "paired"))
    assert code == 0 and "gate: chosen-gate" in err, err
    code, _, err = cli("-v", "separate", str(song), "--model", str(tmp_path / "paired.pt"), "--detect-model", "detect-cnn",
                       "-o", str(tmp_path / "told"))
    assert code == 0 and "gate: detect-cnn" in err, err
    # from stdin too: the detector and the separator read the same buffered bytes
    code, out, err = run_cli("-q", "separate", "-", "--model", cfg.out, "--bits", "float", "-o", str(tmp_path / "piped"),
                             "--jsonl", stdin=song.read_bytes())
    assert code == 0, err
    assert np.abs(sum(sf.read(p)[0] for p in (tmp_path / "piped" / "stdin").iterdir()) - data).max() < 1e-5


def test_a_fine_tune_keeps_its_starts_config_and_gate_settings(bank, tmp_path):  # noqa: F811
    from nsep.models.base import read_checkpoint, save_state
    from nsep.train.separate import SeparateConfig, train

    small = dict(data=[str(bank)], architecture="unet", k=(2, 2), clip_samples=16_000, epochs=1, steps_per_epoch=2,
                 batch_size=4, valid_mixtures=8, workers=0, device="cpu", model_config={"width": 4, "depth": 2}, gated=True)
    train(SeparateConfig(out=str(tmp_path / "start.pt"), **small), report=lambda event: None)
    info, state = read_checkpoint(tmp_path / "start.pt")
    info.config = {**info.config, "mask_temperature": 1.5}  # as scripts/tune_separator.py writes them
    info.training = {**info.training, "gate_threshold": 0.2, "gate_detector": "detect-cnn-gate"}
    save_state(tmp_path / "tuned.pt", state, info)
    train(SeparateConfig(out=str(tmp_path / "fine.pt"), init=str(tmp_path / "tuned.pt"), **small), report=lambda event: None)
    fine, _ = read_checkpoint(tmp_path / "fine.pt")
    assert fine.config == {"width": 4, "depth": 2, "mask_temperature": 1.5}
    assert fine.training["gate_threshold"] == 0.2 and fine.training["gate_detector"] == "detect-cnn-gate"
    assert separators.load(str(tmp_path / "fine.pt"), "cpu").module.mask_temperature == 1.5
    # weights of another kind (here a plain state dict) lend their tensors and nothing else
    torch.save(state, tmp_path / "plain.pt")
    train(SeparateConfig(out=str(tmp_path / "plain-fine.pt"), init=str(tmp_path / "plain.pt"), **small), report=lambda event: None)
    plain, _ = read_checkpoint(tmp_path / "plain-fine.pt")
    assert plain.config == {"width": 4, "depth": 2} and "gate_threshold" not in plain.training


def test_the_tail_average_is_the_mean_of_the_last_epochs_weights(bank, tmp_path):  # noqa: F811
    from nsep.models.base import read_checkpoint
    from nsep.train.separate import SeparateConfig, train
    from nsep.train.state import TailAverage, average_path

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    tail = TailAverage(0.5)
    assert not tail.due(0.25) and tail.due(0.5) and not TailAverage(0.0).due(1.0)
    for epoch, value in enumerate((1.0, 2.0, 6.0), 1):
        with torch.no_grad():
            net[0].weight.fill_(value)
        net[1].num_batches_tracked.fill_(epoch)
        tail.add(net, epoch)
    assert torch.allclose(tail.mean["0.weight"], torch.full((2, 2), 3.0))  # (1 + 2 + 6) / 3
    assert int(tail.mean["1.num_batches_tracked"]) == 3 and tail.epochs == [1, 2, 3]  # counters: the latest
    again = TailAverage(0.5, tail.state())  # as a resumed run gets it back from .last.pt
    assert again.epochs == [1, 2, 3] and torch.equal(again.mean["0.weight"], tail.mean["0.weight"])

    events = []
    cfg = SeparateConfig(data=[str(bank)], out=str(tmp_path / "sep.pt"), architecture="unet", k=(2, 2), clip_samples=16_000,
                         epochs=4, steps_per_epoch=2, batch_size=4, valid_mixtures=8, workers=0, device="cpu",
                         model_config={"width": 4, "depth": 2}, average_tail=0.5, patience=10)
    train(cfg, report=events.append)
    info, _ = read_checkpoint(average_path(tmp_path / "sep.pt"))
    assert info.metrics["averaged_epochs"] == [2, 3, 4] and np.isfinite(info.metrics["valid"]["si_sdri"])
    average, = [e for e in events if e["event"] == "average"]
    assert average["valid_si_sdri"] == info.metrics["valid"]["si_sdri"]
    assert separators.load(str(average_path(tmp_path / "sep.pt")), "cpu").sources == separators.load(cfg.out, "cpu").sources


def test_train_demucs_architecture_then_separate_with_it(bank, cli, tmp_path):  # noqa: F811
    out = tmp_path / "htdemucs.pt"
    code, _, err = cli("-q", "train", "separate", "--data", str(bank), "--out", str(out), "--model", "htdemucs",
                       "--width", "8", "--epochs", "1", "--steps-per-epoch", "2", "-b", "2", "--clip-seconds", "1",
                       "--valid-mixtures", "8", "-j", "0", "--device", "cpu")
    assert code == 0, err
    song = tmp_path / "a.wav"
    data = _stereo(song, 1.0, 16_000)
    code, _, err = cli("-q", "separate", str(song), "-o", str(tmp_path / "stems"), "--model", str(out), "--bits", "float")
    assert code == 0, err
    total = sum(sf.read(p)[0] for p in (tmp_path / "stems" / "a").iterdir())
    assert np.abs(total - data).max() < 1e-5  # its stems need not sum to the mix: `other` takes the rest


def test_gating_closes_absent_families_and_keeps_the_sum():
    from nsep.models.unet import UNetSeparator

    torch.manual_seed(0)
    net = UNetSeparator(4, width=4, depth=2).eval()
    wave = torch.randn(2, 8_000) * 0.1
    with torch.no_grad():
        open_ = net(wave)
        gated = net(wave, torch.tensor([True, False, True, False]))
        per_item = net(wave, torch.tensor([[False, True, False, False], [True, True, True, True]]))
        nothing = net(wave, torch.zeros(4, dtype=torch.bool))
    assert gated[:, [1, 3]].abs().max() == 0 and gated[:, [0, 2]].abs().max() > 0
    assert torch.allclose(gated.sum(1), wave, atol=1e-5) and torch.allclose(open_.sum(1), wave, atol=1e-5)
    assert torch.allclose(per_item[0, 1], wave[0], atol=1e-5)  # one family allowed: it takes the whole mix
    assert torch.allclose(per_item[1], open_[1], atol=1e-6)  # all allowed: as ungated
    assert torch.allclose(nothing, open_, atol=1e-6)  # none allowed: every mask stays open


def test_a_mask_temperature_softens_the_masks_and_keeps_the_sum():
    from nsep.models.unet import UNetSeparator

    torch.manual_seed(0)
    sharp = UNetSeparator(3, width=4, depth=2).eval()
    soft, flat = UNetSeparator(3, width=4, depth=2, mask_temperature=2.0), UNetSeparator(3, width=4, depth=2, mask_temperature=1e6)
    for net in (soft, flat):
        net.load_state_dict(sharp.state_dict())
        net.eval()
    wave = torch.randn(1, 8_000) * 0.1
    with torch.no_grad():
        stems = [net(wave) for net in (sharp, soft, flat)]
    for out in stems:
        assert torch.allclose(out.sum(1), wave, atol=1e-5)
    assert torch.allclose(stems[2], wave[:, None].expand(-1, 3, -1) / 3, atol=1e-5)  # no preference: an even share
    spread = [float((out - wave[:, None] / 3).abs().mean()) for out in stems]
    assert spread[0] > spread[1] > spread[2]  # the hotter, the closer to an even share


def test_separate_with_gate_writes_only_detected_families(cli, tmp_path, demucs_package):
    from nsep import detection
    from nsep.models import registry

    song = tmp_path / "a.wav"
    data = _stereo(song, 2.0, 16_000)
    gate = separators.load(None, "cpu").gate_detector  # the detector the default separator names
    detector = registry.load(gate, "detect", "cpu", autocast=False)  # float32, as separation on a CPU runs it
    thresholds = detection.Thresholds.of(detector.info, separators.load(None, "cpu").gate_threshold)
    result, = detection.run(detector, [str(song)], thresholds)
    found = {label for label, p, t in zip(detector.info.labels, result.present, thresholds.clip) if p >= t}
    code, out, err = cli("-q", "separate", str(song), "-o", str(tmp_path / "out"), "--gate", "--bits", "float", "--jsonl")
    assert code == 0, err
    stems = set(json.loads(out)["stems"])
    assert stems - {"other"} <= found  # silent stems are not written; absent families get nothing
    total = sum(sf.read(p)[0] for p in (tmp_path / "out" / "a").iterdir())
    assert np.abs(total - data).max() < 1e-5
    code, _, err = cli("separate", str(song), "-o", str(tmp_path / "d"), "--gate", "--model", str(demucs_package))
    assert code == 2 and "gating" in err


def test_eval_separate_with_an_oracle_gate(bank, cli):  # noqa: F811
    args = ("-q", "eval", "separate", "--data", str(bank), "--k", "2", "--mixtures", "3", "--device", "cpu", "--json")
    code, out, err = cli(*args, "--gate", "oracle")
    assert code == 0, err
    gated = json.loads(out)
    assert gated["gate"] == "oracle" and gated["overall"]["stems"] == 6
    low, high = gated["overall"]["median_si_sdri_ci95"]  # drawn by mixture
    assert low <= gated["overall"]["median_si_sdri"] <= high
    code, out, err = cli(*args, "--gate", "none")
    assert code == 0, err
    ungated = json.loads(out)
    assert ungated["gate"] is None
    code, out, err = cli(*args, "--gate", "detect", "--gate-threshold", "0")
    assert code == 0, err
    everything = json.loads(out)  # every family passes a zero threshold: the same as no gate
    # the shipped default names the detector it was chosen with: its gate, unless --detect-model
    assert everything["gate"] == "detect:detect-cnn-gate" and everything["overall"] == ungated["overall"]
    code, out, err = cli(*args)
    assert code == 0, err
    default = json.loads(out)  # the shipped default was trained gated: the detector gates it unless told
    assert default["gate"] == "detect:detect-cnn-gate" and default["gate_threshold"] == separators.load(None, "cpu").gate_threshold
    code, out, err = cli(*args, "--detect-model", "detect-cnn")
    assert code == 0, err
    assert json.loads(out)["gate"] == "detect:detect-cnn"
    code, _, err = cli(*args, "--gate", "psychic")
    assert code == 2 and "--gate" in err


def test_eval_items_pair_two_runs_for_compare(bank, cli, tmp_path):  # noqa: F811
    args = ("-q", "eval", "separate", "--data", str(bank), "--k", "2", "--mixtures", "3", "--device", "cpu", "--json")
    runs = {}
    for gate in ("oracle", "none"):
        code, out, err = cli(*args, "--gate", gate, "--items", str(tmp_path / f"{gate}.jsonl"))
        assert code == 0, err
        runs[gate] = json.loads(out)
        assert "items" not in runs[gate]
    assert len((tmp_path / "oracle.jsonl").read_text().splitlines()) == runs["oracle"]["overall"]["stems"]
    code, out, err = cli(*args, "--gate", "none", "--items", str(tmp_path / "none.jsonl"))
    assert code == 1 and "already exists" in err  # refused before any work, as every output
    code, out, err = cli("-q", "eval", "compare", str(tmp_path / "none.jsonl"), str(tmp_path / "oracle.jsonl"), "--json")
    assert code == 0, err
    median = next(r for r in json.loads(out)["metrics"] if r["metric"] == "median_si_sdri")
    assert median["a"] == pytest.approx(runs["none"]["overall"]["median_si_sdri"], abs=1e-3)
    assert median["b"] == pytest.approx(runs["oracle"]["overall"]["median_si_sdri"], abs=1e-3)
    low, high = median["difference_ci95"]
    assert low <= median["difference"] <= high
    code, out, err = cli(*args, "--gate", "none", "--seed", "1", "--items", str(tmp_path / "other.jsonl"))
    assert code == 0, err
    code, _, err = cli("eval", "compare", str(tmp_path / "none.jsonl"), str(tmp_path / "other.jsonl"))
    assert code == 2 and "different items" in err  # other mixtures never pair


def test_a_separator_records_its_own_gate_threshold(bank, cli, tmp_path):  # noqa: F811
    import subprocess
    import sys

    from nsep.models import registry

    tuned = tmp_path / "tuned.pt"  # the shipped default, told to let every family through its gate
    proc = subprocess.run([sys.executable, "scripts/tune_separator.py", str(registry.locate("separate-unet-bilstm", "separate")[0]),
                           "--gate-threshold", "0", "-o", str(tuned)], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr
    assert separators.load(str(tuned), "cpu").gate_threshold == 0.0
    args = ("-q", "eval", "separate", "--data", str(bank), "--k", "2", "--mixtures", "3", "--device", "cpu", "--json")
    code, out, err = cli(*args, "--model", str(tuned))
    assert code == 0, err
    recorded = json.loads(out)
    code, out, err = cli(*args, "--model", str(tuned), "--gate", "none")
    assert code == 0, err
    assert recorded["gate_threshold"] == 0.0 and recorded["overall"] == json.loads(out)["overall"]


def test_si_sdr_is_scale_invariant_and_lowest_for_silent_estimates():
    from nsep import metrics

    rng = np.random.default_rng(0)
    reference = rng.standard_normal((2, 4000))
    noisy = reference + 0.1 * rng.standard_normal((2, 4000))
    assert np.allclose(metrics.si_sdr(3 * noisy, reference), metrics.si_sdr(noisy, reference))
    assert np.all(np.abs(metrics.si_sdr(noisy, reference) - 20) < 1)  # noise at a tenth of the amplitude: 20 dB
    silent = metrics.si_sdr(np.zeros_like(reference), reference)
    assert np.all(silent == -np.inf)
    assert np.isnan(metrics.si_sdr(reference, np.zeros_like(reference))).all()


def test_separate_with_named_families(cli, tmp_path):
    song = tmp_path / "a.wav"
    data = _stereo(song, 1.0, 16_000)
    code, out, err = cli("-q", "separate", str(song), "-o", str(tmp_path / "out"), "--families", "bass, flute",
                         "--bits", "float", "--jsonl")
    assert code == 0, err
    assert set(json.loads(out)["stems"]) <= {"bass", "flute", "other"}
    total = sum(sf.read(p)[0] for p in (tmp_path / "out" / "a").iterdir())
    assert np.abs(total - data).max() < 1e-5
    for extra in (["--families", "kazoo"], ["--families", "bass", "--gate"]):
        code, _, err = cli("separate", str(song), "-o", str(tmp_path / "x"), *extra)
        assert code == 2 and len(error_lines(err)) == 1, (extra, err)
