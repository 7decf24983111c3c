"""The facade of the "scores out" half: privacy gate, payloads, durable outbox, broker link and control.

The daemon builds one :class:`Reporter`, asks ``processing_allowed`` before it touches a frame, hands it the
summaries the aggregator emits and a health figure now and then, and forgets its in-memory state whenever
``epoch`` moves (an erase or a withdrawn consent; the epoch moves before ``processing_allowed`` turns false, so a
loop that reads ``processing_allowed`` first and the epoch second never misses one). Control messages are
applied on the MQTT network thread under the reporter's lock.

    reporter = Reporter(cfg.mqtt, cfg.privacy, state_dir, bundle.identity)
    reporter.start()
    agg = Aggregator(cfg.aggregation, bundle.identity, bundle.outputs)
    ...  # per frame, only while reporter.processing_allowed; agg.discard() when reporter.epoch has moved:
    reporter.submit(agg.observe_frame(ts, face_present)); agg.add_window(outcome); reporter.submit(agg.due(now))
    reporter.health({"frames_per_s": 29.8, "frames_dropped": 3}, backend="onnxruntime-cpu")
    reporter.set_status("running")            # or "waiting_for_consent", "paused", "input_lost", ...
    reporter.submit(agg.close(now)); reporter.stop(timeout=5.0)   # on SIGTERM / end of video
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edge.aggregate import Summary
from edge.control import ControlCommand, ControlMessageError
from edge.errors import ConfigError
from edge.privacy.consent import ConsentState, ConsentStore, erase
from edge.privacy.pseudonym import device_pseudonym
from edge.privacy.release import PrivacyGate
from edge.publish.control_intake import ControlIntake
from edge.publish.mqtt import MqttLink, ReplyTo, Topics
from edge.publish.outbox import NewMessage, Outbox, OutboxWriteError
from edge.publish.payloads import (
    Activity,
    ControlReply,
    coarse_seconds,
    control_reply_payload,
    encode,
    health_payload,
    status_payload,
    summary_payload,
)
from edge.publish.presence import PeriodSnapshot
from edge.publish.settings import MqttSettings, PrivacySettings
from edge.trust.settings import TrustSettings

log = logging.getLogger(__name__)

MAX_UNSTORED = 1000
"""Summaries kept in memory while the state directory refuses writes; beyond that the oldest is lost."""
PRESENCE_METRICS = frozenset(
    {"windows_scored", "windows_rejected", "windows_late", "summaries_queued", "summaries_refused", "inference_ms"}
    | {"summaries_unstored", "summaries_lost", "latency_ms", "cpu_percent", "frames_dropped"}
)
"""Health metrics that move when a face is present: held back to the previous coarse period when summaries are."""


@dataclass(frozen=True)
class GatedSummary:
    """A summary through the privacy gate, encoded, waiting for the outbox to take it."""

    message_id: str
    payload: bytes
    kind: str
    not_before: float
    epoch: int | None
    windows_scored: int


class Reporter:
    """Publishes summaries, health and status for one device; applies control messages."""

    def __init__(
        self,
        mqtt: MqttSettings,
        privacy: PrivacySettings,
        state_dir: Path,
        identity: Mapping[str, str],
        *,
        trust: TrustSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._mqtt_settings = mqtt
        self._privacy = privacy
        self.state_dir = state_dir
        self._identity = dict(identity)
        self._clock = clock
        self._lock = threading.RLock()
        self.epoch = 0
        """Counts erases and withdrawn consents: a summary built from data older than the last one is dropped."""
        self.pseudonym = device_pseudonym(state_dir)
        self.topics = Topics.for_device(mqtt.topic_prefix, self.pseudonym)
        self._consent_store = ConsentStore(state_dir)
        self.control = ControlIntake(trust or TrustSettings(), device=self.pseudonym, state_dir=state_dir, clock=clock)
        self.consent: ConsentState = self._consent_store.apply_config(privacy.consent)
        self._consent_stamp = self._consent_store.stamp()
        self._gate = PrivacyGate(privacy, state_dir, clock)
        self.outbox = Outbox(state_dir, mqtt.outbox)
        self._unstored: collections.deque[GatedSummary] = collections.deque()
        self.summaries_lost = 0
        """Summaries that could not be stored (disk full) before more than MAX_UNSTORED waited, or at stop."""
        self.waiting_at_stop = 0
        """Summaries left in the outbox by :meth:`stop` (sent after the next start)."""
        self._presence = PeriodSnapshot(privacy.time_resolution_s, enabled=privacy.hold_until_period_end)
        self._activity: Activity = "starting"
        self._detail: str | None = None
        self._reply: ControlReply | None = None
        self._link: MqttLink | None = None
        if mqtt.enabled:
            self._link = MqttLink(
                mqtt,
                self.topics,
                self.outbox,
                client_id=mqtt.client_id or self.pseudonym,  # = the topics' device segment: ACL %c patterns work
                will=self._status("offline", at=False),
                online=lambda: self._status("online"),
                on_control=self._handle_control,
                clock=clock,
                max_hold_s=privacy.time_resolution_s,
            )

    @property
    def processing_allowed(self) -> bool:
        """True only with consent recorded and processing not paused."""
        return self.consent.processing_allowed

    @property
    def connected(self) -> threading.Event:
        """Set while the broker connection is up (a never-set event when MQTT is disabled)."""
        return self._link.connected if self._link else threading.Event()

    @property
    def broker_problem(self) -> str:
        """Why summaries cannot leave now ('' while connected or with MQTT disabled)."""
        return self._link.problem if self._link is not None else ""

    @property
    def summaries_refused(self) -> int:
        """Summaries the broker refused (PUBACK with a failure code) since start; they stay in the outbox."""
        return self._link.refused if self._link is not None else 0

    def start(self) -> None:
        """Connect in the background; summaries queue durably meanwhile."""
        if self._link is not None:
            self._link.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Wait up to ``timeout`` for the outbox to drain, publish ``offline`` and disconnect; True when drained.

        Summaries still waiting in memory for a full disk get the outbox's disk reserve first."""
        self._store_unstored()
        if self._unstored and self.outbox.release_reserve():
            self._store_unstored()
            self._store_unstored(one_by_one=True)  # if all of them do not fit, as many as do
        if self._unstored:
            self.summaries_lost += len(self._unstored)
            log.error("%d summaries could not be stored (state directory full?) and are lost", len(self._unstored))
            self._unstored.clear()
        drained = self.wait_drained(timeout)
        with self._lock:
            self._activity = "stopping"
            offline = self._status("offline")
        if self._link is not None:  # not under the lock: a control message may be waiting for it on paho's thread
            self._link.stop(offline, timeout)
        with self._lock:
            self.waiting_at_stop = self.outbox.stats()["messages"]
            self.outbox.close()
        return drained

    def submit(self, summaries: Iterable[Summary], *, epoch: int | None = None) -> int:
        """Pass summaries through the privacy gate into the outbox; returns how many were queued.

        ``epoch`` is the value of :attr:`epoch` when the caller last discarded what it aggregated; summaries of
        an older epoch rest on data that an erase or a withdrawn consent has since forgotten, and are dropped.
        Each summary passes the gate once (a differential-privacy release is paid once). One the state directory
        cannot take (disk full) waits in memory, at most ``MAX_UNSTORED`` of them, and is tried again with the
        next summary or health report.
        """
        with self._lock:
            for summary in summaries:
                ready = self._gated(summary, epoch)
                if ready is None:
                    continue
                if len(self._unstored) >= MAX_UNSTORED:
                    self._unstored.popleft()
                    self.summaries_lost += 1
                    log.error("the oldest summary waiting for storage is lost (more than %d waited)", MAX_UNSTORED)
                self._unstored.append(ready)
        return self._store_unstored()

    def _gated(self, summary: Summary, epoch: int | None) -> GatedSummary | None:
        """The summary's payload, when consent, epoch, k and the DP budget let it out; else None."""
        if not self._may_publish(epoch):
            return None
        try:
            score = self._gate.admit(summary)
        except ConfigError as error:  # the budget ledger cannot be written: no release that is not paid for
            self.summaries_lost += 1
            log.error("a %s summary is withheld: the privacy budget ledger cannot be written (%s)", summary.kind, error)
            return None
        if score is None:
            return None
        resolution = self._privacy.time_resolution_s
        payload = summary_payload(
            summary, score, device=self.pseudonym, resolution_s=resolution, k=self._privacy.k_min_windows
        )
        hold = coarse_seconds(summary.end, resolution, round_up=True) if self._privacy.hold_until_period_end else 0.0
        return GatedSummary(payload["message_id"], encode(payload), summary.kind, hold, epoch, summary.windows_scored)

    def _store_unstored(self, *, one_by_one: bool = False) -> int:
        """Move the summaries waiting in memory into the outbox, in one transaction (or, ``one_by_one``, as many as
        fit); those that may no longer be published (an erase or a withdrawn consent since) go. How many queued."""
        queued = 0
        with self._lock:  # an erase on the MQTT thread may clear the queue meanwhile
            self._unstored = collections.deque(s for s in self._unstored if self._may_publish(s.epoch))
            waiting = list(self._unstored)
            for batch in ([s] for s in waiting) if one_by_one else [waiting] if waiting else []:
                messages = [
                    NewMessage(s.message_id, self.topics.summary, s.payload, s.kind, 1, s.not_before) for s in batch
                ]
                try:
                    kept = self.outbox.put_many(messages)
                except OutboxWriteError as error:
                    log.error("summaries cannot be stored yet (%s); %d wait in memory", error, len(self._unstored))
                    break
                for summary, stored in zip(batch, kept, strict=True):
                    self._unstored.popleft()
                    if stored:  # else the bound policy dropped it at once: counted and logged as a drop there
                        log.info("queued a %s summary (%d scored windows)", summary.kind, summary.windows_scored)
                        queued += 1
        if queued and self._link is not None:
            self._link.notify()
        return queued

    def _may_publish(self, epoch: int | None) -> bool:
        """Summaries of consented processing leave while consent stands; a pause stops processing, not them."""
        if self.consent.granted is not True:
            log.warning("summary dropped: consent is not granted")
            return False
        if epoch is not None and epoch != self.epoch:
            log.warning("summary dropped: it rests on data from before an erase or a withdrawn consent")
            return False
        return True

    def health(self, metrics: Mapping[str, float], *, backend: str | None = None) -> bool:
        """Publish numeric health metrics (QoS 0, not stored); False when offline.

        Also retries summaries waiting for storage. With ``hold_until_period_end`` the figures that move with a
        face present (:data:`PRESENCE_METRICS`, the outbox, withheld summaries, the remaining privacy budget) are
        published as they stood at the end of the previous coarse period (:class:`PeriodSnapshot`).
        """
        self._store_unstored()
        if self._link is None:
            return False
        now = self._clock()
        live = {**metrics, "summaries_unstored": len(self._unstored), "summaries_lost": self.summaries_lost}
        live.update(self.control.metrics())
        live.update({f"broker_failures_{kind}": n for kind, n in self._link.failures.items()})
        held = self._presence.update(
            now,
            {
                "metrics": {name: value for name, value in live.items() if name in PRESENCE_METRICS},
                "outbox": self._outbox_stats(),
                "withheld": self._gate.withheld_summaries,
                "epsilon_remaining": self._gate.budget_remaining(),
            },
        )
        payload = health_payload(
            {**live, **held["metrics"]},
            device=self.pseudonym,
            model=self._identity,
            now=now,
            resolution_s=self._privacy.health_time_resolution_s,
            backend=backend,
            outbox=held["outbox"],
            summaries_withheld=held["withheld"],
        )
        return self._link.publish_health(encode(payload))

    def set_status(self, activity: Activity, detail: str | None = None) -> None:
        """Tell integrators what the device is doing (retained status); also refreshes the Last Will."""
        with self._lock:
            self._activity, self._detail = activity, detail
            self._publish_status()

    def _outbox_stats(self) -> dict[str, int]:
        with self._lock:  # an erase on the MQTT thread swaps the outbox
            return self.outbox.stats()

    def outbox_state(self, drained: bool) -> str:
        """How :meth:`stop` left the outbox, for the log."""
        waiting = self.waiting_at_stop
        if drained:
            return f"drained of what was due; {waiting} held until their period ends" if waiting else "drained"
        return f"{waiting} kept for the next start"

    def wait_drained(self, timeout: float) -> bool:
        """Wait until every summary due now was acknowledged by the broker (or ``timeout`` passes); summaries held
        until the end of their period stay in the outbox for later."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                due = self.outbox.due(self._clock(), self._privacy.time_resolution_s)
            if due == 0:
                return True
            if time.monotonic() >= deadline or self._link is None:
                return False
            time.sleep(0.05)

    def sync_local_consent(self) -> None:
        """Take up a decision recorded on the device while running (``python -m edge consent``); a revoke moves
        the epoch, so what was aggregated under the old consent is forgotten."""
        stamp = self._consent_store.stamp()
        if stamp == self._consent_stamp:
            return
        with self._lock:
            self._consent_stamp = stamp
            state = self._consent_store.load()
            if state == self.consent:
                return
            if self.consent.granted and not state.granted:
                self.epoch += 1
            self.consent = state
            log.info("consent %s recorded on the device (%s)", state.label, state.source)
            self._publish_status()

    def _handle_control(self, payload: bytes, retained: bool, reply_to: ReplyTo | None = None) -> None:
        outcome = self.control.screen(payload, retained)
        if isinstance(outcome, ControlMessageError):
            with self._lock:
                self._reply = ControlReply.rejected_for(outcome)
                self._send_reply(reply_to)
                self._publish_status()
        elif outcome is not None:
            self.apply_control(outcome, reply_to)

    def apply_control(self, command: ControlCommand, reply_to: ReplyTo | None = None) -> None:
        """Apply a validated, admitted command (as if it came on the control topic) and acknowledge it to
        ``reply_to`` (an MQTT 5 Response Topic) first, so the requester gets its own reply first, then on status."""
        with self._lock:
            try:
                self._apply(command)
                self._reply = ControlReply.accepted_for(command)
            except Exception as error:  # e.g. a full or read-only disk: reported, and never processing by mistake
                log.exception("control command %r failed", command.command)
                self._reply = ControlReply.failed_for(command, error)
            self._send_reply(reply_to)
            self._publish_status()

    def _send_reply(self, reply_to: ReplyTo | None) -> None:
        if reply_to is not None and self._link is not None and self._reply is not None:
            self._link.publish_reply(reply_to, encode(control_reply_payload(self._reply, device=self.pseudonym)))

    def _apply(self, command: ControlCommand) -> None:
        if command.command in ("pause", "resume"):
            self.consent = self._consent_store.set_paused(command.command == "pause")
            return
        if command.command == "erase" or not command.granted:
            self.epoch += 1
        if command.command == "consent":
            if not command.granted:  # fail closed: revoked in memory even if the disk refuses the record
                self.consent = ConsentState(granted=False, paused=self.consent.paused, source="control")
            self.consent = self._consent_store.record(bool(command.granted), "control")
        else:
            self._erase_local_state()

    def _erase_local_state(self) -> None:
        """Revoke consent (in memory first), wipe the state directory and go on with an empty outbox."""
        self.consent = ConsentState(granted=False, paused=self.consent.paused, source="erase")
        summaries = len(self._unstored) + self.outbox.stats()["messages"]
        self._unstored.clear()
        self.outbox.close()
        try:
            # the outbox first: a later failure must not leave summaries from before the erase
            erase(self.state_dir, removed_before=self.outbox.delete_files(), summaries=summaries)
        finally:  # even after a failed erase the daemon keeps a working (possibly still full) outbox
            self.control.guard.authenticator.nonces.persist()  # an erased nonce list would let old messages replay
            self.outbox = Outbox(self.state_dir, self._mqtt_settings.outbox)
            if self._link is not None:
                self._link.replace_outbox(self.outbox)

    def _publish_status(self) -> None:
        if self._link is not None:
            self._link.set_will(self._status("offline", at=False))
            self._link.publish_status(self._status("online"))

    def _status(self, state: str, *, at: bool = True) -> bytes:
        payload = status_payload(
            "online" if state == "online" else "offline",
            device=self.pseudonym,
            model=self._identity,
            consent=self.consent,
            activity=self._activity,
            detail=self._detail,
            control=self._reply,
            k=self._privacy.k_min_windows,
            dp_enabled=self._privacy.dp.enabled,
            epsilon_remaining=self._presence.published("epsilon_remaining", self._gate.budget_remaining()),
            now=self._clock() if at else None,
            resolution_s=self._privacy.health_time_resolution_s,
        )
        return encode(payload)
