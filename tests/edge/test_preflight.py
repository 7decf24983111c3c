"""check-config as a preflight: what run would refuse, refused first with the same exit code and message."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from daemon_media import write_config
from mqtt_broker import Broker
from small_disk import fill, small_disk

from edge.bundle import load_bundle, write_manifest
from edge.cli import main
from edge.config import DEMO_BUNDLE
from edge.errors import ConfigError
from edge.privacy.pseudonym import load_or_create_secret
from edge.publish.outbox import Outbox
from edge.publish.settings import OutboxSettings
from edge.sources import opencv_backend
from edge.statelock import StateDirLock

SAMPLE = Path(__file__).parents[2] / "samples" / "clip_000_score04.3.mp4"
GARBAGE_PEM = "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n"


def base(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """A configuration run would accept: the demo bundle on the sample video, state in tmp_path."""
    return {
        "device": {"state_dir": str(tmp_path / "state")},
        "camera": {"source": str(SAMPLE), "realtime": False},
        "model": {"bundle": str(DEMO_BUNDLE), "backend": "onnxruntime", "threads": 1},
        "mqtt": {"enabled": False},
    }


def check(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["check-config", str(path), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def failed(report: dict[str, Any]) -> dict[str, str]:
    return {c["check"]: c["detail"] for c in report["checks"] if not c["ok"]}


def _garbage(tmp_path: Path) -> Path:
    (tmp_path / "garbage.pem").write_text(GARBAGE_PEM)
    return tmp_path / "garbage.pem"


def tls(**files: str) -> dict[str, dict[str, Any]]:
    return {"mqtt": {"enabled": True}, "mqtt.tls": {"enabled": True, **files}}


def _file(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("x")
    return tmp_path / "a-file"


def _untrained(tmp_path: Path, weights: dict[str, Any]) -> Path:
    """A copy of the demo bundle whose manifest records ``weights`` (random or re-initialised layers)."""
    root = Path(shutil.copytree(DEMO_BUNDLE, tmp_path / "untrained"))
    manifest = load_bundle(root).manifest
    manifest["model"]["weights"] = weights
    write_manifest(root, manifest)
    return root


RANDOM = {"source": "random", "note": "no checkpoint"}
REINITIALISED = {"source": "checkpoint", "random_layers": ["fc.weight", "fc.bias"]}


def _password(tmp_path: Path, content: bytes) -> dict[str, dict[str, Any]]:
    (tmp_path / "pw").write_bytes(content)
    return {"mqtt": {"enabled": True, "username": "u", "password_file": str(tmp_path / "pw")}}


def _in_state(tmp_path: Path, name: str, content: bytes | None) -> dict[str, dict[str, Any]]:
    """A file in the state directory (a directory in its place when ``content`` is None)."""
    path = tmp_path / "state" / name
    path.parent.mkdir(exist_ok=True)
    path.mkdir() if content is None else path.write_bytes(content)
    return {}


def _encrypted_key(tmp_path: Path) -> dict[str, str]:
    """A self-signed client certificate whose key is encrypted with a passphrase."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "client.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    encrypted = serialization.BestAvailableEncryption(b"passphrase")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encrypted)
    (tmp_path / "client.key").write_bytes(pem)
    return {"cert_file": str(tmp_path / "client.pem"), "key_file": str(tmp_path / "client.key")}


# (what check-config used to call valid, the change, the failed check, its exit code)
CASES: list[tuple[str, Any, str, int]] = [
    ("missing bundle", lambda t: {"model": {"bundle": str(t / "no-bundle")}}, "bundle", 4),
    ("tensorrt here", lambda t: {"model": {"backend": "tensorrt"}}, "backend", 5),
    ("random weights", lambda t: {"model": {"bundle": str(_untrained(t, RANDOM))}}, "bundle", 4),
    ("re-initialised head", lambda t: {"model": {"bundle": str(_untrained(t, REINITIALISED))}}, "bundle", 4),
    ("precision the bundle lacks", lambda t: {"model": {"precision": "fp16"}}, "backend", 6),
    (
        "gstreamer without gstreamer",
        lambda t: {"camera": {"source": "nvarguscamerasrc ! video/x-raw ! appsink"}},
        "camera source",
        3,
    ),
    ("missing CA", lambda t: tls(ca_file=str(t / "ca.pem")), "TLS files", 3),
    ("garbage CA", lambda t: tls(ca_file=str(_garbage(t))), "TLS files", 3),
    (
        "garbage client certificate",
        lambda t: tls(cert_file=str(_garbage(t)), key_file=str(_garbage(t))),
        "TLS files",
        3,
    ),
    ("missing password file", lambda t: {"mqtt": {"enabled": True, "username": "u", "password_file": str(t / "pw")}},
     "password file", 3),
    ("unwritable state dir", lambda t: {"device": {"state_dir": str(_file(t) / "state")}}, "state directory", 3),
    # a binary password file was a traceback (exit 1), an empty one 'readable' and then every login refused
    ("binary password file", lambda t: _password(t, b"\xff\xfe\x00"), "password file", 3),
    ("empty password file", lambda t: _password(t, b""), "password file", 3),
    # OpenSSL asked for the key's passphrase on the terminal: check-config waited there
    ("encrypted client key", lambda t: tls(**_encrypted_key(t)), "TLS files", 3),
    # run refused these at start (a secret it cannot read was a traceback, exit 1): check-config called them valid
    ("unreadable device secret", lambda t: _in_state(t, "device.secret", None), "state files", 3),
    ("short device secret", lambda t: _in_state(t, "device.secret", b"short"), "state files", 3),
    ("corrupt outbox", lambda t: _in_state(t, "outbox.sqlite3", b"not a database"), "state files", 3),
]  # fmt: skip


def merged(tmp_path: Path, change: dict[str, dict[str, Any]]) -> Path:
    config = base(tmp_path)
    for section, values in change.items():
        config[section] = {**config.get(section, {}), **values}
    return write_config(tmp_path / "c.toml", config)


@pytest.mark.parametrize(("name", "change", "check_name", "code"), CASES, ids=[c[0] for c in CASES])
def test_check_config_refuses_first_what_run_refuses_with_the_same_code_and_message(
    name: str, change: Any, check_name: str, code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if check_name == "camera source" and opencv_backend("GSTREAMER"):
        pytest.skip("this OpenCV build has GStreamer")
    path = merged(tmp_path, change(tmp_path))
    got, report = check(path, capsys)
    assert got == code and report["valid"] is False
    (message,) = failed(report).values()
    assert list(failed(report)) == [check_name]
    assert main(["run", "--config", str(path)]) == code  # the daemon refuses the same thing ...
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err  # ... with the same message


@pytest.mark.parametrize(("weights", "said"), [(RANDOM, "random weights only"), (REINITIALISED, "fc.weight, fc.bias")])
def test_untrained_weights_are_refused_with_the_reason_and_the_switch_that_allows_them(
    weights: dict[str, Any], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = str(_untrained(tmp_path, weights))
    code, report = check(merged(tmp_path, {"model": {"bundle": bundle}}), capsys)
    refused = failed(report)["bundle"]
    assert code == 4 and said in refused and "model.allow_random_weights = true" in refused
    code, report = check(merged(tmp_path, {"model": {"bundle": bundle, "allow_random_weights": True}}), capsys)
    detail = next(c["detail"] for c in report["checks"] if c["check"] == "bundle")
    assert code == 0 and said in detail and "allowed by model.allow_random_weights" in detail


# every refusal at once, in the order run meets them; each step removes the first one
ALL_AT_ONCE: list[tuple[str, Any]] = [
    ("bundle", lambda t: {"model": {"bundle": str(t / "no-bundle")}}),
    ("camera source", lambda t: {"camera": {"source": "nvarguscamerasrc ! video/x-raw ! appsink"}}),
    ("TLS files", lambda t: {"mqtt.tls": {"enabled": True, "ca_file": str(t / "ca.pem")}}),
    ("password file", lambda t: {"mqtt": {"username": "u", "password_file": str(t / "pw")}}),
    ("backend", lambda t: {"model": {"backend": "tensorrt"}}),
    ("state directory", lambda t: {"device": {"state_dir": str(_file(t) / "state")}}),
]


def test_with_several_refusals_check_config_and_run_name_the_same_first_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # check-config checked the backend before the camera source, run after it: a GStreamer source on a device
    # without TensorRT was exit 5 in check-config and exit 3 in run
    if opencv_backend("GSTREAMER"):
        pytest.skip("this OpenCV build has GStreamer")
    for first in range(len(ALL_AT_ONCE)):
        config = base(tmp_path)
        config["mqtt"] = {"enabled": True}
        for _, change in ALL_AT_ONCE[first:]:
            for section, values in change(tmp_path).items():
                config[section] = {**config.get(section, {}), **values}
        path = write_config(tmp_path / "c.toml", config)
        code, report = check(path, capsys)
        name, message = next((c["check"], c["detail"]) for c in report["checks"] if not c["ok"])
        assert name == ALL_AT_ONCE[first][0]
        assert main(["run", "--config", str(path)]) == code, name
        assert message in capsys.readouterr().err, name


def test_an_encrypted_client_key_is_named_as_such(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # OpenSSL prompted for the passphrase on a terminal (check-config hung) and without one said "Invalid argument"
    code, report = check(merged(tmp_path, tls(**_encrypted_key(tmp_path))), capsys)
    assert code == 3 and "encrypted with a passphrase" in failed(report)["TLS files"]


def test_a_precision_the_bundle_lacks_names_the_configuration_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the fix said "pass --precision int8", an option no daemon command has
    code, report = check(merged(tmp_path, {"model": {"precision": "fp16"}}), capsys)
    assert code == 6 and "set model.precision to int8 or auto" in failed(report)["backend"]


def test_a_gstreamer_source_without_gstreamer_says_how_to_get_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if opencv_backend("GSTREAMER"):
        pytest.skip("this OpenCV build has GStreamer")
    path = merged(tmp_path, {"camera": {"source": "v4l2src ! videoconvert ! appsink"}})
    code, report = check(path, capsys)
    assert code == 3 and "no GSTREAMER support" in failed(report)["camera source"]
    assert "docs/daemon.md" in failed(report)["camera source"]


def test_a_missing_camera_node_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = check(merged(tmp_path, {"camera": {"source": "/dev/video9"}}), capsys)
    assert code == 6 and "/dev/video9 does not exist" in failed(report)["camera node"]


def test_a_good_configuration_passes_every_check_and_probe_reads_a_frame(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = check(merged(tmp_path, {}), capsys, "--probe")
    assert code == 0 and report["valid"] and failed(report) == {}
    probe = next(c for c in report["checks"] if c["check"] == "probe")
    assert probe["detail"].startswith("frame ") and "x" in probe["detail"]
    assert not (tmp_path / "state").exists()  # a preflight creates nothing


def test_the_state_files_are_read_without_creating_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a -shm or -wal created by a check-config run as root would lock the daemon's own user out of its outbox
    state = tmp_path / "state"
    load_or_create_secret(state)
    outbox = Outbox(state, OutboxSettings())
    outbox.put("m1", "t", b"{}", kind="session")
    outbox.close()
    before = sorted(p.name for p in state.iterdir())
    code, report = check(merged(tmp_path, {}), capsys)
    assert code == 0
    assert (
        next(c for c in report["checks"] if c["check"] == "state files")["detail"]
        == "device secret and outbox readable"
    )
    assert sorted(p.name for p in state.iterdir()) == before


def test_probe_refuses_a_file_that_does_not_decode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 4096)
    code, report = check(merged(tmp_path, {"camera": {"source": str(tmp_path / "broken.mp4")}}), capsys, "--probe")
    assert code == 6 and "probe" in failed(report)


def test_connect_reaches_the_broker_or_says_why_not(
    tmp_path: Path, mqtt_broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    mqtt = {"enabled": True, "host": mqtt_broker.host, "port": mqtt_broker.port}
    code, report = check(merged(tmp_path, {"mqtt": mqtt}), capsys, "--connect")
    assert code == 0 and "connected to" in next(c for c in report["checks"] if c["check"] == "connect")["detail"]
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    code, report = check(merged(tmp_path, {"mqtt": {**mqtt, "port": port}}), capsys, "--connect")
    assert code == 8 and "cannot be reached" in failed(report)["connect"]
    code, report = check(merged(tmp_path, {"mqtt": {**mqtt, "enabled": False}}), capsys, "--connect")
    assert (
        code == 0 and next(c for c in report["checks"] if c["check"] == "connect")["detail"] == "skipped: MQTT is off"
    )


def test_a_second_daemon_on_one_state_directory_exits_3_naming_the_holder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # two daemons on one state directory took the client id from each other: 42 takeovers in 45 s
    path = merged(tmp_path, {})
    (tmp_path / "state").mkdir()
    holder = StateDirLock(tmp_path / "state").acquire()
    try:
        assert main(["run", "--config", str(path)]) == 3
        err = capsys.readouterr().err
        assert f"in use by another expresso-edge daemon (pid {os.getpid()})" in err and "Traceback" not in err
        # check-config (run beside the daemon, e.g. by install.sh before a restart) says so without failing
        code, report = check(path, capsys)
        detail = next(c for c in report["checks"] if c["check"] == "state files")["detail"]
        assert code == 0 and f"in use by a running daemon (pid {os.getpid()})" in detail
    finally:
        holder.release()
    assert StateDirLock(tmp_path / "state").holder() is None
    again = StateDirLock(tmp_path / "state").acquire()  # free once released (or once the holder died)
    again.release()


def test_the_lock_is_taken_on_a_full_disk(tmp_path: Path) -> None:
    # writing the pid into the lock file on a full disk was a traceback and exit 1
    with small_disk(tmp_path / "disk", 1) as disk:
        fill(disk)
        lock = StateDirLock(disk).acquire()
        try:
            with pytest.raises(ConfigError, match=r"in use by another expresso-edge daemon \(pid unknown\)"):
                StateDirLock(disk).acquire()
        finally:
            lock.release()


def test_a_first_start_on_a_full_disk_is_named_as_such_by_check_config_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # run said "not writable ... create it owned by the daemon's user"; check-config called it valid
    with small_disk(tmp_path / "disk", 1) as disk:
        fill(disk)
        path = merged(tmp_path, {"device": {"state_dir": str(disk)}})
        code, report = check(path, capsys)
        assert code == 3 and "is full: the device secret cannot be created" in failed(report)["state files"]
        assert main(["run", "--config", str(path)]) == 3
        err = capsys.readouterr().err
        assert failed(report)["state files"] in err and "Traceback" not in err
