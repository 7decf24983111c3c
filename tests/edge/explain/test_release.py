"""Region shares from the scorer through the aggregator and the privacy gate: k explained windows, DP noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from region_models import FRAMES, SIZE, energy_bundle
from summary_factory import IDENTITY, T0

from edge.aggregate import Aggregator, Summary, WindowOutcome
from edge.backends import create
from edge.explain import create as create_explainer
from edge.face import Window, WindowQuality
from edge.privacy.release import PrivacyGate
from edge.publish.payloads import summary_payload
from edge.publish.settings import AggregationSettings, DifferentialPrivacySettings, PrivacySettings
from edge.schemas import schema_errors
from edge.scoring import WindowScorer

SHARES = {"left_eye": 0.3, "mouth": 0.6, "nose": 0.1}


def passed_window(start: float, level: int) -> Window:
    quality = WindowQuality(True, None, 1.0, 1.0, 2.0, 2.0, 120.0, 40.0, 300.0)
    times = start + np.arange(FRAMES) / 8
    frames = np.full((FRAMES, SIZE, SIZE, 3), level, dtype=np.uint8)
    return Window(frames, float(times[0]), float(times[-1]), quality, times, times, (), {}, FRAMES)


def summary_with(scored: int, explained: int) -> Summary:
    """A session summary of ``scored`` windows, the first ``explained`` of them with region shares."""
    agg = Aggregator(AggregationSettings(rolling_enabled=False), IDENTITY)
    for i in range(scored):
        agg.add_window(WindowOutcome(T0 + i, T0 + i + 1, 12.0, None, {}, SHARES if i < explained else None))
    (summary,) = agg.close(T0 + scored + 1)
    return summary


def test_the_scorer_explains_its_share_of_windows_and_the_session_gets_their_mean(tmp_path: Path) -> None:
    backend = create("onnxruntime", energy_bundle(tmp_path, {"mouth": 1.0, "right_eyebrow": 1.0}))
    scorer = WindowScorer(backend, origin=T0, explainer=create_explainer("occlusion", backend), explain_share=0.5)
    scorer.submit([passed_window(i, 30 + 20 * i) for i in range(6)])
    outcomes = scorer.ready(wait=True)
    scorer.close()
    assert scorer.explained == 3 and scorer.explain_seconds > 0
    assert [o.attribution is not None for o in outcomes] == [True, False] * 3
    agg = Aggregator(AggregationSettings(rolling_enabled=False), IDENTITY)
    for outcome in outcomes:
        agg.add_window(outcome)
    (summary,) = agg.close(T0 + 10)
    assert summary.windows_explained == 3 and summary.windows_scored == 6
    assert summary.regions is not None
    assert summary.regions["mouth"] + summary.regions["right_eyebrow"] == pytest.approx(1.0)
    assert summary.regions["nose"] == 0.0 and summary.regions["left_eye"] == 0.0


def test_windows_whose_occlusion_moves_nothing_are_not_counted_as_explained(tmp_path: Path) -> None:
    # a model that reads no tile: every occlusion leaves the score as it is, so no window has shares; replay's
    # windows_explained counted the three attempts while the summaries' windows.explained said 0
    backend = create("onnxruntime", energy_bundle(tmp_path, {"mouth": 0.0}))
    scorer = WindowScorer(backend, origin=T0, explainer=create_explainer("occlusion", backend), explain_share=0.5)
    scorer.submit([passed_window(i, 30 + 20 * i) for i in range(6)])
    outcomes = scorer.ready(wait=True)
    scorer.close()
    assert all(o.attribution is None for o in outcomes) and scorer.explained == 0


def test_regions_need_k_explained_windows_like_the_score_needs_k_scored(tmp_path: Path) -> None:
    gate = PrivacyGate(PrivacySettings(k_min_windows=5), tmp_path)
    few = gate.admit(summary_with(scored=8, explained=4))
    assert few is not None and few.values["mean"] == pytest.approx(12.0) and few.regions is None
    enough = gate.admit(summary_with(scored=8, explained=5))
    assert enough is not None and enough.regions == pytest.approx(SHARES)
    payload = summary_payload(summary_with(8, 5), enough, device="0" * 20, resolution_s=900, k=5)
    assert payload["regions"] == SHARES and payload["windows"]["explained"] == 5
    assert schema_errors(payload, "summary") == []


def test_under_dp_the_shares_are_noisy_paid_for_and_withheld_once_the_budget_is_spent(tmp_path: Path) -> None:
    dp = DifferentialPrivacySettings(
        enabled=True, epsilon_per_summary=0.5, regions_epsilon_per_summary=1.0, daily_epsilon=4.5
    )
    gate = PrivacyGate(PrivacySettings(dp=dp), tmp_path)
    summary = summary_with(scored=40, explained=40)
    released = []
    for _ in range(3):
        score = gate.admit(summary)
        assert score is not None and score.regions is not None and score.regions_epsilon == 1.0
        assert sum(score.regions.values()) == pytest.approx(1.0)
        assert all(0.0 <= v <= 1.0 for v in score.regions.values())
        released.append(score.regions)
        payload = summary_payload(summary, score, device="0" * 20, resolution_s=900, k=5)
        assert payload["privacy"]["dp"]["regions_epsilon"] == 1.0 and schema_errors(payload, "summary") == []
    assert all(r != pytest.approx(SHARES, abs=1e-6) for r in released)  # noise was added
    assert gate.budget_remaining() == pytest.approx(0.0)  # 3 x (0.5 for the mean + 1.0 for the regions)
    spent = gate.admit(summary)
    assert spent is not None and spent.regions is None and spent.regions_epsilon == 0.0


def test_a_paid_release_that_the_noise_leaves_empty_still_reports_its_epsilon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffprivlib.mechanisms import Laplace

    monkeypatch.setattr(Laplace, "randomise", lambda self, value: -1.0)  # noise that pushes every share below 0
    dp = DifferentialPrivacySettings(
        enabled=True, epsilon_per_summary=0.5, regions_epsilon_per_summary=1.0, daily_epsilon=4.5
    )
    gate = PrivacyGate(PrivacySettings(dp=dp), tmp_path)
    score = gate.admit(summary_with(scored=40, explained=40))
    assert score is not None and score.regions is None
    assert score.regions_epsilon == 1.0 and gate.budget_remaining() == pytest.approx(3.0)  # spent, and said so


def test_the_mean_has_the_first_claim_on_the_budget_and_the_reported_remainder_counts_the_regions(
    tmp_path: Path,
) -> None:
    dp = DifferentialPrivacySettings(
        enabled=True, epsilon_per_summary=1.0, regions_epsilon_per_summary=1.0, daily_epsilon=3.0
    )
    gate = PrivacyGate(PrivacySettings(dp=dp), tmp_path)
    summary = summary_with(scored=20, explained=20)
    first = gate.admit(summary)
    assert first is not None and first.dp is not None and first.regions is not None
    assert first.dp.epsilon_remaining == pytest.approx(1.0)  # 3 - 1 (mean) - 1 (regions)
    second = gate.admit(summary)  # 1 left: the mean gets it, the regions wait for tomorrow
    assert second is not None and second.values["mean"] is not None and second.regions is None
    assert second.dp is not None and second.dp.epsilon_remaining == pytest.approx(0.0)


def test_behaviour_means_are_published_only_when_on_and_never_under_dp(tmp_path: Path) -> None:
    agg = Aggregator(AggregationSettings(rolling_enabled=True, rolling_period_s=3600), IDENTITY)
    for i in range(6):
        agg.observe_frame(T0 + i, True, {"eye_openness": 0.2 + 0.02 * i, "head_motion": float("nan")})
        agg.add_window(WindowOutcome(T0 + i, T0 + i + 1, 12.0, None, {}))
    agg.observe_frame(T0 + 6, False, None)
    session, rolling = agg.close(T0 + 7)
    for summary in (session, rolling):
        assert summary.behaviour == pytest.approx({"eye_openness": 0.25})  # mean of 6 frames; NaN left out
    released = PrivacyGate(PrivacySettings(), tmp_path / "plain").admit(session)
    assert released is not None
    payload = summary_payload(session, released, device="0" * 20, resolution_s=900, k=5)
    assert payload["behaviour"] == {"eye_openness": 0.25} and schema_errors(payload, "summary") == []
    dp = PrivacySettings(dp=DifferentialPrivacySettings(enabled=True))
    noisy = PrivacyGate(dp, tmp_path / "dp").admit(session)
    assert noisy is not None and noisy.behaviour is None
    assert "behaviour" not in summary_payload(session, noisy, device="0" * 20, resolution_s=900, k=5)
    assert summary_with(scored=6, explained=0).behaviour is None  # off: nothing collected


def test_published_gaze_leaves_out_blink_frames() -> None:
    """A closing lid drags the iris centre down: gaze on blink frames measures the lid, not the eye's direction."""
    agg = Aggregator(AggregationSettings(rolling_enabled=False), IDENTITY)
    for i in range(10):
        blink = i in (3, 7)  # lids at a third of their usual gap
        frame = {"eye_openness": 0.1 if blink else 0.3, "gaze_x": 0.0, "gaze_y": 0.5 if blink else 0.0}
        agg.observe_frame(T0 + i, True, frame)
        agg.add_window(WindowOutcome(T0 + i, T0 + i + 1, 12.0, None, {}))
    (summary,) = agg.close(T0 + 11)
    assert summary.behaviour is not None and "blink" not in summary.behaviour
    assert summary.behaviour["gaze_y"] == pytest.approx(0.0) and summary.behaviour["gaze_x"] == pytest.approx(0.0)
    assert summary.behaviour["eye_openness"] == pytest.approx(0.26)  # blinks still count in the lids' mean
