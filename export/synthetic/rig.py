"""A face rig over mediapipe's 478 landmarks: named landmark groups, sizes, masks and identity reshaping.

Left/right are the subject's own, as mediapipe names them (the subject's right eye is on the image's left).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
RIGHT_IRIS = (468, 469, 470, 471, 472)
LEFT_IRIS = (473, 474, 475, 476, 477)
RIGHT_BROW = (46, 52, 53, 55, 63, 65, 66, 70, 105, 107)
LEFT_BROW = (276, 282, 283, 285, 293, 295, 296, 300, 334, 336)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)  # fmt: skip
MOUTH_CORNERS = (61, 291)
UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
NOSE_TIP, NOSE_BRIDGE = 1, 168
LIPS = (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269,
        270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415)  # fmt: skip
NOSE = (1, 2, 4, 5, 6, 19, 45, 48, 64, 94, 97, 98, 115, 168, 195, 197, 220, 275, 278, 294, 326, 327, 344, 440)


class FaceRig:
    """Geometry of one face: ``landmarks`` is ``(478, 3)`` with x, y in pixels and z in the same scale."""

    def __init__(self, landmarks: npt.NDArray[np.float64]) -> None:
        self.landmarks = landmarks
        self.xy = landmarks[:, :2]

    def centre(self, group: tuple[int, ...]) -> npt.NDArray[np.float64]:
        """Mean position of a landmark group."""
        return np.asarray(self.xy[list(group)].mean(axis=0))

    @property
    def face_width(self) -> float:
        """Width of the face oval in pixels."""
        oval = self.xy[list(FACE_OVAL)]
        return float(oval[:, 0].max() - oval[:, 0].min())

    @property
    def eye_width(self) -> float:
        """Mean width of the two eyes (corner to corner) in pixels."""
        right = np.linalg.norm(self.xy[33] - self.xy[133])
        left = np.linalg.norm(self.xy[263] - self.xy[362])
        return float((right + left) / 2.0)

    @property
    def mouth_width(self) -> float:
        """Distance between the mouth corners in pixels."""
        return float(np.linalg.norm(self.xy[MOUTH_CORNERS[0]] - self.xy[MOUTH_CORNERS[1]]))

    def eyelids(self, eye: tuple[int, ...]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Upper and lower lid contours of one eye, each ``(k, 2)`` sorted by x, corners included in both."""
        points = self.xy[list(eye)]
        corners = np.argsort(points[:, 0])[[0, -1]]
        a, b = points[corners[0]], points[corners[1]]
        line_y = a[1] + (points[:, 0] - a[0]) * (b[1] - a[1]) / max(b[0] - a[0], 1e-6)
        upper = points[points[:, 1] <= line_y]
        lower = points[points[:, 1] >= line_y]
        upper = np.vstack([upper, a, b])
        lower = np.vstack([lower, a, b])
        return upper[np.argsort(upper[:, 0])], lower[np.argsort(lower[:, 0])]

    def _polygon_mask(
        self, width: int, height: int, scale_xy: tuple[float, float], lift: float, blur: float
    ) -> npt.NDArray[np.float32]:
        oval = self.xy[list(FACE_OVAL)]
        centre = oval.mean(axis=0)
        size = oval.max(axis=0) - oval.min(axis=0)
        grown = (oval - centre) * np.asarray(scale_xy) + centre - np.array([0.0, lift * size[1]])
        mask = np.zeros((height, width), dtype=np.float32)
        cv2.fillPoly(mask, [np.round(grown).astype(np.int32)], (1.0,), lineType=cv2.LINE_AA)
        return np.asarray(cv2.GaussianBlur(mask, (0, 0), blur * size[0]), dtype=np.float32)

    def skin_mask(self, width: int, height: int) -> npt.NDArray[np.float32]:
        """Soft mask of the face skin (the oval, feathered)."""
        return self._polygon_mask(width, height, (1.0, 1.0), 0.0, 0.05)

    def head_mask(self, width: int, height: int) -> npt.NDArray[np.float32]:
        """Soft mask of the head (face oval grown to take in hair and neck), for compositing on a background."""
        mask = self._polygon_mask(width, height, (1.45, 1.55), 0.08, 0.06)
        return np.clip(mask * 1.15, 0.0, 1.0)

    def reshape(
        self,
        *,
        eye_size: float,
        eye_spacing: float,
        mouth_width: float,
        nose_length: float,
        face_aspect: float,
    ) -> npt.NDArray[np.float64]:
        """Landmarks of a differently shaped face: eyes scaled and spread, mouth widened, nose and face stretched."""
        out = self.landmarks.copy()
        mid = (self.centre(RIGHT_EYE) + self.centre(LEFT_EYE)) / 2.0
        for eye, iris in ((RIGHT_EYE, RIGHT_IRIS), (LEFT_EYE, LEFT_IRIS)):
            group = list(eye + iris)
            centre = self.centre(eye)
            new_centre = mid + (centre - mid) * eye_spacing
            out[group, :2] = (self.xy[group] - centre) * eye_size + new_centre
        mouth = self.centre(LIPS)
        out[list(LIPS), 0] = (self.xy[list(LIPS), 0] - mouth[0]) * mouth_width + mouth[0]
        bridge = self.xy[NOSE_BRIDGE]
        out[list(NOSE), 1] = (self.xy[list(NOSE), 1] - bridge[1]) * nose_length + bridge[1]
        centre = self.xy.mean(axis=0)
        out[:, 0] = (out[:, 0] - centre[0]) / np.sqrt(face_aspect) + centre[0]
        out[:, 1] = (out[:, 1] - centre[1]) * np.sqrt(face_aspect) + centre[1]
        return out
