"""Per-frame quality: face present, landmarks in frame, head pose, brightness, contrast and blur.

Head pose (degrees) from the 2-D landmarks, no camera model needed:

- roll: angle of the line through the eye centres (positive: the subject's left eye lower in the image);
- yaw: asymmetry of the nose tip (1) between the face contour points 234 (subject's right) and 454 along the
  eye line, ``asin((d_left - d_right) / (d_left + d_right))``: the nose tip swings towards the cheek the head
  turns to (a cylinder model of the head; flat warps that only squeeze the face leave it near 0). Positive:
  the nose towards the image's left, i.e. the subject turned to their own right;
- pitch: the tilt of the forehead (10) to chin (152) line in depth, from mediapipe's z, less
  ``PITCH_OFFSET`` (the canonical mesh leans back about 10° on a frontal face).

Brightness (mean) and contrast (standard deviation) are the grey levels of the inner face (aligned space
x 0.2-0.8, y 0.25-0.85: eyes, nose, mouth, no background) warped to 64x64 pixels; blur is the variance of the
Laplacian of that same patch, so all three are independent of the face's size in the frame. Thresholds and
their reasons: :mod:`edge.face.config`. Reasons are reported in the order of ``FRAME_REASONS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge.face.align import ALIGNED_SIZE, Matrix
from edge.face.config import FaceConfig
from edge.face.landmarks import Landmarks, eye_centres

PITCH_OFFSET = -10.0
PATCH = 64
# Why a frame fails, most serious first (a landmark jump is reported in FrameQuality.jump, not as a reason:
# it ends the window before the frame, the frame itself starts the next one).
FRAME_REASONS = (
    "face_lost",
    "partial_face",
    "pose",
    "dark",
    "bright",
    "low_contrast",
    "blur",
)


@dataclass(frozen=True)
class FrameQuality:
    """Quality of one sampled frame (figures are None where no face was found)."""

    face_present: bool
    faces: int
    yaw: float | None = None
    pitch: float | None = None
    roll: float | None = None
    brightness: float | None = None
    contrast: float | None = None
    blur: float | None = None
    landmarks_in_frame: float | None = None
    source: str | None = None  # "mesh" or "detector" (the small-face fallback)
    jump: str | None = None  # kind of landmark jump from the previous sampled frame, see edge.face.tracking
    reasons: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """Whether the frame is fit to score."""
        return self.face_present and not self.reasons


def head_pose(points: Landmarks) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` in degrees from the landmarks, as described in the module docstring."""
    right, left = eye_centres(points)
    axis = left - right
    roll = math.degrees(math.atan2(float(axis[1]), float(axis[0])))
    unit = axis / max(float(np.linalg.norm(axis)), 1e-6)
    nose = points[1, :2]
    d_right = float((nose - points[234, :2]) @ unit)
    d_left = float((points[454, :2] - nose) @ unit)
    asym = (d_left - d_right) / max(d_left + d_right, 1e-6)
    yaw = math.degrees(math.asin(min(1.0, max(-1.0, asym))))
    chin = points[152] - points[10]
    pitch = math.degrees(math.atan2(-float(chin[2]), float(chin[1]))) - PITCH_OFFSET
    return yaw, pitch, roll


def face_patch(rgb: npt.NDArray[np.uint8], to_aligned: Matrix) -> npt.NDArray[np.uint8]:
    """The inner face as a 64x64 grey patch."""
    x0, y0, x1, y1 = 0.2 * ALIGNED_SIZE, 0.25 * ALIGNED_SIZE, 0.8 * ALIGNED_SIZE, 0.85 * ALIGNED_SIZE
    sx, sy = PATCH / (x1 - x0), PATCH / (y1 - y0)
    to_patch = np.array([[sx, 0.0, -x0 * sx], [0.0, sy, -y0 * sy]]) @ np.vstack([to_aligned, [0.0, 0.0, 1.0]])
    patch = cv2.warpAffine(rgb, to_patch, (PATCH, PATCH), flags=cv2.INTER_AREA)
    return np.asarray(cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


def frame_quality(
    rgb: npt.NDArray[np.uint8],
    points: Landmarks,
    to_aligned: Matrix,
    *,
    faces: int,
    source: str,
    jump: str | None,
    config: FaceConfig,
) -> FrameQuality:
    """Measure one frame with a face and list the thresholds it fails."""
    yaw, pitch, roll = head_pose(points)
    grey = face_patch(rgb, to_aligned)
    brightness, contrast = float(grey.mean()), float(grey.std())
    blur = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    height, width = rgb.shape[:2]
    xy = points[:, :2]
    inside = float(np.mean((xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)))
    failed = {
        "partial_face": inside < config.min_landmarks_in_frame,
        "pose": abs(yaw) > config.max_abs_yaw or abs(pitch) > config.max_abs_pitch or abs(roll) > config.max_abs_roll,
        "dark": brightness < config.min_brightness,
        "bright": brightness > config.max_brightness,
        "low_contrast": contrast < config.min_contrast,
        "blur": blur < config.min_blur,
    }
    return FrameQuality(
        face_present=True,
        faces=faces,
        yaw=yaw,
        pitch=pitch,
        roll=roll,
        brightness=brightness,
        contrast=contrast,
        blur=blur,
        landmarks_in_frame=inside,
        source=source,
        jump=jump,
        reasons=tuple(reason for reason in FRAME_REASONS if failed.get(reason)),
    )


NO_FACE = FrameQuality(face_present=False, faces=0, reasons=("face_lost",))
