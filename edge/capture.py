"""Camera and video capture with OpenCV in its own thread, sampling frames at the model's rate.

The capture thread reads every frame the source gives (a camera must be drained or it lags), keeps only those
the face pipeline's resampler will take (the frame nearest each tick of a ``sample_fps`` grid) and hands them to
the consumer through a small bounded queue. Non-sampled frames are grabbed but never decoded into
pixels. When the consumer falls behind, the oldest waiting frame is dropped and counted: the queue never grows,
and the frames that do arrive still lie on the sampling grid, so the timestamps stay honest. A video file read
"as fast as possible" is the exception: there the capture thread waits for the consumer and drops nothing.

A live source that stops delivering is reopened with capped exponential backoff; the stats say ``camera_lost``
meanwhile. Frames stay in memory only.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import InputError
from edge.face.config import FaceConfig
from edge.face.video import FrameClock, video_fps
from edge.face.windows import Resampler
from edge.sources import SourceKind, classify_source, display_source, open_source

log = logging.getLogger(__name__)
T = TypeVar("T")

_BAD_READS_BEFORE_LOST = 5
_FILE_SKIP_TRIES = 25
"""Failed reads a video file may show before its frame count is reached before we call it ended."""
_FINAL = ("ended", "failed", "stopped")


@dataclass(frozen=True)
class Frame:
    """One sampled frame: BGR pixels, its time in seconds from the stream's start, and its source index."""

    image: npt.NDArray[np.uint8]
    t: float
    index: int


@dataclass(frozen=True)
class CaptureStats:
    """Counters of a capture: frames read, sampled, handed over, dropped, unreadable, and the state."""

    state: str = "starting"
    captured: int = 0
    sampled: int = 0
    delivered: int = 0
    dropped: int = 0
    decode_errors: int = 0
    reopens: int = 0
    source_fps: float = 0.0
    error: str = ""
    read_s: float = 0.0  # seconds the capture thread spent reading and decoding


def _selector(sample_fps: float | None, max_gap: float) -> Callable[[float], bool]:
    """Whether the frame at time ``t`` is taken: the face pipeline's own resampling rule, decided early.

    The face pipeline resamples by timestamp to a nearest-frame grid at ``sample_fps``; running the same rule
    here means only the frames it would take are decoded and handed over, and, fed these frames alone, the
    pipeline's resampler assigns each of them the same grid point.
    """
    if not sample_fps:
        return lambda t: True
    resampler = Resampler(sample_fps, max_gap)
    return lambda t: bool(resampler.due(t)[0])


class Capture:
    """Reads a source in a background thread and hands sampled frames to one consumer.

    Use as a context manager or call :meth:`start` and :meth:`stop`; :meth:`get` returns the next frame, or
    ``None`` on timeout; :attr:`finished` is true once a file ended or the capture was stopped and drained.
    """

    def __init__(
        self,
        source: str | int,
        *,
        realtime: bool = True,
        sample_fps: float | None = None,
        max_gap: float = FaceConfig.max_gap,
        queue_size: int = 4,
        backoff: tuple[float, float] = (0.5, 30.0),
        start_index: int = 0,
    ) -> None:
        if queue_size < 1:
            raise InputError(f"capture queue size must be >= 1, got {queue_size}", fix="pass queue_size >= 1")
        self.source = source
        self.kind = classify_source(source)
        self.realtime = realtime
        self.sample_fps = sample_fps
        self.max_gap = max_gap
        self._queue: collections.deque[Frame] = collections.deque()
        self._size = queue_size
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._stats = CaptureStats()
        self._backoff = backoff
        self._start_index = start_index
        self.start_time = 0.0
        """Stream time of the first frame to come (a file resumed at ``start_index`` starts later than 0)."""
        self._thread: threading.Thread | None = None
        self._busy_since: float | None = None  # monotonic start of an OpenCV call in progress

    @property
    def live(self) -> bool:
        """Whether the source is a camera or a stream (reopened when lost) rather than a file."""
        return self.kind is not SourceKind.FILE

    @property
    def stats(self) -> CaptureStats:
        """A snapshot of the counters."""
        with self._cond:
            return self._stats

    def responsive(self, limit_s: float) -> bool:
        """Whether the capture thread is alive and not stuck in one OpenCV call for more than ``limit_s`` seconds."""
        since = self._busy_since
        alive = self._thread is not None and self._thread.is_alive()
        return alive and (since is None or time.monotonic() - since < limit_s)

    @property
    def finished(self) -> bool:
        """True when no more frames will come: the source ended or failed, or :meth:`stop` was called."""
        with self._cond:
            return not self._queue and self._stats.state in _FINAL

    def start(self) -> Capture:
        """Open the source (raising :class:`InputError` for a file that will not open) and start reading."""
        cap = None
        if not self.live:
            cap = open_source(self.source)
            fps = video_fps(cap)
            self._set(source_fps=fps)
            if self._start_index:
                cap.set(cv2.CAP_PROP_POS_FRAMES, self._start_index)
                self.start_time = self._start_index / fps
        self._thread = threading.Thread(target=self._run, args=(cap,), name="capture", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop reading and wait for the thread to end."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def get(self, timeout: float = 0.5) -> Frame | None:
        """The next sampled frame, or ``None`` when none arrived within ``timeout`` seconds."""
        with self._cond:
            if not self._queue:
                self._cond.wait_for(lambda: bool(self._queue) or self._stats.state in _FINAL, timeout)
            if not self._queue:
                return None
            frame = self._queue.popleft()
            self._update(delivered=self._stats.delivered + 1)
            self._cond.notify_all()
            return frame

    def __enter__(self) -> Capture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- capture thread ------------------------------------------------------------------------------------------

    def _update(self, **changes: Any) -> None:
        self._stats = replace(self._stats, **changes)

    def _set(self, **changes: Any) -> None:
        with self._cond:
            self._update(**changes)
            self._cond.notify_all()

    def _count(self, name: str) -> None:
        with self._cond:
            self._update(**{name: getattr(self._stats, name) + 1})

    def _timed(self, call: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return self._blocking(call)
        finally:
            with self._cond:
                self._update(read_s=self._stats.read_s + time.perf_counter() - started)

    def _blocking(self, call: Callable[[], T]) -> T:
        """Run an OpenCV call that may hang (open, grab, retrieve), noting since when for :meth:`responsive`."""
        self._busy_since = time.monotonic()
        try:
            return call()
        finally:
            self._busy_since = None

    def _hand_over(self, frame: Frame) -> None:
        with self._cond:
            if not self.live and not self.realtime:
                self._cond.wait_for(lambda: len(self._queue) < self._size or self._stop.is_set())
            elif len(self._queue) >= self._size:
                self._queue.popleft()
                self._update(dropped=self._stats.dropped + 1)
            self._queue.append(frame)
            self._cond.notify_all()

    def _run(self, cap: Any = None) -> None:
        try:
            if self.live:
                self._run_live()
            else:
                self._read_file(cap)
        except Exception as exc:  # a crash here must surface as a state, not vanish with the thread
            log.exception("capture thread failed")
            self._set(state="failed", error=str(exc))
        else:
            self._set(state="stopped" if self._stop.is_set() else "ended")

    def _take(self, cap: Any, keep: Callable[[float], bool], t: float, index: int, *, due: float | None = None) -> bool:
        """Count a grabbed frame; decode, pace (until monotonic time ``due``) and hand over a sampled one.

        Returns False when :meth:`stop` came during the pacing wait.
        """
        self._count("captured")
        if not keep(t):
            return True
        ok, image = self._timed(cap.retrieve)
        if not ok or image is None:
            self._count("decode_errors")
            return True
        if due is not None and self._stop.wait(max(0.0, due - time.monotonic())):
            return False
        self._count("sampled")
        self._hand_over(Frame(image=image, t=t, index=index))
        return True

    def _read_file(self, cap: Any) -> None:
        fps = self._stats.source_fps
        expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._set(state="running")
        keep = _selector(self.sample_fps, self.max_gap)
        clock = FrameClock(fps)  # the container's frame times, as training and calibration read them
        index = self._start_index
        start = time.monotonic() - index / fps
        failures = 0
        try:
            while not self._stop.is_set():
                if not self._timed(cap.grab):
                    # A damaged stretch: try a few more frames when the container says more exist.
                    if index + failures < expected and failures < _FILE_SKIP_TRIES:
                        failures += 1
                        self._count("decode_errors")
                        continue
                    if index < expected:
                        log.warning(
                            "video %s ended at frame %d of %d (damaged or truncated)", self.source, index, expected
                        )
                    break
                t = clock(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
                index += 1
                if not self._take(cap, keep, t, index - 1, due=start + t if self.realtime else None):
                    break
        finally:
            cap.release()

    def _run_live(self) -> None:
        low, high = self._backoff
        failures = 0  # opens in a row that failed or delivered no frame
        start = time.monotonic()
        keep = _selector(self.sample_fps, self.max_gap)
        index = 0
        while not self._stop.is_set():
            if failures:
                wait = min(high, low * 2 ** (failures - 1))
                log.warning(
                    "camera %s lost (%s); reopening in %.1f s", display_source(self.source), self._stats.error, wait
                )
                if self._stop.wait(wait):
                    return
                self._count("reopens")
            try:
                cap = self._blocking(lambda: open_source(self.source))
            except InputError as exc:
                failures += 1
                self._set(state="camera_lost", error=exc.message)
                continue
            self._set(state="running", error="")
            bad = got = 0
            try:
                while not self._stop.is_set() and bad < _BAD_READS_BEFORE_LOST:
                    if not self._timed(cap.grab):
                        bad += 1
                        self._count("decode_errors")
                        continue
                    bad, got, index = 0, got + 1, index + 1
                    self._take(cap, keep, time.monotonic() - start, index - 1)
            finally:
                cap.release()
            if bad >= _BAD_READS_BEFORE_LOST:
                failures = 1 if got else failures + 1  # a source that delivered then stopped is retried soon
                self._set(state="camera_lost", error="the source stopped delivering frames")
