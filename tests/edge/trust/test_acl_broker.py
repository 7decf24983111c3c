"""The shipped ACL template on a real Mosquitto with a password file: each device is confined to its own topics."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from acl_client import AclClient
from mqtt_broker import Broker, mosquitto_path
from polling import wait_until
from summary_factory import IDENTITY, session_summary

from edge.privacy.pseudonym import device_pseudonym
from edge.publish import MqttSettings, PrivacySettings, Reporter
from edge.trust.acl import acl_text

TEMPLATE = Path(__file__).parents[3] / "systemd" / "mosquitto" / "acl.template"
PREFIX = "expresso"


@pytest.fixture(autouse=True)
def _mosquitto_is_installed() -> None:
    assert mosquitto_path() is not None, "mosquitto is not installed (apt-get install mosquitto, or make broker-dep)"


def test_the_shipped_template_is_what_the_code_generates() -> None:
    assert TEMPLATE.read_text() == acl_text(PREFIX)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Broker, dict[str, str], dict[str, Path]]]:
    states = {name: tmp_path / name for name in ("a", "b")}
    names = {name: device_pseudonym(state) for name, state in states.items()}
    users = {names["a"]: "pw-a", names["b"]: "pw-b", "integrator": "pw-i"}
    options = ("use_username_as_clientid true",)  # as systemd/mosquitto/mosquitto.conf.example says
    broker = Broker(tmp_path / "broker", users=users, acl=TEMPLATE.read_text(), options=options)
    broker.start()
    yield broker, names, states
    broker.stop()


def test_devices_reach_only_their_own_topics_and_the_integrator_reads_and_controls(
    fleet: tuple[Broker, dict[str, str], dict[str, Path]], tmp_path: Path
) -> None:
    broker, names, states = fleet
    a, b = names["a"], names["b"]
    root_a, root_b = f"{PREFIX}/v1/{a}", f"{PREFIX}/v1/{b}"
    integrator = AclClient(broker.port, "integrator", "pw-i")
    assert integrator.subscribe(f"{PREFIX}/v1/+/summary") and integrator.subscribe(f"{PREFIX}/v1/+/status")
    password = tmp_path / "a.password"
    password.write_text("pw-a\n")
    settings = MqttSettings(host=broker.host, port=broker.port, topic_prefix=PREFIX, username=a, password_file=password)
    device = Reporter(settings, PrivacySettings(consent="granted", hold_until_period_end=False), states["a"], IDENTITY)
    device.start()  # the default client id is the pseudonym too
    intruder = AclClient(broker.port, b, "pw-b", client_id=a)  # B's credentials, A's client id: no takeover
    try:
        for suffix in ("status", "summary", "health", "reply/#"):  # granted, but the ACL filters each delivery
            assert intruder.subscribe(f"{PREFIX}/v1/+/{suffix}")
        assert device.connected.wait(10) and integrator.wait_for(f"{root_a}/status")
        assert device.submit([session_summary([12.0, 14.0, 13.0, 15.0, 16.0, 11.0])]) == 1
        assert integrator.wait_for(f"{root_a}/summary")  # a device publishes its own summary; the integrator reads
        # a second device's credentials can neither impersonate A nor control it, nor read its control
        for topic in (f"{root_a}/status", f"{root_a}/summary", f"{root_a}/health", f"{root_a}/control"):
            assert not intruder.publish(topic, b'{"command": "erase"}'), topic
        assert intruder.publish(f"{root_b}/status") and intruder.subscribe(f"{root_a}/control")
        assert intruder.subscribe(f"{root_b}/control")
        # the integrator may control A, and may not forge A's summary
        assert not integrator.publish(f"{root_a}/summary", b"{}")
        assert integrator.publish(f"{root_a}/control", json.dumps({"command": "pause", "request_id": "i-1"}).encode())
        assert integrator.publish(f"{root_b}/control", b'{"command": "pause"}')
        assert intruder.wait_for(f"{root_b}/control")  # delivered after A's: had A's reached B, it would be here
        assert not [topic for topic, _ in intruder.messages if topic.startswith(root_a)]  # read nothing of A's
        assert wait_until(lambda: device.consent.paused, 10) and device.epoch == 0
        assert device.connected.is_set() and device.broker_problem == ""  # never kicked off by the intruder
    finally:
        intruder.close()
        integrator.close()
        device.stop(timeout=2)


def test_wrong_credentials_are_refused_at_connect(fleet: tuple[Broker, dict[str, str], dict[str, Path]]) -> None:
    broker, names, _ = fleet
    client = AclClient(broker.port, names["a"], "pw-b")
    try:
        assert client.connect_reason.is_failure and "authori" in str(client.connect_reason).lower()
    finally:
        client.close()


def test_the_acl_lines_identity_prints_for_one_device_work_in_mosquitto(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(f'[device]\nstate_dir = "{tmp_path / "state"}"\n[mqtt]\ntopic_prefix = "{PREFIX}"\n')
    shown = subprocess.run([sys.executable, "-m", "edge", "identity", "--config", str(config), "--json"],
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    device, root = report["pseudonym"], report["topic_root"]
    other = f"{PREFIX}/v1/{'0' * 20}"
    acl = "\n".join(["user integrator", f"topic write {PREFIX}/v1/+/control", *report["acl_device_lines"]]) + "\n"
    broker = Broker(tmp_path / "broker", users={device: "pw", "integrator": "pw-i"}, acl=acl)
    broker.start()
    client = AclClient(broker.port, device, "pw", client_id=report["client_id"])
    integrator = AclClient(broker.port, "integrator", "pw-i")
    try:
        assert not client.connect_reason.is_failure
        for suffix in ("status", "summary", "health", "reply/x"):
            assert client.publish(f"{root}/{suffix}"), suffix
            assert not client.publish(f"{other}/{suffix}"), suffix
        assert not client.publish(f"{root}/control")
        assert client.subscribe(f"{root}/control") and client.subscribe(f"{other}/control")
        assert integrator.publish(f"{other}/control") and integrator.publish(f"{root}/control")
        assert client.wait_for(f"{root}/control") and not client.wait_for(f"{other}/control", 0.5)
    finally:
        client.close()
        integrator.close()
        broker.stop()
