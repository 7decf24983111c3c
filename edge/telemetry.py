"""The daemon's counters and health figures: throughput, drops, latency, CPU and memory (never a score or pixel)."""

from __future__ import annotations

import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from edge.capture import CaptureStats


@dataclass
class Counters:
    """What the loop has done, with seconds spent per stage (for health and benchmarks)."""

    frames: int = 0
    faces: int = 0
    windows_scored: int = 0
    windows_rejected: int = 0
    summaries: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"inference": 0.0, "aggregate": 0.0})
    started: float = field(default_factory=time.monotonic)
    _mark: tuple[float, float, int] = (0.0, 0.0, 0)

    def metrics(self, capture: CaptureStats, pipeline_seconds: Mapping[str, float]) -> dict[str, float]:
        """Totals so far and mean costs per processed frame and per scored window."""
        busy = sum(pipeline_seconds.values()) + sum(self.seconds.values())
        return {
            "frames_captured": capture.captured,
            "frames_processed": self.frames,
            "frames_dropped": capture.dropped,
            "decode_errors": capture.decode_errors,
            "camera_reopens": capture.reopens,
            "windows_scored": self.windows_scored,
            "windows_rejected": self.windows_rejected,
            "summaries_queued": self.summaries,
            "latency_ms": 1000 * busy / self.frames if self.frames else 0.0,
            "inference_ms": 1000 * self.seconds["inference"] / self.windows_scored if self.windows_scored else 0.0,
        }

    def rates(self, captured: int) -> dict[str, float]:
        """Camera frames per second and CPU use (% of one core) since the previous call, peak memory, uptime."""
        now, cpu = time.monotonic(), time.process_time()
        last_now, last_cpu, last_captured = self._mark if self._mark[0] else (self.started, 0.0, 0)
        self._mark = (now, cpu, captured)
        span = max(now - last_now, 1e-6)
        return {
            "frames_per_s": (captured - last_captured) / span,
            "cpu_percent": 100.0 * (cpu - last_cpu) / span,
            "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "uptime_s": now - self.started,
        }


def summary_line(metrics: Mapping[str, float]) -> str:
    """One line of counters for logs and ``systemctl status``."""
    m = {name: int(value) for name, value in metrics.items()}
    return (
        f"{m['frames_processed']} frames processed, {m['frames_dropped']} dropped, {m['decode_errors']} unreadable; "
        f"{m['windows_scored']} windows scored, {m['windows_rejected']} rejected; "
        f"{m['summaries_queued']} summaries queued"
    )


def add_stats(total: CaptureStats, more: CaptureStats) -> CaptureStats:
    """Counters of two captures added up (the state and source of the later one)."""
    names = ("captured", "sampled", "delivered", "dropped", "decode_errors", "reopens", "read_s")
    sums = {name: getattr(total, name) + getattr(more, name) for name in names}
    return CaptureStats(state=more.state, source_fps=more.source_fps, error=more.error, **sums)


def describe_capture(stats: CaptureStats) -> str:
    """Frames read, sampled and unreadable, in words."""
    return f"{stats.captured} frames read, {stats.sampled} sampled, {stats.decode_errors} unreadable"
