"""The reporter against a real Mosquitto on loopback: delivery, schemas, outages, consent, control, erase."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from mqtt_broker import Broker, Received, Subscriber
from polling import wait_until
from small_disk import fill, small_disk
from summary_factory import IDENTITY, T0, session_summary

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.control import ControlCommand
from edge.privacy.consent import ConsentStore
from edge.publish import MqttSettings, PrivacySettings, Reporter
from edge.publish.outbox import OUTBOX_NAME, Outbox
from edge.publish.payloads import coarse_time
from edge.publish.reporter import MAX_UNSTORED
from edge.publish.settings import DifferentialPrivacySettings, OutboxSettings
from edge.schemas import schema_errors
from edge.trust.settings import ControlPolicy, TrustSettings

SCORES = [12.37, 17.91, 21.52, 8.06, 15.44, 19.73]


Consent = Literal["required", "granted"]


def make_reporter(
    broker: Broker,
    prefix: str,
    state: Path,
    *,
    consent: Consent = "granted",
    trust: TrustSettings | None = None,
    **mqtt: Any,
) -> Reporter:
    settings = MqttSettings(
        host=broker.host, port=broker.port, topic_prefix=prefix, keepalive_s=5, reconnect_min_s=1, reconnect_max_s=2,
        **mqtt,
    )  # fmt: skip
    return Reporter(settings, PrivacySettings(consent=consent, k_min_windows=5), state, IDENTITY, trust=trust)


@pytest.fixture
def subscriber(mqtt_broker: Broker, topic_prefix: str) -> Iterator[Subscriber]:
    sub = Subscriber(mqtt_broker.host, mqtt_broker.port, f"{topic_prefix}/#")
    yield sub
    sub.close()


KeptSession = tuple[Broker, Subscriber, Reporter]


@pytest.fixture
def kept_session(topic_prefix: str, tmp_path: Path) -> Iterator[KeptSession]:
    """A broker with persistence, an integrator's persistent session on the summaries (both survive a restart of
    the broker) and a started reporter."""
    broker = Broker(tmp_path / "broker", persistence=True)
    broker.start()
    sub = Subscriber(broker.host, broker.port, f"{topic_prefix}/v2/+/summary", session=True)
    reporter = make_reporter(broker, topic_prefix, tmp_path / "state")
    reporter.start()
    yield broker, sub, reporter
    reporter.stop(timeout=2)
    sub.close()
    broker.stop()


def _ids(messages: list[Received]) -> list[str]:
    return [m.json()["message_id"] for m in messages]


def _last_status(sub: Subscriber) -> dict[str, Any]:
    return dict(sub.on("status")[-1].json())


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_summaries_reach_a_subscriber_and_every_payload_validates(
    mqtt_broker: Broker, topic_prefix: str, subscriber: Subscriber, tmp_path: Path, protocol: str
) -> None:
    reporter = make_reporter(mqtt_broker, topic_prefix, tmp_path / "state", protocol=protocol)
    reporter.start()
    assert reporter.connected.wait(10)
    assert reporter.submit([session_summary(SCORES), session_summary([10.0] * 4)]) == 1  # 4 < k: withheld
    reporter.set_status("running")
    assert subscriber.wait_for(lambda _: len(subscriber.on("summary")) == 1)
    metrics = {"frames_per_s": 29.7, "frames_dropped": 3, "Bad Name": 1.0, "latency_ms_p95": float("nan")}
    assert reporter.health(metrics, backend="onnxruntime-cpu")
    assert subscriber.wait_for(lambda _: len(subscriber.on("health")) == 1)
    assert reporter.stop(timeout=5)
    assert subscriber.wait_for(lambda _: _last_status(subscriber)["state"] == "offline")
    for message in subscriber.messages:
        kind = message.topic.rsplit("/", 1)[1]
        doc = message.json()
        assert schema_errors(doc, kind) == [], (kind, doc)
        assert doc["disclaimer"] == NOT_A_DIAGNOSTIC_DEVICE and doc["model"] == IDENTITY
        assert message.topic == f"{topic_prefix}/v2/{reporter.pseudonym}/{kind}"
    summary = subscriber.on("summary")[0]
    for score in SCORES:
        assert str(score) not in summary.payload.decode()
    doc = summary.json()
    assert doc["windows"]["scored"] == 6 and doc["score"]["median"] is not None
    assert doc["period"]["start"].endswith(("00:00Z", "15:00Z", "30:00Z", "45:00Z"))
    health = subscriber.on("health")[0].json()
    assert health["summaries_withheld"] == 1 and health["backend"] == "onnxruntime-cpu"
    assert health["metrics"] == {  # bad names and NaN left out; the reporter adds its storage counters
        "frames_per_s": 29.7,
        "frames_dropped": 3.0,
        "summaries_unstored": 0.0,
        "summaries_lost": 0.0,
        "control_suppressed": 0.0,  # junk control messages neither answered nor logged (throttled)
    }
    statuses = [m.json() for m in subscriber.on("status")]
    assert statuses[0]["state"] == "online" and statuses[-1]["activity"] == "stopping"
    assert any(s["activity"] == "running" and s["consent"] == "granted" for s in statuses)


def test_the_reason_the_broker_is_out_of_reach_is_known_until_it_connects(
    mqtt_broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    mqtt_broker.stop()
    reporter = make_reporter(mqtt_broker, topic_prefix, tmp_path / "state")
    reporter.start()
    try:
        assert wait_until(lambda: reporter.broker_problem.startswith("broker unreachable"), 10)
        mqtt_broker.start()
        assert reporter.connected.wait(15) and reporter.broker_problem == ""
        mqtt_broker.stop()
        assert wait_until(lambda: reporter.broker_problem.startswith("connection lost"), 10)
    finally:
        reporter.stop(timeout=0)


def test_broker_outage_loses_nothing_and_duplicates_share_an_id(
    kept_session: tuple[Broker, Subscriber, Reporter],
) -> None:
    broker, sub, reporter = kept_session
    assert reporter.submit([session_summary(SCORES) for _ in range(3)]) == 3
    assert reporter.wait_drained(10)
    assert reporter.submit([session_summary(SCORES) for _ in range(5)]) == 5
    broker.stop()  # while those five are in flight
    assert reporter.submit([session_summary(SCORES) for _ in range(4)]) == 4  # broker down: queued on disk
    assert reporter.outbox.stats()["messages"] >= 4
    broker.start()
    assert sub.wait_for(lambda msgs: len(set(_ids(msgs))) == 12, timeout=20)
    assert reporter.wait_drained(10)
    assert len(set(_ids(sub.messages))) == 12  # every summary arrived; a redelivery carries the same message_id


def test_without_consent_nothing_is_published_until_a_control_message_grants_it(
    mqtt_broker: Broker, topic_prefix: str, subscriber: Subscriber, tmp_path: Path
) -> None:
    remote_grant = TrustSettings(control=ControlPolicy(grant="allow"))  # the default refuses a remote grant
    reporter = make_reporter(mqtt_broker, topic_prefix, tmp_path / "state", consent="required", trust=remote_grant)
    reporter.start()
    try:
        assert subscriber.wait_for(lambda _: bool(subscriber.on("status")))
        assert _last_status(subscriber)["consent"] == "unknown" and not reporter.processing_allowed
        assert reporter.submit([session_summary(SCORES)]) == 0
        assert reporter.outbox.stats()["messages"] == 0
        control = f"{topic_prefix}/v2/{reporter.pseudonym}/control"
        subscriber.publish(control, json.dumps({"command": "consent", "granted": True, "request_id": "c-1"}).encode())
        assert subscriber.wait_for(lambda _: (_last_status(subscriber)["control"] or {}).get("request_id") == "c-1")
        assert reporter.processing_allowed and _last_status(subscriber)["consent"] == "granted"
        assert reporter.consent.source == "control" and reporter.epoch == 0  # a grant forgets nothing
        assert reporter.submit([session_summary(SCORES)]) == 1
        assert subscriber.wait_for(lambda _: len(subscriber.on("summary")) == 1)
    finally:
        reporter.stop(timeout=2)


@pytest.mark.parametrize(
    ("payload", "retain", "error"),
    [
        (b"not json", False, "not UTF-8 JSON"),
        (b'{"command": "reboot", "request_id": "r-1"}', False, "'reboot' is not one of"),
        (b'{"command": "consent", "request_id": "r-2"}', False, "'granted' is a required property"),
        (b'{"command": "pause", "granted": true}', False, "'granted' is allowed only with the consent command"),
        (b'{"command": "pause", "extra": 1}', False, "Additional properties"),
        (b"[1, 2]", False, "is not of type 'object'"),
        (b'{"command": "erase", "request_id": "r-3"}', True, "retained control message ignored"),
    ],
)
def test_bad_control_messages_are_rejected_on_status_and_the_device_carries_on(
    mqtt_broker: Broker,
    topic_prefix: str,
    subscriber: Subscriber,
    tmp_path: Path,
    payload: bytes,
    retain: bool,
    error: str,
) -> None:
    reporter = make_reporter(mqtt_broker, topic_prefix, tmp_path / "state")
    control = f"{topic_prefix}/v2/{reporter.pseudonym}/control"
    if retain:  # a retained message is replayed (retain flag set) when the device subscribes
        subscriber.publish(control, payload, retain=True)
    reporter.start()
    try:
        assert subscriber.wait_for(lambda _: bool(subscriber.on("status")))  # online: control is subscribed
        if not retain:
            subscriber.publish(control, payload)
        assert subscriber.wait_for(lambda _: _last_status(subscriber)["control"] is not None)
        reply = _last_status(subscriber)["control"]
        assert reply["accepted"] is False and error in reply["error"]
        assert reporter.processing_allowed  # nothing was applied (the retained erase included)
        subscriber.publish(control, b'{"command": "pause", "request_id": "p-1"}')
        assert subscriber.wait_for(lambda _: _last_status(subscriber)["control"]["request_id"] == "p-1")
        assert _last_status(subscriber)["paused"] is True and not reporter.processing_allowed
        if retain:
            subscriber.publish(control, b"", retain=True)  # clear the retained message
    finally:
        reporter.stop(timeout=2)


def test_erase_wipes_the_outbox_and_state_and_revokes_consent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    settings = MqttSettings(enabled=False)
    reporter = Reporter(settings, PrivacySettings(consent="granted"), state, IDENTITY)
    pseudonym = reporter.pseudonym
    assert reporter.submit([session_summary(SCORES, start=T0 + 100 * i) for i in range(3)]) == 3
    (state / "leftover.tmp").write_text("x")
    caplog.set_level("WARNING", "edge.privacy.consent")
    reporter.apply_control(ControlCommand("erase"))
    # it logged "0 entries removed" although it had removed the outbox and its queued summaries
    (line,) = [r.getMessage() for r in caplog.records if "erased local state" in r.getMessage()]
    assert OUTBOX_NAME in line and "leftover.tmp" in line and "3 queued summaries" in line, line
    assert reporter.epoch == 1
    assert reporter.outbox.stats()["messages"] == 0 and not (state / "leftover.tmp").exists()
    assert reporter.consent.label == "revoked" and not reporter.processing_allowed
    assert reporter.submit([session_summary(SCORES)]) == 0
    reporter.stop(timeout=0)
    restarted = Reporter(settings, PrivacySettings(consent="granted"), state, IDENTITY)
    assert restarted.outbox.stats()["messages"] == 0 and (state / OUTBOX_NAME).exists()
    assert not restarted.processing_allowed  # configured consent does not override an erase
    assert restarted.pseudonym == pseudonym
    restarted.stop(timeout=0)


def test_an_erase_that_cannot_delete_fails_closed_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    reporter = Reporter(MqttSettings(enabled=False), PrivacySettings(consent="granted"), state, IDENTITY)
    assert reporter.submit([session_summary(SCORES)]) == 1
    (state / "stuck").mkdir()

    def refuse(path: object, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("edge.privacy.consent.shutil.rmtree", refuse)  # the disk refuses half-way through
    reporter.apply_control(ControlCommand("erase", request_id="e-9"))
    reply = reporter._reply
    assert reply is not None and not reply.accepted and reply.request_id == "e-9"
    assert "failed" in (reply.error or "") and "Permission denied" in (reply.error or "")
    assert not reporter.processing_allowed and reporter.consent.label == "revoked"
    assert ConsentStore(state).load().label == "revoked"  # recorded before anything was deleted
    assert reporter.submit([session_summary(SCORES)]) == 0  # no crash: the reporter carries on, revoked
    assert reporter.outbox.stats()["messages"] == 0  # the outbox was erased before the stuck folder
    reporter.stop(timeout=0)


def test_an_erase_drops_what_paho_holds_for_a_resend(kept_session: KeptSession) -> None:
    broker, sub, reporter = kept_session
    try:
        assert reporter.connected.wait(10)
        client = reporter._link._client  # type: ignore[union-attr]
        process = broker._process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)  # the broker acknowledges nothing: the summary stays in paho's hands
        assert reporter.submit([session_summary(SCORES)]) == 1
        assert wait_until(lambda: len(client._out_messages) >= 1, 10)
        reporter.apply_control(ControlCommand("erase"))
        held = [m.topic for m in client._out_messages.values()]
        assert not [topic for topic in held if topic.endswith("/summary")]  # no summary a reconnect would resend
        os.kill(process.pid, signal.SIGKILL)  # the bytes it never read die with it
        process.wait(10)
        broker.start()
        reporter.apply_control(ControlCommand("consent", granted=True))
        assert reporter.connected.wait(15)
        assert reporter.submit([session_summary([30.0] * 6)]) == 1  # a summary from after the erase gets through
        assert sub.wait_for(lambda msgs: len(msgs) >= 1, 20)
        assert [m.json()["score"]["median"] for m in sub.messages] == [30.0]  # and only that one
    finally:
        if broker._process is process:  # still the stopped one: it cannot take a SIGTERM
            os.kill(process.pid, signal.SIGKILL)


def test_after_an_erase_with_summaries_in_flight_later_ones_still_leave_on_the_same_connection(
    mqtt_broker: Broker, topic_prefix: str, subscriber: Subscriber, tmp_path: Path
) -> None:
    reporter = make_reporter(mqtt_broker, topic_prefix, tmp_path / "state", outbox={"max_inflight": 1})
    reporter.start()
    process = mqtt_broker._process
    assert process is not None and reporter.connected.wait(10)
    client = reporter._link._client  # type: ignore[union-attr]
    connection = client.socket()
    try:
        os.kill(process.pid, signal.SIGSTOP)
        assert reporter.submit([session_summary(SCORES)]) == 1
        assert wait_until(lambda: len(client._out_messages) >= 1, 10)  # sent, never acknowledged
        reporter.apply_control(ControlCommand("erase"))
    finally:
        os.kill(process.pid, signal.SIGCONT)
    reporter.apply_control(ControlCommand("consent", granted=True))
    assert reporter.submit([session_summary([30.0] * 6)]) == 1
    assert subscriber.wait_for(lambda _: any(m.json()["score"]["median"] == 30.0 for m in subscriber.on("summary")))
    assert reporter.wait_drained(10) and client.socket() is connection  # no reconnect was needed to get there
    reporter.stop(timeout=2)


def test_a_summary_is_deleted_only_on_its_own_puback_even_when_its_mid_was_used_before(
    mqtt_broker: Broker, topic_prefix: str, tmp_path: Path, subscriber: Subscriber
) -> None:
    reporter = make_reporter(mqtt_broker, topic_prefix, tmp_path / "state")
    reporter.start()
    assert reporter.connected.wait(10)
    process = mqtt_broker._process
    assert process is not None
    try:
        assert reporter.health({"frames_per_s": 29.7})  # QoS 0: paho reports its mid published at once
        client = reporter._link._client  # type: ignore[union-attr]
        health_mid = client._last_mid
        time.sleep(0.3)
        os.kill(process.pid, signal.SIGSTOP)  # the broker holds the connection but acknowledges nothing
        client._last_mid = health_mid - 1  # what 65535 later messages do: the mid counter wraps to a used mid
        assert reporter.submit([session_summary(SCORES)]) == 1
        time.sleep(1.0)
        assert reporter.outbox.stats()["messages"] == 1  # no PUBACK came, so the row stays
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert reporter.wait_drained(10)
    reporter.stop(timeout=2)


def test_a_pause_stops_processing_but_not_the_summaries_already_aggregated(tmp_path: Path) -> None:
    reporter = Reporter(MqttSettings(enabled=False), PrivacySettings(consent="granted"), tmp_path / "s", IDENTITY)
    reporter.apply_control(ControlCommand("pause"))
    assert not reporter.processing_allowed
    assert reporter.submit([session_summary(SCORES)]) == 1  # e.g. the session SIGTERM closes while paused
    reporter.apply_control(ControlCommand("consent", granted=False))
    assert reporter.submit([session_summary(SCORES)]) == 0
    reporter.stop(timeout=0)


def test_a_summary_built_before_an_erase_is_dropped_even_after_consent_returns(tmp_path: Path) -> None:
    reporter = Reporter(MqttSettings(enabled=False), PrivacySettings(consent="granted"), tmp_path / "s", IDENTITY)
    before = reporter.epoch
    reporter.apply_control(ControlCommand("erase"))
    reporter.apply_control(ControlCommand("consent", granted=True))
    assert reporter.submit([session_summary(SCORES)], epoch=before) == 0  # aggregated before the erase
    assert reporter.submit([session_summary(SCORES)], epoch=reporter.epoch) == 1  # aggregated since
    reporter.apply_control(ControlCommand("pause"))
    assert reporter.submit([session_summary(SCORES)], epoch=reporter.epoch) == 1  # a pause is no erase
    reporter.stop(timeout=0)


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_summary_waits_in_the_outbox_until_the_coarse_end_of_its_period(
    mqtt_broker: Broker, topic_prefix: str, subscriber: Subscriber, tmp_path: Path
) -> None:
    summary = session_summary(SCORES)  # ends a few seconds after T0; its coarse end is the next 15-min mark
    coarse_end = math.ceil(summary.end / 900) * 900
    clock = Clock(summary.end + 1)
    settings = MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port, topic_prefix=topic_prefix)
    privacy = PrivacySettings(consent="granted", k_min_windows=5)
    reporter = Reporter(settings, privacy, tmp_path / "state", IDENTITY, clock=clock)
    reporter.start()
    try:
        assert reporter.connected.wait(10)
        assert reporter.submit([summary]) == 1
        time.sleep(1.5)  # the drain looks every 0.5 s: three chances to send it too early
        assert subscriber.on("summary") == [] and reporter.outbox.stats()["messages"] == 1
        assert reporter.wait_drained(0.2)  # nothing due: a stop would not wait for it
        clock.now = coarse_end
        assert subscriber.wait_for(lambda _: len(subscriber.on("summary")) == 1)
        doc = subscriber.on("summary")[0].json()
        assert doc["period"]["end"] == coarse_time(coarse_end, 900)  # it arrived no earlier than it says
    finally:
        reporter.stop(timeout=2)


def test_health_counters_that_move_with_a_face_refresh_once_per_coarse_period(
    mqtt_broker: Broker, topic_prefix: str, subscriber: Subscriber, tmp_path: Path
) -> None:
    clock = Clock(T0)
    settings = MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port, topic_prefix=topic_prefix)
    reporter = Reporter(settings, PrivacySettings(consent="granted"), tmp_path / "state", IDENTITY, clock=clock)
    reporter.start()
    try:
        assert reporter.connected.wait(10)
        sent = [(T0, 3, 29.0), (T0 + 60, 9, 30.0), (T0 + 900, 14, 31.0)]  # the third is in the next period
        for count, (now, windows, fps) in enumerate(sent, start=1):
            clock.now = now
            assert reporter.health({"windows_scored": windows, "frames_per_s": fps})
            assert subscriber.wait_for(lambda _, n=count: len(subscriber.on("health")) == n)  # type: ignore[misc]
        metrics = [m.json()["metrics"] for m in subscriber.on("health")]
        assert [m["windows_scored"] for m in metrics] == [3, 3, 9]  # as at the end of the previous period
        assert [m["frames_per_s"] for m in metrics] == [29.0, 30.0, 31.0]  # live: says nothing about a face
    finally:
        reporter.stop(timeout=2)


def test_a_full_state_directory_keeps_summaries_in_memory_until_it_has_room(tmp_path: Path) -> None:
    reporter = Reporter(MqttSettings(enabled=False), PrivacySettings(consent="granted"), tmp_path / "s", IDENTITY)
    db = reporter.outbox._db
    assert db is not None
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")  # SQLITE_FULL
    big = [session_summary(SCORES, start=T0 + 100 * i) for i in range(40)]
    queued = reporter.submit(big)  # some fit in the free pages, then the database is full
    assert queued < 40 and len(reporter._unstored) == 40 - queued and reporter.summaries_lost == 0
    db.execute("PRAGMA max_page_count = 1073741823")  # space freed
    assert reporter.submit([]) == 40 - queued  # retried, in order
    assert reporter.outbox.stats()["messages"] == 40 and not reporter._unstored
    reporter.stop(timeout=0)


def test_the_drain_waits_for_work_instead_of_spinning(
    mqtt_broker: Broker, topic_prefix: str, tmp_path: Path, subscriber: Subscriber
) -> None:
    reporter = make_reporter(mqtt_broker, topic_prefix, tmp_path / "state")
    calls = 0
    pending = reporter.outbox.pending

    def counted(**kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return pending(**kwargs)

    reporter.outbox.pending = counted  # type: ignore[method-assign]
    reporter.start()
    try:
        assert reporter.connected.wait(10)
        time.sleep(2.0)  # an empty outbox: the drain should look about every 0.5 s, not hundreds of thousands
        assert calls < 20, calls
        assert reporter.submit([session_summary(SCORES)]) == 1 and reporter.wait_drained(10)  # and still works
    finally:
        reporter.stop(timeout=2)


def test_a_summary_retried_after_a_full_disk_pays_its_privacy_budget_once(tmp_path: Path) -> None:
    dp = DifferentialPrivacySettings(enabled=True, daily_epsilon=2.0, epsilon_per_summary=0.5)
    privacy = PrivacySettings(consent="granted", dp=dp, hold_until_period_end=False)
    reporter = Reporter(MqttSettings(enabled=False), privacy, tmp_path / "s", IDENTITY)
    db = reporter.outbox._db
    assert db is not None
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")  # SQLITE_FULL
    big = [session_summary(SCORES, start=T0 + 100 * i) for i in range(2)]
    reporter.submit(big)
    for _ in range(3):
        reporter.submit([])  # retries while the disk is still full
    assert reporter._gate.budget_remaining() == pytest.approx(2.0 - 2 * 0.5)  # two releases, paid once each
    db.execute("PRAGMA max_page_count = 1073741823")
    reporter.submit([])
    assert reporter.outbox.stats()["messages"] == 2
    reporter.stop(timeout=0)


def test_a_summary_held_far_beyond_its_period_is_due_after_the_clock_stepped_back(
    mqtt_broker: Broker, topic_prefix: str, subscriber: Subscriber, tmp_path: Path
) -> None:
    clock = Clock(T0 + 86400)  # a day ahead: the summary is held until then ...
    settings = MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port, topic_prefix=topic_prefix)
    reporter = Reporter(settings, PrivacySettings(consent="granted"), tmp_path / "state", IDENTITY, clock=clock)
    reporter.start()
    try:
        assert reporter.connected.wait(10)
        assert reporter.submit([session_summary(SCORES, start=T0 + 86400)]) == 1
        clock.now = T0  # ... and the clock is corrected a day back: a hold longer than one period cannot be real
        assert subscriber.wait_for(lambda _: len(subscriber.on("summary")) == 1)
    finally:
        reporter.stop(timeout=2)


def test_a_full_disk_at_stop_loses_nothing_the_memory_buffer_holds_and_stops_cleanly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # on a nearly full disk: 27 summaries lost at stop, a traceback in outbox.close(), exit 0
    with small_disk(tmp_path / "disk", 8) as disk:
        privacy = PrivacySettings(consent="granted", hold_until_period_end=False)
        reporter = Reporter(MqttSettings(enabled=False), privacy, disk / "state", IDENTITY)
        filler = fill(disk)
        made = [session_summary(SCORES, start=T0 + 100 * i) for i in range(MAX_UNSTORED)]  # as many as it holds
        queued = reporter.submit(made)
        assert queued < len(made) and reporter.summaries_lost == 0  # the rest wait in memory
        caplog.set_level(logging.INFO)
        reporter.stop(timeout=0)  # raised, and lost what waited in memory
        assert reporter.summaries_lost == 0 and not reporter._unstored
        assert all(record.exc_info is None for record in caplog.records)
        filler.unlink()
        reopened = Outbox(disk / "state", MqttSettings().outbox)
        assert reopened.stats()["messages"] == len(made)
        reopened.close()


def test_a_summary_routed_to_nobody_stays_in_the_outbox_until_an_integrator_subscribes(
    mqtt_broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    reporter = make_reporter(mqtt_broker, topic_prefix, tmp_path / "state", outbox=OutboxSettings(unrouted_retry_s=1))
    reporter.start()
    try:
        assert reporter.connected.wait(10)
        assert reporter.submit([session_summary(SCORES)]) == 1
        time.sleep(1.5)  # PUBACK "No matching subscribers" came, and one retry met nobody either
        assert reporter.outbox.stats()["messages"] == 1
        late = Subscriber(mqtt_broker.host, mqtt_broker.port, f"{topic_prefix}/v2/+/summary")
        assert late.wait_for(lambda messages: len(messages) >= 1, 10)
        assert reporter.wait_drained(5)
        late.close()
    finally:
        reporter.stop(timeout=2)


def test_a_budget_ledger_that_can_be_neither_read_nor_rewritten_fails_closed_and_the_reporter_stops_cleanly(
    tmp_path: Path,
) -> None:
    # rewriting the unreadable ledger raised out of stop() (a traceback at shutdown): the day now simply counts
    # as spent, and the summary goes out with its mean withheld
    privacy = PrivacySettings(
        consent="granted", hold_until_period_end=False, dp=DifferentialPrivacySettings(enabled=True)
    )
    reporter = Reporter(MqttSettings(enabled=False), privacy, tmp_path / "state", IDENTITY)
    (tmp_path / "state" / "privacy-budget.json").mkdir()  # the ledger's place taken: no read or write succeeds
    assert reporter.submit([session_summary(SCORES)]) == 1 and reporter.summaries_lost == 0
    assert reporter._gate.budget_remaining() == 0.0
    reporter.stop(timeout=0)
