"""A paho MQTT 5 client with credentials that reports the broker's PUBACK and SUBACK reason codes."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


class AclClient:
    """Connects as ``user``; ``publish`` and ``subscribe`` return whether the broker allowed them."""

    def __init__(self, port: int, user: str, password: str, *, client_id: str | None = None) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.received: list[paho.MQTTMessage] = []
        self._cond = threading.Condition()
        self._acks: dict[int, Any] = {}
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{uuid.uuid4().hex[:10]}", protocol=paho.MQTTv5
        )
        self._client.username_pw_set(user, password)
        self._client.on_publish = self._on_ack
        self._client.on_subscribe = self._on_suback
        self._client.on_message = self._on_message
        connected = threading.Event()
        self.connect_reason: Any = None

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            self.connect_reason = reason
            connected.set()

        self._client.on_connect = on_connect
        self._client.connect("127.0.0.1", port, keepalive=10)
        self._client.loop_start()
        if not connected.wait(10):
            raise RuntimeError("no CONNACK")

    def _on_ack(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._cond:
            self._acks[mid] = reason
            self._cond.notify_all()

    def _on_suback(self, client: Any, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        with self._cond:
            self._acks[mid] = reasons
            self._cond.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((message.topic, bytes(message.payload)))
            self.received.append(message)
            self._cond.notify_all()

    def _ack(self, mid: int) -> Any:
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._acks, 10):
                raise RuntimeError("no acknowledgement from the broker")
            return self._acks.pop(mid)

    def publish(self, topic: str, payload: bytes = b"{}", *, retain: bool = False, properties: Any = None) -> bool:
        """QoS 1 publish; True when the broker's PUBACK says it was accepted (not 'Not authorized')."""
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        return not self._ack(info.mid).is_failure

    def subscribe(self, topic_filter: str) -> bool:
        """True when the SUBACK grants the subscription."""
        _, mid = self._client.subscribe(topic_filter, qos=1)
        return not any(reason.is_failure for reason in self._ack(mid))

    def wait_for(self, topic: str, timeout: float = 5.0) -> bool:
        """Whether a message on ``topic`` arrived within ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: any(t == topic for t, _ in self.messages), timeout)

    def close(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()
