"""Builders of the JSON payloads of the MQTT contract (summary, health, status); see docs/mqtt-contract.md.

Every payload carries ``schema`` and ``version``, a fresh ``message_id`` (uuid4, for de-duplication of QoS 1
redeliveries), the device pseudonym, the model identity, coarsened timestamps and the not-a-diagnostic-device
disclaimer. Each builder's output validates against ``edge/schemas/<name>.schema.json``.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.aggregate import Summary
from edge.control import ControlCommand, ControlMessageError
from edge.privacy.consent import ConsentState
from edge.privacy.release import PublishableScore
from edge.scale import Scale
from edge.schemas import CONTRACT_VERSION

SCHEMA_PREFIX = "expresso-edge/"
VERSION = CONTRACT_VERSION
METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
Activity = Literal["starting", "running", "waiting_for_consent", "paused", "input_lost", "idle", "stopping"]


@dataclass(frozen=True)
class ControlReply:
    """How the device answered the last control message, echoed on the status topic."""

    accepted: bool
    command: str | None
    request_id: str | None
    error: str | None = None

    @classmethod
    def accepted_for(cls, command: ControlCommand) -> ControlReply:
        """The reply to an applied command."""
        return cls(True, command.command, command.request_id)

    @classmethod
    def rejected_for(cls, error: ControlMessageError) -> ControlReply:
        """The reply to a rejected message (naming its command when it parsed far enough)."""
        return cls(False, error.command, error.request_id, str(error)[:300])

    def fields(self) -> dict[str, Any]:
        """The reply as the status's ``control`` object."""
        return {"accepted": self.accepted, "command": self.command, "request_id": self.request_id, "error": self.error}

    @classmethod
    def failed_for(cls, command: ControlCommand, error: Exception) -> ControlReply:
        """The reply to a valid command that could not be carried out (e.g. the state directory is unwritable)."""
        return cls(False, command.command, command.request_id, f"failed: {error}"[:300])


def coarse_seconds(timestamp: float, resolution_s: int, *, round_up: bool = False) -> float:
    """``timestamp`` floored (or ceiled) to a multiple of ``resolution_s``."""
    steps = timestamp / resolution_s
    return float((math.ceil(steps) if round_up else math.floor(steps)) * resolution_s)


def coarse_time(timestamp: float, resolution_s: int, *, round_up: bool = False) -> str:
    """``timestamp`` floored (or ceiled) to a multiple of ``resolution_s``, as ISO 8601 UTC (``...Z``)."""
    snapped = coarse_seconds(timestamp, resolution_s, round_up=round_up)
    return datetime.fromtimestamp(snapped, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(name: str, device: str, model: Mapping[str, str]) -> dict[str, Any]:
    """Fields every payload starts with."""
    return {
        "schema": SCHEMA_PREFIX + name,
        "version": VERSION,
        "message_id": str(uuid.uuid4()),
        "device": device,
        "model": dict(model),
        "disclaimer": NOT_A_DIAGNOSTIC_DEVICE,
    }


def summary_payload(
    summary: Summary, score: PublishableScore, *, device: str, resolution_s: int, k: int
) -> dict[str, Any]:
    """The payload of a session or rolling summary that passed the privacy gate."""
    return {
        **envelope("summary", device, summary.model),
        "kind": summary.kind,
        "period": {
            "start": coarse_time(summary.start, resolution_s),
            "end": coarse_time(summary.end, resolution_s, round_up=True),
            "resolution_s": resolution_s,
            "complete": summary.complete,
        },
        "windows": {
            "scored": summary.windows_scored,
            "rejected": dict(summary.windows_rejected),
            "rejected_total": sum(summary.windows_rejected.values()),
            "explained": summary.windows_explained,
        },
        "score": _score_block(summary.scale, score.values),
        "outputs": [
            {
                "name": out.name,
                **_score_block(out.scale, out.values),
                "withheld": list(out.withheld),
                "regions": _regions_block(out.regions),
            }
            for out in score.outputs
        ],
        "privacy": {"k": k, "withheld": list(score.withheld), "dp": _dp_block(score)},
        "quality": {
            name: {stat: round(v, 3) for stat, v in figures.items()} for name, figures in summary.quality.items()
        },
        "regions": _regions_block(score.regions),
        **({"behaviour": {n: round(v, 4) for n, v in score.behaviour.items()}} if score.behaviour else {}),
    }


def health_payload(
    metrics: Mapping[str, float],
    *,
    device: str,
    model: Mapping[str, str],
    now: float,
    resolution_s: int,
    backend: str | None = None,
    outbox: Mapping[str, int] | None = None,
    summaries_withheld: int = 0,
) -> dict[str, Any]:
    """A health message: finite numeric metrics named in snake_case (others are left out), backend, outbox."""
    return {
        **envelope("health", device, model),
        "at": coarse_time(now, resolution_s),
        "backend": backend,
        "metrics": {
            name: float(value)
            for name, value in metrics.items()
            if METRIC_NAME.match(name) and isinstance(value, (int, float)) and math.isfinite(value)
        },
        "outbox": dict(outbox or {"messages": 0, "bytes": 0, "dropped": 0}),
        "summaries_withheld": summaries_withheld,
    }


def status_payload(
    state: Literal["online", "offline"],
    *,
    device: str,
    model: Mapping[str, str],
    consent: ConsentState,
    activity: Activity,
    detail: str | None = None,
    control: ControlReply | None = None,
    k: int,
    dp_enabled: bool,
    epsilon_remaining: float | None,
    now: float | None,
    resolution_s: int,
) -> dict[str, Any]:
    """The retained status; ``now=None`` leaves ``at`` out (the Last Will, composed at connection time)."""
    payload: dict[str, Any] = {
        **envelope("status", device, model),
        "state": state,
        "consent": consent.label,
        "paused": consent.paused,
        "activity": activity,
        "detail": detail[:200] if detail else None,
        "privacy": {"k": k, "dp": dp_enabled, "epsilon_remaining_today": _rounded(epsilon_remaining, 4)},
        "control": None if control is None else control.fields(),
    }
    if now is not None:
        payload["at"] = coarse_time(now, resolution_s)
    return payload


def control_reply_payload(reply: ControlReply, *, device: str) -> dict[str, Any]:
    """The answer sent to an MQTT 5 Response Topic: the status's ``control`` object with schema and version."""
    return {"schema": SCHEMA_PREFIX + "control-reply", "version": VERSION, "device": device, **reply.fields()}


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _rounded(value: object, digits: int = 2) -> float | None:
    return round(float(value), digits) if isinstance(value, (int, float)) else None


def _score_block(scale: Scale, values: Mapping[str, float | dict[str, float] | None]) -> dict[str, Any]:
    """One output's statistics in its scale's units, as ``score`` and every item of ``outputs`` carry them."""
    bands = values.get("bands")
    return {
        "scale": scale.name,
        "range": [scale.low, scale.high],
        **{name: _rounded(values.get(name)) for name in ("mean", "median", "q1", "q3", "iqr", "mad")},
        "bands": {b: round(s, 3) for b, s in bands.items()} if isinstance(bands, dict) else None,
    }


def _regions_block(regions: Mapping[str, float] | None) -> dict[str, float] | None:
    """Region shares as ``regions`` and every item of ``outputs`` carry them (None: not published)."""
    return {r: round(w, 3) for r, w in regions.items()} if regions else None


def _dp_block(score: PublishableScore) -> dict[str, Any] | None:
    release = score.dp
    if release is None:
        return None
    return {
        "mechanism": release.mechanism,
        "epsilon": release.epsilon,
        "delta": release.delta,
        "sensitivity": round(release.sensitivity, 4),
        "epsilon_remaining_today": round(release.epsilon_remaining, 4),
        "day": release.day,
        "regions_epsilon": score.regions_epsilon,
        "outputs_epsilon": score.outputs_epsilon,
    }
