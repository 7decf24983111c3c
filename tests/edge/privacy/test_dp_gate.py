"""The k threshold and differential privacy with a persisted daily budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from summary_factory import BDI_AND_PHQ9, session_summary

from edge.privacy.dp import BUDGET_NAME
from edge.privacy.release import DP_WITHHELD, PrivacyGate
from edge.publish.settings import DifferentialPrivacySettings, PrivacySettings

DAY = 1_763_800_000.0


class Clock:
    """A settable clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_summaries_under_k_scored_windows_are_withheld(tmp_path: Path) -> None:
    gate = PrivacyGate(PrivacySettings(k_min_windows=5), tmp_path)
    assert gate.admit(session_summary([10.0] * 4, rejected=["blur"] * 9)) is None
    assert gate.withheld_summaries == 1
    score = gate.admit(session_summary([10.0] * 5))
    assert score is not None and score.values["mean"] == pytest.approx(10.0) and score.withheld == ()


@pytest.mark.parametrize("mechanism", ["laplace", "gaussian"])
def test_dp_noise_changes_the_mean_stays_in_range_and_withholds_unprotected_fields(
    tmp_path: Path, mechanism: str
) -> None:
    dp = DifferentialPrivacySettings(enabled=True, mechanism=mechanism, epsilon_per_summary=1.0, daily_epsilon=50)
    gate = PrivacyGate(PrivacySettings(dp=dp), tmp_path)
    summary = session_summary([20.0] * 100)
    means = []
    for _ in range(20):
        score = gate.admit(summary)
        assert score is not None and score.dp is not None
        assert set(score.withheld) == set(DP_WITHHELD)
        assert all(score.values[name] is None for name in DP_WITHHELD)
        mean = score.values["mean"]
        assert isinstance(mean, float) and 0.0 <= mean <= 63.0
        assert score.dp.sensitivity == pytest.approx(0.63)  # 63 / 100 windows
        means.append(mean)
    assert len(set(means)) == 20 and all(m != 20.0 for m in means)
    assert gate.budget_remaining() == pytest.approx(30.0)


def test_budget_is_enforced_across_restarts_and_renewed_next_day(tmp_path: Path) -> None:
    clock = Clock(DAY)
    settings = PrivacySettings(dp=DifferentialPrivacySettings(enabled=True, epsilon_per_summary=1.0, daily_epsilon=3))
    summary = session_summary([15.0] * 8)
    for _ in range(2):
        score = PrivacyGate(settings, tmp_path, clock).admit(summary)
        assert score is not None and score.values["mean"] is not None
    restarted = PrivacyGate(settings, tmp_path, clock)  # a new process reads the persisted ledger
    assert restarted.budget_remaining() == pytest.approx(1.0)
    assert restarted.admit(summary) is not None
    spent = restarted.admit(summary)
    assert spent is not None and spent.values["mean"] is None and "mean" in spent.withheld
    assert spent.dp is not None and spent.dp.epsilon == 0.0 and spent.dp.epsilon_remaining == 0.0
    clock.now += 86_400
    renewed = PrivacyGate(settings, tmp_path, clock).admit(summary)
    assert renewed is not None and renewed.values["mean"] is not None
    assert renewed.dp is not None and renewed.dp.epsilon_remaining == pytest.approx(2.0)


def test_a_clock_stepped_back_a_day_spends_nothing_and_the_day_is_not_paid_twice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(DAY)
    settings = PrivacySettings(dp=DifferentialPrivacySettings(enabled=True, epsilon_per_summary=1.0, daily_epsilon=2))
    gate = PrivacyGate(settings, tmp_path, clock)
    summary = session_summary([15.0] * 8)
    for _ in range(2):  # today's budget spent
        score = gate.admit(summary)
        assert score is not None and score.values["mean"] is not None
    ledger = (tmp_path / BUDGET_NAME).read_text()
    clock.now -= 86_400  # an NTP correction or a device without a real-time clock
    stepped_back = gate.admit(summary)
    assert stepped_back is not None and stepped_back.values["mean"] is None and "mean" in stepped_back.withheld
    assert stepped_back.dp is not None and stepped_back.dp.epsilon == 0.0 and gate.budget_remaining() == 0.0
    assert (tmp_path / BUDGET_NAME).read_text() == ledger  # the spent day is not overwritten
    assert "behind the privacy-budget ledger" in caplog.text
    clock.now += 86_400  # back on the recorded day: still spent
    again = PrivacyGate(settings, tmp_path, clock).admit(summary)
    assert again is not None and again.values["mean"] is None and gate.budget_remaining() == 0.0
    clock.now += 86_400
    assert gate.budget_remaining() == pytest.approx(2.0)


@pytest.mark.parametrize(
    "content",
    ["{not json", "[1, 2]", '{"day": "yesterday", "spent": []}', '{"day": "2025-11-22", "spent": [[-5, 0]]}', "\xff"],
)
def test_a_corrupt_ledger_fails_closed_and_is_rewritten_as_spent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    (tmp_path / BUDGET_NAME).write_bytes(content.encode("latin-1"))
    clock = Clock(DAY)
    settings = PrivacySettings(dp=DifferentialPrivacySettings(enabled=True, epsilon_per_summary=1.0, daily_epsilon=3))
    gate = PrivacyGate(settings, tmp_path, clock)
    score = gate.admit(session_summary([15.0] * 8))
    assert score is not None and score.values["mean"] is None and "mean" in score.withheld
    assert [r.levelname for r in caplog.records if "ledger unreadable" in r.message] == ["ERROR"]
    assert "delete it" not in caplog.text and "counts as fully spent" in caplog.text
    assert json.loads((tmp_path / BUDGET_NAME).read_text()) == {"day": "2025-11-22", "spent": [[3.0, 0.0001]]}
    assert PrivacyGate(settings, tmp_path, clock).budget_remaining() == 0.0  # a restart does not reset it
    clock.now += 86_400
    renewed = PrivacyGate(settings, tmp_path, clock).admit(session_summary([15.0] * 8))
    assert renewed is not None and renewed.values["mean"] is not None


def test_a_ledger_written_by_the_previous_format_is_read_and_a_lowered_budget_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / BUDGET_NAME).write_text('{"day": "2025-11-22", "spent": [[1.0, 0.0], [1.0, 0.0]]}')
    clock = Clock(DAY)
    dp = DifferentialPrivacySettings(enabled=True, epsilon_per_summary=1.0, daily_epsilon=3)
    assert PrivacyGate(PrivacySettings(dp=dp), tmp_path, clock).budget_remaining() == pytest.approx(1.0)
    lowered = dp.model_copy(update={"daily_epsilon": 1.5})
    gate = PrivacyGate(PrivacySettings(dp=lowered), tmp_path, clock)
    assert gate.budget_remaining() == 0.0
    score = gate.admit(session_summary([15.0] * 8))
    assert score is not None and score.values["mean"] is None


def test_under_dp_each_outputs_mean_is_paid_from_the_budget_in_its_own_range(tmp_path: Path) -> None:
    dp = DifferentialPrivacySettings(enabled=True, epsilon_per_summary=1.0, daily_epsilon=3)
    gate = PrivacyGate(PrivacySettings(dp=dp), tmp_path)
    summary = session_summary([20.0] * 9, more=[(8.0,)] * 9, outputs=BDI_AND_PHQ9)
    score = gate.admit(summary)
    assert score is not None and score.outputs_epsilon == 1.0
    primary, phq = score.outputs
    assert primary.dp is not None and phq.dp is not None
    assert (primary.dp.sensitivity, phq.dp.sensitivity) == (pytest.approx(63 / 9), pytest.approx(27 / 9))
    assert isinstance(phq.values["mean"], float) and 0.0 <= phq.values["mean"] <= 27.0
    assert set(phq.withheld) == set(DP_WITHHELD) and score.dp is not None and score.dp.epsilon_remaining == 1.0
    second = gate.admit(summary)  # one epsilon left: the primary mean gets it, the PHQ-9 mean is withheld
    assert second is not None and second.values["mean"] is not None and second.outputs_epsilon == 0.0
    assert second.outputs[1].values["mean"] is None and "mean" in second.outputs[1].withheld
