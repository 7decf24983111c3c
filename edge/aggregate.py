"""Sessions and rolling periods: per-window outcomes in, robust summaries out (DESIGN.md "Windows, sessions").

A *session* is a continuous stretch with a face present; gaps up to ``session_gap_s`` continue it. A *rolling
period* is a clock-aligned interval (hourly by default). Scores of single windows live only in memory here and
never appear in a :class:`Summary`, a payload or a log line above DEBUG; the privacy step (``edge.privacy``)
decides whether a summary may leave the device at all.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from edge.face.descriptors import DESCRIPTORS, finish_video
from edge.scale import BDI_II, NamedScale, Scale

if TYPE_CHECKING:
    from edge.publish.settings import AggregationSettings

log = logging.getLogger(__name__)

INVALID_SCORE = "invalid_score"


@dataclass(frozen=True)
class WindowOutcome:
    """What the pipeline learned from one window: a score, or the reason it was not scored."""

    start: float
    end: float
    score: float | None
    reject_reason: str | None = None
    quality: Mapping[str, float] = field(default_factory=dict)
    attribution: Mapping[str, float] | None = None
    more: tuple[float, ...] = ()
    """The other outputs' scores (a bundle of several outputs: the manifest's second output on), when scored."""
    more_attribution: tuple[Mapping[str, float] | None, ...] = ()
    """The other outputs' region shares, as ``attribution`` is the primary's: when the window was explained (each
    None where occluding moved that output nothing)."""

    def __repr__(self) -> str:  # keep single-window scores out of accidental log lines
        return f"WindowOutcome(start={self.start}, end={self.end}, scored={self.score is not None})"


@dataclass(frozen=True)
class ScoreStats:
    """Robust statistics of the scored windows of one summary (scores clamped to the output's scale)."""

    mean: float
    median: float
    q1: float
    q3: float
    mad: float
    bands: dict[str, float]

    @property
    def iqr(self) -> float:
        """Inter-quartile range."""
        return self.q3 - self.q1


@dataclass(frozen=True)
class OutputStats:
    """One output's statistics in a summary: its name, scale and the statistics of its (clamped) scores."""

    name: str
    scale: Scale
    stats: ScoreStats
    regions: dict[str, float] | None = None
    """This output's mean region shares over its explained windows (None when none was explained)."""
    windows_explained: int = 0
    """The explained windows behind ``regions`` (the privacy gate's k applies to them)."""


@dataclass(frozen=True)
class Summary:
    """An aggregate over a session or a rolling period; ``stats`` is None when no window was scored."""

    kind: Literal["session", "rolling"]
    start: float
    end: float
    complete: bool
    windows_scored: int
    windows_rejected: dict[str, int]
    stats: ScoreStats | None
    quality: dict[str, dict[str, float]]
    regions: dict[str, float] | None
    model: dict[str, str]
    windows_explained: int = 0
    """Scored windows behind ``regions`` (the privacy gate's k applies to them too)."""
    behaviour: dict[str, float] | None = None
    """Means of the behaviour descriptors over the frames with a face (``explain.descriptors``; off: None)."""
    scale: Scale = BDI_II
    """The scale of the scores (the bundle's output), whose range clamps them and whose bands are counted."""
    outputs: tuple[OutputStats, ...] = ()
    """Every output's statistics, primary first (its ``stats`` and ``scale`` are the ones above); empty when no
    window was scored."""


def reason_key(reason: str) -> str:
    """A reject reason as a short snake_case key (``"Too dark!"`` -> ``"too_dark"``)."""
    key = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_")[:40]
    return key or "unspecified"


def score_stats(scores: list[float], scale: Scale = BDI_II) -> ScoreStats:
    """Mean, median, quartiles, MAD and severity-band shares (by ``scale``'s band rule) of (already clamped)
    scores; a scale without bands gives no shares."""
    values = np.asarray(scores, dtype=np.float64)
    median = float(np.median(values))
    q1, q3 = (float(q) for q in np.percentile(values, [25.0, 75.0]))
    return ScoreStats(
        mean=float(values.mean()),
        median=median,
        q1=q1,
        q3=q3,
        mad=float(np.median(np.abs(values - median))),
        bands=scale.band_shares(values) if scale.bands else {},
    )


@dataclass
class _ShareSum:
    """One output's region shares summed over the windows explained for it (memory only)."""

    total: dict[str, float] = field(default_factory=dict)
    windows: int = 0

    def add(self, shares: Mapping[str, float]) -> None:
        self.windows += 1
        for region, weight in shares.items():
            if math.isfinite(weight):
                self.total[region] = self.total.get(region, 0.0) + float(weight)

    def mean(self) -> dict[str, float] | None:
        return {r: w / self.windows for r, w in sorted(self.total.items())} if self.windows else None


@dataclass
class _Bucket:
    """Windows collected for one session or period (memory only)."""

    start: float
    end: float
    rows: list[tuple[float, ...]] = field(default_factory=list)
    """Each scored window's scores, one per output (primary first)."""
    rejected: Counter[str] = field(default_factory=Counter)
    quality: dict[str, list[float]] = field(default_factory=dict)
    shares: dict[int, _ShareSum] = field(default_factory=dict)
    """Region shares by output index (0: the primary), over the scored windows explained for that output."""
    behaviour: list[tuple[float, ...]] = field(default_factory=list)
    """Each sampled frame's behaviour descriptors in :data:`DESCRIPTORS` order (memory only)."""

    def add_behaviour(self, values: Mapping[str, float]) -> None:
        self.behaviour.append(tuple(float(values.get(name, math.nan)) for name in DESCRIPTORS))

    def behaviour_means(self) -> dict[str, float] | None:
        """Per descriptor, the mean of its finite values; gaze without the blink frames, found against this
        bucket's own eye openness as the offline explanation finds them against a video's (``blink`` itself is
        not published)."""
        if not self.behaviour:
            return None
        series = finish_video(np.array(self.behaviour, dtype=np.float64))
        means = {
            name: float(np.mean(column[np.isfinite(column)]))
            for name, column in zip(DESCRIPTORS, series.T, strict=True)
            if name != "blink" and np.isfinite(column).any()
        }
        return dict(sorted(means.items())) or None

    def add(self, window: WindowOutcome, score: tuple[float, ...] | None, reason: str | None) -> None:
        if score is not None:
            self.rows.append(score)
        else:
            self.rejected[reason or "unspecified"] += 1
        for name, value in window.quality.items():
            if math.isfinite(value):
                self.quality.setdefault(name, []).append(float(value))
        if score is not None:
            for index, shares in enumerate((window.attribution, *window.more_attribution)):
                if shares:
                    self.shares.setdefault(index, _ShareSum()).add(shares)

    def summary(
        self,
        kind: Literal["session", "rolling"],
        model: dict[str, str],
        outputs: tuple[NamedScale, ...],
        *,
        complete: bool,
    ) -> Summary:
        quality = {
            name: {"mean": float(np.mean(values)), "median": float(np.median(values))}
            for name, values in sorted(self.quality.items())
        }
        explained = [self.shares.get(index, _ShareSum()) for index in range(len(outputs))]
        columns = list(zip(*self.rows, strict=True))
        stats = (
            tuple(
                OutputStats(out.name, out.scale, score_stats(list(column), out.scale), shares.mean(), shares.windows)
                for out, column, shares in zip(outputs, columns, explained, strict=True)
            )
            if self.rows
            else ()
        )
        return Summary(
            kind=kind,
            start=self.start,
            end=self.end,
            complete=complete,
            windows_scored=len(self.rows),
            windows_rejected=dict(sorted(self.rejected.items())),
            stats=stats[0].stats if stats else None,
            quality=quality,
            regions=explained[0].mean(),
            model=dict(model),
            windows_explained=explained[0].windows,
            behaviour=self.behaviour_means(),
            scale=outputs[0].scale,
            outputs=stats,
        )


class Aggregator:
    """Groups window outcomes into sessions and clock-aligned rolling periods and emits their summaries."""

    def __init__(
        self,
        settings: AggregationSettings,
        model_identity: dict[str, str],
        outputs: Sequence[NamedScale] = (NamedScale("score", BDI_II),),
    ) -> None:
        self._settings = settings
        self._model = dict(model_identity)
        self.outputs = tuple(outputs)
        self.scale = self.outputs[0].scale
        self._session: _Bucket | None = None
        self._last_face: float | None = None
        self._periods: dict[float, _Bucket] = {}
        self._closed_until = -math.inf  # periods ending at or before this were already summarised
        self.late_windows = 0

    def observe_frame(
        self, timestamp: float, face_present: bool, behaviour: Mapping[str, float] | None = None
    ) -> list[Summary]:
        """Note whether a face is in this frame (and its behaviour descriptors, memory only); returns the session
        summary when a gap ended a session."""
        out = self._expire_session(timestamp)
        if face_present:
            if self._session is None:
                self._session = _Bucket(start=timestamp, end=timestamp)
            self._last_face = timestamp
            self._session.end = max(self._session.end, timestamp)
            if behaviour:
                self._session.add_behaviour(behaviour)
                period = self._settings.rolling_period_s
                start = math.floor(timestamp / period) * period
                if self._settings.rolling_enabled and start + period > self._closed_until:
                    self._periods.setdefault(start, _Bucket(start=start, end=start + period)).add_behaviour(behaviour)
        return out

    def add_window(self, window: WindowOutcome) -> None:
        """Count one window in the open session (opening one for a scored window) and in its rolling period."""
        score, reason = self._checked(window)
        if self._session is None and score is not None:
            self._session = _Bucket(start=window.start, end=window.end)
            self._last_face = window.end
        if self._session is not None and window.end >= self._session.start:
            self._session.add(window, score, reason)
            if score is not None:
                self._last_face = max(self._last_face or window.end, window.end)
                self._session.end = max(self._session.end, window.end)
        if self._settings.rolling_enabled:
            self._add_to_period(window, score, reason)

    def due(self, now: float) -> list[Summary]:
        """Summaries that are ready at ``now``: sessions whose gap expired and rolling periods that ended."""
        out = self._expire_session(now)
        period = self._settings.rolling_period_s
        for start in sorted(self._periods):
            if start + period + self._settings.lateness_s <= now:
                out.append(self._periods.pop(start).summary("rolling", self._model, self.outputs, complete=True))
                self._closed_until = max(self._closed_until, start + period)
        return out

    def close(self, now: float) -> list[Summary]:
        """Flush everything (SIGTERM, end of a video): the open session and every period, finished or not."""
        out = self._close_session()
        period = self._settings.rolling_period_s
        for start in sorted(self._periods):
            bucket = self._periods.pop(start)
            complete = start + period <= now
            if not complete:
                bucket.end = max(bucket.start, min(now, start + period))
            out.append(bucket.summary("rolling", self._model, self.outputs, complete=complete))
            self._closed_until = max(self._closed_until, start + period)
        return out

    def discard(self) -> None:
        """Forget everything held in memory (after an erase or a consent withdrawal)."""
        self._session = None
        self._last_face = None
        self._periods.clear()

    def _checked(self, window: WindowOutcome) -> tuple[tuple[float, ...] | None, str | None]:
        """A window's scores, one per output, each clamped to its scale; or why the window counts as rejected (a
        window with any output not finite is an invalid score)."""
        if window.score is None:
            return None, reason_key(window.reject_reason or "unspecified")
        values = (float(window.score), *(float(v) for v in window.more))
        if len(values) != len(self.outputs):
            raise ValueError(f"a window has {len(values)} scores; the bundle has {len(self.outputs)} outputs")
        if not all(math.isfinite(v) for v in values):
            return None, INVALID_SCORE
        return tuple(min(max(v, o.scale.low), o.scale.high) for v, o in zip(values, self.outputs, strict=True)), None

    def _add_to_period(self, window: WindowOutcome, score: tuple[float, ...] | None, reason: str | None) -> None:
        period = self._settings.rolling_period_s
        start = math.floor(window.end / period) * period
        if start + period <= self._closed_until:
            self.late_windows += 1
            log.warning("a window arrived after its rolling period was summarised; not counted in that period")
            return
        bucket = self._periods.setdefault(start, _Bucket(start=start, end=start + period))
        bucket.add(window, score, reason)

    def _expire_session(self, now: float) -> list[Summary]:
        if self._last_face is not None and now - self._last_face > self._settings.session_gap_s:
            return self._close_session()
        return []

    def _close_session(self) -> list[Summary]:
        if self._session is None:
            return []
        summary = self._session.summary("session", self._model, self.outputs, complete=True)
        self._session = None
        self._last_face = None
        return [summary]
