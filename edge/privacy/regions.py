"""The privacy gate's rule for region shares: the k threshold on explained windows, and Laplace noise under DP.

Region shares (``edge.explain``) are averaged over the explained windows of a summary. They are published only
when at least ``k_min_windows`` windows were explained, like the score. With differential privacy on, each share
gets Laplace noise from diffprivlib and the release is paid from the same daily budget as the mean
(``dp.regions_epsilon_per_summary``). The unit of privacy is one window: its shares are non-negative and sum to
1, so replacing it moves the vector of mean shares by at most 2 / n in L1 norm, the sensitivity given to the
mechanism. Clipping at 0 and renormalising afterwards is post-processing and keeps the guarantee.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.privacy.dp import DailyBudget
    from edge.publish.settings import DifferentialPrivacySettings


def regions_sensitivity(n: int) -> float:
    """L1 sensitivity of the mean of ``n`` share vectors that each sum to 1."""
    return 2.0 / max(n, 1)


def noisy_shares(
    shares: Mapping[str, float], n: int, settings: DifferentialPrivacySettings, budget: DailyBudget
) -> tuple[dict[str, float] | None, float]:
    """``shares`` (the mean over ``n`` windows) with Laplace noise, paid from ``budget``, and the epsilon spent.

    None and 0 when the budget cannot pay; None and the epsilon when it paid but the noise left every share at or
    below 0 (nothing to renormalise): the release happened and is accounted for, it just says nothing."""
    from diffprivlib.mechanisms import Laplace

    epsilon = settings.regions_epsilon_per_summary
    if not budget.try_spend(epsilon, 0.0):
        return None, 0.0
    mechanism = Laplace(epsilon=epsilon, delta=0.0, sensitivity=regions_sensitivity(n))
    noisy = {region: max(float(mechanism.randomise(float(value))), 0.0) for region, value in shares.items()}
    total = sum(noisy.values())
    return ({region: value / total for region, value in noisy.items()} if total > 0 else None), epsilon
