"""Behaviour descriptors per frame from the face mesh: landmark-geometry proxies for facial action units.

These are *proxies* measured on mediapipe's 478 landmarks after eye alignment (roll, scale and position removed;
distances in eye distances), not action units coded by a person or by OpenFace. What each stands in for:

| descriptor        | geometry                                                         | stands in for          |
|-------------------|------------------------------------------------------------------|------------------------|
| ``eye_openness``  | lid gap / eye width, both eyes                                   | AU43 (closure), AU7    |
| ``blink``         | 1 while ``eye_openness`` < 60% of the video's median (per video) | AU45 (blink)           |
| ``brow_raise``    | upper brow edge above the eye-corner line                        | AU1 + AU2              |
| ``brow_lowering`` | minus (inner-brow gap + inner-brow height above the inner eye corners) | AU4              |
| ``lip_corner_pull`` | distance between the mouth corners (pulled apart by a smile)   | AU12 (smile)           |
| ``mouth_opening`` | mean gap of four upper/lower lip pairs (inner and outer edge)    | AU25 / AU26            |
| ``gaze_x``, ``gaze_y`` | iris centre offset from the eye centre / eye width (y down); video: no | gaze (no AU)   |
|                   | gaze on ``blink`` frames, then a 3-frame running median          |                        |
| ``head_motion``   | nose-tip movement since the previous frame, frame pixels / eye distance | head pose velocity |

Feed them the mesh's landmarks *before* the pipeline's smoothing (``FrameResult.raw_landmarks``): that smoothing
keeps crops steady and lags a blink or a syllable, which last two or three frames at 8 fps (docs/explanations.md
has the measurement). They run on the device only in memory; the offline ``python -m export explain`` correlates
them with the attribution curve, after :func:`finish_video` has filled what needs the whole video.

Gaze per video: a lid that covers most of the iris leaves the iris model a sliver to fit, and its centre slides
with the lid, so gaze is dropped on ``blink`` frames (eye trackers report no gaze during a blink for the same
reason). The iris centre then still jitters by about as much as a gaze shift moves it in a small face; a running
median over :data:`GAZE_MEDIAN_FRAMES` sampled frames removes one-frame outliers and keeps a gaze shift, which is a
step (saccades take tens of ms), whole: at the pipeline's 8 fps it spans 375 ms and erases only a gaze held for a
single sampled frame (under 250 ms), at the short end of typical fixations (200-400 ms).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge.face.align import ALIGNED_SIZE, LEFT_EYE_AT, RIGHT_EYE_AT, align_to_eyes, apply
from edge.face.landmarks import Landmarks, eye_centres, eye_distance

DESCRIPTORS = (
    "eye_openness",
    "blink",
    "brow_raise",
    "brow_lowering",
    "lip_corner_pull",
    "mouth_opening",
    "gaze_x",
    "gaze_y",
    "head_motion",
)
BLINK_FRACTION = 0.6
GAZE_MEDIAN_FRAMES = 3
_GAZE = (DESCRIPTORS.index("gaze_x"), DESCRIPTORS.index("gaze_y"))
_EYES = (  # outer corner, inner corner, upper-lid points, lower-lid points, iris centre
    (33, 133, (158, 159, 160), (153, 145, 144), 468),
    (263, 362, (385, 386, 387), (380, 374, 373), 473),
)
_BROWS, _BROW_INNER = (70, 63, 105, 66, 107, 300, 293, 334, 296, 336), (55, 285)
_EYE_CORNERS = (33, 133, 263, 362)
_LIP_CORNERS, _NOSE_TIP = (61, 291), 1
# upper and lower lip points facing each other: inner edge (centre, both sides) and outer edge (centre). The inner
# centre pair alone coincides on some closed mouths and misses a jaw drop that moves the lower lip as a whole.
_UPPER_LIP, _LOWER_LIP = (13, 82, 312, 0), (14, 87, 317, 17)
_UNIT = (LEFT_EYE_AT[0] - RIGHT_EYE_AT[0]) * ALIGNED_SIZE  # the eye distance in the aligned space


def frame_descriptors(points: Landmarks, previous: Landmarks | None = None) -> dict[str, float]:
    """The descriptors of one frame's landmarks (``blink`` is NaN here: it needs the video, see
    :func:`add_blinks`); ``previous`` is the previous frame's landmarks for ``head_motion``."""
    aligned = apply(align_to_eyes(*eye_centres(points)), points) / _UNIT
    x, y = aligned[:, 0], aligned[:, 1]
    openness, gaze_x, gaze_y = [], [], []
    for outer, inner, upper, lower, iris in _EYES:
        width = abs(x[outer] - x[inner])
        openness.append(float(np.mean(y[list(lower)] - y[list(upper)])) / width)
        gaze_x.append((x[iris] - (x[outer] + x[inner]) / 2) / width)
        gaze_y.append((y[iris] - (y[outer] + y[inner]) / 2) / width)
    inner_eyes = (y[133] + y[362]) / 2
    eye_line = float(np.mean(y[list(_EYE_CORNERS)]))  # corners do not move with the lids
    motion = float("nan")
    if previous is not None:
        motion = float(np.linalg.norm(points[_NOSE_TIP, :2] - previous[_NOSE_TIP, :2])) / max(eye_distance(points), 1)
    return {
        "eye_openness": float(np.mean(openness)),
        "blink": float("nan"),
        "brow_raise": eye_line - float(np.mean(y[list(_BROWS)])),
        "brow_lowering": -float(
            abs(x[_BROW_INNER[1]] - x[_BROW_INNER[0]]) + inner_eyes - np.mean(y[list(_BROW_INNER)])
        ),
        "lip_corner_pull": float(abs(x[_LIP_CORNERS[1]] - x[_LIP_CORNERS[0]])),
        "mouth_opening": float(np.mean(y[list(_LOWER_LIP)] - y[list(_UPPER_LIP)])),
        "gaze_x": float(np.mean(gaze_x)),
        "gaze_y": float(np.mean(gaze_y)),
        "head_motion": motion,
    }


def add_blinks(series: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Fill the ``blink`` column of a video's descriptor series ``(F, len(DESCRIPTORS))`` in place and return it."""
    openness = series[:, DESCRIPTORS.index("eye_openness")]
    median = float(np.nanmedian(openness)) if np.isfinite(openness).any() else float("nan")
    blink = np.where(np.isfinite(openness), (openness < BLINK_FRACTION * median).astype(np.float64), np.nan)
    series[:, DESCRIPTORS.index("blink")] = blink
    return series


def settle_gaze(series: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Set the gaze columns of a video's series (``blink`` filled, see :func:`add_blinks`) to NaN on blink frames and
    to a running median over :data:`GAZE_MEDIAN_FRAMES` of the frames that have gaze, in place; return the series."""
    blink = series[:, DESCRIPTORS.index("blink")] == 1.0
    half = GAZE_MEDIAN_FRAMES // 2
    for column in _GAZE:
        values = np.where(blink, np.nan, series[:, column])
        kept = np.flatnonzero(np.isfinite(values))
        if len(kept):
            padded = np.pad(values[kept], half, mode="edge")
            values[kept] = np.median(np.lib.stride_tricks.sliding_window_view(padded, GAZE_MEDIAN_FRAMES), axis=1)
        series[:, column] = values
    return series


def finish_video(series: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Fill in what needs a whole video's descriptor series ``(F, len(DESCRIPTORS))``, in frame order: blinks, then
    gaze without blinks and jitter (:func:`settle_gaze`). In place; returns the series."""
    return settle_gaze(add_blinks(series))
