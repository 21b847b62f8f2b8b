"""Two gloo processes on the CPU do what one process does: the same weights, the same results."""

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch
from test_detect_train import bank  # noqa: F401  (the synthetic three-family note bank)

from nsep import distributed
from nsep.models import registry
from nsep.models.base import ModelInfo, save_checkpoint
from nsep.taxonomy import FAMILIES
from nsep.train import classify, detect

# No dropout and no BatchNorm: only then is a step on two halves of a batch the step on the whole
# (on the CPU there is no SyncBatchNorm; on GPUs nsep uses it).
MLP = {"hidden": [8], "dropout": 0.0}


def _weights(out) -> dict[str, torch.Tensor]:
    state = torch.load(out.with_suffix(".last.pt"), weights_only=True)
    return state["model"] if "model" in state else state["parts"]["model"]


def _assert_same(a, b) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")


def _launch(processes: int, train, cfg, resume: bool = False) -> None:
    if processes == 1:
        train(cfg, resume, report=lambda event: None)
    else:
        assert distributed.launch(processes, train, cfg, resume) == 0


def test_a_classifier_trained_by_two_processes_equals_one(bank, tmp_path):  # noqa: F811
    cfg = classify.TrainConfig(data=[str(bank)], out=str(tmp_path / "one.pt"), architecture="mlp",
                               families=["bass", "flute"], epochs=1, steps_per_epoch=3, batch_size=8, lr=1e-3,
                               augment=False, device="cpu", model_config=MLP)
    _launch(1, classify.train, cfg)
    _launch(2, classify.train, replace(cfg, out=str(tmp_path / "two.pt")))
    _assert_same(tmp_path / "one.pt", tmp_path / "two.pt")
    logs = [json.loads((tmp_path / f"{n}.log.jsonl").read_text()) for n in ("one", "two")]
    assert logs[0]["valid_accuracy"] == logs[1]["valid_accuracy"]  # validation shared out, then gathered
    assert logs[0]["train_loss"] == pytest.approx(logs[1]["train_loss"], rel=1e-5)  # reduced over the processes


def test_a_detector_trained_and_resumed_by_one_or_two_processes_is_the_same(bank, tmp_path):  # noqa: F811
    """Epoch 1 with one process, epoch 2 with two; and the other way round."""
    cfg = detect.DetectConfig(data=[str(bank)], out=str(tmp_path / "a.pt"), architecture="mlp", k=(1, 2), epochs=1,
                              steps_per_epoch=3, batch_size=8, lr=1e-3, valid_mixtures=8, workers=0, augment=False,
                              device="cpu", model_config=MLP)
    other = replace(cfg, out=str(tmp_path / "b.pt"))
    _launch(1, detect.train, cfg)
    _launch(2, detect.train, other)
    _assert_same(tmp_path / "a.pt", tmp_path / "b.pt")
    _launch(2, detect.train, replace(cfg, epochs=2), resume=True)
    _launch(1, detect.train, replace(other, epochs=2), resume=True)
    _assert_same(tmp_path / "a.pt", tmp_path / "b.pt")
    for name in ("a", "b"):
        log = [json.loads(line) for line in (tmp_path / f"{name}.log.jsonl").read_text().splitlines()]
        assert [row["epoch"] for row in log] == [1, 2]
        assert registry.load(str(tmp_path / f"{name}.pt"), "detect", "cpu").info.thresholds


def test_devices_option_runs_the_command_in_processes(cli, bank, tmp_path):  # noqa: F811
    out = tmp_path / "cnn.pt"
    args = ("train", "detect", "--data", str(bank), "--out", str(out), "--model", "cnn", "--width", "4", "--k", "1..2",
            "--steps-per-epoch", "2", "--batch-size", "4", "--valid-mixtures", "8", "--workers", "0", "--device", "cpu")
    code, _, err = cli(*args, "--epochs", "1", "--devices", "2")
    assert code == 0, err
    code, _, err = cli(*args, "--epochs", "2", "--resume")  # one process goes on from what two wrote
    assert code == 0, err
    log = [json.loads(line) for line in out.with_suffix(".log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2]
    assert registry.load(str(out), "detect", "cpu").info.labels == list(FAMILIES)


def _join_then_exit(codes: tuple[int, ...]) -> None:
    distributed.setup("cpu")
    distributed.all_sum([1.0])
    sys.exit(codes[distributed.rank()])


def test_launch_takes_a_clean_exit_as_success_and_passes_a_failure_on():
    """A command line ends with sys.exit(0): its processes still leave the group together, and 0 is success."""
    assert distributed.launch(2, _join_then_exit, (0, 0)) == 0
    assert distributed.launch(2, _join_then_exit, (0, 3)) == 3  # the one that failed, not the one it left behind


def test_devices_option_checks_its_arguments(cli, bank, tmp_path):  # noqa: F811
    args = ("train", "detect", "--data", str(bank), "--out", str(tmp_path / "m.pt"))
    code, _, err = cli(*args, "--devices", "2", "--batch-size", "5")
    assert code == 2 and "does not split evenly over 2 processes" in err
    code, _, err = cli(*args, "--devices", "2", "--model", "xgb")
    assert code == 2 and "--devices applies to the neural models" in err
    code, _, err = cli(*args, "--max-minutes", "5", "--model", "xgb")
    assert code == 2 and "--max-minutes applies to the neural models" in err


def test_processes_of_a_group_refuse_to_share_stdin(cli, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = cli("classify", "-")
    assert code == 2 and "several processes cannot share stdin" in err


def _torchrun(*args: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "nsep", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1", "OMP_NUM_THREADS": "1"})
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("command", ["classify", "detect"])
def test_torchrun_inference_prints_what_one_process_prints(cli, make_audio, tmp_path, command):
    architecture, config = ("cnn", {"width": 4}) if command == "classify" else ("detector", {"width": 4})
    labels = classify.NSYNTH_FAMILIES if command == "classify" else list(FAMILIES)
    model = tmp_path / "tiny.pt"
    info = ModelInfo(name="tiny", architecture=architecture, task=command, labels=list(labels), sample_rate=16_000,
                     clip_samples=64_000, config=config)
    save_checkpoint(model, registry.build(architecture, len(labels), config), info)
    files = [str(make_audio(f"{i}.wav", seconds=1 + 2 * i, freq=110.0 * (i + 1))) for i in range(5)]
    sf.write(tmp_path / "silent.wav", np.zeros(16_000), 16_000)
    files.insert(2, str(tmp_path / "silent.wav"))  # fails on whichever process holds it
    # one window batch per file, so every window meets the same arithmetic in both runs
    args = (command, *files, "--model", str(model), "--device", "cpu", "--batch-size", "1", "--jsonl")
    code, alone, _ = cli(*args)
    assert code == 1 and len(alone.splitlines()) == 5
    code, together, err = _torchrun(*args)
    assert code != 0 and "silent.wav: audio is silent" in err
    assert together == alone


def test_a_separator_trained_by_two_processes_equals_one(bank, tmp_path):  # noqa: F811
    from nsep.train import separate

    cfg = separate.SeparateConfig(data=[str(bank)], out=str(tmp_path / "one.pt"), architecture="bandsplit", k=(1, 2),
                                  clip_samples=8_000, epochs=1, steps_per_epoch=3, batch_size=4, valid_mixtures=8,
                                  workers=0, device="cpu", model_config={"dim": 8, "hidden": 8, "layers": 1})
    _launch(1, separate.train, cfg)
    _launch(2, separate.train, replace(cfg, out=str(tmp_path / "two.pt")))
    _assert_same(tmp_path / "one.pt", tmp_path / "two.pt")
