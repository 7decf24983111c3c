"""Real summaries for tests, made by the real Aggregator from made-up window outcomes."""

from __future__ import annotations

from collections.abc import Sequence

from edge.aggregate import Aggregator, Summary, WindowOutcome
from edge.publish.settings import AggregationSettings

IDENTITY = {"name": "tiny", "architecture": "mean-net", "version": "1", "manifest_sha256": "ab" * 32}
T0 = 1_763_800_000.0  # a fixed moment (2025-11-22) so coarse times are predictable


def session_summary(scores: Sequence[float], *, rejected: Sequence[str] = (), start: float = T0) -> Summary:
    """The session summary of one face-present stretch with one window per second."""
    agg = Aggregator(AggregationSettings(rolling_enabled=False), IDENTITY)
    t = start
    for score in scores:
        agg.observe_frame(t, True)
        agg.add_window(WindowOutcome(t, t + 1.0, score, None, {"brightness": 0.6, "sharpness": 0.8}))
        t += 1.0
    for reason in rejected:
        agg.observe_frame(t, True)
        agg.add_window(WindowOutcome(t, t + 1.0, None, reason, {"brightness": 0.1}))
        t += 1.0
    (summary,) = agg.close(t)
    return summary
