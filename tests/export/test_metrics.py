"""Agreement metrics on hand-built numbers whose answers are known, and a coverage check of the bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from export.metrics import agreement, bland_altman, bootstrap_interval, ccc, mae, pearson, rmse

TRUTH = np.array([1.0, 2.0, 3.0, 4.0])


def test_ccc_is_one_for_agreement_and_falls_with_a_shift_that_pearson_ignores() -> None:
    assert ccc(TRUTH, TRUTH.copy()) == pytest.approx(1.0)
    shifted = TRUTH + 2.0
    # population variances 1.25 each, covariance 1.25, mean difference 2: 2*1.25 / (1.25 + 1.25 + 4) = 5/13
    assert ccc(TRUTH, shifted) == pytest.approx(5 / 13)
    assert pearson(TRUTH, shifted) == pytest.approx(1.0)
    assert ccc(TRUTH, 5.0 - TRUTH) == pytest.approx(-1.0)


def test_errors_and_undefined_figures() -> None:
    predicted = np.array([2.0, 2.0, 2.0, 8.0])  # errors 1, 0, -1, 4
    assert mae(TRUTH, predicted) == pytest.approx(1.5)
    assert rmse(TRUTH, predicted) == pytest.approx(np.sqrt(18 / 4))
    assert pearson(TRUTH, np.full(4, 3.0)) is None  # a constant model has no correlation
    assert ccc(TRUTH, np.full(4, TRUTH.mean())) == pytest.approx(0.0)
    assert ccc(np.array([1.0]), np.array([1.0])) is None and mae(np.array([]), np.array([])) is None


def test_bland_altman_limits_are_bias_plus_minus_1_96_sample_sd() -> None:
    predicted = TRUTH + np.array([-1.0, 1.0, -1.0, 1.0])
    figures = bland_altman(TRUTH, predicted)
    sd = np.sqrt(4 / 3)  # sample SD (ddof=1) of -1, 1, -1, 1
    assert figures["bias"] == pytest.approx(0.0) and figures["sd"] == pytest.approx(sd)
    assert figures["limits"] == pytest.approx([-1.96 * sd, 1.96 * sd])
    assert bland_altman([3.0], [5.0]) == {"bias": 2.0, "sd": None, "limits": None}


def test_bootstrap_interval_is_seeded_and_covers_the_true_mae_about_95_percent_of_the_time() -> None:
    sigma, n = 2.0, 60
    true_mae = sigma * np.sqrt(2 / np.pi)  # mean |N(0, sigma)|
    rng = np.random.default_rng(1)
    hits = 0
    trials = 150
    for trial in range(trials):
        truth = rng.uniform(0, 63, n)
        predicted = truth + rng.normal(0, sigma, n)
        low, high = bootstrap_interval(truth, predicted, mae, resamples=300, seed=trial) or (np.nan, np.nan)
        hits += low <= true_mae <= high
    assert 0.88 <= hits / trials <= 0.99, hits / trials
    truth = rng.uniform(0, 63, 20)
    predicted = truth + rng.normal(0, 3, 20)
    assert bootstrap_interval(truth, predicted, ccc, seed=7) == bootstrap_interval(truth, predicted, ccc, seed=7)


def test_agreement_leaves_undefined_intervals_out() -> None:
    figures = agreement([10.0, 20.0, 30.0], [15.0, 15.0, 15.0], resamples=200)
    assert figures["n"] == 3 and figures["bias"] == pytest.approx(-5.0)
    assert figures["pearson_r"] is None and figures["pearson_r_ci"] is None
    low, high = figures["mae_ci"]
    assert 0.0 <= low <= figures["mae"] <= high <= 15.0
