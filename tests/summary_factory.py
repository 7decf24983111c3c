"""Real summaries for tests, made by the real Aggregator from made-up window outcomes."""

from __future__ import annotations

from collections.abc import Sequence

from edge.aggregate import Aggregator, Summary, WindowOutcome
from edge.publish.settings import AggregationSettings
from edge.scale import BDI_II, PUBLISHED, NamedScale

IDENTITY = {"name": "tiny", "architecture": "mean-net", "version": "1", "manifest_sha256": "ab" * 32}
T0 = 1_763_800_000.0  # a fixed moment (2025-11-22) so coarse times are predictable


BDI_AND_PHQ9 = (NamedScale("bdi_ii", BDI_II), NamedScale("phq9", PUBLISHED["PHQ-9"]))
"""A model of two outputs, a BDI-II and a PHQ-9 head."""


def session_summary(
    scores: Sequence[float],
    *,
    rejected: Sequence[str] = (),
    start: float = T0,
    more: Sequence[tuple[float, ...]] = (),
    outputs: Sequence[NamedScale] = (NamedScale("score", BDI_II),),
) -> Summary:
    """The session summary of one face-present stretch with one window per second; ``more``: each window's scores
    of the ``outputs`` after the first."""
    agg = Aggregator(AggregationSettings(rolling_enabled=False), IDENTITY, outputs)
    t = start
    for i, score in enumerate(scores):
        agg.observe_frame(t, True)
        extra = more[i] if more else ()
        agg.add_window(WindowOutcome(t, t + 1.0, score, None, {"brightness": 0.6, "sharpness": 0.8}, more=extra))
        t += 1.0
    for reason in rejected:
        agg.observe_frame(t, True)
        agg.add_window(WindowOutcome(t, t + 1.0, None, reason, {"brightness": 0.1}))
        t += 1.0
    (summary,) = agg.close(t)
    return summary


def summary_document(device: str = "0" * 20, scores: Sequence[float] = (12.0,) * 6) -> dict[str, object]:
    """A valid summary payload as a device publishes it (real gate and builder), with a fresh ``message_id``."""
    import json
    import tempfile
    from pathlib import Path

    from edge.privacy.release import PrivacyGate
    from edge.publish.payloads import encode, summary_payload
    from edge.publish.settings import PrivacySettings

    summary = session_summary(scores)
    with tempfile.TemporaryDirectory() as state:
        score = PrivacyGate(PrivacySettings(), Path(state)).admit(summary)
    assert score is not None
    document: dict[str, object] = json.loads(
        encode(summary_payload(summary, score, device=device, resolution_s=900, k=5))
    )
    return document
