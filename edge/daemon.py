"""The daemon loop: capture -> face pipeline -> backend -> aggregator -> reporter, behind a consent gate.

Nothing is captured or processed unless the reporter says processing is allowed (consent recorded, not paused);
the camera is released while it is not. Known states on failure: a damaged video is read as far as it decodes
(errors counted) and the input ends cleanly; a lost camera is reopened with backoff while the status says
``input_lost``; a refused bundle raises :class:`edge.errors.BundleError` before anything starts; a dead broker
changes nothing here (summaries wait in the outbox).

Timestamps: a frame's time is the wall clock at which its capture started plus its time in the stream, so a
video read faster than real time keeps its own timeline (sessions as long as in the video).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from edge import preflight
from edge.aggregate import Aggregator, Summary, WindowOutcome
from edge.backends.base import Backend
from edge.bundle import Bundle
from edge.capture import Capture, CaptureStats
from edge.config import Config
from edge.errors import InputError
from edge.explain import create as create_explainer
from edge.face import FacePipeline
from edge.face.descriptors import frame_descriptors
from edge.face.landmarks import Landmarks
from edge.face.pipeline import FrameResult
from edge.publish import Reporter
from edge.publish.payloads import Activity
from edge.publish.settings import PrivacySettings
from edge.scoring import WindowScorer
from edge.service import Notifier, forbid_core_dumps
from edge.sources import SourceKind, classify_source, display_source
from edge.statelock import StateDirLock
from edge.telemetry import Counters, add_stats, describe_capture, summary_line

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.2
STUCK_CALL_S = 30.0
"""A capture thread inside one OpenCV open or read for longer is stuck: the watchdog is no longer fed for it."""
CONNECT_GRACE_S = 2.0
"""How long a stop waits for a broker connection still being made (e.g. a failure right at start-up)."""
CONSENT_CHECK_S = 0.5
"""How often the consent record is checked for a decision made on the device."""
STOP_TIMEOUT_S = 5.0
"""How long a stop waits for the broker to acknowledge queued summaries (what is left stays in the outbox)."""


class Daemon:
    """One run of the device pipeline; :meth:`run` returns when stopped or when a video file ends."""

    def __init__(
        self, config: Config, *, stop: threading.Event | None = None, notifier: Notifier | None = None
    ) -> None:
        self.config = config
        self.stop_event = stop or threading.Event()
        self.notifier = notifier or Notifier()
        self.counters = Counters()
        # everything refused here is refused first, with the same error, by check-config (edge.preflight)
        self.bundle: Bundle = preflight.load_checked_bundle(config)
        preflight.check_source(config.camera.source)
        preflight.check_tls_files(config.mqtt)
        preflight.check_password_file(config.mqtt)
        self.backend: Backend = preflight.open_backend(config, self.bundle)
        self._lock = StateDirLock(config.device.state_dir)
        self.pipeline: FacePipeline | None = None
        self.capture: Capture | None = None
        self.capture_totals = CaptureStats()
        self.reporter: Reporter | None = None
        self.aggregator = Aggregator(config.aggregation, self.bundle.identity, self.bundle.outputs)
        self._t0 = time.time()  # origin of the pipeline's timestamps
        explain = config.explain
        self.scorer = WindowScorer(
            self.backend,
            origin=self._t0,
            explainer=create_explainer(explain.method, self.backend) if explain.enabled else None,
            explain_share=explain.window_share,
        )
        self._epoch = 0  # the reporter's epoch when what the aggregator holds began
        self._wall0 = 0.0  # wall clock at the start of the current capture
        self._last_t = time.time()  # time of the latest frame
        self._resume_index = 0
        self._media_clock = classify_source(config.camera.source) is SourceKind.FILE and not config.camera.realtime
        self._activity = ""
        self._previous_landmarks: Landmarks | None = None  # for the head-motion descriptor

    # -- life cycle ----------------------------------------------------------------------------------------------

    def run(self) -> int:
        """Warm up, report ready, loop until stopped or the video ends, then flush; returns the exit code (0)."""
        state_dir = self.config.device.state_dir
        try:
            forbid_core_dumps()
            preflight.check_state_dir(state_dir, create=True)
            self._lock.acquire()  # one daemon per state directory: a second one exits 3 naming this pid
            self.backend.warm_up()
            self.reporter = Reporter(
                self.config.mqtt, self._privacy_settings(), state_dir, self.bundle.identity, trust=self.config.trust
            )
            self.reporter.start()
            self.pipeline = FacePipeline(self.bundle.input, self.bundle.tiles, self.config.face.to_face_config())
            backend = self.backend.describe()
            self.notifier.ready(f"model {self.bundle.name} on {backend['backend']} {backend['precision']}")
            source = display_source(self.config.camera.source)
            log.info("started: model %s, backend %s, source %s", self.bundle.name, backend, source)
            self._loop()
        finally:
            self._shutdown()
        return 0

    def _privacy_settings(self) -> PrivacySettings:
        """The configured privacy settings; a video read faster than real time has its own timeline, so its
        summaries cannot wait for the wall clock to pass their period (they are not held)."""
        privacy = self.config.privacy
        if self._media_clock and privacy.hold_until_period_end:
            log.info("a video read as fast as possible: summaries are not held until their period ends")
            return privacy.model_copy(update={"hold_until_period_end": False})
        return privacy

    def _loop(self) -> None:
        assert self.reporter is not None
        next_health = time.monotonic() + self.config.mqtt.health_interval_s
        next_consent_check = 0.0
        while not self.stop_event.is_set():
            if time.monotonic() >= next_consent_check:  # a decision made on the device (python -m edge consent)
                next_consent_check = time.monotonic() + CONSENT_CHECK_S
                self.reporter.sync_local_consent()
            allowed = self.reporter.processing_allowed  # read before the epoch: an erase bumps the epoch first
            epoch = self.reporter.epoch
            if epoch != self._epoch:
                self._forget(epoch)
                continue  # ``allowed`` may predate the erase: look again before touching a frame
            if not allowed:
                self._idle()
            elif not self._step():
                break
            if time.monotonic() >= next_health:
                next_health = time.monotonic() + self.config.mqtt.health_interval_s
                self.report_health()

    def _step(self) -> bool:
        """Process the next frame, if any; False when the input has ended."""
        capture = self.capture or self._start_capture()
        frame = capture.get(timeout=IDLE_WAIT_S)
        if frame is None:
            finished = capture.finished
            stats = capture.stats  # read after ``finished``: a failure in between is not taken for a clean end
            if finished:
                self._stop_capture()
                if stats.state == "failed":
                    raise InputError(
                        f"capture of {display_source(self.config.camera.source)} failed: {stats.error}",
                        fix="see the log",
                    )
                log.info("input %s ended: %s", display_source(self.config.camera.source), describe_capture(stats))
                return False
            lost = stats.state == "camera_lost"
            if lost:
                self._set_activity("input_lost", f"camera_lost: {stats.error}")
            self.notifier.feed(self.counters.frames, idle_ok=lost and capture.responsive(STUCK_CALL_S))
            self._aggregate(self.scorer.ready())
            self._submit(self.aggregator.due(self._now()))
            return True
        self._set_activity("running")
        self._process(frame.image, self._wall0 + frame.t)
        self._resume_index = frame.index + 1
        self.notifier.feed(self.counters.frames)
        return True

    def _process(self, image: np.ndarray[Any, Any], when: float) -> None:
        assert self.pipeline is not None
        self._last_t = when
        result = self.pipeline.push(image, when - self._t0, color_order="BGR")
        self.counters.frames += 1
        self.counters.faces += int(result.quality.face_present)
        self.scorer.submit(result.windows)
        started = time.perf_counter()
        summaries: list[Summary] = []
        if result.sampled:
            summaries += self.aggregator.observe_frame(when, result.quality.face_present, self._behaviour(result))
        self._aggregate(self.scorer.ready())
        summaries += self.aggregator.due(self._now())
        self.counters.seconds["aggregate"] += time.perf_counter() - started
        self._submit(summaries)

    def _behaviour(self, result: FrameResult) -> dict[str, float] | None:
        """This frame's behaviour descriptors when ``explain.descriptors`` is on (memory only)."""
        if not self.config.explain.descriptors or result.raw_landmarks is None:
            self._previous_landmarks = None
            return None
        values = frame_descriptors(result.raw_landmarks, self._previous_landmarks)
        self._previous_landmarks = result.raw_landmarks
        return values

    def _forget(self, epoch: int) -> None:
        """After an erase or a withdrawn consent: drop every window and aggregate held from before ``epoch``."""
        self._epoch = epoch
        self.scorer.discard()
        self.aggregator.discard()
        if self.pipeline is not None:
            self.pipeline.reset()
        self._aggregate([])  # the counters include the windows scored and then forgotten

    def _aggregate(self, outcomes: list[WindowOutcome]) -> None:
        for outcome in outcomes:
            self.aggregator.add_window(outcome)
        self.counters.windows_scored = self.scorer.scored
        self.counters.windows_rejected = self.scorer.rejected
        self.counters.seconds["inference"] = self.scorer.seconds
        self.counters.seconds["explain"] = self.scorer.explain_seconds

    def _submit(self, summaries: list[Summary]) -> None:
        if summaries and self.reporter is not None:
            self.counters.summaries += self.reporter.submit(summaries, epoch=self._epoch)

    def _idle(self) -> None:
        """No consent or paused: release the camera, say so, and wait."""
        assert self.reporter is not None
        self._stop_capture()
        consent = self.reporter.consent
        self._set_activity("paused" if consent.granted else "waiting_for_consent")
        self.notifier.feed(self.counters.frames, idle_ok=True)
        self.stop_event.wait(IDLE_WAIT_S)

    def _shutdown(self) -> None:
        """Release the camera, score the windows in flight, flush the aggregates into the outbox, stop the reporter
        (``offline``), close the pipeline and the backend: each step runs even when an earlier one failed."""
        steps = (
            self._stop_capture,
            self._score_in_flight,
            self._flush_and_stop_reporter,
            self._close_models,
            self._lock.release,
        )
        for step in steps:
            try:
                step()
            except Exception:
                log.exception("stopping: %s failed; going on with the next step", step.__name__)

    def _score_in_flight(self) -> None:
        self.notifier.stopping("flushing aggregates into the outbox")
        self._set_activity("stopping")
        try:
            self._aggregate(self.scorer.ready(wait=True))
        finally:
            self.scorer.close()

    def _flush_and_stop_reporter(self) -> None:
        if self.reporter is None:
            return
        try:
            if self.reporter.consent.granted:  # paused too: what was aggregated before the pause is kept
                self._submit(self.aggregator.close(self._now()))
        finally:
            # a failure right at start-up: give the connection being made a moment, to say offline
            connected = self.config.mqtt.enabled and self.reporter.connected.wait(CONNECT_GRACE_S)
            drained = self.reporter.stop(timeout=STOP_TIMEOUT_S if connected else 0.1)
            log.info("stopped: %s; outbox %s", self.summary_line(), self.reporter.outbox_state(drained))

    def _close_models(self) -> None:
        try:
            if self.pipeline is not None:
                self.pipeline.close()
        finally:
            self.backend.close()

    # -- capture -------------------------------------------------------------------------------------------------

    def _start_capture(self) -> Capture:
        cam = self.config.camera
        capture = Capture(
            cam.source,
            realtime=cam.realtime,
            sample_fps=self.bundle.input.sample_fps,
            max_gap=self.config.face.to_face_config().max_gap,
            queue_size=cam.queue_size,
            backoff=(0.5, cam.reopen_max_s),
            start_index=self._resume_index,
        )
        self.capture = capture.start()
        self._wall0 = time.time() - capture.start_time
        if self.pipeline is not None:
            self.pipeline.reset()
        return capture

    def _stop_capture(self) -> None:
        if self.capture is not None:
            self.capture.stop()
            self.capture_totals = add_stats(self.capture_totals, self.capture.stats)
            self.capture = None

    def _now(self) -> float:
        """The aggregation clock: the wall clock, or a fast-read video's own timeline."""
        return self._last_t if self._media_clock else time.time()

    # -- reporting -----------------------------------------------------------------------------------------------

    def capture_stats(self) -> CaptureStats:
        """Capture counters over every capture of this run."""
        return add_stats(self.capture_totals, self.capture.stats) if self.capture else self.capture_totals

    def _set_activity(self, activity: Activity, detail: str | None = None) -> None:
        key = f"{activity}:{detail}"
        if key != self._activity and self.reporter is not None:
            self._activity = key
            self.reporter.set_status(activity, detail)
            self.notifier.status(f"{activity}{': ' + detail if detail else ''}")
            log.info("status: %s%s", activity, f" ({detail})" if detail else "")

    def health_metrics(self) -> dict[str, float]:
        """Throughput, drops and latency so far (no score, no pixel, no landmark)."""
        pipeline = self.pipeline.clock.seconds if self.pipeline is not None else {}
        return self.counters.metrics(self.capture_stats(), pipeline)

    def report_health(self) -> None:
        """Publish a health message and a status line for systemd."""
        metrics = {**self.health_metrics(), **self.counters.rates(self.capture_stats().captured)}
        backend = self.backend.describe()
        problem = ""
        if self.reporter is not None:
            metrics["summaries_refused"] = self.reporter.summaries_refused
            metrics["windows_late"] = self.aggregator.late_windows
            self.reporter.health(metrics, backend=f"{backend['backend']}-{backend.get('device', '?')}")
            problem = self.reporter.broker_problem
        self.notifier.status(
            self.summary_line() + (f"; MQTT: {problem}, summaries kept in the outbox" if problem else "")
        )

    def summary_line(self) -> str:
        """One line of counters for logs and ``systemctl status``."""
        return summary_line(self.health_metrics())
