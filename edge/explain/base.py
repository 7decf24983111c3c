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
    outputs: tuple[dict[str, float] | None, ...] = ()
    """Every output's shares, in the manifest's order (the first is ``shares``; a bundle of several outputs adds
    one per further output, each None when occluding moved that output nothing)."""

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
        self.width = len(backend.bundle.outputs)

    @property
    def regions(self) -> tuple[str, ...]:
        """The regions explained, in the manifest's tile order."""
        return tuple(tile.region for tile in self.tiles)

    def explain(
        self, batch: npt.NDArray[np.float32], scores: npt.NDArray[np.float32] | None = None
    ) -> list[RegionAttribution]:
        """One attribution per window of ``batch`` (normalised, ``(N, ...)``), for every output of the bundle;
        ``scores`` (``(N, K)`` as :meth:`Backend.infer_outputs` gives them, or ``(N,)`` for one output) saves
        re-scoring them."""
        deltas = self._deltas(batch, None if scores is None else self._score_rows(scores, batch.shape[0]))
        out = []
        for window in deltas:  # (regions, outputs)
            raws = [{t.region: float(v) for t, v in zip(self.tiles, column, strict=True)} for column in window.T]
            shares = tuple(to_shares(raw) for raw in raws)
            out.append(RegionAttribution(raws[0], shares[0], shares))
        return out

    def _score_rows(self, scores: npt.NDArray[np.float32], windows: int) -> npt.NDArray[np.float32]:
        """``scores`` as one row of K per window, or a clear refusal."""
        rows = scores.reshape(-1, 1) if scores.ndim == 1 else scores
        if rows.ndim != 2 or rows.shape[0] != windows:
            raise InputError(
                f"{scores.shape[0] if scores.ndim else 0} scores for {windows} windows",
                fix="pass one row of scores per window, or none",
            )
        if rows.shape[1] != self.width:
            raise InputError(
                f"scores of {rows.shape[1]} output(s) for a bundle of {self.width}",
                fix="pass every output's scores, (N, K) as Backend.infer_outputs returns them, or none",
            )
        return rows

    @abstractmethod
    def _deltas(
        self, batch: npt.NDArray[np.float32], scores: npt.NDArray[np.float32] | None
    ) -> npt.NDArray[np.float64]:
        """Non-negative importance of each tile for each window and output, ``(N, len(self.tiles), K)``;
        ``scores``, when given, is ``(N, K)``."""
