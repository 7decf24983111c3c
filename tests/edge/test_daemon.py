"""The daemon end to end: real Mosquitto, real videos, mediapipe, ONNX Runtime and real processes and signals."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_media import NotifySocket, daemon_command, damage, face_video, media_set, write_config
from mqtt_broker import Broker, Received, Subscriber
from polling import wait_until

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.bundle import Bundle
from edge.cli import main
from edge.config import load_config
from edge.daemon import Daemon
from edge.errors import BundleError, InputError
from edge.schemas import schema_errors

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def media() -> dict[str, Any]:
    return media_set()


def sections(tmp_path: Path, bundle: Bundle, video: Path, port: int, prefix: str) -> dict[str, dict[str, object]]:
    return {
        "device": {"state_dir": str(tmp_path / "state")},
        "camera": {"source": str(video), "realtime": False},
        "model": {"bundle": str(bundle.root), "backend": "onnxruntime", "threads": 1, "allow_random_weights": True},
        "aggregation": {"session_gap_s": 1.0},
        "privacy": {"consent": "granted", "k_min_windows": 2, "hold_until_period_end": False},  # no 15-min wait
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": prefix, "health_interval_s": 1.0},
    }


@pytest.fixture
def subscriber(mqtt_broker: Broker, topic_prefix: str) -> Iterator[Subscriber]:
    sub = Subscriber(mqtt_broker.host, mqtt_broker.port, f"{topic_prefix}/#")
    yield sub
    sub.close()


def valid(messages: list[Received], schema: str) -> list[dict[str, Any]]:
    docs = [m.json() for m in messages]
    for doc in docs:
        assert schema_errors(doc, schema) == [], doc
        assert doc["disclaimer"] == NOT_A_DIAGNOSTIC_DEVICE
    return docs


def status_with(
    *, activity: str | None = None, state: str | None = None, control_request: str | None = None
) -> Callable[[list[Received]], bool]:
    """A predicate: some status message has this activity, state or control reply."""

    def matches(message: Received) -> bool:
        if not message.topic.endswith("/status"):
            return False
        doc = message.json()
        return (
            (activity is None or doc["activity"] == activity)
            and (state is None or doc["state"] == state)
            and (control_request is None or (doc["control"] or {}).get("request_id") == control_request)
        )

    return lambda messages: any(matches(m) for m in messages)


def offline(sub: Subscriber) -> bool:
    return sub.wait_for(status_with(state="offline"))


def test_summaries_reach_a_real_subscriber_and_validate(
    media: dict[str, Any], mqtt_broker: Broker, subscriber: Subscriber, topic_prefix: str, tmp_path: Path
) -> None:
    config = sections(tmp_path, media["bundle"], media["face"], mqtt_broker.port, topic_prefix)
    config["mqtt"]["health_interval_s"] = 0.1  # several health messages while the video is read
    daemon = make_daemon(tmp_path, config)
    assert daemon.run() == 0  # the video ended
    assert offline(subscriber)
    summaries = valid(subscriber.on("summary"), "summary")
    assert {s["kind"] for s in summaries} == {"session", "rolling"}
    session = next(s for s in summaries if s["kind"] == "session")
    assert session["windows"]["scored"] == daemon.counters.windows_scored >= 4  # 3 s at 8 fps, windows 8 stride 4
    assert 0.0 <= session["score"]["mean"] <= 63.0
    assert session["model"] == media["bundle"].identity
    statuses = valid(subscriber.on("status"), "status")
    assert statuses[-1]["activity"] == "stopping" and statuses[-1]["state"] == "offline"
    assert "running" in [s["activity"] for s in statuses]
    health = valid(subscriber.on("health"), "health")
    assert health and all(h["metrics"]["summaries_refused"] == 0 for h in health)  # keys the contract names
    assert all(h["metrics"]["windows_late"] == 0 and "frames_per_s" in h["metrics"] for h in health)
    ids = [m.json()["message_id"] for m in subscriber.messages]
    assert len(ids) == len(set(ids))


@pytest.mark.slow
def test_sigterm_flushes_the_open_session_and_publishes_offline(
    media: dict[str, Any], mqtt_broker: Broker, subscriber: Subscriber, topic_prefix: str, tmp_path: Path
) -> None:
    config = sections(tmp_path, media["bundle"], media["face_then_none"], mqtt_broker.port, topic_prefix)
    config["camera"]["realtime"] = True
    config["aggregation"]["session_gap_s"] = 30.0  # the session stays open until SIGTERM closes it
    path = write_config(tmp_path / "c.toml", config)
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {**ENV, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen(daemon_command(path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: "READY=1" in notify.lines() or proc.poll() is not None), "never ready"
        assert subscriber.wait_for(health_with_windows_scored(2), 30)  # 2 s of face, then 2 s of no face
        assert proc.poll() is None  # the session is open (30 s gap) and the video still plays
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
        notify.close()
    assert proc.returncode == 0, stderr[-3000:]
    assert "stopped on SIGTERM" in stderr
    lines = notify.lines()
    assert lines.index("READY=1") < lines.index("WATCHDOG=1") < lines.index("STOPPING=1")
    assert any(line.startswith("STATUS=") for line in lines)
    assert offline(subscriber)
    sessions = [s for s in valid(subscriber.on("summary"), "summary") if s["kind"] == "session"]
    assert len(sessions) == 1 and sessions[0]["windows"]["scored"] >= 2


def health_with_windows_scored(count: int) -> Callable[[list[Received]], bool]:
    """A predicate: some health message reports at least ``count`` scored windows."""
    return lambda messages: any(
        m.topic.endswith("/health") and m.json()["metrics"].get("windows_scored", 0) >= count for m in messages
    )


def outbox_ids(state_dir: Path) -> list[str]:
    """Message ids waiting in the daemon's outbox (none while it does not exist yet)."""
    if not (state_dir / "outbox.sqlite3").exists():
        return []
    db = sqlite3.connect(f"file:{state_dir / 'outbox.sqlite3'}?mode=ro", uri=True, timeout=5)
    try:
        return [row[0] for row in db.execute("SELECT message_id FROM messages ORDER BY id")]
    except sqlite3.OperationalError:  # the table is being created
        return []
    finally:
        db.close()


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_loses_nothing(
    media: dict[str, Any], mqtt_broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    mqtt_broker.stop()  # the broker is down: summaries can only wait in the outbox
    config = sections(tmp_path, media["bundle"], media["face_then_none"], mqtt_broker.port, topic_prefix)
    config["camera"]["realtime"] = True
    config["aggregation"]["session_gap_s"] = 0.5
    path = write_config(tmp_path / "c.toml", config)
    proc = subprocess.Popen(daemon_command(path), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: len(outbox_ids(tmp_path / "state")) > 0, 60)  # the session ended, summary queued
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)  # mid-run: the video still plays, the rolling period is open
        proc.wait(10)
    finally:
        proc.kill()
    queued = outbox_ids(tmp_path / "state")
    assert len(queued) == 1

    mqtt_broker.start()
    sub = Subscriber(mqtt_broker.host, mqtt_broker.port, f"{topic_prefix}/#")
    try:
        config["camera"] = {"source": str(media["faceless"]), "realtime": False}
        assert Daemon(load_config(write_config(path, config))).run() == 0
        assert sub.wait_for(lambda ms: any(m.json().get("message_id") == queued[0] for m in ms))
        arrived = [s["message_id"] for s in valid(sub.on("summary"), "summary")]
        assert arrived.count(queued[0]) == 1
        assert outbox_ids(tmp_path / "state") == []
    finally:
        sub.close()


@pytest.mark.slow
def test_broker_stopped_and_restarted_mid_run_every_summary_arrives_once(
    media: dict[str, Any], topic_prefix: str, tmp_path: Path
) -> None:
    broker = Broker(tmp_path / "broker", persistence=True)  # keeps the integrator's session across the restart
    broker.start()
    sub = Subscriber(broker.host, broker.port, f"{topic_prefix}/v2/+/summary", session=True)
    config = sections(tmp_path, media["bundle"], media["two_sessions"], broker.port, topic_prefix)
    config["camera"]["realtime"] = True
    config["aggregation"]["session_gap_s"] = 0.5
    config["mqtt"].update(reconnect_min_s=0.5, reconnect_max_s=1.0)
    daemon = make_daemon(tmp_path, config)
    try:
        with running(daemon) as result:
            assert sub.wait_for(lambda msgs: len(msgs) >= 1, 30)  # the first session's summary arrived
            broker.stop()
            assert wait_until(lambda: len(outbox_ids(tmp_path / "state")) >= 1, 30)  # the second one waits on disk
            assert daemon.reporter is not None and not daemon.reporter.connected.is_set()
            broker.start()
            assert wait_until(lambda: bool(result), 60)  # the video ended, the outbox drained on the way out
        assert result.get("code") == 0, result
        sessions = [s for s in valid(sub.messages, "summary") if s["kind"] == "session"]
        assert len({s["message_id"] for s in sessions}) == 2
        arrived = {m.json()["message_id"] for m in sub.messages}
        assert len(arrived) == daemon.counters.summaries  # every summary queued arrived, duplicates share an id
        assert outbox_ids(tmp_path / "state") == []
    finally:
        sub.close()
        broker.stop()


@pytest.mark.slow
def test_by_default_a_live_summary_waits_for_the_coarse_end_of_its_period(
    media: dict[str, Any], mqtt_broker: Broker, subscriber: Subscriber, topic_prefix: str, tmp_path: Path
) -> None:
    config = sections(tmp_path, media["bundle"], media["face_then_none"], mqtt_broker.port, topic_prefix)
    config["camera"]["realtime"] = True  # the wall clock: what a camera gives
    config["aggregation"]["session_gap_s"] = 0.5
    del config["privacy"]["hold_until_period_end"]  # the default: held
    config["privacy"]["time_resolution_s"] = 86400  # the mark is the next UTC midnight
    if (left := 86400 - time.time() % 86400) < 60:  # too close to it: wait until it has passed
        time.sleep(left + 1)
    daemon = make_daemon(tmp_path, config)
    assert daemon.run() == 0
    assert offline(subscriber)
    assert daemon.counters.summaries == 2  # the session (ended by the gap) and the part of the rolling period
    assert subscriber.on("summary") == []  # the mark has not passed yet
    assert len(outbox_ids(tmp_path / "state")) == 2  # kept on disk for the next start, after the mark


def make_daemon(tmp_path: Path, config: dict[str, dict[str, object]]) -> Daemon:
    return Daemon(load_config(write_config(tmp_path / "c.toml", config)))


@contextlib.contextmanager
def running(daemon: Daemon) -> Iterator[dict[str, Any]]:
    """Run the daemon in a thread; ``result`` gets its exit ``code`` (or ``error``); stopped on leaving."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["code"] = daemon.run()
        except Exception as error:  # surfaced by the test
            result["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        daemon.stop_event.set()
        thread.join(20)


def control_topic(daemon: Daemon, prefix: str) -> str:
    assert wait_until(lambda: daemon.reporter is not None and daemon.reporter.connected.is_set())
    return f"{prefix}/v2/{daemon.reporter.pseudonym}/control"  # type: ignore[union-attr]


def test_without_consent_nothing_is_processed_until_consent_arrives(
    media: dict[str, Any], mqtt_broker: Broker, subscriber: Subscriber, topic_prefix: str, tmp_path: Path
) -> None:
    config = sections(tmp_path, media["bundle"], media["face"], mqtt_broker.port, topic_prefix)
    config["privacy"]["consent"] = "required"
    config["trust.control"] = {"grant": "allow"}  # this operator lets consent be granted remotely
    daemon = make_daemon(tmp_path, config)
    with running(daemon) as result:
        assert subscriber.wait_for(status_with(activity="waiting_for_consent"))
        time.sleep(1.0)
        assert daemon.counters.frames == 0 and daemon.capture is None and daemon.capture_stats().captured == 0
        assert daemon.pipeline is not None and sum(daemon.pipeline.clock.seconds.values()) == 0.0
        assert subscriber.on("summary") == []
        subscriber.publish(control_topic(daemon, topic_prefix), b'{"command": "consent", "granted": true}')
        assert wait_until(lambda: bool(result), 60)  # the video ended
    assert result.get("code") == 0, result
    assert daemon.counters.frames > 0
    assert {s["kind"] for s in valid(subscriber.on("summary"), "summary")} == {"session", "rolling"}


def test_malformed_control_message_is_rejected_on_status_and_the_daemon_goes_on(
    media: dict[str, Any], mqtt_broker: Broker, subscriber: Subscriber, topic_prefix: str, tmp_path: Path
) -> None:
    config = sections(tmp_path, media["bundle"], media["face"], mqtt_broker.port, topic_prefix)
    config["privacy"]["consent"] = "required"
    daemon = make_daemon(tmp_path, config)
    with running(daemon) as result:
        subscriber.publish(control_topic(daemon, topic_prefix), b'{"command": "self-destruct", "request_id": "bad-1"}')
        assert subscriber.wait_for(status_with(control_request="bad-1"))
        assert not result  # still running
    status = [s for s in valid(subscriber.on("status"), "status") if s["control"]][-1]
    assert status["control"]["accepted"] is False


def test_video_without_faces_publishes_no_summary(
    media: dict[str, Any], mqtt_broker: Broker, subscriber: Subscriber, topic_prefix: str, tmp_path: Path
) -> None:
    config = sections(tmp_path, media["bundle"], media["faceless"], mqtt_broker.port, topic_prefix)
    daemon = make_daemon(tmp_path, config)
    assert daemon.run() == 0
    assert daemon.counters.frames == 16 and daemon.counters.faces == 0
    assert daemon.counters.windows_scored == 0 and daemon.counters.windows_rejected >= 2
    assert offline(subscriber)
    assert subscriber.on("summary") == []  # nothing rests on k scored windows


def test_damaged_video_is_read_as_far_as_it_decodes_and_ends_cleanly(
    media: dict[str, Any], mqtt_broker: Broker, subscriber: Subscriber, topic_prefix: str, tmp_path: Path
) -> None:
    broken = damage(media["face"], tmp_path / "broken.mp4", keep=1.0)
    config = sections(tmp_path, media["bundle"], broken, mqtt_broker.port, topic_prefix)
    daemon = make_daemon(tmp_path, config)
    assert daemon.run() == 0
    stats = daemon.capture_stats()
    assert stats.state == "ended" and stats.decode_errors > 0
    assert 0 < daemon.counters.frames < 24
    assert offline(subscriber)


def test_unreadable_video_raises_input_error_after_going_offline(
    media: dict[str, Any], mqtt_broker: Broker, subscriber: Subscriber, topic_prefix: str, tmp_path: Path
) -> None:
    cut = damage(media["face"], tmp_path / "cut.mp4", keep=0.5, garble=False)
    config = sections(tmp_path, media["bundle"], cut, mqtt_broker.port, topic_prefix)
    daemon = make_daemon(tmp_path, config)
    with pytest.raises(InputError, match="cannot open file source") as error:
        daemon.run()
    assert error.value.exit_code == 6 and error.value.fix
    assert offline(subscriber)


def test_lost_camera_is_reported_on_status_and_retried(
    media: dict[str, Any], mqtt_broker: Broker, subscriber: Subscriber, topic_prefix: str, tmp_path: Path
) -> None:
    config = sections(tmp_path, media["bundle"], media["face"], mqtt_broker.port, topic_prefix)
    config["camera"] = {"source": "/dev/video97", "reopen_max_s": 0.2}
    daemon = make_daemon(tmp_path, config)
    with running(daemon):
        assert subscriber.wait_for(status_with(activity="input_lost"))
        assert wait_until(lambda: daemon.capture_stats().reopens >= 2)
    detail = next(m.json()["detail"] for m in subscriber.on("status") if m.json()["activity"] == "input_lost")
    assert detail.startswith("camera_lost") and "/dev/video97" in detail


def test_dead_broker_keeps_processing_and_the_outbox_holds_summaries(
    media: dict[str, Any], mqtt_broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    mqtt_broker.stop()
    config = sections(tmp_path, media["bundle"], media["face"], mqtt_broker.port, topic_prefix)
    daemon = make_daemon(tmp_path, config)
    assert daemon.run() == 0
    assert daemon.counters.windows_scored >= 3
    assert len(outbox_ids(tmp_path / "state")) == 2  # the session and the (partial) rolling period


def test_refused_credentials_are_named_in_the_systemd_status_apart_from_an_unreachable_broker(
    media: dict[str, Any], topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = Broker(tmp_path / "broker", users={"edge": "right"})
    broker.start()
    (tmp_path / "password").write_text("wrong\n")
    config = sections(tmp_path, media["bundle"], media["faceless"], broker.port, topic_prefix)
    config["mqtt"].update(username="edge", password_file=str(tmp_path / "password"), health_interval_s=0.1)
    notify = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    try:
        assert make_daemon(tmp_path, config).run() == 0
    finally:
        notify.close()
        broker.stop()
    statuses = [line for line in notify.lines() if line.startswith("STATUS=") and "MQTT: " in line]
    statuses = [line for line in statuses if "not connected yet" not in line]  # before the first attempt ended
    assert statuses and all("MQTT: authentication: " in line for line in statuses), statuses
    assert not any("unreachable" in line for line in statuses)


def test_tampered_bundle_is_refused_before_anything_starts(media: dict[str, Any], tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(media["bundle"].root, tmp_path / "bundle"))
    with (bundle / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    config = sections(tmp_path, media["bundle"], media["face"], 1, "x")
    config["model"]["bundle"] = str(bundle)
    path = write_config(tmp_path / "c.toml", config)
    assert main(["run", "--config", str(path)]) == BundleError.exit_code == 4
    assert not (tmp_path / "state").exists()  # refused before the state directory was touched


def test_invalid_configuration_exits_3_naming_every_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path / "c.toml", {"mqtt": {"port": 99999}, "camera": {"realtim": True}})
    assert main(["run", "--config", str(path), "--set", "privacy.consent=yes"]) == 3
    stderr = capsys.readouterr().err
    assert "c.toml: mqtt.port: must be 1-65535, got 99999" in stderr
    assert "c.toml: camera.realtim: unknown key (fix: did you mean camera.realtime?" in stderr
    assert "--set: privacy.consent: input should be 'required' or 'granted', got 'yes'" in stderr


@pytest.mark.slow
def test_erase_forgets_what_was_aggregated_and_stops_processing(
    media: dict[str, Any], mqtt_broker: Broker, subscriber: Subscriber, topic_prefix: str, tmp_path: Path
) -> None:
    video = face_video(tmp_path / "face6.mp4", seconds=6.0)  # windows enough after the erase for k = 2
    config = sections(tmp_path, media["bundle"], video, mqtt_broker.port, topic_prefix)
    config["camera"]["realtime"] = True
    config["aggregation"]["session_gap_s"] = 30.0
    config["privacy"]["k_min_windows"] = 2  # the least a summary may rest on
    config["trust.control"] = {"grant": "allow"}  # consent is granted again remotely below
    daemon = make_daemon(tmp_path, config)
    with running(daemon) as result:
        assert wait_until(lambda: daemon.counters.windows_scored >= 2)
        control = control_topic(daemon, topic_prefix)
        subscriber.publish(control, b'{"command": "erase", "request_id": "e-1"}')
        assert subscriber.wait_for(status_with(activity="waiting_for_consent"))
        assert wait_until(lambda: daemon.capture is None)  # the camera is released
        before = daemon.counters.windows_scored
        assert not (tmp_path / "state" / "outbox.sqlite3").exists() or outbox_ids(tmp_path / "state") == []
        subscriber.publish(control, b'{"command": "consent", "granted": true, "request_id": "c-2"}')
        assert wait_until(lambda: bool(result), 60)  # the video ended
    assert result.get("code") == 0, result
    sessions = [s for s in valid(subscriber.on("summary"), "summary") if s["kind"] == "session"]
    assert len(sessions) == 1  # only what was seen after the erase
    assert sessions[0]["windows"]["scored"] == daemon.counters.windows_scored - before


def test_a_stop_while_paused_still_flushes_what_was_aggregated_before_the_pause(
    media: dict[str, Any], mqtt_broker: Broker, subscriber: Subscriber, topic_prefix: str, tmp_path: Path
) -> None:
    config = sections(tmp_path, media["bundle"], media["face"], mqtt_broker.port, topic_prefix)
    config["camera"]["realtime"] = True
    config["aggregation"]["session_gap_s"] = 30.0  # the session stays open until the stop closes it
    config["privacy"]["k_min_windows"] = 2  # the least a summary may rest on
    daemon = make_daemon(tmp_path, config)
    with running(daemon) as result:
        assert wait_until(lambda: daemon.counters.windows_scored >= 2)
        subscriber.publish(control_topic(daemon, topic_prefix), b'{"command": "pause", "request_id": "p-1"}')
        assert subscriber.wait_for(status_with(activity="paused"))
    assert result.get("code") == 0, result
    assert offline(subscriber)
    sessions = [s for s in valid(subscriber.on("summary"), "summary") if s["kind"] == "session"]
    assert len(sessions) == 1 and sessions[0]["windows"]["scored"] == daemon.counters.windows_scored >= 2
