"""Typed settings of the "scores out" half: aggregation, privacy and MQTT (composed by the daemon's config).

Every model forbids unknown keys, so a typo in a configuration file is an error that names the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edge.settings_base import StrictSettings

DAY_S = 86_400.0
MAX_MESSAGES = 10_000_000
"""Outbox bounds beyond this are a typo, not a plan (at 1,200 bytes a summary: 12 GB)."""
MAX_BYTES = 2**36
"""64 GiB of payload: beyond this, a typo."""


class AggregationSettings(StrictSettings):
    """How scored windows are grouped into sessions and rolling periods."""

    session_gap_s: float = Field(
        10.0,
        gt=0,
        le=DAY_S,
        description="Longest gap without a face (seconds) that still continues the same session.",
    )
    rolling_period_s: float = Field(
        3600.0,
        ge=1,
        le=7 * DAY_S,
        description="Length of a rolling summary period (seconds), aligned to the clock (3600 = on the hour).",
    )
    rolling_enabled: bool = Field(True, description="Publish rolling (periodic) summaries besides session summaries.")
    lateness_s: float = Field(
        5.0,
        ge=0,
        le=3600,
        description="A rolling period is summarised this long after it ends, so windows still being scored count.",
    )


class DifferentialPrivacySettings(StrictSettings):
    """Optional differential-privacy noise on published means, with a daily budget."""

    enabled: bool = Field(False, description="Add calibrated noise to every published mean score.")
    mechanism: Literal["laplace", "gaussian"] = Field(
        "laplace", description="Noise mechanism: bounded-domain Laplace (pure DP) or analytic Gaussian."
    )
    epsilon_per_summary: float = Field(0.5, gt=0, le=10, description="Epsilon spent on each published mean.")
    delta_per_summary: float = Field(
        1e-6, ge=0, lt=1, description="Delta spent on each published mean (gaussian only; laplace spends 0)."
    )
    daily_epsilon: float = Field(
        4.0,
        gt=0,
        le=1000,
        description="Epsilon budget per UTC day; once spent, means are withheld until the next day.",
    )
    daily_delta: float = Field(1e-4, ge=0, lt=1, description="Delta budget per UTC day (gaussian only).")
    regions_epsilon_per_summary: float = Field(
        0.5, gt=0, le=10, description="Epsilon spent on the region shares of each summary (Laplace; see [explain])."
    )

    @model_validator(mode="after")
    def _budget_pays_for_a_summary(self) -> DifferentialPrivacySettings:
        if not self.enabled:
            return self
        if self.epsilon_per_summary > self.daily_epsilon:
            raise ValueError(
                f"epsilon_per_summary {self.epsilon_per_summary} exceeds daily_epsilon {self.daily_epsilon}, so no "
                "mean could ever be published: lower epsilon_per_summary or raise daily_epsilon"
            )
        if self.mechanism == "gaussian" and not 0 < self.delta_per_summary <= self.daily_delta:
            raise ValueError(
                f"mechanism 'gaussian' needs 0 < delta_per_summary <= daily_delta, got {self.delta_per_summary} and "
                f"{self.daily_delta}: set delta_per_summary to e.g. 1e-6 (or use mechanism 'laplace')"
            )
        return self


class PrivacySettings(StrictSettings):
    """What may leave the device, and when."""

    consent: Literal["required", "granted"] = Field(
        "required",
        description=(
            "'required': nothing is processed until consent arrives by control message; 'granted': consent was "
            "recorded at installation (applies only while no consent decision is stored on the device)."
        ),
    )
    k_min_windows: int = Field(
        5,
        ge=2,
        le=100_000,
        description="A summary is published only when it rests on at least this many scored windows (never one).",
    )
    time_resolution_s: int = Field(
        900, ge=60, le=86400, description="Published timestamps are coarsened to this many seconds (900 = 15 min)."
    )
    health_time_resolution_s: int = Field(
        60, ge=1, le=86400, description="Timestamps (`at`) of health and status messages are coarsened to this."
    )
    hold_until_period_end: bool = Field(
        True,
        description=(
            "Keep each summary in the outbox until the coarsened end of its period has passed, and refresh the "
            "health counters that move with a face present only once per time_resolution_s, so that when a "
            "message arrives tells no more than its coarsened timestamps. Off: summaries leave as soon as made."
        ),
    )
    dp: DifferentialPrivacySettings = Field(
        default_factory=DifferentialPrivacySettings, description="Differential privacy on published means."
    )


class TlsSettings(StrictSettings):
    """TLS towards the broker; the server certificate and host name are always verified."""

    enabled: bool = Field(False, description="Connect with TLS.")
    ca_file: Path | None = Field(
        None, description="CA bundle (PEM) that signed the broker's certificate; None = system CAs."
    )
    cert_file: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    key_file: Path | None = Field(None, description="Private key (PEM) of the client certificate.")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file go together: set both for mutual TLS, or neither")
        return self


class OutboxSettings(StrictSettings):
    """Bounds of the durable outbox (see docs/mqtt-contract.md, "Outbox bound policy")."""

    max_messages: int = Field(
        10_000, ge=1, le=MAX_MESSAGES, description="Soft bound: above it the oldest rolling summaries go first."
    )
    max_bytes: int = Field(16 * 2**20, ge=1024, le=MAX_BYTES, description="Soft bound on payload bytes, same rule.")
    hard_max_messages: int = Field(
        50_000, ge=1, le=MAX_MESSAGES, description="Hard bound: above it even the oldest session summaries are dropped."
    )
    hard_max_bytes: int = Field(
        64 * 2**20, ge=1024, le=MAX_BYTES, description="Hard bound on payload bytes, same rule."
    )
    max_inflight: int = Field(16, ge=1, le=1000, description="Summaries sent and not yet acknowledged at a time.")
    unrouted_retry_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description=(
            "A summary the broker acknowledged with 'No matching subscribers' (MQTT 5: no integrator subscribed) "
            "stays in the outbox and is sent again this many seconds later."
        ),
    )

    @model_validator(mode="after")
    def _hard_above_soft(self) -> OutboxSettings:
        if self.hard_max_messages < self.max_messages or self.hard_max_bytes < self.max_bytes:
            raise ValueError("outbox hard bounds must be at least the soft bounds (hard_max_* >= max_*)")
        return self


class MqttSettings(StrictSettings):
    """The broker connection and topics."""

    enabled: bool = Field(True, description="Connect to a broker; when false, summaries wait in the outbox.")
    host: str = Field("localhost", min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (1883 plain, 8883 TLS by convention).")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version.")
    topic_prefix: str = Field(
        "expresso",
        min_length=1,
        pattern=r"^[^#+\s]+$",
        description="First topic levels; topics are <prefix>/v2/<pseudonym>/<status|summary|health|control>.",
    )
    client_id: str | None = Field(
        None, description="MQTT client id; None = the device pseudonym (the topics' device segment, for ACL %c)."
    )
    username: str | None = Field(None, description="User name for broker authentication.")
    password: str | None = Field(None, description="Password (prefer password_file so it stays out of configs).")
    password_file: Path | None = Field(None, description="File whose first line is the password.")
    keepalive_s: int = Field(30, ge=1, le=65535, description="MQTT keep-alive; the Last Will fires after ~1.5x this.")
    reconnect_min_s: float = Field(
        1.0, gt=0, le=3600, description="First reconnect delay (doubles per attempt, jittered)."
    )
    reconnect_max_s: float = Field(60.0, gt=0, le=DAY_S, description="Cap of the reconnect delay.")
    health_interval_s: float = Field(60.0, gt=0, le=DAY_S, description="Seconds between health messages.")
    tls: TlsSettings = Field(default_factory=TlsSettings, description="TLS settings.")
    outbox: OutboxSettings = Field(default_factory=OutboxSettings, description="Durable outbox bounds.")

    @model_validator(mode="after")
    def _consistent(self) -> MqttSettings:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set mqtt.password or mqtt.password_file, not both")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("mqtt.reconnect_max_s must be at least mqtt.reconnect_min_s")
        return self
