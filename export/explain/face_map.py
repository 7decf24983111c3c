"""Region shares drawn on a canonical face: a wireframe of the mean face mesh, never anyone's picture.

The canonical face is the mean of the eye-aligned mediapipe landmarks of the two public photos the synthetic data
animate (:mod:`export.synthetic.photos`), drawn as the mesh's tessellation lines: a face shape that is neither
photo and carries no pixels. Each manifest tile's region (:data:`edge.face.regions.REGION_LANDMARKS`) is filled
on it by its share, the way Expresso-AI shows its region saliency; the person explained never appears.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.bundle import Tile
from edge.face.align import align_to_eyes, apply
from edge.face.landmarks import eye_centres
from edge.face.regions import REGION_LANDMARKS
from export.explain.pooling import FloatArray


@cache
def canonical_face() -> FloatArray:
    """The mean eye-aligned landmarks ``(478, 2)`` of the synthetic data's two photos (aligned-face pixels)."""
    from export.synthetic.photos import PHOTO_NAMES, load_photo

    aligned = []
    for name in PHOTO_NAMES:
        points = load_photo(name).landmarks.astype(np.float32)
        aligned.append(apply(align_to_eyes(*eye_centres(points)), points)[:, :2])
    return np.asarray(np.mean(aligned, axis=0), dtype=np.float64)


def region_outlines(tiles: Sequence[Tile], face: FloatArray) -> dict[str, FloatArray]:
    """Each tile's region as the convex hull of its landmarks on ``face``, ``(k, 2)`` in drawing order: the whole
    face (a foreign layout's ``face`` tile) first, so the small regions lie on top of it."""
    outlines = {}
    for region in sorted({t.region for t in tiles}, key=lambda r: r != "face"):
        points = face[list(REGION_LANDMARKS[region])].astype(np.float32)
        outlines[region] = cv2.convexHull(points)[:, 0, :].astype(np.float64)
    return outlines


def face_heatmap(shares: dict[str, float], tiles: Sequence[Tile], path: Path, title: str) -> Path:
    """A PNG of the canonical face with each tile's region filled by its share, labelled in percent."""
    from matplotlib import patheffects
    from matplotlib.collections import LineCollection
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    from export.explain.report import pyplot

    plt = pyplot()
    face = canonical_face()
    figure, axes = plt.subplots(figsize=(3.6, 4.2))
    segments = np.array([[face[a], face[b]] for a, b in FACEMESH_TESSELATION])
    axes.add_collection(LineCollection(list(segments), colors="#b8b8b8", linewidths=0.3))
    colours = plt.get_cmap("magma_r")
    top = max(shares.values(), default=0.0) or 1.0
    outline = [patheffects.withStroke(linewidth=2, foreground="white")]
    for region, hull in region_outlines(tiles, face).items():
        share = shares.get(region, 0.0)
        axes.fill(hull[:, 0], hull[:, 1], color=colours(0.1 + 0.8 * share / top), alpha=0.85, lw=0.8, ec="#444444")
        x, y = hull.mean(axis=0)
        _label(axes, region, share, x, y, outline)
    low, high = face.min(axis=0), face.max(axis=0)
    axes.set_xlim(low[0] - 10, high[0] + 10)
    axes.set_ylim(high[1] + 10, low[1] - 10)
    axes.set_aspect("equal")
    axes.axis("off")
    axes.set_title(f"{title}\n(canonical face; shares of the score's attribution)", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _label(axes: Any, region: str, share: float, x: float, y: float, outline: list[Any]) -> None:
    # eyebrow labels above their brow, eye labels below their eye, so neighbours do not print over each other
    offset = -9.0 if region.endswith("eyebrow") else 9.0 if region.endswith("_eye") else 0.0
    name = region.replace("_", " ").replace("eyebrow", "brow")
    axes.text(x, y + offset, f"{name}\n{100 * share:.0f}%", ha="center", va="center", fontsize=6, path_effects=outline)
