"""The privacy gate between aggregation and publishing: the k threshold and differential privacy.

A summary resting on fewer than ``k_min_windows`` scored windows is withheld entirely. With differential privacy
on, only the mean is published, with noise; the median, quartiles, MAD and band shares are withheld because the
noise does not cover them (window counts are published: they describe the device's operation, not the score).
Region shares follow the same rules (:mod:`edge.privacy.regions`): k explained windows, and their own noise.

A bundle of several outputs has region shares for each output; a further output's shares pass the same k
threshold on its explained windows. Under differential privacy they are not published (``regions`` null in its
item of ``outputs``): the regions' release (``dp.regions_epsilon_per_summary``) is paid for the primary output's
shares only, and paying it K times would cut the summaries a day's budget covers.

A bundle of several outputs (``edge.scale``) has its outputs' statistics on the same scored windows, so the k
threshold is one per summary. Under differential privacy every output's mean is a release of its own and pays
``epsilon_per_summary`` (and delta) from the day's budget (sequential composition): the primary output first, then
the others in the manifest's order, then the region shares; a mean the budget cannot pay is withheld.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge.privacy.dp import DailyBudget, DpRelease, release_mean
from edge.privacy.regions import noisy_shares
from edge.scale import Scale

if TYPE_CHECKING:
    from edge.aggregate import OutputStats, Summary
    from edge.publish.settings import PrivacySettings

log = logging.getLogger(__name__)

DP_WITHHELD = ("median", "q1", "q3", "iqr", "mad", "bands")


@dataclass(frozen=True)
class PublishableOutput:
    """One output's statistics allowed to leave (None where withheld), with its name and scale."""

    name: str
    scale: Scale
    values: dict[str, float | dict[str, float] | None]
    withheld: tuple[str, ...]
    dp: DpRelease | None
    regions: dict[str, float] | None = None
    """This output's mean region shares that may leave (the primary's: the summary's ``regions``; a further
    output's: None with fewer than k explained windows, and always under differential privacy)."""


@dataclass(frozen=True)
class PublishableScore:
    """The score statistics allowed to leave the device for one summary, and what was withheld."""

    values: dict[str, float | dict[str, float] | None]
    withheld: tuple[str, ...]
    dp: DpRelease | None
    regions: dict[str, float] | None = None
    """Mean region shares that may leave (None: none explained, fewer than k explained, or DP budget spent)."""
    regions_epsilon: float = 0.0
    """Epsilon spent on ``regions`` under differential privacy."""
    behaviour: dict[str, float] | None = None
    """Behaviour descriptor means that may leave (None when off, or under DP, whose noise does not cover them)."""
    outputs: tuple[PublishableOutput, ...] = ()
    """Every output's publishable statistics, primary first (its values, withheld and dp are the ones above)."""

    @property
    def outputs_epsilon(self) -> float:
        """Epsilon spent on the means of the outputs after the primary one (0 without DP or with one output)."""
        return sum(out.dp.epsilon for out in self.outputs[1:] if out.dp is not None)


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
        outputs = tuple(self._output(out, summary.windows_scored) for out in summary.outputs)  # primary first
        regions, epsilon = self._regions(summary)  # after the means: the scores have the first claim on the budget
        primary = dataclasses.replace(outputs[0], regions=regions)
        outputs = (primary, *outputs[1:])
        if self.budget is None:
            return PublishableScore(primary.values, (), None, regions, behaviour=summary.behaviour, outputs=outputs)
        assert primary.dp is not None
        release = dataclasses.replace(primary.dp, epsilon_remaining=self.budget.remaining()[0])
        return PublishableScore(primary.values, primary.withheld, release, regions, epsilon, outputs=outputs)

    def _output(self, out: OutputStats, windows: int) -> PublishableOutput:
        """One output's statistics that may leave: all of them and its region shares (k explained windows), or
        under DP its noisy mean alone (paid here; the region shares' DP release is paid for the primary only)."""
        stats = out.stats
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
            regions = self._k_regions(out.regions, out.windows_explained)
            return PublishableOutput(out.name, out.scale, values, (), None, regions)
        release = release_mean(stats.mean, windows, self.settings.dp, self.budget, out.scale)
        values = {name: (None if name in DP_WITHHELD else value) for name, value in values.items()}
        values["mean"] = release.mean
        withheld = DP_WITHHELD if release.mean is not None else ("mean", *DP_WITHHELD)
        return PublishableOutput(out.name, out.scale, values, withheld, release)

    def _regions(self, summary: Summary) -> tuple[dict[str, float] | None, float]:
        """The region shares that may leave (k explained windows, noise paid from the budget under DP) and the
        epsilon their release spent."""
        regions = self._k_regions(summary.regions, summary.windows_explained)
        if regions is None or self.budget is None:
            return regions, 0.0
        return noisy_shares(regions, summary.windows_explained, self.settings.dp, self.budget)

    def _k_regions(self, regions: dict[str, float] | None, explained: int) -> dict[str, float] | None:
        """``regions`` when they rest on at least k explained windows (the score's k threshold), else None."""
        return dict(regions) if regions and explained >= self.settings.k_min_windows else None

    def budget_remaining(self) -> float | None:
        """Epsilon left today, or None with differential privacy off."""
        return None if self.budget is None else self.budget.remaining()[0]
