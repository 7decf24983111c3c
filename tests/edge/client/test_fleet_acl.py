"""The shipped ACL (systemd/mosquitto/acl.template, which docs/fleet.md prescribes) with this client in a real
Mosquitto: a device (user = its pseudonym) publishes its own summaries and reads its own control, and nothing of
another device's; the integrator client reads and controls all."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from mqtt_broker import Broker
from paho.mqtt.enums import CallbackAPIVersion
from polling import wait_until
from summary_factory import IDENTITY, session_summary

from edge.client import Connection, ControlSender, Integrator, open_store
from edge.publish import MqttSettings, PrivacySettings, Reporter

ROOT = Path(__file__).resolve().parents[3]


def _shipped_acl() -> str:
    return (ROOT / "systemd" / "mosquitto" / "acl.template").read_text()


def _publish_as(broker: Broker, user: str, password: str, topic: str) -> Any:
    """Publish once with MQTT 5 as ``user``; the PUBACK's reason code."""
    acked = threading.Event()
    reasons: list[Any] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{user}", protocol=paho.MQTTv5)
    client.username_pw_set(user, password)
    client.on_publish = lambda c, u, mid, reason, props: (reasons.append(reason), acked.set())
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, b"{}", qos=1)
    assert acked.wait(10)
    client.disconnect()
    client.loop_stop()
    return reasons[0]


def test_the_shipped_acl_confines_devices_and_lets_the_integrator_client_work(tmp_path: Path) -> None:
    settings = MqttSettings(topic_prefix="expresso", reconnect_min_s=1)
    probe = Reporter(MqttSettings(enabled=False), PrivacySettings(), tmp_path / "state", IDENTITY)
    device = probe.pseudonym
    probe.stop()
    other = "f" * 20
    broker = Broker(
        tmp_path / "broker",
        users={device: "dev-pw", other: "other-pw", "integrator": "integrator-pw"},
        acl=_shipped_acl(),
    )
    broker.start()
    try:
        connection = Connection(host=broker.host, port=broker.port, username="integrator", password="integrator-pw")
        worker = Integrator(open_store(str(tmp_path / "in.jsonl")), connection, prefix="expresso")
        worker.start()
        device_settings = settings.model_copy(
            update={"host": broker.host, "port": broker.port, "username": device, "password": "dev-pw"}
        )
        reporter = Reporter(device_settings, PrivacySettings(consent="granted"), tmp_path / "state", IDENTITY)
        reporter.start()
        assert reporter.connected.wait(10)
        reply = ControlSender(connection, prefix="expresso").send(device, {"command": "resume"})
        assert reply.accepted and reply.via == "response"  # wrote the control topic, read the reply/ tree
        assert reporter.submit([session_summary([13.0] * 6)]) == 1
        assert wait_until(lambda: worker.store.counts().get("summary") == 1)
        assert _publish_as(broker, other, "other-pw", f"expresso/v2/{device}/summary").is_failure  # not its topic
        assert not _publish_as(broker, other, "other-pw", f"expresso/v2/{other}/summary").is_failure
        assert not _publish_as(broker, device, "dev-pw", f"expresso/v2/{device}/reply/x").is_failure
        assert _publish_as(broker, device, "dev-pw", f"expresso/v2/{device}/control").is_failure  # read only
        reporter.stop()
        worker.stop()
    finally:
        broker.stop()
