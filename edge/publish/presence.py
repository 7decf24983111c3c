"""Figures that move only while a face is in front of the camera, published no more finely than the summaries.

Window counts, summary counts, inference and CPU figures, the outbox and the privacy budget all change when
someone sits down. Published live, a health message every minute would tell when, however coarse the summaries'
timestamps. :class:`PeriodSnapshot` publishes them as they stood at the end of the previous coarse period (the
last update made in it): by then that period's summaries may leave too, so nothing finer leaks.
"""

from __future__ import annotations

import math
from typing import Any


class PeriodSnapshot:
    """Holds a set of values back to the previous ``resolution_s`` period (a pass-through when not ``enabled``)."""

    def __init__(self, resolution_s: int, *, enabled: bool) -> None:
        self._resolution_s = resolution_s
        self.enabled = enabled
        self._period: int | None = None
        self._latest: dict[str, Any] = {}
        self._published: dict[str, Any] = {}

    def update(self, now: float, current: dict[str, Any]) -> dict[str, Any]:
        """Record ``current`` at ``now``; return what may be published: the values of the last update made in an
        earlier period (the current ones at the very first update, which follow no activity yet)."""
        if not self.enabled:
            return current
        period = math.floor(now / self._resolution_s)
        if self._period is None:
            self._published = current
        elif period != self._period:
            self._published = self._latest
        self._period, self._latest = period, current
        return self._published

    def published(self, name: str, default: Any) -> Any:
        """The published value of ``name`` (``default`` before any update or when not enabled)."""
        return self._published.get(name, default) if self.enabled else default
