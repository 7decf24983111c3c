"""The integrator client against a real Mosquitto and the device's own Reporter: summaries stored once each,
redeliveries and replayed retained statuses counted as duplicates, invalid messages kept aside, a persistent
session catching up after a restart, two workers on a shared subscription never storing a summary twice, and
control answered on the MQTT 5 Response Topic or, for MQTT 3.1.1, through the device's status."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as paho
import pytest
from mqtt_broker import Broker, Subscriber
from polling import wait_until
from summary_factory import IDENTITY, session_summary, summary_document

from edge.cli import main
from edge.client import Connection, ControlReplyTimeoutError, ControlSender, Integrator, open_store
from edge.control import ControlMessageError
from edge.publish import MqttSettings, PrivacySettings, Reporter
from edge.schemas import CONTRACT_VERSION
from edge.trust.keys import generate, write_key_pair
from edge.trust.settings import ControlPolicy, TrustSettings


def _reporter(
    broker: Broker, prefix: str, state: Path, *, granted: bool = True, trust: TrustSettings | None = None
) -> Reporter:
    settings = MqttSettings(host=broker.host, port=broker.port, topic_prefix=prefix, reconnect_min_s=1)
    privacy = PrivacySettings(consent="granted" if granted else "required", k_min_windows=5)
    return Reporter(settings, privacy, state, IDENTITY, trust=trust or TrustSettings())


@pytest.fixture
def publisher(mqtt_broker: Broker, topic_prefix: str) -> Iterator[Subscriber]:
    """A plain client that publishes what a misbehaving device (or a redelivery) would."""
    client = Subscriber(mqtt_broker.host, mqtt_broker.port, f"{topic_prefix}/nothing")
    yield client
    client.close()


def test_summaries_are_stored_once_bad_ones_kept_aside_and_a_restart_catches_up(
    mqtt_broker: Broker, topic_prefix: str, tmp_path: Path, publisher: Subscriber
) -> None:
    connection = Connection(host=mqtt_broker.host, port=mqtt_broker.port)
    store = f"sqlite://{tmp_path / 'in.sqlite'}"
    worker = Integrator(open_store(store), connection, prefix=topic_prefix, client_id=f"{topic_prefix}-w")
    worker.start()
    reporter = _reporter(mqtt_broker, topic_prefix, tmp_path / "state")
    reporter.start()
    assert reporter.submit([session_summary([11.0] * 6), session_summary([15.0] * 7)]) == 2
    assert wait_until(lambda: worker.store.counts().get("summary") == 2, 15)
    topic = reporter.topics.summary
    again = worker.store.counts()
    publisher.publish(topic, json.dumps(summary_document(reporter.pseudonym)).encode())
    first = summary_document(reporter.pseudonym)
    publisher.publish(topic, json.dumps(first).encode())
    publisher.publish(topic, json.dumps(first).encode())  # what a QoS 1 redelivery looks like
    publisher.publish(topic, b'{"schema": "expresso-edge/summary"}')
    assert wait_until(lambda: worker.counts["invalid"] == 1 and worker.counts["duplicates"] >= 1)
    assert worker.store.counts()["summary"] == again["summary"] + 2
    worker.stop()

    assert reporter.submit([session_summary([9.0] * 8)]) == 1  # sent while the worker is away
    assert wait_until(lambda: reporter.outbox.stats()["messages"] == 0)
    back = Integrator(open_store(store), connection, prefix=topic_prefix, client_id=f"{topic_prefix}-w")
    back.start()
    assert wait_until(lambda: back.store.counts().get("summary") == 5)
    assert wait_until(lambda: back.counts["duplicates"] >= 1)  # the retained status, stored before the restart
    reporter.stop()
    assert wait_until(lambda: back.counts["stored"] >= 2)  # the offline status too
    counts = back.store.counts()
    back.stop()
    assert counts["summary"] == 5 and counts["rejected"] == 1


def test_two_workers_on_a_shared_subscription_store_each_summary_once(
    mqtt_broker: Broker, topic_prefix: str, postgres_db: str, publisher: Subscriber
) -> None:
    connection = Connection(host=mqtt_broker.host, port=mqtt_broker.port)
    workers = [
        Integrator(
            open_store(postgres_db),
            connection,
            prefix=topic_prefix,
            kinds=["summary"],
            group="ingest",
            client_id=f"{topic_prefix}-{n}",
        )
        for n in range(2)
    ]
    for worker in workers:
        worker.start()
    devices = [f"{n:020x}" for n in range(4)]
    documents = [summary_document(device) for device in devices for _ in range(5)]
    for document in documents * 2:  # every summary twice, as if redelivered to the other worker
        publisher.publish(f"{topic_prefix}/v2/{document['device']}/summary", json.dumps(document).encode())
    assert wait_until(lambda: sum(w.counts["received"] for w in workers) == 40)
    stored = [w.counts["stored"] for w in workers]
    assert sum(stored) == 20 and sum(w.counts["duplicates"] for w in workers) == 20
    assert min(stored) > 0  # the broker shared the load
    assert workers[0].store.counts() == {"summary": 20, "rejected": 0}
    for worker in workers:
        worker.stop()


def _signed_badly(message: dict[str, Any]) -> dict[str, Any]:
    return {**message, "auth": {"key_id": "k1", "signature": "AAAA"}}


def test_control_is_answered_through_the_device_status(mqtt_broker: Broker, topic_prefix: str, tmp_path: Path) -> None:
    remote_grant = TrustSettings(control=ControlPolicy(grant="allow"))  # the default refuses a remote grant
    reporter = _reporter(mqtt_broker, topic_prefix, tmp_path / "state", granted=False, trust=remote_grant)
    reporter.start()
    assert reporter.connected.wait(10)
    connection = Connection(host=mqtt_broker.host, port=mqtt_broker.port, protocol="3.1.1")  # no Response Topic
    sender = ControlSender(connection, prefix=topic_prefix)
    reply = sender.send(reporter.pseudonym, {"command": "consent", "granted": True}, timeout=10)
    assert reply.accepted and reply.command == "consent" and reply.via == "status"
    assert reporter.processing_allowed
    signed = ControlSender(connection, prefix=topic_prefix, signer=_signed_badly)
    refused = signed.send(reporter.pseudonym, {"command": "pause"}, timeout=10)
    assert not refused.accepted and "auth" in str(refused.error)  # the signer's output is what was sent
    assert not reporter.consent.paused
    with pytest.raises(ControlMessageError, match="request_id"):
        sender.prepare({"command": "pause", "request_id": "no spaces allowed"})
    with pytest.raises(ControlReplyTimeoutError, match="no reply"):
        sender.send("f" * 20, {"command": "pause"}, timeout=0.5)
    reporter.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_reused_request_id_gets_the_new_answer_not_the_retained_status_of_the_old_one(
    mqtt_broker: Broker, topic_prefix: str, tmp_path: Path, protocol: Literal["5", "3.1.1"]
) -> None:
    reporter = _reporter(mqtt_broker, topic_prefix, tmp_path / "state", granted=False)
    reporter.start()
    try:
        assert reporter.connected.wait(10)
        connection = Connection(host=mqtt_broker.host, port=mqtt_broker.port, protocol=protocol)
        sender = ControlSender(connection, prefix=topic_prefix)
        first = sender.send(reporter.pseudonym, {"command": "pause", "request_id": "same-1"})
        assert first.accepted and first.via == {"5": "response", "3.1.1": "status"}[protocol]
        # the retained status still says "same-1 accepted"; the device refuses this one (a remote grant)
        again = sender.send(reporter.pseudonym, {"command": "consent", "granted": True, "request_id": "same-1"})
        assert not again.accepted and again.command == "consent" and "grant" in str(again.error)
    finally:
        reporter.stop()


def test_a_message_the_store_refused_is_not_acknowledged_and_comes_back_after_a_restart(
    mqtt_broker: Broker, topic_prefix: str, tmp_path: Path, publisher: Subscriber
) -> None:
    connection = Connection(host=mqtt_broker.host, port=mqtt_broker.port)
    path = str(tmp_path / "in.sqlite")
    worker = Integrator(open_store(path), connection, prefix=topic_prefix, kinds=["summary"], client_id="w-fail")
    worker.start()
    worker.store.close()  # the database goes away under the running worker
    document = summary_document("cd" * 10)
    publisher.publish(f"{topic_prefix}/v2/{'cd' * 10}/summary", json.dumps(document).encode())
    assert wait_until(lambda: worker.failed is not None)
    assert "refused a write" in str(worker.failed) and worker.failed.exit_code == 9
    worker.stop(close_store=False)
    back = Integrator(open_store(path), connection, prefix=topic_prefix, kinds=["summary"], client_id="w-fail")
    back.start()
    assert wait_until(lambda: back.store.counts().get("summary") == 1)  # the broker delivered it again
    back.stop()


def test_an_mqtt5_reply_on_the_response_topic_is_matched_by_its_correlation_data(
    mqtt_broker: Broker, topic_prefix: str
) -> None:
    """What an issue-10 device does: answer on the request's Response Topic, echoing its Correlation Data."""
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    seen: list[dict[str, Any]] = []

    def answer(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        request = json.loads(message.payload)
        seen.append(request)
        properties = Properties(PacketTypes.PUBLISH)
        properties.CorrelationData = b"someone-else"  # a reply to another request: ignored
        reply = {"schema": "expresso-edge/control-reply", "version": CONTRACT_VERSION, "device": device,
                 "accepted": False, "command": request["command"], "request_id": "someone-else",
                 "error": "not yours"}  # fmt: skip
        client.publish(message.properties.ResponseTopic, json.dumps(reply), qos=1, properties=properties)
        properties = Properties(PacketTypes.PUBLISH)
        properties.CorrelationData = message.properties.CorrelationData
        for wrong in (
            {"device": "0" * 20},
            {"version": CONTRACT_VERSION + 1},
        ):  # another device's, or not the schema's: ignored
            invalid = {**reply, "request_id": request["request_id"], **wrong}
            client.publish(message.properties.ResponseTopic, json.dumps(invalid), qos=1, properties=properties)
        reply = {**reply, "accepted": True, "request_id": request["request_id"], "error": None}
        client.publish(message.properties.ResponseTopic, json.dumps(reply), qos=1, properties=properties)

    device = "ef" * 10
    responder = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{topic_prefix}-dev", protocol=paho.MQTTv5)
    responder.on_message = answer
    subscribed = threading.Event()
    responder.on_subscribe = lambda *_: subscribed.set()
    responder.connect(mqtt_broker.host, mqtt_broker.port)
    responder.loop_start()
    responder.subscribe(f"{topic_prefix}/v2/{device}/control", qos=1)
    assert subscribed.wait(10)
    try:
        connection = Connection(host=mqtt_broker.host, port=mqtt_broker.port)
        reply = ControlSender(connection, prefix=topic_prefix).send(device, {"command": "resume"}, timeout=10)
    finally:
        responder.disconnect()
        responder.loop_stop()
    assert reply.via == "response" and reply.accepted and reply.request_id == seen[0]["request_id"]


def test_the_control_command_signs_for_a_device_that_requires_signatures(
    mqtt_broker: Broker, topic_prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    operator = generate()
    secret, _ = write_key_pair(operator, tmp_path / "keys" / "operator", role="operator")
    trust = TrustSettings(operator_keys=[operator.public.encoded()])
    reporter = _reporter(mqtt_broker, topic_prefix, tmp_path / "state", trust=trust)
    reporter.start()
    try:
        assert reporter.connected.wait(10)
        argv = ["control", "--port", str(mqtt_broker.port), "--prefix", topic_prefix, "--device", reporter.pseudonym]
        assert main([*argv, "pause", "--json"]) == 1  # unsigned: refused by a device that trusts operator keys
        refused = json.loads(capsys.readouterr().out)
        assert not refused["accepted"] and "not signed" in refused["error"] and not reporter.consent.paused
        assert main([*argv, "pause", "--sign-key", str(secret), "--json"]) == 0
        accepted = json.loads(capsys.readouterr().out)
        assert accepted["accepted"] and accepted["command"] == "pause" and reporter.consent.paused
    finally:
        reporter.stop()


def test_a_request_id_the_schema_refuses_is_a_usage_error_before_any_connection(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["control", "--port", "1", "--device", "ab" * 10, "pause", "--request-id", "no spaces"]
    assert main(argv) == 2  # port 1 listens to nothing: reaching it would be exit 8
    assert "request_id" in capsys.readouterr().err
