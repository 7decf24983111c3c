"""Brokers for ``python -m edge demo``: a given URL, a Mosquitto started on a free loopback port, or amqtt.

Not a subcommand (the leading underscore keeps it out of discovery): the demo's broker plumbing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edge.errors import BrokerError, UsageError

MOSQUITTO_DIRS = ("/usr/sbin", "/usr/local/sbin")
"""Debian installs mosquitto in /usr/sbin, which is often not on a user's PATH."""


@dataclass(frozen=True)
class BrokerAddress:
    """Where the demo's broker listens and which MQTT protocol version it speaks."""

    host: str
    port: int
    protocol: str = "5"
    tls: bool = False
    description: str = ""


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://HOST[:PORT]`` (or ``mqtts://`` for TLS) as a :class:`BrokerAddress`."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise UsageError(f"--broker {url!r} is not mqtt://HOST:PORT", fix="write e.g. --broker mqtt://127.0.0.1:1883")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError as exc:
        raise UsageError(f"--broker {url!r} has an invalid port", fix="use a port between 1 and 65535") from exc
    return BrokerAddress(parts.hostname, port, tls=parts.scheme == "mqtts", description=f"broker {url}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, alive: Any = lambda: True) -> None:
    """Wait until ``host:port`` accepts connections, or raise :class:`BrokerError`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise BrokerError(f"the demo broker did not open {host}:{port}", fix="pass --broker mqtt://HOST:PORT instead")


def mosquitto_binary() -> str | None:
    """The mosquitto executable on PATH or in the sbin directories, or None."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path=":".join(MOSQUITTO_DIRS))


@contextlib.contextmanager
def mosquitto(binary: str) -> Iterator[BrokerAddress]:
    """A throw-away Mosquitto on a free loopback port, stopped on exit."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="expresso-demo-broker-") as workdir:
        conf = Path(workdir) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port("127.0.0.1", port, 10.0, alive=lambda: process.poll() is None)
            yield BrokerAddress("127.0.0.1", port, description=f"Mosquitto on 127.0.0.1:{port} ({binary})")
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()


@contextlib.contextmanager
def embedded_amqtt(plugins: dict[str, Any] | None = None) -> Iterator[BrokerAddress]:
    """An amqtt broker (MQTT 3.1.1 only) in a background event loop on a free loopback port; ``plugins`` adds amqtt
    plugin configurations (tests give it a topic ACL)."""
    from amqtt.broker import Broker

    for noisy in ("amqtt", "transitions"):  # they log each client and state change, and shutdown as an error
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    port = free_port()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}, **(plugins or {})},
    }
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="amqtt", daemon=True)
    thread.start()
    broker = Broker(config, loop=loop)
    asyncio.run_coroutine_threadsafe(broker.start(), loop).result(10)  # returns once it listens
    try:
        yield BrokerAddress("127.0.0.1", port, protocol="3.1.1", description=f"embedded amqtt on 127.0.0.1:{port}")
    finally:
        asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(15)
        asyncio.run_coroutine_threadsafe(_cancel_the_rest(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def _cancel_the_rest() -> None:
    """Cancel the tasks a broker leaves behind, so closing its loop destroys none still pending."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.contextmanager
def demo_broker(url: str | None) -> Iterator[BrokerAddress]:
    """The broker the demo talks to: ``url`` if given, else Mosquitto, else amqtt, else a clear error."""
    if url is not None:
        yield parse_broker_url(url)
        return
    binary = mosquitto_binary()
    if binary is not None:
        with mosquitto(binary) as address:
            yield address
        return
    try:
        import amqtt  # noqa: F401
    except ImportError:
        raise BrokerError(
            "no MQTT broker for the demo: mosquitto is not installed and the amqtt package is not importable",
            fix="install mosquitto (sudo apt-get install mosquitto), pip install amqtt, or pass --broker mqtt://HOST:PORT",
        ) from None
    with embedded_amqtt() as address:
        yield address
