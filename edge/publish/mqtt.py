"""The broker connection (paho-mqtt 2.x): TLS, authentication, Last Will, reconnects and the outbox drain.

paho's network thread (``loop_start``) does the I/O and reconnects; before each reconnect the delay is set to a
capped exponential with jitter. A drain thread sends outbox rows in order (at most ``max_inflight`` unacknowledged)
and a row is deleted only in ``on_publish`` for its message id. paho keeps unacknowledged QoS 1 messages across
reconnects and resends them; after a restart the outbox resends whatever was not acknowledged. A PUBACK saying
"No matching subscribers" (MQTT 5 reason 0x10: the broker routed the summary to nobody, e.g. while integrators
re-subscribe after a broker restart) keeps the row, which is sent again ``outbox.unrouted_retry_s`` later. Every
callback is guarded: an exception is logged and never stops the network thread.
"""

from __future__ import annotations

import collections
import logging
import math
import random
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.errors import ConfigError
from edge.publish.broker_problems import ProblemKind, describe_connect_error, describe_refusal
from edge.publish.outbox import Outbox
from edge.publish.settings import MqttSettings, TlsSettings
from edge.schemas import TOPIC_LEVEL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplyTo:
    """Where an MQTT 5 request wants its reply: Response Topic and Correlation Data."""

    topic: str
    correlation: bytes | None


ControlHandler = Callable[[bytes, bool, ReplyTo | None], None]
NO_MATCHING_SUBSCRIBERS = 0x10
"""MQTT 5 PUBACK reason: accepted, but no subscription matched, so nobody will receive it."""


@dataclass(frozen=True)
class Topics:
    """The four topics of one device."""

    status: str
    summary: str
    health: str
    control: str

    @classmethod
    def for_device(cls, prefix: str, pseudonym: str) -> Topics:
        """``<prefix>/v2/<pseudonym>/<name>`` for each topic (the contract's major version as a level)."""
        base = f"{prefix.rstrip('/')}/{TOPIC_LEVEL}/{pseudonym}"
        return cls(f"{base}/status", f"{base}/summary", f"{base}/health", f"{base}/control")

    def is_reply_topic(self, topic: str) -> bool:
        """Whether an MQTT 5 Response Topic lies in ``<prefix>/v2/<pseudonym>/reply/...``, the only place a reply
        goes: a requester must not make the device publish on its summary or status, or on another device's."""
        reply = self.control.rsplit("/", 1)[0] + "/reply/"
        return topic.startswith(reply) and len(topic) > len(reply) and not any(c in topic for c in "+#\0")


def build_ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """A client context verifying the broker's certificate and host name (TLS 1.2+), with optional client cert."""
    asked: list[bool] = []

    def no_passphrase() -> bytes:  # without it OpenSSL prompts on the terminal: check-config hung waiting
        asked.append(True)
        return b""

    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file and tls.key_file:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file), password=no_passphrase)
    except (OSError, ssl.SSLError) as error:
        if asked:
            raise ConfigError(
                f"mqtt.tls.key_file {tls.key_file} is encrypted with a passphrase the daemon cannot type",
                fix="give the daemon an unencrypted key readable only by it (openssl pkey -in KEY -out KEY.plain; "
                "chmod 0600), e.g. through systemd's LoadCredential=",
            ) from error
        raise ConfigError(
            f"TLS files cannot be used (ca_file={tls.ca_file}, cert_file={tls.cert_file}, key_file={tls.key_file}): "
            f"{error}",
            fix="point mqtt.tls.* at readable PEM files (the CA that signed the broker, your client cert and key)",
        ) from error
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def read_password(settings: MqttSettings) -> str | None:
    """The broker password from ``password`` or the first line of ``password_file``."""
    if settings.password_file is None:
        return settings.password
    fix = "create it readable by the daemon's user, with the password on its first line"
    try:
        lines = settings.password_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:  # a binary file: a traceback and exit 1 before
        raise ConfigError(f"mqtt.password_file {settings.password_file} cannot be read ({error})", fix=fix) from error
    if not lines or not lines[0]:  # the broker would refuse every login, retried for ever
        raise ConfigError(f"mqtt.password_file {settings.password_file} has no password on its first line", fix=fix)
    return lines[0]


def backoff_delay(attempt: int, low: float, high: float) -> float:
    """Capped exponential delay with equal jitter: between half and all of ``min(high, low * 2**attempt)``."""
    cap = min(high, low * 2 ** min(attempt, 30))
    return cap / 2 + random.uniform(0, cap / 2)


class MqttLink:
    """One broker connection that drains an outbox and carries status, health and control."""

    def __init__(
        self,
        settings: MqttSettings,
        topics: Topics,
        outbox: Outbox,
        *,
        client_id: str,
        will: bytes,
        online: Callable[[], bytes],
        on_control: ControlHandler,
        clock: Callable[[], float] = time.time,
        max_hold_s: float = math.inf,
    ) -> None:
        self._settings = settings
        self._clock = clock  # a held summary leaves once this clock passes its not_before
        self._max_hold_s = max_hold_s  # held longer than this from now: the clock was stepped back, so it is due
        self.topics = topics
        self._outbox = outbox
        self._online = online
        self._on_control = on_control
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # held from the erase check to the end of publish(): an erase waits
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox row id
        self._early: dict[int, ReasonCode] = {}  # acks that came before publish() returned: mid -> reason
        self._unrouted: int | None = None  # oldest row the broker routed to nobody: resent from there...
        self._unrouted_at = 0.0  # ...once time.monotonic() passes this
        self._publishing = False  # the drain thread is inside publish(): only then can an ack come early
        self._last_sent = 0
        self._attempt = 0
        self.refused = 0
        self.problem = "not connected yet"
        """Why the link is down ('' while connected): for ``systemctl status`` and the log."""
        self.failures: collections.Counter[ProblemKind] = collections.Counter()
        """Failed connection attempts per kind (tls, auth, unreachable) since start, for health."""
        self._drainer: threading.Thread | None = None
        v5 = settings.protocol == "5"
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else True,
        )
        # The drain bounds unacknowledged summaries itself (outbox.max_inflight). paho's own bound stays off: after
        # drop_out_messages (an erase) paho 2.2 does not lower its in-flight count, which would block every
        # later QoS 1 publish until a reconnect.
        self._client.max_inflight_messages_set(0)
        if settings.tls.enabled:
            self._client.tls_set_context(build_ssl_context(settings.tls))
        if settings.username is not None:
            self._client.username_pw_set(settings.username, read_password(settings))
        self._client.will_set(topics.status, will, qos=1, retain=True)
        self._client.on_connect = self._guard(self._handle_connect)
        self._client.on_disconnect = self._guard(self._handle_disconnect)
        self._client.on_connect_fail = self._guard(self._handle_connect_fail)
        self._client.on_publish = self._guard(self._handle_publish)
        self._client.on_message = self._guard(self._handle_message)
        self._set_delay()

    def start(self) -> None:
        """Connect in the background (retrying until it works) and start draining the outbox."""
        s = self._settings
        if s.protocol == "5":
            self._client.connect_async(s.host, s.port, s.keepalive_s, clean_start=True)
        else:
            self._client.connect_async(s.host, s.port, s.keepalive_s)
        self._client.loop_start()
        self._drainer = threading.Thread(target=self._drain_loop, name="outbox-drain", daemon=True)
        self._drainer.start()

    def stop(self, offline: bytes | None, timeout: float) -> None:
        """Publish ``offline`` (when connected), disconnect cleanly (so no Last Will) and stop the threads."""
        self._stopping.set()
        self._wake.set()
        if self._drainer is not None:
            self._drainer.join(timeout)
        if offline is not None and self.connected.is_set():
            info = self._client.publish(self.topics.status, offline, qos=1, retain=True)
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                info.wait_for_publish(timeout)
        self._client.disconnect()
        self._client.loop_stop()

    def notify(self) -> None:
        """New rows wait in the outbox."""
        self._wake.set()

    def set_will(self, payload: bytes) -> None:
        """The Last Will used from the next (re)connection on."""
        self._client.will_set(self.topics.status, payload, qos=1, retain=True)

    def publish_status(self, payload: bytes) -> None:
        """Retained QoS 1 status, not stored in the outbox (the next connection publishes the current one)."""
        if self.connected.is_set():
            self._client.publish(self.topics.status, payload, qos=1, retain=True)

    def publish_reply(self, reply_to: ReplyTo, payload: bytes) -> bool:
        """A control reply to an MQTT 5 Response Topic (QoS 1, not retained), Correlation Data echoed; False when
        offline or the topic is not under this device's ``reply/`` (the broker's ACL may still drop it)."""
        if not self.connected.is_set():
            return False
        if not self.topics.is_reply_topic(reply_to.topic):
            root = self.topics.control.rsplit("/", 1)[0]
            log.debug("no reply to Response Topic %r: only %s/reply/... is answered", reply_to.topic, root)
            return False
        properties = Properties(PacketTypes.PUBLISH)
        if reply_to.correlation is not None:
            properties.CorrelationData = reply_to.correlation
        info = self._client.publish(reply_to.topic, payload, qos=1, retain=False, properties=properties)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def publish_health(self, payload: bytes) -> bool:
        """QoS 0 health message; dropped (False) while offline."""
        if not self.connected.is_set():
            return False
        return self._client.publish(self.topics.health, payload, qos=0).rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def replace_outbox(self, outbox: Outbox) -> None:
        """Drain another outbox from now on (after an erase): acks for the old one's rows are ignored, and what
        paho holds unacknowledged is dropped so that no summary from before the erase is sent again on reconnect.
        """
        with self._send_lock:
            with self._lock:
                self._outbox = outbox
                self._inflight.clear()
                self._early.clear()
                self._last_sent = 0
                self._unrouted = None
            # outside self._lock: paho holds its message mutex when it calls _handle_publish, which takes self._lock
            dropped = self._client.drop_out_messages()
        if dropped:
            log.info("erase: dropped %d unacknowledged messages held for a resend", len(dropped))

    def _drain_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            if self.connected.is_set():
                try:
                    self._send_some()
                except Exception:
                    log.exception("outbox drain failed; retrying")

    def _send_some(self) -> None:
        self._rewind_unrouted()
        with self._lock:
            room = self._settings.outbox.max_inflight - len(self._inflight)
            outbox, after = self._outbox, self._last_sent
        if room <= 0:
            return
        rows = outbox.pending(after=after, limit=room, now=self._clock(), max_hold=self._max_hold_s)
        with self._lock:
            flying = set(self._inflight.values())
        for row in rows:
            if row.row_id in flying:  # rewound past it (see _rewind_unrouted): its PUBACK is still due
                with self._lock:
                    self._last_sent = max(self._last_sent, row.row_id)
                continue
            if not self.connected.is_set() or self._stopping.is_set():
                return
            with self._send_lock:
                with self._lock:
                    if outbox is not self._outbox:  # erased since these rows were read: none of them may leave
                        return
                    self._publishing = True
                try:
                    info = self._client.publish(row.topic, row.payload, qos=row.qos)
                except BaseException:
                    with self._lock:
                        self._publishing = False
                    raise
                with self._lock:
                    self._publishing = False  # in the same hold as the registration: no ack can fall in between
                    reason = self._early.pop(info.mid, None)
                    self._early.clear()  # acks of status/health publishes: a stale mid must never ack a later row
                    self._last_sent = row.row_id
                    if reason is None:
                        self._inflight[info.mid] = row.row_id
            if reason is not None:
                self._settle(outbox, row.row_id, reason)
        if len(rows) == room:
            self._wake.set()  # the batch was full: more may wait (acks, new rows and the 0.5 s poll wake it too)

    def _handle_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        with self._lock:
            row_id = self._inflight.pop(mid, None)
            outbox = self._outbox
            if row_id is None and self._publishing:
                self._early[mid] = reason
        if row_id is not None:
            self._settle(outbox, row_id, reason)
            self._wake.set()

    def _settle(self, outbox: Outbox, row_id: int, reason: ReasonCode) -> None:
        if reason.is_failure:
            self.refused += 1
            log.error("the broker refused a summary (kept in the outbox; retried after a restart)")
        elif reason.value == NO_MATCHING_SUBSCRIBERS:
            with self._lock:
                if outbox is self._outbox and (self._unrouted is None or row_id < self._unrouted):
                    if self._unrouted is None:
                        self._unrouted_at = time.monotonic() + self._settings.outbox.unrouted_retry_s
                        log.warning(
                            "no integrator is subscribed to %s: summaries stay in the outbox, sent again in %g s",
                            self.topics.summary,
                            self._settings.outbox.unrouted_retry_s,
                        )
                    self._unrouted = row_id
        else:
            outbox.ack(row_id)

    def _rewind_unrouted(self) -> None:
        """Once the retry delay has passed, read the outbox again from the oldest row routed to nobody (rows still
        in flight are skipped by the drain)."""
        with self._lock:
            if self._unrouted is not None and time.monotonic() >= self._unrouted_at:
                self._last_sent = min(self._last_sent, self._unrouted - 1)
                self._unrouted = None

    def _handle_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if reason.is_failure:
            self._failed(*describe_refusal(reason, self._where))
            return
        self._attempt = 0
        self.problem = ""
        log.info("connected to broker %s:%s", self._settings.host, self._settings.port)
        if self._settings.protocol == "5":  # retain-as-published: a retained control message is seen as such live
            client.subscribe(self.topics.control, options=SubscribeOptions(qos=1, retainAsPublished=True))
        else:  # 3.1.1: the broker clears the retain flag on live delivery (docs/security.md)
            client.subscribe(self.topics.control, qos=1)
        client.publish(self.topics.status, self._online(), qos=1, retain=True)
        self.connected.set()
        self._wake.set()

    def _handle_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was:
            self.problem = f"connection lost: {reason}"
        if was and not self._stopping.is_set():
            log.warning("lost the broker connection (%s); reconnecting", reason)
        self._set_delay()

    def _handle_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        # paho calls this inside its ``except OSError`` around the connect: the exception is the one in flight
        self._failed(*describe_connect_error(sys.exc_info()[1], self._where))
        self._set_delay()

    @property
    def _where(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    def _failed(self, kind: ProblemKind, problem: str) -> None:
        """Count a failed attempt; log it when the reason changed (retries of the same one are not repeated)."""
        self.failures[kind] += 1
        if problem != self.problem:
            log.log(logging.WARNING if kind == "unreachable" else logging.ERROR, "%s; retrying", problem)
        self.problem = problem

    def _handle_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        if message.topic == self.topics.control:
            properties = getattr(message, "properties", None)
            topic = getattr(properties, "ResponseTopic", None) if properties is not None else None
            reply_to = ReplyTo(topic, getattr(properties, "CorrelationData", None)) if topic else None
            self._on_control(bytes(message.payload), bool(message.retain), reply_to)

    def _set_delay(self) -> None:
        delay = backoff_delay(self._attempt, self._settings.reconnect_min_s, self._settings.reconnect_max_s)
        self._attempt += 1
        whole = max(1, round(delay))
        self._client.reconnect_delay_set(min_delay=whole, max_delay=whole)

    @staticmethod
    def _guard(callback: Callable[..., None]) -> Callable[..., None]:
        def guarded(*args: Any) -> None:
            try:
                callback(*args)
            except Exception:
                log.exception("MQTT callback %s failed; carrying on", callback.__name__)

        return guarded
