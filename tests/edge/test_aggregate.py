"""Sessions, rolling periods and robust statistics of the aggregator."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from summary_factory import BDI_AND_PHQ9, IDENTITY, session_summary

from edge.aggregate import Aggregator, WindowOutcome, reason_key, score_stats
from edge.publish.settings import AggregationSettings

HOUR = 3600.0
START = 100 * HOUR  # on the hour


def _window(t: float, score: float | None, reason: str | None = None) -> WindowOutcome:
    return WindowOutcome(t, t + 1.0, score, reason, {"brightness": 0.5})


def test_statistics_are_robust_and_band_shares_follow_bdi_ii() -> None:
    scores = [5.0, 13.4, 13.5, 19.4, 19.5, 28.4, 28.5, 63.0]  # the band of the nearest whole score (edge.scale)
    stats = score_stats(scores)
    assert stats.mean == pytest.approx(np.mean(scores))
    assert stats.median == pytest.approx(np.median(scores))
    assert stats.iqr == pytest.approx(np.percentile(scores, 75) - np.percentile(scores, 25))
    assert stats.mad == pytest.approx(np.median(np.abs(np.array(scores) - np.median(scores))))
    assert stats.bands == {"minimal": 0.25, "mild": 0.25, "moderate": 0.25, "severe": 0.25}


def test_gap_longer_than_allowed_splits_sessions_and_shorter_gaps_do_not() -> None:
    agg = Aggregator(AggregationSettings(session_gap_s=5, rolling_enabled=False), IDENTITY)
    out = []
    for t in [0, 1, 2, 6, 7]:  # a 4 s gap continues the session
        out += agg.observe_frame(START + t, True)
        agg.add_window(_window(START + t, 10.0))
    assert out == []
    out += agg.observe_frame(START + 9, False)
    out += agg.observe_frame(START + 14, False)  # 6 s after the last face (window end 8): the session ends
    assert len(out) == 1
    session = out[0]
    assert session.kind == "session" and session.windows_scored == 5
    assert (session.start, session.end) == (START, START + 8)
    out = agg.observe_frame(START + 20, True)  # a new session starts
    assert out == [] and agg.close(START + 21)[0].start == START + 20


def test_due_closes_an_expired_session_without_new_frames() -> None:
    agg = Aggregator(AggregationSettings(session_gap_s=5, rolling_enabled=False), IDENTITY)
    agg.observe_frame(START, True)
    agg.add_window(_window(START, 12.0))
    assert agg.due(START + 4) == []
    assert [s.kind for s in agg.due(START + 7)] == ["session"]  # 6 s after the window ended


def test_rolling_periods_are_clock_aligned_and_wait_for_late_windows() -> None:
    settings = AggregationSettings(rolling_period_s=HOUR, lateness_s=5, session_gap_s=86_400)  # a day: one session
    agg = Aggregator(settings, IDENTITY)
    for t in [10.0, 1800.0, HOUR - 2, HOUR + 10]:
        agg.add_window(_window(START + t - 1, 20.0))
    assert agg.due(START + HOUR + 1) == []  # within the lateness allowance
    (first,) = agg.due(START + HOUR + 5)
    assert (first.kind, first.start, first.end, first.complete) == ("rolling", START, START + HOUR, True)
    assert first.windows_scored == 3
    agg.add_window(_window(START + 100, 20.0))  # too late for its period: not counted there
    assert agg.late_windows == 1
    rest = agg.close(START + HOUR + 60)
    rolling = [s for s in rest if s.kind == "rolling"]
    assert len(rolling) == 1 and rolling[0].complete is False and rolling[0].windows_scored == 1
    assert rolling[0].end == START + HOUR + 60


def test_rejections_counted_per_reason_scores_clamped_and_nan_rejected() -> None:
    summary = session_summary([70.0, -3.0, float("nan"), 10.0, 10.0], rejected=["Too dark", "too dark", "blur"])
    assert summary.windows_scored == 4
    assert summary.windows_rejected == {"blur": 1, "invalid_score": 1, "too_dark": 2}
    assert summary.stats is not None
    assert summary.stats.mean == pytest.approx((63.0 + 0.0 + 10.0 + 10.0) / 4)
    assert summary.quality["brightness"]["median"] == pytest.approx(0.6)
    assert set(summary.quality) == {"brightness", "sharpness"}
    assert summary.model == IDENTITY


def test_region_attribution_is_averaged_over_scored_windows() -> None:
    agg = Aggregator(AggregationSettings(rolling_enabled=False), IDENTITY)
    agg.add_window(WindowOutcome(START, START + 1, 10.0, None, {}, {"eyes": 0.6, "mouth": 0.4}))
    agg.add_window(WindowOutcome(START + 1, START + 2, 10.0, None, {}, {"eyes": 0.2, "mouth": 0.8}))
    (summary,) = agg.close(START + 3)
    assert summary.regions == pytest.approx({"eyes": 0.4, "mouth": 0.6})


def test_no_single_window_score_in_summaries_or_logs_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    scores = [11.37, 23.91, 30.52, 47.06]
    summary = session_summary(scores)
    text = repr(summary) + caplog.text + repr(_window(0, 55.55))
    for score in [*scores, 55.55]:
        assert str(score) not in text
    assert summary.stats is not None and summary.stats.median == pytest.approx(27.215)


def test_reason_keys_are_snake_case() -> None:
    assert reason_key("Face lost!") == "face_lost"
    assert reason_key("???") == "unspecified"


def test_each_output_of_a_two_output_model_gets_its_own_statistics_and_bands() -> None:
    bdi = [10.0, 16.0, 25.0, 70.0]
    phq = [(4.0,), (9.6,), (14.5,), (30.0,)]  # the last beyond PHQ-9's 27: clamped to its own range
    summary = session_summary(bdi, more=phq, outputs=BDI_AND_PHQ9)
    first, second = summary.outputs
    assert (first.name, first.scale.name, second.name, second.scale.name) == ("bdi_ii", "BDI-II", "phq9", "PHQ-9")
    assert summary.stats == first.stats and summary.scale == first.scale  # the primary output
    assert first.stats.mean == pytest.approx((10 + 16 + 25 + 63) / 4)
    assert second.stats.mean == pytest.approx((4 + 9.6 + 14.5 + 27) / 4)
    assert second.stats.bands == {
        "none_minimal": 0.25,
        "mild": 0.0,
        "moderate": 0.25,
        "moderately_severe": 0.25,
        "severe": 0.25,
    }  # 9.6 rounds to 10 (moderate), 14.5 to 15 (moderately severe): the nearest whole score, halves up


def test_a_window_with_any_output_not_finite_is_an_invalid_score_for_every_output() -> None:
    summary = session_summary([10.0, 12.0, 14.0], more=[(4.0,), (float("nan"),), (6.0,)], outputs=BDI_AND_PHQ9)
    assert summary.windows_scored == 2 and summary.windows_rejected == {"invalid_score": 1}
    assert summary.outputs[0].stats.mean == pytest.approx(12.0) and summary.outputs[1].stats.mean == 5.0
