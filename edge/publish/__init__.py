"""Scores out: payloads, the durable outbox and the MQTT link, behind the :class:`Reporter` facade."""

from edge.publish.reporter import Reporter
from edge.publish.settings import AggregationSettings, MqttSettings, PrivacySettings

__all__ = ["AggregationSettings", "MqttSettings", "PrivacySettings", "Reporter"]
