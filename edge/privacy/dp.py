"""Differential privacy on published means, with a per-UTC-day budget that is persisted and enforced.

The noise comes from diffprivlib (IBM's maintained DP library): bounded-domain Laplace (pure epsilon-DP) or the
analytic Gaussian mechanism. The unit of privacy is one scored window: replacing one window's score (clamped to
[0, 63]) moves the mean of ``n`` windows by at most 63 / n, which is the sensitivity given to the mechanism.
Spending is accounted by diffprivlib's ``BudgetAccountant``, restored from ``privacy-budget.json`` on every
start, and written (atomically) *before* a noisy value is released, so a crash can waste budget but never
overspend it. Once a day's budget is spent the mean is withheld until the next UTC day. diffprivlib (which pulls
scikit-learn) is imported only when differential privacy is on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from edge.privacy.statefile import read_json, write_json_atomic

if TYPE_CHECKING:
    from diffprivlib.accountant import BudgetAccountant

    from edge.publish.settings import DifferentialPrivacySettings

log = logging.getLogger(__name__)

BUDGET_NAME = "privacy-budget.json"
SCORE_RANGE = (0.0, 63.0)


@dataclass(frozen=True)
class DpRelease:
    """The outcome of one release: the noisy mean, or None when the day's budget could not pay for it."""

    mean: float | None
    mechanism: str
    epsilon: float
    delta: float
    sensitivity: float
    epsilon_remaining: float
    day: str


def utc_day(timestamp: float) -> str:
    """The UTC calendar day of a timestamp, ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d")


class DailyBudget:
    """The day's privacy ledger, persisted in the state directory."""

    def __init__(
        self, state_dir: Path, settings: DifferentialPrivacySettings, clock: Callable[[], float] = time.time
    ) -> None:
        self._path = state_dir / BUDGET_NAME
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()

    def today(self) -> str:
        """The UTC day the ledger currently accounts for."""
        return utc_day(self._clock())

    def remaining(self) -> tuple[float, float]:
        """Epsilon and delta left today."""
        with self._lock:
            _, accountant = self._accountant(utc_day(self._clock()))
            epsilon, delta = accountant.remaining()
            return round(max(float(epsilon), 0.0), 9), max(float(delta), 0.0)  # no float residue like 1e-16

    def try_spend(self, epsilon: float, delta: float) -> bool:
        """Spend ``(epsilon, delta)`` from today's budget and persist it; False (nothing spent) when it cannot pay."""
        from diffprivlib.utils import BudgetError

        with self._lock:
            day, accountant = self._accountant(utc_day(self._clock()))
            try:
                accountant.check(epsilon, delta)
            except BudgetError:
                return False
            accountant.spend(epsilon, delta)
            spent = [[float(e), float(d)] for e, d in accountant.spent_budget]
            write_json_atomic(self._path, {"day": day, "spent": spent})
            return True

    def _accountant(self, day: str) -> tuple[str, BudgetAccountant]:
        from diffprivlib.accountant import BudgetAccountant

        doc = read_json(self._path) or {}
        spent = [(float(e), float(d)) for e, d in doc.get("spent", [])] if doc.get("day") == day else []
        accountant = BudgetAccountant(
            epsilon=self._settings.daily_epsilon, delta=self._settings.daily_delta, spent_budget=spent
        )
        return day, accountant


def release_mean(mean: float, n: int, settings: DifferentialPrivacySettings, budget: DailyBudget) -> DpRelease:
    """The mean of ``n`` clamped window scores with noise from ``settings.mechanism``, paid from ``budget``."""
    from diffprivlib.mechanisms import GaussianAnalytic, LaplaceBoundedDomain

    low, high = SCORE_RANGE
    sensitivity = (high - low) / max(n, 1)
    epsilon = settings.epsilon_per_summary
    delta = settings.delta_per_summary if settings.mechanism == "gaussian" else 0.0
    day = budget.today()
    if not budget.try_spend(epsilon, delta):
        log.warning("daily privacy budget spent: the mean of this summary is withheld until the next UTC day")
        return DpRelease(None, settings.mechanism, 0.0, 0.0, sensitivity, budget.remaining()[0], day)
    clamped = min(max(mean, low), high)
    if settings.mechanism == "laplace":
        noisy = LaplaceBoundedDomain(
            epsilon=epsilon, delta=0.0, sensitivity=sensitivity, lower=low, upper=high
        ).randomise(clamped)
    else:
        noisy = GaussianAnalytic(epsilon=epsilon, delta=delta, sensitivity=sensitivity).randomise(clamped)
    noisy = min(max(float(noisy), low), high)  # post-processing keeps the guarantee
    return DpRelease(noisy, settings.mechanism, epsilon, delta, sensitivity, budget.remaining()[0], day)
