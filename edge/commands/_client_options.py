"""Broker options shared by the integrator commands (``subscribe``, ``control``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from edge.client.connection import Connection


def add_broker_options(parser: argparse.ArgumentParser) -> None:
    """--host, --port, --mqtt, --username (password: $EXPRESSO_MQTT_PASSWORD), --tls, --ca/--cert/--key, --prefix."""
    group = parser.add_argument_group("broker")
    group.add_argument("--host", default="localhost", help="broker host (default localhost)")
    group.add_argument("--port", type=int, help="broker port (default 1883, or 8883 with --tls)")
    group.add_argument("--mqtt", choices=("5", "3.1.1"), default="5", help="MQTT version (default 5)")
    group.add_argument("--username", help="broker user; the password is read from $EXPRESSO_MQTT_PASSWORD")
    group.add_argument("--tls", action="store_true", help="TLS, verifying the broker's certificate and host name")
    group.add_argument("--ca", type=Path, help="CA file (PEM) that signed the broker's certificate")
    group.add_argument("--cert", type=Path, help="client certificate (PEM) for X.509 authentication")
    group.add_argument("--key", type=Path, help="private key (PEM) of --cert")
    group.add_argument(
        "--prefix", type=_prefix, default="expresso", help="the devices' mqtt.topic_prefix (default expresso)"
    )


def _prefix(value: str) -> str:
    """A topic prefix: not empty, no wildcard (+, #) and no NUL, which no topic filter may hold."""
    if not value.strip("/") or any(c in value for c in "+#\0"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a topic prefix (no +, # or NUL; e.g. expresso or site/a)")
    return value


def connection_from(args: argparse.Namespace) -> Connection:
    """The :class:`Connection` the options describe (``--ca``/``--cert``/``--key`` imply ``--tls``)."""
    tls = bool(args.tls or args.ca or args.cert or args.key)
    return Connection(
        host=args.host,
        port=args.port or (8883 if tls else 1883),
        protocol=args.mqtt,
        username=args.username,
        password=os.environ.get("EXPRESSO_MQTT_PASSWORD") if args.username else None,
        tls=tls,
        ca_file=args.ca,
        cert_file=args.cert,
        key_file=args.key,
    )
