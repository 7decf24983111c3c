"""Occlusion of one manifest tile at a time, in a few frames one at a time: the region attribution the device runs.

A tile's importance is how far greying it moves the score, ``|f(x) - f(x with tile r occluded in frame t)|``,
summed over :data:`OCCLUDED_FRAMES` frames spread evenly over the window. The baseline is zero in normalised space
(the normalisation's mean colour, which carries no pattern). The window and its N x F copies (N tiles, F frames) go
to whatever backend runs as one batch; with the window's score already known (the scorer just computed it) only
the copies run. Of a bundle of several outputs, every output's changes come from that same batch (the backend
returns all K columns of it), so each output gets its own shares at no extra inference.

Why frames one at a time and not the tile greyed in the whole window (one copy per tile): a tile missing from
every frame is far from anything a model was trained on, and what the model makes of that says more about the grey
patch than about the tile. On synthetic data where the signal sits in one region, greying whole windows found the
planted region in 71% of windows for an eyes model and 71% for a mouth model, while a random-weight network got
79% (the same check); occluding 4 frames one at a time found it in 95% and 93%, the random network 52%
(docs/explanations.md, "Checked on synthetic data"). The offline ``python -m export explain`` occludes every
frame for its per-frame curve and uses these same frames for its region shares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from edge.bundle import Tile
from edge.explain.base import Explainer

Infer = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]]
OCCLUDED_FRAMES = 4
"""Frames per window in which each tile is occluded (one frame per copy): N x 4 copies per explained window."""


def occluded_frames(frames: int, count: int = OCCLUDED_FRAMES) -> tuple[int, ...]:
    """``count`` frame indices spread evenly over a window of ``frames`` (each the centre of its stretch), or
    every frame when the window is shorter."""
    if frames <= count:
        return tuple(range(frames))
    step = frames / count
    return tuple(int(step * i + step / 2) for i in range(count))


def occlude(windows: npt.NDArray[np.float32], tile: Tile, frame: int, *, layout: str) -> None:
    """Replace ``tile`` by the baseline (zero) in ``frame`` of every window of the normalised batch ``windows``,
    in place."""
    rows, cols = slice(tile.y, tile.y + tile.height), slice(tile.x, tile.x + tile.width)
    if layout == "NTCHW":
        windows[:, frame, :, rows, cols] = 0.0
    else:
        windows[:, :, frame, rows, cols] = 0.0


def occluded_copies(
    window: npt.NDArray[np.float32], tiles: Sequence[Tile], frames: Sequence[int], *, layout: str
) -> npt.NDArray[np.float32]:
    """Copies of one normalised window ``(1, ...)``, each with one tile zeroed in one of ``frames``; tile-major:
    ``(len(tiles) * len(frames), ...)``."""
    copies = np.repeat(window, len(tiles) * len(frames), axis=0)
    for index, (tile, frame) in enumerate((tile, frame) for tile in tiles for frame in frames):
        occlude(copies[index : index + 1], tile, frame, layout=layout)
    return copies


def occlusion_deltas(
    infer: Infer,
    window: npt.NDArray[np.float32],
    tiles: Sequence[Tile],
    frames: Sequence[int],
    *,
    layout: str,
    score: float | npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float64]:
    """``|score - occluded score|`` per tile and occluded frame, ``(len(tiles), len(frames))``; with an ``infer``
    that returns every output's scores ``(M, K)`` (``score`` then the window's K scores), one such change per
    output: ``(len(tiles), len(frames), K)``, from the same batch of copies."""
    copies = occluded_copies(window, tiles, frames, layout=layout)
    if score is None:
        values = infer(np.concatenate([window, copies], axis=0)).astype(np.float64)
        known, occluded = values[0], values[1:]
    else:
        known, occluded = np.asarray(score, dtype=np.float64), infer(copies).astype(np.float64)
    return np.abs(known - occluded).reshape(len(tiles), len(frames), *occluded.shape[1:])


def window_frames(window: npt.NDArray[np.float32], layout: str) -> int:
    """The number of frames of a normalised window ``(1, ...)`` in ``layout``."""
    return int(window.shape[1] if layout == "NTCHW" else window.shape[2])


class OcclusionExplainer(Explainer):
    """Occlude each manifest tile in turn, in :data:`OCCLUDED_FRAMES` frames one at a time, and sum the changes
    of the backend's scores (every output's, from the same occluded copies)."""

    key = "occlusion"

    def _deltas(
        self, batch: npt.NDArray[np.float32], scores: npt.NDArray[np.float32] | None
    ) -> npt.NDArray[np.float64]:
        layout = self.backend.bundle.input.layout
        frames = occluded_frames(window_frames(batch[:1], layout))
        return np.stack(
            [
                occlusion_deltas(
                    self.backend.infer_outputs,
                    batch[i : i + 1],
                    self.tiles,
                    frames,
                    layout=layout,
                    score=None if scores is None else scores[i],
                ).sum(axis=1)
                for i in range(batch.shape[0])
            ]
        )
