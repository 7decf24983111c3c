"""An integrator worker: subscribes to the devices' topics, checks each message, stores it once, then acks it.

The acknowledgement (PUBACK) is sent only after the store has committed (paho's manual acks), so a crash or a
store failure loses nothing: the broker redelivers to the worker's persistent session, and the store's unique
``message_id`` turns the redelivery into a counted duplicate. With ``group`` the worker subscribes to
``$share/<group>/...``: the broker hands each message to one of the group's workers (MQTT 5; Mosquitto, EMQX,
HiveMQ and VerneMQ also accept it from MQTT 3.1.1 clients).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from edge.client.connection import Connection, refusal, refused
from edge.client.messages import KINDS, Checked, check
from edge.client.stores import Store, StoreError
from edge.errors import BrokerError
from edge.schemas import TOPIC_LEVEL

log = logging.getLogger(__name__)
Outcome = Literal["stored", "duplicate", "invalid"]
COUNTER: dict[Outcome, str] = {"stored": "stored", "duplicate": "duplicates", "invalid": "invalid"}


class Integrator:
    """One worker: ``start()``, then messages flow into ``store`` until ``stop()``; ``counts`` says how many."""

    def __init__(
        self,
        store: Store,
        connection: Connection,
        *,
        prefix: str = "expresso",
        kinds: Sequence[str] = KINDS,
        group: str | None = None,
        client_id: str | None = None,
        session_expiry_s: int = 86_400,
        on_message: Callable[[Checked, Outcome], None] | None = None,
    ) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown message kinds {sorted(unknown)}; choose from {KINDS}")
        self.store = store
        self._connection = connection
        self._on_message = on_message
        share = f"$share/{group}/" if group else ""
        self.filters = [f"{share}{prefix.rstrip('/')}/{TOPIC_LEVEL}/+/{kind}" for kind in kinds]
        # a persistent session needs a client id the broker recognises next time
        self._expiry = session_expiry_s if client_id else 0
        self._client = connection.client(client_id, session_expiry_s=self._expiry)
        self._client.manual_ack_set(True)
        self._client.on_connect = self._handle_connect
        self.subscribed = threading.Event()
        self._refused = ""
        self._client.on_subscribe = self._handle_subscribe
        self._client.on_message = self._handle_message
        self._client.reconnect_delay_set(1, 8)
        self.counts = {"received": 0, "stored": 0, "duplicates": 0, "invalid": 0}
        self._lock = threading.Lock()
        self.failed: StoreError | None = None
        """Set when the store refused a message: the worker stopped acknowledging and should be stopped."""

    def start(self, timeout: float = 10.0) -> None:
        """Connect, subscribe, and wait for the broker to confirm the subscription."""
        self._connection.connect(self._client, session_expiry_s=self._expiry)
        if not self.subscribed.wait(timeout):
            self._client.loop_stop()
            raise BrokerError(
                f"no subscription at {self._connection.description} within {timeout:.0f} s",
                fix="check the broker address, the credentials and that the ACL lets this user read the topics",
            )
        if self._refused:  # a worker that would receive nothing, silently
            self._client.disconnect()
            self._client.loop_stop()
            raise refusal(self._connection.description, self._refused)

    def stop(self, *, close_store: bool = True) -> None:
        """Disconnect (the persistent session keeps what arrives meanwhile) and close the store."""
        self._client.disconnect()
        self._client.loop_stop()
        if close_store:
            self.store.close()

    def handle(self, topic: str, payload: bytes) -> Outcome:
        """Check and store one message (the part without MQTT); raises :class:`StoreError` when not stored."""
        message = check(topic, payload)
        now = time.time()
        outcome: Outcome
        if message.valid:
            outcome = "stored" if self.store.add(message, now) else "duplicate"
        else:
            log.warning("invalid message on %s kept aside: %s", topic, "; ".join(message.errors))
            self.store.reject(message, now)
            outcome = "invalid"
        with self._lock:
            self.counts["received"] += 1
            self.counts[COUNTER[outcome]] += 1
        if self._on_message is not None:
            self._on_message(message, outcome)
        return outcome

    def _handle_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error("the broker refused the connection: %s", reason)
            return
        client.subscribe([(topic_filter, 1) for topic_filter in self.filters])

    def _handle_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reason_codes: list[ReasonCode], properties: Any
    ) -> None:
        self._refused = refused(self.filters, reason_codes)
        if self._refused:  # also after a reconnect, when start() has returned
            log.error("%s", refusal(self._connection.description, self._refused))
        self.subscribed.set()

    def _handle_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if self.failed is not None:
            return  # not acknowledged: the broker redelivers after the restart
        try:
            self.handle(message.topic, bytes(message.payload))
        except Exception as error:  # the store or a bug: stop acknowledging, the broker keeps the message
            failure = error if isinstance(error, StoreError) else StoreError(f"handling a message failed: {error!r}")
            log.error("%s; stopping without acknowledging", failure)
            self.failed = failure
            return
        if message.qos > 0:
            client.ack(message.mid, message.qos)
