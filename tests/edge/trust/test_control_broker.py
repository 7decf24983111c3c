"""Control over a real Mosquitto: policy, signatures and replays, MQTT 5 replies, retained and empty messages,
junk floods, and consent given on the device."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from acl_client import AclClient
from mqtt_broker import Broker
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from polling import wait_until
from summary_factory import IDENTITY

from edge.control import RejectionThrottle
from edge.publish import MqttSettings, PrivacySettings, Reporter
from edge.schemas import schema_errors
from edge.trust.control_auth import sign_control
from edge.trust.keys import SecretKey, generate
from edge.trust.settings import TrustSettings


def _reporter(broker: Broker, prefix: str, state: Path, *, consent: str = "granted", **trust: Any) -> Reporter:
    mqtt = MqttSettings(host=broker.host, port=broker.port, topic_prefix=prefix, reconnect_min_s=1, reconnect_max_s=2)
    privacy = PrivacySettings(consent=consent)  # type: ignore[arg-type]
    return Reporter(mqtt, privacy, state, IDENTITY, trust=TrustSettings(**trust))


@pytest.fixture
def client(mqtt_broker: Broker, topic_prefix: str) -> Iterator[AclClient]:
    client = AclClient(mqtt_broker.port, "integrator", "")
    assert client.subscribe(f"{topic_prefix}/#")
    yield client
    client.close()


def _statuses(client: AclClient) -> list[dict[str, Any]]:
    return [json.loads(payload) for topic, payload in client.messages if topic.endswith("/status")]


def _reply(client: AclClient, request_id: str) -> dict[str, Any] | None:
    return next((s["control"] for s in _statuses(client) if (s["control"] or {}).get("request_id") == request_id), None)


def _started(reporter: Reporter, client: AclClient) -> str:
    reporter.start()
    assert reporter.connected.wait(10) and wait_until(lambda: bool(_statuses(client)), 10)
    return reporter.topics.control


def test_a_remote_grant_is_refused_by_default_and_the_mqtt5_reply_names_it(
    mqtt_broker: Broker, topic_prefix: str, client: AclClient, tmp_path: Path
) -> None:
    reporter = _reporter(mqtt_broker, topic_prefix, tmp_path / "state", consent="required")
    control = _started(reporter, client)
    try:
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = f"{topic_prefix}/v2/{reporter.pseudonym}/reply/tester"
        properties.CorrelationData = b"corr-42"
        grant = b'{"command": "consent", "granted": true, "request_id": "g-1"}'
        assert client.publish(control, grant, properties=properties)
        assert wait_until(lambda: any(m.topic == properties.ResponseTopic for m in client.received), 10)
        answer = next(m for m in client.received if m.topic == properties.ResponseTopic)
        assert answer.properties.CorrelationData == b"corr-42" and not answer.retain
        reply = json.loads(answer.payload)
        assert schema_errors(reply, "control-reply") == []
        assert reply["accepted"] is False and reply["command"] == "consent" and reply["request_id"] == "g-1"
        assert "trust.control.grant = 'refuse'" in reply["error"] and "python -m edge consent" in reply["error"]
        # the status follows the Response Topic's reply (replies go out first): wait for it too
        assert wait_until(lambda: _reply(client, "g-1") is not None, 10)
        assert _reply(client, "g-1") == {k: reply[k] for k in ("accepted", "command", "request_id", "error")}
        assert not reporter.processing_allowed and reporter.consent.granted is None
        assert reporter.control.metrics()["control_rejected_policy"] == 1
    finally:
        reporter.stop(timeout=2)


def test_a_response_topic_outside_the_devices_reply_subtree_gets_no_reply(
    mqtt_broker: Broker, topic_prefix: str, client: AclClient, tmp_path: Path
) -> None:
    reporter = _reporter(mqtt_broker, topic_prefix, tmp_path / "state")
    control = _started(reporter, client)
    try:
        root = f"{topic_prefix}/v2/{reporter.pseudonym}"
        # the device may write its own summary: a reply there would be a device-authenticated forged summary
        for index, topic in enumerate((f"{root}/summary", f"{topic_prefix}/v2/{'0' * 20}/status", f"{root}/replyx")):
            properties = Properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = topic
            assert client.publish(control, f'{{"command": "pause", "request_id": "t-{index}"}}'.encode(),
                                  properties=properties)  # fmt: skip
            assert wait_until(lambda: _reply(client, f"t-{index}") is not None, 10)  # noqa: B023
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = f"{root}/reply/ok"
        assert client.publish(control, b'{"command": "resume", "request_id": "t-ok"}', properties=properties)
        assert wait_until(lambda: any(m.topic == f"{root}/reply/ok" for m in client.received), 10)
        published = {m.topic for m in client.received}
        assert f"{root}/summary" not in published and f"{root}/replyx" not in published
        assert f"{topic_prefix}/v2/{'0' * 20}/status" not in published
    finally:
        reporter.stop(timeout=2)


def test_with_operator_keys_unsigned_is_refused_signed_applies_and_a_replay_is_refused(
    mqtt_broker: Broker, topic_prefix: str, client: AclClient, tmp_path: Path
) -> None:
    operator: SecretKey = generate()
    reporter = _reporter(mqtt_broker, topic_prefix, tmp_path / "state", operator_keys=[operator.public.encoded()])
    control = _started(reporter, client)
    try:
        assert client.publish(control, b'{"command": "pause", "request_id": "u-1"}')
        assert wait_until(lambda: _reply(client, "u-1") is not None, 10)
        assert "must be signed" in _reply(client, "u-1")["error"] and not reporter.consent.paused  # type: ignore[index]
        signed = sign_control({"command": "pause", "request_id": "s-1"}, private_key=operator,
                              key_id=operator.public.id_text, device=reporter.pseudonym, ttl_s=60)  # fmt: skip
        payload = json.dumps(signed).encode()
        assert client.publish(control, payload)
        assert wait_until(lambda: (_reply(client, "s-1") or {}).get("accepted") is True, 10)
        assert reporter.consent.paused
        assert client.publish(control, b'{"command": "resume", "request_id": "x"}')  # unsigned: refused
        assert client.publish(control, payload)  # the same signed bytes again
        assert wait_until(lambda: reporter.control.rejected["replay"] == 1, 10)
        assert reporter.consent.paused and reporter.control.rejected["unsigned"] == 2
        foreign = sign_control({"command": "erase", "request_id": "f-1"}, private_key=operator,
                               key_id=operator.public.id_text, device="0" * 20, ttl_s=60)  # fmt: skip
        assert client.publish(control, json.dumps(foreign).encode())
        assert wait_until(lambda: reporter.control.rejected["foreign_device"] == 1, 10)
        assert reporter.consent.granted is True  # the erase for another device did nothing here
    finally:
        reporter.stop(timeout=2)


def test_a_retained_control_message_is_refused_live_and_an_empty_one_ignored_quietly(
    mqtt_broker: Broker, topic_prefix: str, client: AclClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = _reporter(mqtt_broker, topic_prefix, tmp_path / "state")
    control = _started(reporter, client)
    try:
        assert client.publish(control, b'{"command": "erase", "request_id": "r-1"}', retain=True)  # while connected
        assert wait_until(lambda: _reply(client, "r-1") is not None, 10)
        reply = _reply(client, "r-1")
        assert reply is not None and reply["command"] == "erase" and "retained" in reply["error"]
        assert reporter.consent.granted is True  # not applied
        before = len(_statuses(client))
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            assert client.publish(control, b"", retain=True)  # clearing the retained message, as the reply advises
            assert client.publish(control, b'{"command": "pause", "request_id": "p-1"}')
            assert wait_until(lambda: _reply(client, "p-1") is not None, 10)
        assert len(_statuses(client)) == before + 1  # only the pause was answered
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        reporter.stop(timeout=2)


def test_a_flood_of_junk_costs_neither_a_status_nor_a_warning_each(
    mqtt_broker: Broker, topic_prefix: str, client: AclClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = _reporter(mqtt_broker, topic_prefix, tmp_path / "state")
    reporter.control.throttle = RejectionThrottle(burst=3, window_s=60.0)
    control = _started(reporter, client)
    try:
        before = len(_statuses(client))
        with caplog.at_level(logging.WARNING, logger="edge.publish.control_intake"):
            for index in range(40):
                client.publish(control, f"junk {index}".encode())
            assert wait_until(lambda: reporter.control.rejected["malformed"] == 40, 10)
        assert len(_statuses(client)) - before == 3
        warnings = [
            r for r in caplog.records if r.name == "edge.publish.control_intake" and r.levelno >= logging.WARNING
        ]
        assert len(warnings) == 3
        assert reporter.health({}) and wait_until(lambda: any(t.endswith("/health") for t, _ in client.messages))
        health = next(json.loads(p) for t, p in client.messages if t.endswith("/health"))
        assert health["metrics"]["control_suppressed"] == 37 and health["metrics"]["control_rejected_malformed"] == 40
    finally:
        reporter.stop(timeout=2)


def test_consent_granted_on_the_device_reaches_a_running_daemon(
    mqtt_broker: Broker, topic_prefix: str, client: AclClient, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    reporter = _reporter(mqtt_broker, topic_prefix, state, consent="required")
    _started(reporter, client)
    config = tmp_path / "edge.toml"
    config.write_text(f'[device]\nstate_dir = "{state}"\n')
    try:
        done = subprocess.run([sys.executable, "-m", "edge", "consent", "--config", str(config), "grant", "--json"],
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["consent"] == "granted"
        reporter.sync_local_consent()  # the daemon's loop does this every CONSENT_CHECK_S
        assert reporter.processing_allowed and reporter.consent.source == "local"
        assert wait_until(lambda: _statuses(client)[-1]["consent"] == "granted", 10)
        epoch = reporter.epoch
        subprocess.run([sys.executable, "-m", "edge", "consent", "--config", str(config), "revoke"], check=True,
                       capture_output=True, timeout=60)  # fmt: skip
        reporter.sync_local_consent()
        assert not reporter.processing_allowed and reporter.epoch == epoch + 1  # what was aggregated is forgotten
    finally:
        reporter.stop(timeout=2)
