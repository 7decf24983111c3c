"""How the client reaches the broker: address, MQTT version, credentials and TLS, as one value."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.errors import BrokerError, ConfigError


@dataclass(frozen=True)
class Connection:
    """A broker and how to log in; ``session_expiry_s`` > 0 with a fixed ``client_id`` keeps a persistent session
    (the broker queues QoS 1 messages while the client is away)."""

    host: str = "localhost"
    port: int = 1883
    protocol: Literal["5", "3.1.1"] = "5"
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls: bool = False
    keepalive_s: int = 30

    @property
    def description(self) -> str:
        """``mqtt[s]://host:port`` for messages."""
        return f"mqtt{'s' if self.tls else ''}://{self.host}:{self.port}"

    def client(self, client_id: str | None = None, *, session_expiry_s: int = 0) -> paho.Client:
        """A configured paho client (not connected)."""
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError(
                "--cert and --key go together (a client certificate needs its private key)", fix="pass both, or neither"
            )
        v5 = self.protocol == "5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"expresso-client-{uuid.uuid4().hex[:12]}",
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else not session_expiry_s,
        )
        if self.tls:
            client.tls_set_context(self._tls_context())
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        return client

    def _tls_context(self) -> ssl.SSLContext:
        """Verifying the broker (``ca_file``, else the system's CAs), with the client certificate when given."""
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            if self.cert_file and self.key_file:
                context.load_cert_chain(str(self.cert_file), str(self.key_file))
        except OSError as error:  # ssl.SSLError is one: not PEM, key and certificate do not match, unreadable
            raise ConfigError(
                f"cannot load the TLS files ({error})", fix="check --ca, --cert and --key: PEM files this user can read"
            ) from error
        return context

    def connect(self, client: paho.Client, *, session_expiry_s: int = 0) -> None:
        """Connect ``client`` (a persistent session when ``session_expiry_s`` > 0) and start its network thread."""
        try:
            if self.protocol == "5":
                properties = Properties(PacketTypes.CONNECT)
                properties.SessionExpiryInterval = session_expiry_s
                client.connect(
                    self.host, self.port, self.keepalive_s, clean_start=not session_expiry_s, properties=properties
                )
            else:
                client.connect(self.host, self.port, self.keepalive_s)
        except OSError as error:
            raise BrokerError(
                f"cannot reach the broker at {self.description}: {error}", fix="check --host, --port and --tls"
            ) from error
        client.loop_start()


def refused(filters: Sequence[str], reason_codes: Sequence[ReasonCode]) -> str:
    """The filters a SUBACK refused, with the broker's reasons (empty when all were granted)."""
    return ", ".join(f"{name} ({code})" for name, code in zip(filters, reason_codes, strict=False) if code.is_failure)


def refusal(description: str, filters: str) -> BrokerError:
    """The error for a refused subscription (an ACL that does not let this user read the topics)."""
    return BrokerError(
        f"the broker at {description} refused the subscription to {filters}",
        fix="check that the broker's ACL lets this user read these topics, and --prefix",
    )
