"""Differential privacy on published means, with a per-UTC-day budget that is persisted and enforced.

The noise comes from diffprivlib (IBM's maintained DP library): bounded-domain Laplace (pure epsilon-DP) or the
analytic Gaussian mechanism. The unit of privacy is one scored window: replacing one window's score (clamped to
the output scale's range, e.g. [0, 27] for PHQ-9) moves the mean of ``n`` windows by at most the range's width / n,
which is the sensitivity given to the mechanism.
Spending is accounted by diffprivlib's ``BudgetAccountant``, restored from ``privacy-budget.json`` on every
start, and written (atomically) *before* a noisy value is released, so a crash can waste budget but never
overspend it. Once a day's budget is spent the mean is withheld until the next UTC day; a clock stepped back behind
the ledger's day and a corrupt ledger spend nothing either (see :class:`DailyBudget`). diffprivlib (which pulls
scikit-learn) is imported only when differential privacy is on.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import ConfigError
from edge.privacy.statefile import read_json, write_json_atomic

if TYPE_CHECKING:
    from diffprivlib.accountant import BudgetAccountant

    from edge.publish.settings import DifferentialPrivacySettings
    from edge.scale import Scale

log = logging.getLogger(__name__)

BUDGET_NAME = "privacy-budget.json"
_LEDGER_FIX = (
    "nothing to do: the daemon treats today as fully spent and rewrites the ledger, so releases resume on the next "
    "UTC day (deleting the file would reset today's budget)"
)


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


class _NothingToSpendError(Exception):
    """Nothing may be spent today, for the reason in the message."""


class DailyBudget:
    """The day's privacy ledger, ``{"day": "YYYY-MM-DD", "spent": [[epsilon, delta], ...]}``, in the state directory.

    The ledger holds one UTC day: spending on a later day starts that day afresh. Nothing is ever spent for a day
    *earlier* than the ledger's (the clock stepped back: a device without a real-time clock, an NTP correction):
    spending then would overwrite the ledger, and the recorded day, reached again, would pay a second time. So
    until the clock is back on the ledger's day the mean is withheld. A corrupt ledger fails closed: the day is
    treated as fully spent, an error is logged and a valid ledger saying so is written. A ledger recording more
    than ``daily_epsilon`` (the setting was lowered today) also leaves nothing for today.
    """

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
        """Epsilon and delta left today (none while the clock is behind the ledger's day)."""
        with self._lock:
            try:
                accountant = self._accountant(utc_day(self._clock()))
            except _NothingToSpendError:
                return 0.0, 0.0
            epsilon, delta = accountant.remaining()
            return round(max(float(epsilon), 0.0), 9), max(float(delta), 0.0)  # no float residue like 1e-16

    def try_spend(self, epsilon: float, delta: float) -> bool:
        """Spend ``(epsilon, delta)`` from today's budget and persist it; False (nothing spent, reason logged)."""
        from diffprivlib.utils import BudgetError

        with self._lock:
            day = utc_day(self._clock())
            try:
                accountant = self._accountant(day)
                accountant.check(epsilon, delta)
            except _NothingToSpendError as error:
                log.warning("no differential-privacy release: %s; the mean of this summary is withheld", error)
                return False
            except BudgetError:
                log.warning("daily privacy budget spent: the mean of this summary is withheld until the next UTC day")
                return False
            accountant.spend(epsilon, delta)
            self._write(day, [(float(e), float(d)) for e, d in accountant.spent_budget])
            return True

    def _accountant(self, day: str) -> BudgetAccountant:
        from diffprivlib.accountant import BudgetAccountant
        from diffprivlib.utils import BudgetError

        try:
            ledger = _read_ledger(self._path)
        except ConfigError as error:
            log.error("privacy-budget ledger unreadable, %s counts as fully spent: %s", day, error)
            with contextlib.suppress(ConfigError):  # cannot be rewritten either: it still reads as spent next time
                self._write(day, [(self._settings.daily_epsilon, self._settings.daily_delta)])
            raise _NothingToSpendError(f"the privacy-budget ledger was corrupt, {day} counts as spent") from error
        if ledger is not None and ledger[0] > day:
            raise _NothingToSpendError(
                f"the clock ({day}) is behind the privacy-budget ledger ({ledger[0]}); nothing is spent for an "
                f"earlier day, so releases wait until the clock reaches {ledger[0]}"
            )
        spent = ledger[1] if ledger is not None and ledger[0] == day else []
        try:
            return BudgetAccountant(
                epsilon=self._settings.daily_epsilon, delta=self._settings.daily_delta, spent_budget=spent
            )
        except BudgetError as error:
            raise _NothingToSpendError(f"the ledger records more than the daily budget spent on {day}") from error

    def _write(self, day: str, spent: list[tuple[float, float]]) -> None:
        write_json_atomic(self._path, {"day": day, "spent": [list(pair) for pair in spent]})


def _read_ledger(path: Path) -> tuple[str, list[tuple[float, float]]] | None:
    """The ledger's day and spending, None without a ledger; ConfigError when it is not a valid ledger."""
    doc = read_json(path, fix=_LEDGER_FIX)
    if doc is None:
        return None
    day, spent = doc.get("day"), doc.get("spent")
    if not isinstance(day, str) or not _is_day(day):
        raise ConfigError(f"state file {path}: 'day' is {day!r}, not a YYYY-MM-DD date", fix=_LEDGER_FIX)
    if not isinstance(spent, list) or not all(_is_spend(pair) for pair in spent):
        raise ConfigError(
            f"state file {path}: 'spent' is not a list of [epsilon, delta] pairs of non-negative numbers",
            fix=_LEDGER_FIX,
        )
    return day, [(float(e), float(d)) for e, d in spent]


def _is_day(text: str) -> bool:
    try:
        return date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def _is_spend(pair: object) -> bool:
    """One ``[epsilon, delta]`` spend as diffprivlib accepts it."""
    if not isinstance(pair, list) or len(pair) != 2:
        return False
    if not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in pair):
        return False
    epsilon, delta = pair
    return epsilon >= 0 and 0 <= delta <= 1 and epsilon + delta > 0


def release_mean(
    mean: float, n: int, settings: DifferentialPrivacySettings, budget: DailyBudget, scale: Scale
) -> DpRelease:
    """The mean of ``n`` window scores clamped to ``scale``'s range with noise from ``settings.mechanism``, paid
    from ``budget``."""
    from diffprivlib.mechanisms import GaussianAnalytic, LaplaceBoundedDomain

    low, high = scale.low, scale.high
    sensitivity = (high - low) / max(n, 1)
    epsilon = settings.epsilon_per_summary
    delta = settings.delta_per_summary if settings.mechanism == "gaussian" else 0.0
    day = budget.today()
    if not budget.try_spend(epsilon, delta):
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
