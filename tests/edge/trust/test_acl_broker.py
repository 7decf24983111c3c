"""The shipped ACL template on a real Mosquitto with a password file: each device is confined to its own topics."""

from __future__ import annotations

import getpass
import json
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from acl_client import AclClient
from mqtt_broker import Broker, free_port, make_tls_files, mosquitto_path
from paho.mqtt.enums import CallbackAPIVersion
from polling import wait_until
from summary_factory import IDENTITY, session_summary

from edge.privacy.pseudonym import device_pseudonym
from edge.publish import MqttSettings, PrivacySettings, Reporter
from edge.trust.acl import acl_text

TEMPLATE = Path(__file__).parents[3] / "systemd" / "mosquitto" / "acl.template"
CONF_EXAMPLE = TEMPLATE.with_name("mosquitto.conf.example")
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
    root_a, root_b = f"{PREFIX}/v2/{a}", f"{PREFIX}/v2/{b}"
    integrator = AclClient(broker.port, "integrator", "pw-i")
    assert integrator.subscribe(f"{PREFIX}/v2/+/summary") and integrator.subscribe(f"{PREFIX}/v2/+/status")
    password = tmp_path / "a.password"
    password.write_text("pw-a\n")
    settings = MqttSettings(host=broker.host, port=broker.port, topic_prefix=PREFIX, username=a, password_file=password)
    device = Reporter(settings, PrivacySettings(consent="granted", hold_until_period_end=False), states["a"], IDENTITY)
    device.start()  # the default client id is the pseudonym too
    intruder = AclClient(broker.port, b, "pw-b", client_id=a)  # B's credentials, A's client id: no takeover
    try:
        for suffix in ("status", "summary", "health", "reply/#"):  # granted, but the ACL filters each delivery
            assert intruder.subscribe(f"{PREFIX}/v2/+/{suffix}")
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
    other = f"{PREFIX}/v2/{'0' * 20}"
    acl = "\n".join(["user integrator", f"topic write {PREFIX}/v2/+/control", *report["acl_device_lines"]]) + "\n"
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


def test_the_example_mosquitto_conf_starts_mosquitto_and_lets_a_device_in_over_tls(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "certs")
    passwd, port, device = tmp_path / "passwd", free_port(), device_pseudonym(tmp_path / "state")
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), device, "pw"], check=True, capture_output=True)
    paths = {"/etc/mosquitto/passwd": passwd, "/etc/mosquitto/acl": TEMPLATE, "listener 8883": f"listener {port}",
             "/etc/mosquitto/certs/ca.pem": tls.ca, "/etc/mosquitto/certs/broker.pem": tls.server_cert,
             "/etc/mosquitto/certs/broker.key": tls.server_key}  # fmt: skip
    text = CONF_EXAMPLE.read_text()
    for old, new in paths.items():
        assert old in text, old
        text = text.replace(old, str(new))
    (tmp_path / "mosquitto.conf").write_text(f"{text}user {getpass.getuser()}\n")  # as root it would switch user
    broker = subprocess.Popen([str(mosquitto_path()), "-c", str(tmp_path / "mosquitto.conf")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    connected, reasons = threading.Event(), []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=device, protocol=paho.MQTTv5)
    client.username_pw_set(device, "pw")
    client.tls_set(ca_certs=str(tls.ca), cert_reqs=ssl.CERT_REQUIRED)

    def on_connect(client: paho.Client, userdata: object, flags: object, reason: Any, properties: object) -> None:
        reasons.append(reason)
        connected.set()

    client.on_connect = on_connect
    try:
        assert wait_until(lambda: broker.poll() is not None or _listening(port), 10)
        assert broker.poll() is None, broker.communicate()[0]  # Mosquitto read the example and is running
        client.connect("localhost", port)
        client.loop_start()
        assert connected.wait(10) and not reasons[0].is_failure, reasons
    finally:
        client.loop_stop()
        broker.terminate()
        broker.communicate(timeout=10)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
