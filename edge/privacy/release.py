"""The privacy gate between aggregation and publishing: the k threshold and differential privacy.

A summary resting on fewer than ``k_min_windows`` scored windows is withheld entirely. With differential privacy
on, only the mean is published, with noise; the median, quartiles, MAD and band shares are withheld because the
noise does not cover them (window counts are published: they describe the device's operation, not the score).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge.privacy.dp import DailyBudget, DpRelease, release_mean

if TYPE_CHECKING:
    from edge.aggregate import Summary
    from edge.publish.settings import PrivacySettings

log = logging.getLogger(__name__)

DP_WITHHELD = ("median", "q1", "q3", "iqr", "mad", "bands")


@dataclass(frozen=True)
class PublishableScore:
    """The score statistics allowed to leave the device for one summary, and what was withheld."""

    values: dict[str, float | dict[str, float] | None]
    withheld: tuple[str, ...]
    dp: DpRelease | None


class PrivacyGate:
    """Decides, per summary, whether and what may be published."""

    def __init__(self, settings: PrivacySettings, state_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.budget = DailyBudget(state_dir, settings.dp, clock) if settings.dp.enabled else None
        self.withheld_summaries = 0

    def admit(self, summary: Summary) -> PublishableScore | None:
        """The publishable statistics of ``summary``, or None when it rests on fewer than k scored windows."""
        k = self.settings.k_min_windows
        if summary.windows_scored < k or summary.stats is None:
            self.withheld_summaries += 1
            log.info(
                "withheld a %s summary resting on %d scored windows (k=%d)", summary.kind, summary.windows_scored, k
            )
            return None
        stats = summary.stats
        values: dict[str, float | dict[str, float] | None] = {
            "mean": stats.mean,
            "median": stats.median,
            "q1": stats.q1,
            "q3": stats.q3,
            "iqr": stats.iqr,
            "mad": stats.mad,
            "bands": dict(stats.bands),
        }
        if self.budget is None:
            return PublishableScore(values, (), None)
        release = release_mean(stats.mean, summary.windows_scored, self.settings.dp, self.budget)
        values = {name: (None if name in DP_WITHHELD else value) for name, value in values.items()}
        values["mean"] = release.mean
        withheld = DP_WITHHELD if release.mean is not None else ("mean", *DP_WITHHELD)
        return PublishableScore(values, withheld, release)

    def budget_remaining(self) -> float | None:
        """Epsilon left today, or None with differential privacy off."""
        return None if self.budget is None else self.budget.remaining()[0]
