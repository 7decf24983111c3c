"""Payload builders: coarse time, schema validity with and without differential privacy, no key the schema does not
list, reconnect backoff."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from summary_factory import IDENTITY, T0, session_summary

from edge.aggregate import Aggregator, WindowOutcome
from edge.control import parse_control
from edge.privacy.consent import ConsentState
from edge.privacy.release import PrivacyGate
from edge.publish.mqtt import backoff_delay
from edge.publish.payloads import ControlReply, coarse_time, encode, health_payload, status_payload, summary_payload
from edge.publish.settings import AggregationSettings, DifferentialPrivacySettings, PrivacySettings
from edge.schemas import load_schema, schema_errors


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


def unlisted_keys(value: Any, schema: dict[str, Any], root: dict[str, Any], path: str = "") -> list[str]:
    """Paths of the keys in ``value`` that ``schema`` neither lists in ``properties`` nor admits as a typed map.

    The outgoing schemas accept unknown fields (consumers must ignore them), so validation alone cannot catch a
    builder that emits a misspelled key; this walk can.
    """
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    if isinstance(value, dict):
        listed, extra = schema.get("properties", {}), schema.get("additionalProperties")
        found = []
        for key, item in value.items():
            if key in listed:
                found += unlisted_keys(item, listed[key], root, f"{path}/{key}")
            elif isinstance(extra, dict):  # a map such as metrics or windows.rejected: its values are typed
                found += unlisted_keys(item, extra, root, f"{path}/{key}")
            else:
                found.append(f"{path}/{key}")
        return found
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [
            key for i, item in enumerate(value) for key in unlisted_keys(item, schema["items"], root, f"{path}/{i}")
        ]
    return []


def built_payloads(tmp_path: Path) -> list[dict[str, Any]]:
    """One real payload of each kind and shape the builders make (DP on and off, regions, control reply, Will)."""
    agg = Aggregator(AggregationSettings(rolling_enabled=True), IDENTITY)
    for i in range(8):
        agg.observe_frame(T0 + i, True)
        agg.add_window(WindowOutcome(T0 + i, T0 + i + 1, 10.0 + i, None, {"blur": 80.0}, {"mouth": 0.6, "nose": 0.4}))
    agg.add_window(WindowOutcome(T0 + 8, T0 + 9, None, "dark", {"brightness": 20.0}))
    summaries = agg.close(T0 + 9)
    dp = DifferentialPrivacySettings(enabled=True)
    payloads = []
    for settings in (PrivacySettings(), PrivacySettings(dp=dp)):
        gate = PrivacyGate(settings, tmp_path / str(settings.dp.enabled))
        for summary in summaries:
            score = gate.admit(summary)
            assert score is not None
            payloads.append(summary_payload(summary, score, device="0" * 20, resolution_s=900, k=5))
    ids = {"device": "0" * 20, "model": IDENTITY, "resolution_s": 60}
    outbox = {"messages": 2, "bytes": 900, "dropped": 0}
    payloads.append(health_payload({"frames_per_s": 4.9}, now=T0, backend="onnxruntime-cpu", outbox=outbox, **ids))
    reply = ControlReply.accepted_for(parse_control(b'{"command": "pause", "request_id": "p-1"}'))
    consent = ConsentState(granted=True, paused=True, source="control")
    for now, control in ((T0, reply), (None, None)):
        payloads.append(
            status_payload(
                "online" if now else "offline",
                consent=consent,
                activity="paused",
                control=control,
                k=5,
                dp_enabled=True,
                epsilon_remaining=3.5,
                now=now,
                **ids,
            )
        )
    return [json.loads(encode(payload)) for payload in payloads]


def test_builders_emit_only_keys_their_schema_lists(tmp_path: Path) -> None:
    payloads = built_payloads(tmp_path)
    kinds = [p["schema"].removeprefix("expresso-edge/") for p in payloads]
    assert set(kinds) == {"summary", "health", "status"}
    assert any(p.get("regions") for p in payloads) and any(p.get("control") for p in payloads)
    assert any((p.get("privacy") or {}).get("dp") for p in payloads)
    for kind, payload in zip(kinds, payloads, strict=True):
        schema = load_schema(kind)
        assert schema_errors(payload, kind) == []
        assert unlisted_keys(payload, schema, schema) == [], kind


def test_the_key_walk_finds_a_misspelled_key_the_open_schema_accepts(tmp_path: Path) -> None:
    payload = built_payloads(tmp_path)[0]
    payload["privacy"]["dp_"] = None
    payload["period"]["compete"] = True
    schema = load_schema("summary")
    assert schema_errors(payload, "summary") == []  # unknown fields are allowed within v1 ...
    assert sorted(unlisted_keys(payload, schema, schema)) == ["/period/compete", "/privacy/dp_"]  # ... not emitted


def test_reconnect_backoff_is_jittered_and_capped() -> None:
    delays = [backoff_delay(attempt, 1.0, 30.0) for attempt in range(12) for _ in range(20)]
    assert min(delays) >= 0.5 and max(delays) <= 30.0
    late = [backoff_delay(10, 1.0, 30.0) for _ in range(50)]
    assert min(late) >= 15.0 and len(set(late)) > 1
