"""A publisher process killed with SIGKILL: the outbox keeps every summary and the Last Will says offline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mqtt_broker import Broker, Subscriber

TESTS = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("publisher_proc.py")


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start publisher processes; any still running at the end of the test is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(state: Path, broker: Broker, prefix: str, count: int, mode: str) -> subprocess.Popen[str]:
        # the repository root before tests/, whose edge/ folder would otherwise shadow the edge package
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
        args = [str(state), broker.host, str(broker.port), prefix, str(count), mode]
        command = [sys.executable, str(SCRIPT), *args]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def _queued(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


def _ids(sub: Subscriber) -> set[str]:
    return {m.json()["message_id"] for m in sub.on("summary")}


@pytest.mark.parametrize(("broker_down", "count"), [(True, 5), (False, 40)], ids=["broker-down", "mid-drain"])
def test_summaries_survive_sigkill(
    mqtt_broker: Broker,
    topic_prefix: str,
    tmp_path: Path,
    spawn: Callable[..., subprocess.Popen[str]],
    broker_down: bool,
    count: int,
) -> None:
    """Killed with nothing acknowledged (broker down), or mid-drain (some acknowledged, some in flight)."""
    if broker_down:
        mqtt_broker.stop()
    sub = None if broker_down else Subscriber(mqtt_broker.host, mqtt_broker.port, f"{topic_prefix}/#")
    try:
        first = spawn(tmp_path / "state", mqtt_broker, topic_prefix, count, "hold")
        assert _queued(first) == f"queued {count}"
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        if sub is None:
            mqtt_broker.start()
            sub = Subscriber(mqtt_broker.host, mqtt_broker.port, f"{topic_prefix}/#")
        second = spawn(tmp_path / "state", mqtt_broker, topic_prefix, 0, "drain")
        assert _queued(second) == "queued 0"
        assert second.wait(30) == 0
        assert sub.wait_for(lambda _: len(_ids(sub)) == count)
    finally:
        if sub is not None:
            sub.close()


def test_last_will_says_offline_when_the_process_is_killed(
    mqtt_broker: Broker, topic_prefix: str, tmp_path: Path, spawn: Callable[..., subprocess.Popen[str]]
) -> None:
    sub = Subscriber(mqtt_broker.host, mqtt_broker.port, f"{topic_prefix}/+/+/status")
    try:
        process = spawn(tmp_path / "state", mqtt_broker, topic_prefix, 0, "hold")
        assert _queued(process) == "queued 0"
        assert sub.wait_for(lambda msgs: any(m.json()["state"] == "online" for m in msgs))
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        assert sub.wait_for(lambda msgs: msgs[-1].json()["state"] == "offline", timeout=15)
        will = sub.messages[-1].json()
        assert "at" not in will and will["consent"] == "granted"  # the Will, composed at connection time
    finally:
        sub.close()
