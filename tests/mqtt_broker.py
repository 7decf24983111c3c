"""A real Mosquitto on a free loopback port (stoppable and restartable on the same port), a paho subscriber
that records what arrives, and a throw-away CA with a server certificate for TLS tests (openssl CLI)."""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "mosquitto")


def mosquitto_path() -> str | None:
    """The mosquitto binary, or None when it is not installed."""
    for candidate in MOSQUITTO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a test CA and a server certificate for 127.0.0.1/localhost signed by it."""

    ca: Path
    server_cert: Path
    server_key: Path


def make_tls_files(directory: Path, name: str = "test") -> TlsFiles:
    """Create a CA and a server certificate (SAN IP:127.0.0.1, DNS:localhost) with the openssl CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = directory / f"{name}-ca.key", directory / f"{name}-ca.pem"
    key, csr, cert = (
        directory / f"{name}-server.key",
        directory / f"{name}-server.csr",
        directory / f"{name}-server.pem",
    )
    ext = directory / f"{name}-san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", f"/CN={name} test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(ext))  # fmt: skip
    return TlsFiles(ca=ca, server_cert=cert, server_key=key)


class Broker:
    """A Mosquitto process on 127.0.0.1:``port``; ``stop()`` and ``start()`` again keep the port.

    Optional: ``persistence`` (sessions survive a restart), ``tls`` (a TLS-only listener), ``users`` (name ->
    password; anonymous clients are then refused), ``acl`` (the text of an ACL file) and ``options`` (more lines of
    mosquitto.conf).
    """

    host = "127.0.0.1"

    def __init__(
        self,
        workdir: Path,
        *,
        persistence: bool = False,
        tls: TlsFiles | None = None,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        options: Sequence[str] = (),
    ) -> None:
        binary = mosquitto_path()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self._binary = binary
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._persistence = persistence
        self._tls = tls
        self._users = users
        self._acl = acl
        self._options = list(options)
        self._process: subprocess.Popen[bytes] | None = None

    def _config(self) -> Path:
        # run as ourselves: started as root, mosquitto would switch to user "mosquitto" and fail to save persistence
        lines = [f"listener {self.port} {self.host}", f"user {getpass.getuser()}"]
        if self._users:
            passwords = self.workdir / "passwords"
            passwords.write_text("")
            for name, password in self._users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwords), name, password], check=True)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if self._acl is not None:
            acl_file = self.workdir / "acl"
            acl_file.write_text(self._acl)
            lines.append(f"acl_file {acl_file}")
        if self._persistence:
            lines += ["persistence true", f"persistence_location {self.workdir}/"]
        else:
            lines.append("persistence false")
        if self._tls is not None:
            lines += [f"cafile {self._tls.ca}", f"certfile {self._tls.server_cert}", f"keyfile {self._tls.server_key}"]
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join([*lines, *self._options]) + "\n")
        return path

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until its port accepts connections."""
        log_path = self.workdir / "mosquitto.log"
        log = log_path.open("ab")
        said_before = log_path.stat().st_size
        self._process = subprocess.Popen([self._binary, "-c", str(self._config())], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                said = log_path.read_bytes()[said_before:].decode(errors="replace")[-2000:]
                # a restart on the same port: a client's connection (or its TIME_WAIT) may hold it a moment
                if "Address already in use" in said and time.monotonic() + 0.5 < deadline:
                    time.sleep(0.5)
                    said_before = log_path.stat().st_size
                    self._process = subprocess.Popen([self._binary, "-c", str(self._config())], stdout=log, stderr=log)
                    continue
                raise RuntimeError(f"mosquitto exited: {said}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not open port {self.port} within {timeout} s")

    def pid(self) -> int:
        """The running broker's process id."""
        if self._process is None:
            raise RuntimeError("the broker is not running")
        return self._process.pid

    def kill(self) -> None:
        """Kill the broker (SIGKILL: it saves nothing) and wait for it to exit."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)
        self._process = None

    def stop(self) -> None:
        """Stop the broker (SIGTERM, which also saves persistence) and wait for it to exit."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
        self._process = None


@dataclass(frozen=True)
class Received:
    """One message as the subscriber saw it."""

    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return json.loads(self.payload)


class Subscriber:
    """A paho MQTT 5 client subscribed to ``topic_filter`` with QoS 1, recording every message.

    With ``session=True`` it keeps a persistent session (clean_start off, long expiry) so the broker queues
    messages for it while it is away, as an integrator's backend would.
    """

    def __init__(self, host: str, port: int, topic_filter: str, *, session: bool = False) -> None:
        self.messages: list[Received] = []
        self._filter = topic_filter
        self._cond = threading.Condition()
        self.subscribed = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:12]}", protocol=paho.MQTTv5
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *args: self.subscribed.set()
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, 1)
        properties = None
        if session:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600
        self._client.connect(host, port, keepalive=10, clean_start=not session, properties=properties)
        self._client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("the test subscriber could not subscribe")

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        client.subscribe(self._filter, qos=1)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Received(message.topic, bytes(message.payload), bool(message.retain)))
            self._cond.notify_all()

    def on(self, suffix: str) -> list[Received]:
        """Messages whose topic ends with ``/<suffix>``."""
        with self._cond:
            return [m for m in self.messages if m.topic.endswith("/" + suffix)]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate(messages)`` holds; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(list(self.messages)), timeout)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish with QoS 1 and wait for the broker's acknowledgement."""
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()
