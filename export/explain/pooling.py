"""Attribution maps pooled per manifest tile: per frame, per window and per video, raw and as shares.

As in Expresso-AI: the absolute attribution is summed inside each region (here: each mosaic tile of the bundle's
manifest) per frame, then over time, raw and as a share of the total. The per-frame curve is the frame's total
over all tiles. Pixels outside every tile (the unused fifth of the default mosaic, black in every window) are
ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.bundle import Tile
from edge.errors import InputError

FloatArray = npt.NDArray[np.float64]


def frame_maps(attribution: npt.NDArray[np.floating], layout: str) -> FloatArray:
    """One window's attribution ``(1, ...)`` or ``(...)`` in ``layout`` as ``(T, H, W)`` absolute values summed
    over colour channels."""
    values = np.abs(np.asarray(attribution, dtype=np.float64))
    if values.ndim == 5:
        values = values[0]
    if values.ndim != 4:
        raise InputError(f"attribution has shape {values.shape}, expected one window", fix="pass (1, ...) maps")
    return values.sum(axis=1) if layout == "NTCHW" else values.sum(axis=0)


def tile_sums(maps: FloatArray, tiles: Sequence[Tile]) -> FloatArray:
    """``(T, H, W)`` non-negative maps summed inside each tile: ``(T, len(tiles))``."""
    return np.stack([maps[:, t.y : t.y + t.height, t.x : t.x + t.width].sum(axis=(1, 2)) for t in tiles], axis=1)


def shares_of(raw: FloatArray) -> FloatArray:
    """Raw non-negative totals as shares summing to 1 (all zeros when the total is zero)."""
    total = float(raw.sum())
    return raw / total if total > 0 else np.zeros_like(raw)


@dataclass(frozen=True)
class PooledWindow:
    """One window's attribution pooled per region: ``per_frame`` ``(T, R)``, ``raw`` ``(R,)``, ``shares``, ``curve``."""

    per_frame: FloatArray
    raw: FloatArray
    shares: FloatArray
    curve: FloatArray


def pool_window(per_frame: FloatArray) -> PooledWindow:
    """Pool a window's per-frame, per-region attribution ``(T, R)`` over time."""
    per_frame = np.asarray(per_frame, dtype=np.float64)
    raw = per_frame.sum(axis=0)
    return PooledWindow(per_frame, raw, shares_of(raw), per_frame.sum(axis=1))


def pool_video(windows: Sequence[PooledWindow]) -> tuple[FloatArray, FloatArray]:
    """A video's raw attribution per region (mean over its windows) and its shares (mean of the windows' shares,
    each window counting once, as a participant's windows do in Expresso-AI)."""
    if not windows:
        raise InputError("no scored window to pool", fix="check the video shows a face the pipeline accepts")
    return np.mean([w.raw for w in windows], axis=0), np.mean([w.shares for w in windows], axis=0)


def top_region(shares: FloatArray, regions: Sequence[str]) -> str:
    """The region with the largest share."""
    return regions[int(np.argmax(shares))]
