"""Paired comparison of two models' item records (nsep.compare)."""

import json

import numpy as np
import pytest

from nsep.compare import compare, fingerprint, read_items, write_items


def _classify_items(model: str, correct: list[bool]) -> list[dict]:
    return [{"task": "classify", "model": model, "key": f"note{i}", "group": f"instrument{i // 4}", "correct": c}
            for i, c in enumerate(correct)]


def _stems(model: str, improvements: list[float | None]) -> list[dict]:
    return [{"task": "separate", "model": model, "key": f"music/2/{i // 2}/00/{i % 2}", "group": f"music/2/{i // 2}/00",
             "si_sdri": v, "si_sdr": v, "sdr": 0.0 if v is None else v} for i, v in enumerate(improvements)]


def test_a_model_against_itself_differs_by_nothing():
    items = _classify_items("a", list(np.random.default_rng(0).random(40) < 0.7))
    result = compare(items, items)
    row, = result["metrics"]
    assert row["difference"] == 0 and row["difference_ci95"] == [0, 0]
    assert result["only_a_right"] == result["only_b_right"] == 0 and result["groups"] == 10


def test_a_consistent_gain_has_an_interval_above_zero():
    rng = np.random.default_rng(1)
    a = rng.normal(2, 3, 60).tolist()
    b = [v + 1 + rng.normal(0, 0.1) for v in a]  # one dB better on every stem; the stems' spread is shared
    result = compare(_stems("a", a), _stems("b", b))
    median = next(r for r in result["metrics"] if r["metric"] == "median_si_sdri")
    low, high = median["difference_ci95"]
    assert 0 < low <= median["difference"] <= high < 2
    assert result["b_better"] == 60 and result["a_better"] == 0


def test_silenced_stems_count_as_minus_infinity():
    result = compare(_stems("a", [None, 5.0, 6.0, 7.0]), _stems("b", [4.0, 5.0, 6.0, 7.0]))
    median = next(r for r in result["metrics"] if r["metric"] == "median_si_sdri")
    assert median["a"] == 5.5 and median["b"] == 5.5 and result["b_better"] == 1


def test_different_items_or_tasks_are_refused():
    a = _classify_items("a", [True] * 8)
    with pytest.raises(ValueError, match="different items"):
        compare(a, a[:-1])
    with pytest.raises(ValueError, match="different tasks"):
        compare(a, _stems("b", [1.0] * 8))
    with pytest.raises(ValueError, match="repeats a key"):
        compare(a + a[:1], a + a[:1])


def test_detectors_compare_on_map_and_per_label_accuracy():
    rng = np.random.default_rng(2)
    truth = rng.random((50, 3)) < 0.5
    families = ["bass", "flute", "organ"]

    def items(model, probs):
        return [{"task": "detect", "model": model, "key": f"m{i}", "group": f"m{i}",
                 "truth": dict(zip(families, map(bool, t))), "probs": dict(zip(families, map(float, p))),
                 "decided": dict(zip(families, map(bool, p >= 0.5)))} for i, (t, p) in enumerate(zip(truth, probs))]

    perfect, noise = truth.astype(float), rng.random((50, 3))
    result = compare(items("noise", noise), items("perfect", perfect))
    by_name = {r["metric"]: r for r in result["metrics"]}
    assert by_name["map"]["b"] == 1.0 and by_name["per_label_accuracy"]["b"] == 1.0
    assert by_name["map"]["difference_ci95"][0] > 0 and result["families"] == families


def test_items_files_round_trip_and_bad_lines_name_the_file(tmp_path):
    items = _stems("a", [1.0, None])
    path = tmp_path / "a.jsonl"
    write_items(path, items)
    assert read_items(path) == items
    with pytest.raises(Exception, match="already exists"):
        write_items(path, items)
    path.write_text(json.dumps(items[0]) + "\nnot json\n")
    with pytest.raises(ValueError, match=r"a\.jsonl:2"):
        read_items(path)
    path.write_text('{"task": "cook"}\n')
    with pytest.raises(ValueError, match="not an item record"):
        read_items(path)


def test_fingerprints_tell_mixtures_apart():
    mix = np.random.default_rng(3).standard_normal(1000).astype(np.float32)
    assert fingerprint(mix) == fingerprint(mix.copy()) != fingerprint(mix * 0.5)
