"""Landmark smoothing and implausible-jump detection between consecutive sampled frames.

Smoothing: an exponential moving average whose weight follows the motion. When the face holds still the new
landmarks weigh ``smooth_min_alpha`` (mediapipe jitters 0.2-1 px on a frozen image, FIELD-NOTES); once the
median landmark moves ``smooth_motion`` eye distances or more, the new landmarks are taken as they are, so real
movement does not lag.

Jumps (any one ends the window, see :mod:`edge.face.windows`), measured on the raw landmarks against the
previous sampled frame with the face (a short gap without it is bridged, see :class:`LandmarkTrack`), in units
of the previous eye distance:

- ``"move"``: the median landmark moved more than ``max_jump`` (the face teleported: scene cut, other person);
- ``"scale"``: the eye distance changed by more than ``max_scale_jump`` times either way;
- ``"shape"``: after the best similarity fit of the new landmarks onto the old, the median residual exceeds
  ``max_shape_jump`` (a smeared decode or a different face in the same place; expressions move few points and
  leave the median small).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from edge.face.config import FaceConfig
from edge.face.landmarks import Landmarks, eye_distance


def similarity_residual(source: npt.NDArray[np.floating], target: npt.NDArray[np.floating]) -> float:
    """Median distance left after the least-squares similarity fit (Umeyama) of 2-D ``source`` onto ``target``."""
    src = np.asarray(source, dtype=np.float64)[:, :2]
    dst = np.asarray(target, dtype=np.float64)[:, :2]
    src_c, dst_c = src - src.mean(axis=0), dst - dst.mean(axis=0)
    u, sigma, vt = np.linalg.svd(dst_c.T @ src_c)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(sigma) @ sign) / max((src_c**2).sum(), 1e-12))
    fitted = scale * src_c @ rotation.T
    return float(np.median(np.linalg.norm(fitted - dst_c, axis=1)))


def landmark_jump(previous: Landmarks, current: Landmarks, config: FaceConfig) -> str | None:
    """The kind of implausible jump from ``previous`` to ``current`` ("move", "scale", "shape") or None."""
    iod = max(eye_distance(previous), 1e-6)
    ratio = eye_distance(current) / iod
    if ratio > config.max_scale_jump or ratio < 1.0 / config.max_scale_jump:
        return "scale"
    if float(np.median(np.linalg.norm(current[:, :2] - previous[:, :2], axis=1))) > config.max_jump * iod:
        return "move"
    if similarity_residual(current, previous) > config.max_shape_jump * iod:
        return "shape"
    return None


class LandmarkTrack:
    """Smoothed landmarks of the primary face, with jump detection; reset when the face changes.

    Across up to ``max_missed`` sampled frames without the face the last landmarks are kept for the jump check,
    with the same limits, though smoothing starts over. ``max_missed`` is the most frames without a face that a
    window may hold and still pass (:func:`edge.face.windows.missing_allowance`: 2 of 16, 4 of 32, 8 of 64), so
    a face that comes back changed (another person, a scene cut, a face that moved further than ``max_jump``
    meanwhile) ends the window instead of sharing a passed one with the face before the gap; after a longer gap
    every window holding both fails as ``face_lost`` anyway, and the face is forgotten.
    """

    def __init__(self, config: FaceConfig, max_missed: int) -> None:
        self._config = config
        self._max_missed = max_missed
        self._raw: Landmarks | None = None
        self._smooth: Landmarks | None = None
        self._missed = 0

    def update(self, points: Landmarks) -> tuple[Landmarks, str | None]:
        """Smoothed landmarks for this frame and the kind of jump from the previous one (None if plausible).

        After a jump the track restarts from ``points`` unsmoothed.
        """
        jump = None if self._raw is None else landmark_jump(self._raw, points, self._config)
        if self._smooth is None or jump is not None:
            smooth = points.copy()
        else:
            iod = max(eye_distance(self._smooth), 1e-6)
            motion = float(np.median(np.linalg.norm(points[:, :2] - self._smooth[:, :2], axis=1))) / iod
            alpha = min(1.0, max(self._config.smooth_min_alpha, motion / self._config.smooth_motion))
            smooth = (alpha * points + (1.0 - alpha) * self._smooth).astype(np.float32)
        self._raw, self._smooth, self._missed = points, smooth, 0
        return smooth, jump

    def miss(self) -> None:
        """A sampled frame without the face."""
        self._smooth = None
        self._missed += 1
        if self._missed > self._max_missed:
            self._raw = None

    def reset(self) -> None:
        """Forget the face (no jump is reported against frames before this)."""
        self._raw = self._smooth = None
        self._missed = 0
