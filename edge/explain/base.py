"""The region-explanation interface: which manifest tiles a backend's score rests on, for a batch of windows.

An explainer author writes one module with one :class:`Explainer` subclass that sets ``key`` and fills in
``_deltas``; the public method here checks shapes and turns raw score changes into shares. Explainers see only
the backend's ``infer``, so one method runs through every backend (ONNX Runtime, TensorRT, any new one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from edge.backends.base import Backend
from edge.errors import InputError


@dataclass(frozen=True)
class RegionAttribution:
    """One window's attribution: the raw score change per region and the same as shares summing to 1.

    ``shares`` is None when no region changed the score (nothing to share out). Never leaves the device: the
    aggregator averages shares over a session or period and the privacy gate decides what is published.
    """

    raw: dict[str, float]
    shares: dict[str, float] | None

    def __repr__(self) -> str:  # keep single-window values out of accidental log lines
        return f"RegionAttribution(regions={len(self.raw)}, shared={self.shares is not None})"


def to_shares(raw: dict[str, float]) -> dict[str, float] | None:
    """Non-negative raw magnitudes as shares of their total; None when the total is zero or not finite."""
    total = float(sum(max(value, 0.0) for value in raw.values()))
    if not np.isfinite(total) or total <= 0.0:
        return None
    return {region: max(value, 0.0) / total for region, value in raw.items()}


class Explainer(ABC):
    """Attributes a backend's scores of normalised windows to the bundle's mosaic tiles."""

    key: ClassVar[str]
    """Name used in configuration (``explain.method``) and on the command line."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.tiles = backend.bundle.tiles

    @property
    def regions(self) -> tuple[str, ...]:
        """The regions explained, in the manifest's tile order."""
        return tuple(tile.region for tile in self.tiles)

    def explain(
        self, batch: npt.NDArray[np.float32], scores: npt.NDArray[np.float32] | None = None
    ) -> list[RegionAttribution]:
        """One attribution per window of ``batch`` (normalised, ``(N, ...)``); ``scores`` saves re-scoring them."""
        if scores is not None and scores.shape != (batch.shape[0],):
            raise InputError(
                f"{scores.shape[0] if scores.ndim else 0} scores for {batch.shape[0]} windows",
                fix="pass one score per window, or none",
            )
        deltas = self._deltas(batch, scores)  # (N, regions)
        out = []
        for row in deltas:
            raw = {tile.region: float(value) for tile, value in zip(self.tiles, row, strict=True)}
            out.append(RegionAttribution(raw, to_shares(raw)))
        return out

    @abstractmethod
    def _deltas(
        self, batch: npt.NDArray[np.float32], scores: npt.NDArray[np.float32] | None
    ) -> npt.NDArray[np.float64]:
        """Non-negative importance of each tile for each window, shape ``(N, len(self.tiles))``."""
