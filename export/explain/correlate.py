"""Spearman correlation of the per-frame attribution curve with each behaviour descriptor ("which moments").

Per window (frames where both are finite, at least ``MIN_FRAMES``; NaN when either is constant), then pooled by
averaging the windows' coefficients per video and the videos' per severity band.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.stats import ConstantInputWarning, spearmanr

from edge.face.descriptors import DESCRIPTORS

MIN_FRAMES = 5


def spearman(a: npt.ArrayLike, b: npt.ArrayLike, *, min_count: int = MIN_FRAMES) -> float:
    """Spearman's rho of two series over the points where both are finite (NaN if fewer than ``min_count`` or
    constant)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < min_count or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        return float(spearmanr(a[ok], b[ok]).statistic)


def window_correlations(curve: npt.NDArray[np.float64], descriptors: npt.NDArray[np.float64]) -> dict[str, float]:
    """Per descriptor, rho of ``curve`` ``(T,)`` with that column of ``descriptors`` ``(T, D)``."""
    return {name: spearman(curve, descriptors[:, i]) for i, name in enumerate(DESCRIPTORS)}


def mean_correlations(items: Sequence[dict[str, float]]) -> dict[str, float | None]:
    """Per descriptor, the mean of the finite coefficients (None when there is none)."""
    out: dict[str, float | None] = {}
    for name in DESCRIPTORS:
        values = [item[name] for item in items if item.get(name) is not None and np.isfinite(item[name])]
        out[name] = float(np.mean(values)) if values else None
    return out
