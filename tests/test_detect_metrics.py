"""Detection and calibration metrics (checked against hand-worked values) and thresholds chosen for F1."""

import numpy as np
import pytest

from nsep import metrics


def test_average_precision_matches_hand_worked_values():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    truth = np.array([1, 0, 1, 0, 1])
    # precision at each hit: 1/1, 2/3, 3/5; AP = mean over the three positives
    assert metrics.average_precision(scores, truth) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert metrics.average_precision(scores, np.ones(5)) == pytest.approx(1.0)
    assert np.isnan(metrics.average_precision(scores, np.zeros(5)))


def test_tied_scores_form_one_step():
    # all tied: precision at the only threshold is 2/4 for recall 1
    assert metrics.average_precision(np.full(4, 0.5), np.array([1, 0, 1, 0])) == pytest.approx(0.5)


def test_map_skips_labels_that_never_occur():
    scores = np.array([[0.9, 0.1, 0.2], [0.1, 0.8, 0.3]])
    truth = np.array([[1, 0, 0], [0, 1, 0]])
    assert metrics.mean_average_precision(scores, truth) == pytest.approx(1.0)
    assert np.isnan(metrics.label_average_precision(scores, truth)[2])


def test_f1_micro_macro_and_accuracy():
    predicted = np.array([[1, 0], [1, 1], [0, 0]])
    truth = np.array([[1, 0], [0, 1], [0, 1]])
    f1 = metrics.multilabel_f1(predicted, truth)
    # label 0: tp 1, fp 1 -> 2/3; label 1: tp 1, fn 1 -> 2/3; micro: tp 2, fp 1, fn 1 -> 2/3
    assert f1["micro"] == pytest.approx(2 / 3) and f1["macro"] == pytest.approx(2 / 3)
    assert np.allclose(metrics.label_accuracy(predicted, truth), [2 / 3, 2 / 3])


def test_best_threshold_separates_when_it_can():
    scores = np.array([0.2, 0.3, 0.35, 0.6, 0.9])
    truth = np.array([0, 0, 1, 1, 1])
    t = metrics.best_threshold(scores, truth)
    assert 0.3 < t <= 0.35
    assert metrics.best_threshold(scores, np.zeros(5)) == 0.5
    assert metrics.best_thresholds(np.c_[scores, scores], np.c_[truth, truth]).shape == (2,)


def test_expected_calibration_error_matches_hand_worked_values():
    # two bins: 0.9 confident and right 2 times in 4 (gap 0.4), 0.3 confident and right 1 in 4 (gap 0.05)
    confidence = np.array([0.9] * 4 + [0.3] * 4)
    correct = np.array([1, 1, 0, 0, 1, 0, 0, 0], dtype=bool)
    assert metrics.expected_calibration_error(confidence, correct, bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.05)
    assert metrics.expected_calibration_error(np.array([0.5, 0.5]), np.array([True, False])) == pytest.approx(0.0)
    assert np.isnan(metrics.expected_calibration_error(np.array([]), np.array([], dtype=bool)))


def test_bootstrap_interval_draws_whole_groups_and_is_seeded():
    from nsep import metrics

    rng = np.random.default_rng(0)
    # 20 instruments of 10 notes each: an instrument's notes are all right or all wrong
    correct = np.repeat(rng.random(20) < 0.7, 10).astype(float)
    instruments = np.repeat(np.arange(20), 10)
    by_instrument = metrics.bootstrap_interval(lambda drawn: correct[drawn].mean(), instruments)
    by_note = metrics.bootstrap_interval(lambda drawn: correct[drawn].mean(), np.arange(200))
    assert by_instrument == metrics.bootstrap_interval(lambda drawn: correct[drawn].mean(), instruments)  # seeded
    assert by_instrument[0] <= correct.mean() <= by_instrument[1]
    # notes that are not independent leave more doubt: about sqrt(10) times the width
    assert (by_instrument[1] - by_instrument[0]) > 2 * (by_note[1] - by_note[0])
    assert metrics.bootstrap_interval(lambda drawn: correct[drawn].mean(), np.zeros(200)) is None  # one group
    # a bound the statistic cannot reach in finite terms is None (silenced stems' -inf)
    silenced = np.array([-np.inf] * 6 + [1.0, 2.0])
    assert metrics.bootstrap_interval(lambda drawn: np.median(silenced[drawn]), np.arange(8))[0] is None
