"""Agreement of predicted with true scores: MAE, RMSE, Pearson r, Lin's CCC, bootstrap intervals, Bland-Altman.

Pure numpy on per-video (or per-window) arrays. A figure that cannot be computed (fewer than two points, a
constant series for r and CCC) is ``None``, never a made-up number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

Metric = Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64]], float | None]
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


def mae(truth: npt.NDArray[np.float64], predicted: npt.NDArray[np.float64]) -> float | None:
    """Mean absolute error."""
    return float(np.mean(np.abs(predicted - truth))) if truth.size else None


def rmse(truth: npt.NDArray[np.float64], predicted: npt.NDArray[np.float64]) -> float | None:
    """Root mean squared error."""
    return float(np.sqrt(np.mean((predicted - truth) ** 2))) if truth.size else None


def pearson(truth: npt.NDArray[np.float64], predicted: npt.NDArray[np.float64]) -> float | None:
    """Pearson correlation; ``None`` for fewer than two points or a constant series."""
    if truth.size < 2 or np.ptp(truth) == 0 or np.ptp(predicted) == 0:
        return None
    return float(np.corrcoef(truth, predicted)[0, 1])


def ccc(truth: npt.NDArray[np.float64], predicted: npt.NDArray[np.float64]) -> float | None:
    """Lin's concordance correlation coefficient: 2 cov / (var_t + var_p + (mean_t - mean_p)^2), population moments.

    Unlike r it falls when predictions are shifted or scaled away from the truth, so a model that only ranks
    people scores low. ``None`` for fewer than two points or when both series are the same constant.
    """
    if truth.size < 2:
        return None
    covariance = float(np.mean((truth - truth.mean()) * (predicted - predicted.mean())))
    denominator = float(truth.var() + predicted.var() + (truth.mean() - predicted.mean()) ** 2)
    return 2.0 * covariance / denominator if denominator > 0 else None


METRICS: dict[str, Metric] = {"mae": mae, "rmse": rmse, "pearson_r": pearson, "ccc": ccc}


def bootstrap_interval(
    truth: npt.NDArray[np.float64],
    predicted: npt.NDArray[np.float64],
    metric: Metric,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> list[float] | None:
    """Percentile bootstrap 95% interval of ``metric`` over pairs resampled with replacement (seeded).

    Resamples where the metric is undefined (a constant draw for r) are left out; ``None`` when fewer than half
    of them are defined, as with two or three videos.
    """
    if truth.size < 2:
        return None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, truth.size, (resamples, truth.size))
    values = [metric(truth[index], predicted[index]) for index in draws]
    defined = np.array([v for v in values if v is not None], dtype=np.float64)
    if defined.size < resamples / 2:
        return None
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(defined, [tail, 100 - tail])
    return [float(low), float(high)]


def agreement(
    truth: npt.ArrayLike, predicted: npt.ArrayLike, *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> dict[str, Any]:
    """Every metric of :data:`METRICS` with its bootstrap interval (``<name>_ci``), the bias and the count."""
    t = np.asarray(truth, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    out: dict[str, Any] = {"n": int(t.size), "bias": float(np.mean(p - t)) if t.size else None}
    for name, metric in METRICS.items():
        out[name] = metric(t, p)
        out[f"{name}_ci"] = bootstrap_interval(t, p, metric, resamples=resamples, seed=seed)
    return out


def bland_altman(truth: npt.ArrayLike, predicted: npt.ArrayLike) -> dict[str, Any]:
    """Bland-Altman figures: mean difference (predicted - true) and 95% limits of agreement (bias +- 1.96 SD)."""
    difference = np.asarray(predicted, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    if difference.size < 2:
        return {"bias": float(difference.mean()) if difference.size else None, "sd": None, "limits": None}
    bias, sd = float(difference.mean()), float(difference.std(ddof=1))
    return {"bias": bias, "sd": sd, "limits": [bias - 1.96 * sd, bias + 1.96 * sd]}
