"""The integrator's TLS options: a client certificate goes with its key, and files that cannot be loaded are one
clear line with the fix, before any connection (never a traceback, never a silent fall-back to no certificate)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main
from edge.client import Connection, ControlSender, Integrator, open_store
from edge.errors import BrokerError

CONTROL = ["control", "--port", "1", "--device", "ab" * 10, "pause"]


@pytest.mark.parametrize("given", ["--cert", "--key"])
def test_a_client_certificate_without_its_key_or_the_reverse_is_refused(
    tmp_path: Path, given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pem = tmp_path / "client.pem"
    pem.write_text("not used")
    assert main([*CONTROL, given, str(pem)]) == 3  # it was ignored: the broker saw no certificate at all
    assert "--cert and --key go together" in capsys.readouterr().err


def test_tls_files_that_cannot_be_loaded_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    assert main([*CONTROL, "--cert", str(garbage), "--key", str(garbage)]) == 3
    assert main([*CONTROL, "--ca", str(tmp_path / "missing.pem")]) == 3
    err = capsys.readouterr().err
    assert err.count("cannot load the TLS files") == 2 and "Traceback" not in err


@pytest.mark.filterwarnings("ignore:The 'acl' option is deprecated")  # amqtt 0.12's only subscribe ACL key
def test_a_subscription_the_broker_refuses_is_an_error_not_a_silent_worker(tmp_path: Path) -> None:
    """amqtt answers 0x80 in the SUBACK for a filter it refuses (EMQX and HiveMQ do so for one their ACL denies;
    Mosquitto grants every filter and filters on delivery)."""
    from edge.commands._demo_broker import embedded_amqtt

    acl = {"amqtt.plugins.topic_checking.TopicAccessControlListPlugin": {"acl": {"anonymous": ["other/#"]}}}
    with embedded_amqtt(acl) as address:
        connection = Connection(host=address.host, port=address.port, protocol="3.1.1")
        worker = Integrator(open_store(str(tmp_path / "in.jsonl")), connection, kinds=["summary"])
        with pytest.raises(BrokerError, match=r"refused the subscription to expresso/v2/\+/summary"):
            worker.start(timeout=5)
        worker.stop()
        with pytest.raises(BrokerError, match=r"refused the subscription to expresso/v2/a{20}/status"):
            ControlSender(connection).send("a" * 20, {"command": "pause"}, timeout=5)


@pytest.mark.parametrize("prefix", ["a+b", "site/#", "x\0y", ""])
def test_a_prefix_that_is_no_topic_level_is_a_usage_error(
    tmp_path: Path, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:  # paho refused the filter inside a callback: a 10 s wait, then exit 8
        main(["subscribe", "--port", "1", "--store", str(tmp_path / "s.jsonl"), "--prefix", prefix])
    assert stopped.value.code == 2 and "--prefix" in capsys.readouterr().err
