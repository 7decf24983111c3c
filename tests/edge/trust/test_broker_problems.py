"""TLS and authentication failures on a real Mosquitto are named as such, not as an unreachable broker."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from acl_client import AclClient
from mqtt_broker import Broker, TlsFiles, free_port
from polling import wait_until
from summary_factory import IDENTITY
from tls_certs import TestCa

from edge.publish import MqttSettings, PrivacySettings, Reporter
from edge.publish.settings import TlsSettings


def _problem(tmp_path: Path, port: int, *, host: str = "127.0.0.1", ca: Path | None = None, **auth: str) -> Reporter:
    tls = TlsSettings(enabled=True, ca_file=ca) if ca else TlsSettings()
    mqtt = MqttSettings(host=host, port=port, tls=tls, reconnect_min_s=1, reconnect_max_s=1, **auth)  # type: ignore[arg-type]
    reporter = Reporter(mqtt, PrivacySettings(consent="granted"), tmp_path / "state", IDENTITY)
    reporter.start()
    return reporter


def _tls_broker(tmp_path: Path, ca: TestCa, cert: tuple[Path, Path]) -> Broker:
    broker = Broker(tmp_path / "broker", tls=TlsFiles(ca=ca.pem, server_cert=cert[0], server_key=cert[1]))
    broker.start()
    return broker


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown_ca", "not signed by a trusted CA (unknown CA"),
        ("hostname", "hostname mismatch"),
        ("expired", "has expired"),
    ],
)
def test_tls_failures_say_which(tmp_path: Path, case: str, expected: str, caplog: pytest.LogCaptureFixture) -> None:
    ca = TestCa(tmp_path / "pki")
    cert = (
        ca.server("broker", dns="wrong.example", ip=None)
        if case == "hostname"
        else ca.server("broker", expired=case == "expired")
    )
    broker = _tls_broker(tmp_path, ca, cert)
    trusted = TestCa(tmp_path / "other", "other").pem if case == "unknown_ca" else ca.pem
    host = "localhost" if case == "hostname" else "127.0.0.1"
    reporter = _problem(tmp_path, broker.port, host=host, ca=trusted)
    try:
        assert wait_until(lambda: expected in reporter.broker_problem, 10), reporter.broker_problem
        assert reporter.broker_problem.startswith("TLS: ") and not reporter.connected.is_set()
        metrics = reporter._link.failures  # type: ignore[union-attr]
        assert metrics["tls"] >= 1 and metrics["unreachable"] == 0
        assert any(expected in record.getMessage() and record.levelno == logging.ERROR for record in caplog.records)
    finally:
        reporter.stop(timeout=0)
        broker.stop()


def test_bad_credentials_and_an_unreachable_broker_are_told_apart(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", users={"edge": "right"})
    broker.start()
    password = tmp_path / "password"
    password.write_text("wrong\n")
    refused = _problem(tmp_path / "a", broker.port, username="edge", password_file=str(password))
    nobody = _problem(tmp_path / "b", free_port())
    try:
        assert wait_until(lambda: refused.broker_problem.startswith("authentication:"), 10), refused.broker_problem
        assert "user name or password" in refused.broker_problem  # Mosquitto says "Not authorized" for it
        assert wait_until(lambda: nobody.broker_problem.startswith("broker unreachable"), 10)
        assert refused._link.failures["auth"] >= 1 and nobody._link.failures["unreachable"] >= 1  # type: ignore[union-attr]
    finally:
        refused.stop(timeout=0)
        nobody.stop(timeout=0)
        broker.stop()


def test_health_counts_refused_attempts_once_the_broker_lets_the_device_in(tmp_path: Path) -> None:
    users = {"edge": "old", "watcher": "w"}  # the Broker keeps this dict: edited below, used at the next start
    broker = Broker(tmp_path / "broker", users=users)
    broker.start()
    password = tmp_path / "password"
    password.write_text("new\n")
    reporter = _problem(tmp_path / "a", broker.port, username="edge", password_file=str(password))
    try:
        assert wait_until(lambda: reporter.broker_problem.startswith("authentication:"), 10)
        broker.stop()
        users["edge"] = "new"  # the operator fixes the broker's password file
        broker.start()
        assert reporter.connected.wait(10)
        watcher = AclClient(broker.port, "watcher", "w")
        try:
            assert watcher.subscribe("#")
            assert wait_until(lambda: reporter.health({}) and any(t.endswith("/health") for t, _ in watcher.messages))
            health = next(json.loads(p) for t, p in watcher.messages if t.endswith("/health"))
        finally:
            watcher.close()
        assert health["metrics"]["broker_failures_auth"] >= 1 and "broker_failures_tls" not in health["metrics"]
    finally:
        reporter.stop(timeout=0)
        broker.stop()
