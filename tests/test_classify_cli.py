"""`nsep classify` output shapes and error rules, with an untrained network loaded from a file."""

import csv
import io
import json

import numpy as np
import pytest
import soundfile as sf

from nsep.models import registry
from nsep.models.base import ModelInfo, save_checkpoint
from nsep.taxonomy import NSYNTH_FAMILIES

from conftest import error_lines


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "tiny.pt"
    info = ModelInfo(name="tiny", architecture="cnn", task="classify", labels=list(NSYNTH_FAMILIES),
                     sample_rate=16_000, clip_samples=64_000, config={"width": 8})
    save_checkpoint(path, registry.build("cnn", 11, {"width": 8}), info)
    return str(path)


def test_jsonl_objects_carry_the_documented_fields(cli, make_audio, model_file):
    a, b = make_audio("a.wav", seconds=2), make_audio("b.flac", seconds=9, rate=44_100, channels=2)
    code, out, err = cli("classify", str(a), str(b), "--model", model_file, "--jsonl", "--top-k", "2")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in rows] == [str(a), str(b)]
    for row in rows:
        assert set(row) >= {"path", "family", "confidence", "probabilities", "model", "top_k"}
        assert row["family"] in NSYNTH_FAMILIES and len(row["top_k"]) == 2
        assert abs(sum(row["probabilities"].values()) - 1) < 1e-3
        assert row["probabilities"][row["family"]] == max(row["probabilities"].values())  # ties may round alike
    assert rows[1]["windows"] > 1  # a 9-s clip is judged in several 4-s windows


def test_families_restricts_the_decision_and_renormalises(cli, make_audio, model_file):
    a = make_audio("a.wav", seconds=2)
    code, out, err = cli("classify", str(a), "--model", model_file, "--jsonl")
    assert code == 0, err
    every = json.loads(out)["probabilities"]
    code, out, err = cli("classify", str(a), "--model", model_file, "--jsonl", "--families", "bass, flute,guitar")
    assert code == 0, err
    row = json.loads(out)
    assert set(row["probabilities"]) == {"bass", "flute", "guitar"} and len(row["top_k"]) == 3
    share = sum(every[f] for f in ("bass", "flute", "guitar"))
    for family, p in row["probabilities"].items():
        assert p == pytest.approx(every[family] / share, abs=2e-3)  # the same odds, renormalised among them
    assert row["probabilities"][row["family"]] == max(row["probabilities"].values())
    code, _, err = cli("classify", str(a), "--model", model_file, "--families", "bass,kazoo")
    assert code == 2 and "kazoo" in err


def test_json_and_csv_shapes(cli, make_audio, model_file):
    a = make_audio("a.wav")
    code, out, _ = cli("classify", str(a), "--model", model_file, "--json")
    assert code == 0 and isinstance(json.loads(out), list)
    code, out, _ = cli("classify", str(a), "--model", model_file, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows[0]["path"] == str(a) and "probabilities.bass" in rows[0]


def test_bad_inputs_fail_alone_with_one_line_each(cli, make_audio, tmp_path, model_file):
    good = make_audio("good.wav")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16_000), 16_000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    click = tmp_path / "click.wav"  # 10 samples: less than any model's analysis frame
    sf.write(click, np.full(10, 0.5), 16_000)
    code, out, err = cli("classify", str(good), str(silent), str(corrupt), str(tmp_path / "gone.wav"), str(click),
                         "--model", model_file, "--jsonl")
    assert code == 1
    assert len(out.splitlines()) == 1 and json.loads(out)["path"] == str(good)
    lines = error_lines(err)
    assert len(lines) == 4 and "Traceback" not in err
    assert any("silent" in line for line in lines) and any("no such file" in line for line in lines)
    assert any(str(click) in line and "too short" in line for line in lines)


def test_usage_errors_exit_2(cli, make_audio, model_file):
    a = make_audio("a.wav")
    assert cli("classify", str(a), "--model", model_file, "--json", "--csv")[0] == 2
    assert cli("classify", str(a), "--model", "no-such-model")[0] == 2
    assert cli("classify")[0] == 2


@pytest.mark.parametrize("option", [("--balance", "library"), ("--max-minutes", "5")])
def test_train_options_of_the_networks_are_refused_for_xgb(cli, tmp_path, option):
    code, _, err = cli("train", "classify", "--data", str(tmp_path), "--out", str(tmp_path / "m.ubj"), "--model", "xgb", *option)
    assert code == 2 and f"{option[0]} applies to the neural models, not xgb" in err
