"""Control messages to one device, and the wait for its correlated reply.

A message gets a ``request_id`` (unless it has one), is checked against the shipped control schema, passes
through an optional ``signer`` (e.g. ``functools.partial(edge.trust.control_auth.sign_control, private_key=...,
key_id=..., device=..., ttl_s=60)`` for a device that requires signed control), and is published with QoS 1, not
retained. Over MQTT 5 it carries a Response Topic and Correlation Data (the ``request_id``). The reply is whichever
comes first: a message on the Response Topic with that Correlation Data (or ``request_id``), or a status the device
publishes after our message whose ``control.request_id`` is ours (what every device version publishes). Either
must be valid against its shipped schema and name the device; the retained status the broker hands over on
subscribing predates our message, so it is never taken for the answer (it may answer an earlier use of the id).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.client.connection import Connection, refusal, refused
from edge.control import parse_control
from edge.errors import BrokerError, ExpressoError
from edge.schemas import TOPIC_LEVEL, schema_errors

log = logging.getLogger(__name__)

Signer = Callable[[dict[str, Any]], dict[str, Any]]


class ControlReplyTimeoutError(ExpressoError):
    """No reply with our ``request_id`` arrived in time (the device may be offline: its status says so)."""

    exit_code = 8


@dataclass(frozen=True)
class Reply:
    """The device's answer: ``accepted`` and, when not, ``error``; ``via`` is ``response`` or ``status``."""

    request_id: str
    accepted: bool
    command: str | None
    error: str | None
    via: str
    document: dict[str, Any]


def _reply_from(document: Any, request_id: str, device: str, via: Literal["status", "response"]) -> Reply | None:
    """A reply when ``document`` (a status, or a control reply on the Response Topic) is valid, comes from
    ``device`` and answers ``request_id`` (the Response Topic's Correlation Data was checked by the caller)."""
    errors = schema_errors(document, "status" if via == "status" else "control-reply")
    if errors or document["device"] != device:
        log.warning("ignored a %s message from %s that is not a valid reply: %s", via, device, "; ".join(errors))
        return None
    answer = document["control"] if via == "status" else document
    if answer is None:
        return None
    # on the Response Topic, a message the device could not parse far enough is answered with request_id null
    if answer["request_id"] != request_id and not (via == "response" and answer["request_id"] is None):
        return None
    return Reply(request_id, bool(answer["accepted"]), answer["command"], answer["error"], via, document)


class ControlSender:
    """Sends control messages through one broker connection (opened per :meth:`send`)."""

    def __init__(self, connection: Connection, *, prefix: str = "expresso", signer: Signer | None = None) -> None:
        self._connection = connection
        self._prefix = prefix.rstrip("/")
        self._signer = signer

    def prepare(self, message: dict[str, Any]) -> dict[str, Any]:
        """The message as it will be sent: with a ``request_id``, schema-checked, then signed (when a signer is set)."""
        prepared = {**message, "request_id": message.get("request_id") or f"r-{uuid.uuid4().hex[:16]}"}
        parse_control(json.dumps(prepared).encode())  # raises ControlMessageError naming what is wrong
        return self._signer(prepared) if self._signer else prepared

    def send(self, device: str, message: dict[str, Any], *, timeout: float = 10.0) -> Reply:
        """Publish ``message`` to ``device`` and wait up to ``timeout`` seconds for the correlated reply."""
        prepared = self.prepare(message)
        request_id = str(prepared["request_id"])
        base = f"{self._prefix}/{TOPIC_LEVEL}/{device}"
        response_topic = f"{base}/reply/{uuid.uuid4().hex[:12]}"
        v5 = self._connection.protocol == "5"
        replies: list[Reply] = []
        done = threading.Event()
        subscribed = threading.Event()

        def on_message(client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
            try:
                document = json.loads(msg.payload) if msg.payload else None
            except ValueError:
                return
            via: Literal["status", "response"] = "status" if msg.topic == f"{base}/status" else "response"
            if via == "status" and msg.retain:
                return  # handed over on subscribing: it predates our message
            correlation = getattr(msg.properties, "CorrelationData", None)
            if via == "response" and correlation not in (None, request_id.encode()):
                return
            reply = _reply_from(document, request_id, device, via)
            if reply is not None and not done.is_set():
                replies.append(reply)
                done.set()

        filters = [f"{base}/status", *([response_topic] if v5 else [])]
        refusals: list[str] = []

        def on_subscribe(client: paho.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Any) -> None:
            refusals.append(refused(filters, codes))
            subscribed.set()

        client = self._connection.client()
        client.on_message = on_message
        client.on_subscribe = on_subscribe
        self._connection.connect(client)
        try:
            client.subscribe([(topic_filter, 1) for topic_filter in filters])
            if not subscribed.wait(timeout):
                raise BrokerError(f"no subscription at {self._connection.description}", fix="check the broker and ACL")
            if refusals[0]:  # the reply could never arrive: not a device that is offline
                raise refusal(self._connection.description, refusals[0])
            properties = None
            if v5:
                properties = Properties(PacketTypes.PUBLISH)
                properties.ResponseTopic = response_topic
                properties.CorrelationData = request_id.encode()
            info = client.publish(f"{base}/control", json.dumps(prepared), qos=1, retain=False, properties=properties)
            info.wait_for_publish(timeout)
            if not done.wait(timeout):
                raise ControlReplyTimeoutError(
                    f"no reply to {prepared['command']} (request_id {request_id}) from {device} in {timeout:g} s",
                    fix="check that the device is online (its status topic) and that --prefix and --device are right",
                )
        finally:
            client.disconnect()
            client.loop_stop()
        return replies[0]
