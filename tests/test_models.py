"""Architectures, checkpoints and the predictor interface."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nsep.errors import NsepError
from nsep.models import registry, xgb
from nsep.models.base import ModelInfo, TorchPredictor, bf16_pays, read_checkpoint, save_checkpoint
from nsep.models.fusion import fold_batchnorm
from nsep.models.groupnorm import ParallelGroupNorm, group_norm
from nsep.taxonomy import NSYNTH_FAMILIES

from model_server import model_repo  # noqa: F401 (fixture)

LABELS = list(NSYNTH_FAMILIES)


def _info(arch: str, config: dict | None = None) -> ModelInfo:
    return ModelInfo(name="t", architecture=arch, task="classify", labels=LABELS, sample_rate=16_000,
                     clip_samples=64_000, config=config or {})


@pytest.mark.parametrize("arch,config", [("cnn", {"width": 8}), ("resnet18", {})])
def test_architectures_map_waveforms_to_logits(arch, config):
    model = registry.build(arch, len(LABELS), config).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 64_000))
    assert logits.shape == (2, len(LABELS))


def test_cnn_ignores_level():
    model = registry.build("cnn", len(LABELS), {"width": 8}).eval()
    wave = torch.randn(1, 64_000) * 0.1
    with torch.no_grad():
        assert torch.allclose(model(wave), model(wave * 0.01), atol=1e-3)


def test_checkpoint_round_trip(tmp_path):
    model = registry.build("cnn", len(LABELS), {"width": 8}).eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, _info("cnn", {"width": 8}))
    info, state = read_checkpoint(path)
    assert info.architecture == "cnn" and info.labels == LABELS and info.config == {"width": 8}
    again = registry.build(info.architecture, len(info.labels), info.config).eval()
    again.load_state_dict(state)
    wave = torch.randn(3, 64_000)
    assert np.allclose(TorchPredictor(model, info, torch.device("cpu")).predict(wave),
                       TorchPredictor(again, info, torch.device("cpu")).predict(wave), atol=1e-6)


def test_load_by_path_gives_probabilities(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, registry.build("cnn", len(LABELS), {"width": 8}), _info("cnn", {"width": 8}))
    predictor = registry.load(str(path), "classify", "cpu")
    probs = predictor.predict(torch.randn(4, 64_000))
    assert probs.shape == (4, len(LABELS)) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_wrong_task_and_garbage_files_are_refused(tmp_path):
    path = tmp_path / "m.pt"
    info = _info("cnn", {"width": 8})
    info.task = "detect"
    save_checkpoint(path, registry.build("cnn", len(LABELS), {"width": 8}), info)
    with pytest.raises(NsepError, match="detect model"):
        registry.load(str(path), "classify", "cpu")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(NsepError, match="not a loadable nsep checkpoint"):
        registry.load(str(junk), "classify", "cpu")


def test_unknown_model_name_is_a_usage_error():
    from nsep.errors import UsageError

    with pytest.raises(UsageError, match="unknown model"):
        registry.load("no-such-model", "classify", "cpu")


def test_seed_features_have_the_seed_shape():
    assert xgb.seed_features(torch.randn(2, 64_000)).shape == (2, 1025 * 126)


def test_xgb_round_trip(tmp_path):
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(64_000) / 16_000
    low = torch.sin(2 * torch.pi * 110 * t) + 0.01 * torch.randn(20, 64_000, generator=gen)
    high = torch.sign(torch.sin(2 * torch.pi * 880 * t)) + 0.01 * torch.randn(20, 64_000, generator=gen)
    waves, labels = torch.cat([low, high]), np.repeat([0, 1], 20)
    booster = xgb.train(waves, labels, 2, rounds=5)
    info = ModelInfo(name="x", architecture="xgb", task="classify", labels=["bass", "flute"], sample_rate=16_000,
                     clip_samples=64_000)
    xgb.save(booster, info, tmp_path / "x.ubj")
    predictor = registry.load(str(tmp_path / "x.ubj"), "classify", "cpu")
    assert predictor.info.labels == ["bass", "flute"]
    assert (predictor.predict(waves).argmax(axis=1) == labels).all()


def test_a_named_model_loads_through_the_manifest_and_a_tampered_file_is_refused(model_repo):
    from nsep import repo

    path = model_repo / "classify-tiny.pt"
    save_checkpoint(path, registry.build("cnn", len(LABELS), {"width": 8}), _info("cnn", {"width": 8}))
    repo.register(repo.ModelEntry(name="classify-tiny", task="classify", architecture="cnn", sample_rate=16_000,
                                  channels=1, labels=LABELS), path, model_repo / "manifest.json")
    assert registry.load("tiny", "classify", "cpu").info.name == "classify-tiny"  # short name completed by task
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(NsepError, match="classify-tiny|sha256|hash"):
        registry.load("classify-tiny", "classify", "cpu")


def test_averaging_fine_tunes_gives_the_mean_of_their_tensors(tmp_path, cli):
    paths = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        info = _info("cnn", {"width": 8})
        info.training = {"gated": True, "seed": seed}
        info.thresholds = [0.1 * (seed + 1)] * len(LABELS)
        path = tmp_path / f"tune{seed}.pt"
        save_checkpoint(path, registry.build("cnn", len(LABELS), {"width": 8}), info)
        paths.append(path)
    out = tmp_path / "average.pt"
    code, stdout, stderr = cli("models", "average", *map(str, paths), "-o", str(out), "--float16")
    assert code == 0 and stdout.strip() == str(out), stderr
    info, state = read_checkpoint(out)
    states = [read_checkpoint(p)[1] for p in paths]
    weight = "backbone.stem.0.weight"
    assert state[weight].dtype == torch.float16
    assert torch.allclose(state[weight].float(), torch.stack([s[weight] for s in states]).mean(0), atol=1e-3)
    counter = "backbone.stem.1.num_batches_tracked"
    assert torch.equal(state[counter], states[0][counter])  # integer buffers: the first member's
    assert info.training["gated"] is True and "seed" not in info.training  # what all members agree on
    assert len(info.training["averaged"]) == 3 and info.thresholds == pytest.approx([0.2] * len(LABELS))
    assert registry.load(str(out), "classify", "cpu").predict(torch.randn(2, 64_000)).shape == (2, len(LABELS))
    assert cli("models", "average", *map(str, paths), "-o", str(out))[0] == 1  # exists: not overwritten
    other = tmp_path / "wider.pt"
    save_checkpoint(other, registry.build("cnn", len(LABELS), {"width": 12}), _info("cnn", {"width": 12}))
    code, _, stderr = cli("models", "average", str(paths[0]), str(other), "-o", str(tmp_path / "x.pt"))
    assert code == 2 and "not the same network" in stderr and not (tmp_path / "x.pt").exists()
    assert cli("models", "average", str(paths[0]), "-o", str(tmp_path / "x.pt"))[0] == 2  # one member


def test_an_ensemble_gives_the_mean_of_its_members_probabilities(tmp_path, cli):
    paths = []
    for seed, width in ((0, 8), (1, 12)):
        torch.manual_seed(seed)
        path = tmp_path / f"member{seed}.pt"
        save_checkpoint(path, registry.build("cnn", len(LABELS), {"width": width}), _info("cnn", {"width": width}))
        paths.append(path)
    out = tmp_path / "ensemble.pt"
    code, stdout, stderr = cli("models", "combine", *map(str, paths), "-o", str(out))
    assert code == 0 and stdout.strip() == str(out), stderr
    wave = torch.randn(3, 64_000)
    members = [registry.load(str(p), "classify", "cpu").predict(wave) for p in paths]
    ensemble = registry.load(str(out), "classify", "cpu")
    assert ensemble.info.architecture == "ensemble" and ensemble.info.labels == LABELS
    assert np.allclose(ensemble.predict(wave), np.mean(members, axis=0), atol=1e-5)
    assert cli("models", "combine", *map(str, paths), "-o", str(out))[0] == 1  # exists: not overwritten
    assert cli("models", "combine", str(paths[0]), "-o", str(tmp_path / "one.pt"))[0] == 2  # one member
    third = tmp_path / "member2.pt"
    save_checkpoint(third, registry.build("cnn", len(LABELS), {"width": 4}), _info("cnn", {"width": 4}))
    code, _, stderr = cli("models", "combine", str(third), str(out), "-o", str(tmp_path / "grown.pt"))
    assert code == 0, stderr
    grown = registry.load(str(tmp_path / "grown.pt"), "classify", "cpu")  # an ensemble member gives its members
    assert len(grown.info.config["members"]) == 3
    every = [*members, registry.load(str(third), "classify", "cpu").predict(wave)]
    assert np.allclose(grown.predict(wave), np.mean(every, axis=0), atol=1e-5)


def test_a_detector_weighs_an_ensemble_by_its_presence_of_each_family(tmp_path, cli):
    torch.manual_seed(0)
    member = tmp_path / "member.pt"
    save_checkpoint(member, registry.build("cnn", len(LABELS), {"width": 8}), _info("cnn", {"width": 8}))
    detect_labels = ["drums", *reversed(LABELS)]  # another order, and a label the classifier lacks
    detector = tmp_path / "detector.pt"
    info = ModelInfo(name="d", architecture="detector", task="detect", labels=detect_labels, sample_rate=16_000,
                     clip_samples=64_000, config={"width": 8})
    save_checkpoint(detector, registry.build("detector", len(detect_labels), {"width": 8}), info)
    out = tmp_path / "weighed.pt"
    code, _, stderr = cli("models", "combine", str(member), "--detector", str(detector), "--detector-weight", "0.5",
                          "-o", str(out))
    assert code == 0, stderr
    wave = torch.randn(3, 64_000)
    classified = registry.load(str(member), "classify", "cpu").predict(wave)
    presence = registry.load(str(detector), "detect", "cpu").predict(wave)
    expected = classified * presence[:, [detect_labels.index(label) for label in LABELS]] ** 0.5
    expected /= expected.sum(axis=1, keepdims=True)
    weighed = registry.load(str(out), "classify", "cpu")
    assert weighed.info.labels == LABELS and weighed.info.config["detector_weight"] == 0.5
    assert np.allclose(weighed.predict(wave), expected, atol=1e-5)
    quick = tmp_path / "quick.pt"  # the detector judges the first second only
    code, _, stderr = cli("models", "combine", str(member), "--detector", str(detector), "--detector-seconds", "1",
                          "-o", str(quick))
    assert code == 0, stderr
    presence = registry.load(str(detector), "detect", "cpu").predict(wave[:, :16_000])
    expected = classified * presence[:, [detect_labels.index(label) for label in LABELS]]
    assert np.allclose(registry.load(str(quick), "classify", "cpu").predict(wave), expected / expected.sum(axis=1, keepdims=True),
                       atol=1e-5)
    softened = tmp_path / "soft.pt"  # a temperature divides the log-probabilities: same decision, softer
    code, _, stderr = cli("models", "combine", str(member), "--detector", str(detector), "--detector-seconds", "1",
                          "--temperature", "2", "-o", str(softened))
    assert code == 0, stderr
    tempered = np.sqrt(expected) / np.sqrt(expected).sum(axis=1, keepdims=True)
    assert np.allclose(registry.load(str(softened), "classify", "cpu").predict(wave), tempered, atol=1e-5)
    code, _, stderr = cli("models", "combine", str(member), str(member), "--detector-seconds", "1", "-o", str(tmp_path / "y.pt"))
    assert code == 2 and "needs --detector" in stderr
    code, _, stderr = cli("models", "combine", str(out), str(member), "-o", str(tmp_path / "nested.pt"))
    assert code == 2 and "detector cannot be a member" in stderr
    short = tmp_path / "short.pt"  # a detector without every classifier label is refused
    info.labels = detect_labels[:5]
    save_checkpoint(short, registry.build("detector", 5, {"width": 8}), info)
    code, _, stderr = cli("models", "combine", str(member), "--detector", str(short), "-o", str(tmp_path / "x.pt"))
    assert code == 2 and "lacks" in stderr and not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("arch", ["cnn", "detector", "unet"])
def test_folding_batchnorm_into_convolutions_keeps_the_outputs(arch):
    torch.manual_seed(0)
    net = registry.build(arch, 12)
    for module in net.modules():  # trained-looking statistics, not the identity a fresh BatchNorm is
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    net.eval()
    wave = torch.randn(3, 16000) * 0.1
    with torch.inference_mode():
        before = net(wave)
        after = fold_batchnorm(net)(wave)
    assert not any(isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)) for m in net.modules())
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError):
        fold_batchnorm(registry.build(arch, 12).train())


@pytest.mark.parametrize("shape, groups", [((3, 8, 5, 7), 1), ((2, 6, 11), 3), ((4, 12, 3, 3), 4)])
def test_parallel_group_norm_matches_pytorchs(shape, groups):
    torch.manual_seed(0)
    x, weight, bias = torch.randn(shape) * 3 + 1, torch.randn(shape[1]), torch.randn(shape[1])
    assert torch.allclose(group_norm(x, groups, weight, bias), F.group_norm(x, groups, weight, bias), atol=1e-5)
    assert torch.allclose(group_norm(x, groups), F.group_norm(x, groups), atol=1e-5)
    with ParallelGroupNorm():  # CPU tensors keep PyTorch's own kernel
        assert torch.equal(F.group_norm(x, groups, weight, bias), torch.nn.functional.group_norm(x, groups, weight, bias))


def test_bf16_autocast_runs_where_it_pays_and_stays_close_to_float32(tmp_path):
    assert bf16_pays(torch.device("cuda")) and not bf16_pays(torch.device("mps"))
    path = tmp_path / "m.pt"
    save_checkpoint(path, registry.build("cnn", len(LABELS), {"width": 8}), _info("cnn", {"width": 8}))
    fast, exact = registry.load(str(path), "classify", "cpu"), registry.load(str(path), "classify", "cpu", autocast=False)
    assert fast.autocast == bf16_pays(torch.device("cpu")) and not exact.autocast
    wave = torch.randn(4, 64_000)
    assert np.abs(fast.predict(wave) - exact.predict(wave)).max() < 0.02
