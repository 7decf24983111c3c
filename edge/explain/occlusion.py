"""Occlusion of one manifest tile at a time: the model-agnostic region attribution the device runs.

A window and its copies with one tile replaced by the baseline (zero in normalised space: the normalisation's
mean colour, which carries no pattern) go to the backend as one batch of N+1 windows (N tiles); a tile's
importance is how far its occlusion moves the score, ``|f(x) - f(x with tile r occluded)|``. With the window's
score already known (the scorer just computed it) only the N occluded copies are run.

:func:`occlusion_deltas` also occludes a tile in one frame at a time (``per_frame=True``): the per-frame curve
the offline ``python -m export explain`` draws for a bundle without its checkpoint (N x T + 1 windows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from edge.bundle import Tile
from edge.explain.base import Explainer

Infer = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]


def occluded_copies(
    window: npt.NDArray[np.float32], tiles: Sequence[Tile], *, layout: str, per_frame: bool = False
) -> npt.NDArray[np.float32]:
    """Copies of one normalised window ``(1, ...)`` with one tile zeroed each (in every frame, or one frame each).

    Order: tile-major, then frame (``per_frame``): ``(len(tiles) [* frames], ...)``.
    """
    frames = window.shape[1] if layout == "NTCHW" else window.shape[2]
    steps = range(frames) if per_frame else [None]
    copies = np.repeat(window, len(tiles) * len(steps), axis=0)
    index = 0
    for tile in tiles:
        rows, cols = slice(tile.y, tile.y + tile.height), slice(tile.x, tile.x + tile.width)
        for frame in steps:
            at: slice | int = slice(None) if frame is None else frame
            if layout == "NTCHW":
                copies[index, at, :, rows, cols] = 0.0
            else:
                copies[index, :, at, rows, cols] = 0.0
            index += 1
    return copies


def occlusion_deltas(
    infer: Infer,
    window: npt.NDArray[np.float32],
    tiles: Sequence[Tile],
    *,
    layout: str,
    score: float | None = None,
    per_frame: bool = False,
) -> npt.NDArray[np.float64]:
    """``|score - occluded score|`` per tile ``(R,)``, or per tile and frame ``(R, T)`` with ``per_frame``."""
    copies = occluded_copies(window, tiles, layout=layout, per_frame=per_frame)
    if score is None:
        values = infer(np.concatenate([window, copies], axis=0)).astype(np.float64)
        score, occluded = float(values[0]), values[1:]
    else:
        occluded = infer(copies).astype(np.float64)
    deltas = np.abs(float(score) - occluded)
    return deltas.reshape(len(tiles), -1) if per_frame else deltas


class OcclusionExplainer(Explainer):
    """Occlude each manifest tile in turn and measure the change of the backend's score."""

    key = "occlusion"

    def _deltas(
        self, batch: npt.NDArray[np.float32], scores: npt.NDArray[np.float32] | None
    ) -> npt.NDArray[np.float64]:
        layout = self.backend.bundle.input.layout
        return np.stack(
            [
                occlusion_deltas(
                    self.backend.infer,
                    batch[i : i + 1],
                    self.tiles,
                    layout=layout,
                    score=None if scores is None else float(scores[i]),
                )
                for i in range(batch.shape[0])
            ]
        )
