"""TLS (a throw-away CA: verified connections work, unverifiable ones do not) and password authentication."""

from __future__ import annotations

import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_broker import Broker, TlsFiles, make_tls_files, mosquitto_path
from polling import wait_until
from summary_factory import IDENTITY, session_summary

from edge.client import Connection, Integrator, open_store
from edge.errors import ConfigError
from edge.publish import MqttSettings, PrivacySettings, Reporter
from edge.publish.mqtt import build_ssl_context
from edge.publish.settings import TlsSettings

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture(autouse=True)
def _mosquitto_is_installed() -> None:
    """CI installs Mosquitto (make broker-dep): its absence fails these tests instead of skipping them."""
    assert mosquitto_path() is not None, "mosquitto is not installed (apt-get install mosquitto, or make broker-dep)"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_broker(tls_files: TlsFiles, tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(tmp_path / "broker", tls=tls_files)
    broker.start()
    yield broker
    broker.stop()


def _reporter(broker: Broker, ca: Path, state: Path, topic_prefix: str) -> Reporter:
    mqtt = MqttSettings(
        host=broker.host, port=broker.port, topic_prefix=topic_prefix, tls=TlsSettings(enabled=True, ca_file=ca)
    )
    return Reporter(mqtt, PrivacySettings(consent="granted"), state, IDENTITY)


def test_context_verifies_certificates_and_host_names(tls_files: TlsFiles) -> None:
    tls = TlsSettings(
        enabled=True, ca_file=tls_files.ca, cert_file=tls_files.server_cert, key_file=tls_files.server_key
    )
    context = build_ssl_context(tls)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    with pytest.raises(ConfigError, match=r"mqtt\.tls"):
        build_ssl_context(TlsSettings(enabled=True, ca_file=tls_files.ca.with_name("missing.pem")))
    with pytest.raises(ValueError, match="go together"):
        TlsSettings(enabled=True, cert_file=tls_files.server_cert)


def test_summaries_flow_over_verified_tls(
    tls_broker: Broker, tls_files: TlsFiles, tmp_path: Path, topic_prefix: str
) -> None:
    connection = Connection(host=tls_broker.host, port=tls_broker.port, tls=True, ca_file=tls_files.ca)
    integrator = Integrator(open_store(str(tmp_path / "in.jsonl")), connection, prefix=topic_prefix)
    integrator.start()  # the integrator client verifies the broker too
    reporter = _reporter(tls_broker, tls_files.ca, tmp_path / "state", topic_prefix)
    reporter.start()
    try:
        assert reporter.connected.wait(10)
        assert reporter.submit([session_summary([14.0] * 6)]) == 1
        assert reporter.wait_drained(10)  # the broker acknowledged it over TLS
        assert wait_until(lambda: integrator.counts["stored"] >= 2)  # the summary and the online status
    finally:
        reporter.stop(timeout=2)
        integrator.stop()


def test_a_broker_signed_by_another_ca_is_refused(
    tls_broker: Broker, tmp_path: Path, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    other = make_tls_files(tmp_path / "other", name="other")
    reporter = _reporter(tls_broker, other.ca, tmp_path / "state", topic_prefix)
    reporter.start()
    try:
        assert not reporter.connected.wait(2)
        assert reporter.submit([session_summary([14.0] * 6)]) == 1
        assert reporter.outbox.stats()["messages"] == 1  # kept until a verified broker acknowledges it
    finally:
        reporter.stop(timeout=0)


def test_username_and_password_are_required_and_checked(tmp_path: Path, topic_prefix: str) -> None:
    broker = Broker(tmp_path / "broker", users={"edge": "s3cret"})
    broker.start()
    password_file = tmp_path / "password"
    password_file.write_text("s3cret\n")
    try:
        for password, works in [("wrong", False), (None, True)]:
            mqtt = MqttSettings(
                host=broker.host,
                port=broker.port,
                topic_prefix=topic_prefix,
                username="edge",
                password=password,
                password_file=None if password else password_file,
            )
            reporter = Reporter(mqtt, PrivacySettings(consent="granted"), tmp_path / "state", IDENTITY)
            reporter.start()
            assert reporter.connected.wait(5 if works else 2) is works
            reporter.stop(timeout=1)
    finally:
        broker.stop()
