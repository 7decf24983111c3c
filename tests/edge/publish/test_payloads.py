"""Payload builders: coarse time, schema validity with and without differential privacy, reconnect backoff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from summary_factory import IDENTITY, T0, session_summary

from edge.privacy.release import PrivacyGate
from edge.publish.mqtt import backoff_delay
from edge.publish.payloads import coarse_time, encode, summary_payload
from edge.publish.settings import DifferentialPrivacySettings, PrivacySettings
from edge.schemas import schema_errors


def test_coarse_time_floors_and_ceils_to_the_resolution() -> None:
    assert coarse_time(T0, 900) == "2025-11-22T08:15:00Z"  # T0 is 08:26:40 UTC
    assert coarse_time(T0, 900, round_up=True) == "2025-11-22T08:30:00Z"
    assert coarse_time(T0, 3600) == "2025-11-22T08:00:00Z"


@pytest.mark.parametrize("daily_epsilon", [10.0, 0.6])  # plenty, then too little for a second release
def test_dp_summary_payloads_validate_and_report_the_budget(tmp_path: Path, daily_epsilon: float) -> None:
    dp = DifferentialPrivacySettings(enabled=True, epsilon_per_summary=0.5, daily_epsilon=daily_epsilon)
    gate = PrivacyGate(PrivacySettings(dp=dp), tmp_path)
    summary = session_summary([12.0] * 10, rejected=["blur"])
    if daily_epsilon < 1:
        assert gate.budget is not None and gate.budget.try_spend(0.5, 0.0)  # an earlier release today
    score = gate.admit(summary)
    assert score is not None
    payload = json.loads(encode(summary_payload(summary, score, device="0" * 20, resolution_s=900, k=5)))
    assert schema_errors(payload, "summary") == []
    assert payload["model"] == IDENTITY and payload["score"]["median"] is None
    block = payload["privacy"]["dp"]
    if daily_epsilon > 1:
        assert payload["score"]["mean"] is not None and block["epsilon"] == 0.5
        assert block["epsilon_remaining_today"] == pytest.approx(9.5)
    else:
        assert payload["score"]["mean"] is None and "mean" in payload["privacy"]["withheld"]
        assert block["epsilon"] == 0 and block["epsilon_remaining_today"] == pytest.approx(0.1)  # 0.6 - 0.5


def test_reconnect_backoff_is_jittered_and_capped() -> None:
    delays = [backoff_delay(attempt, 1.0, 30.0) for attempt in range(12) for _ in range(20)]
    assert min(delays) >= 0.5 and max(delays) <= 30.0
    late = [backoff_delay(10, 1.0, 30.0) for _ in range(50)]
    assert min(late) >= 15.0 and len(set(late)) > 1
