"""Face landmarks: mediapipe FaceMesh (478 points, tracking mode) with a detector fallback for small faces.

The mesh alone misses faces under ~80 px across (FIELD-NOTES: a 38 px face is missed even with the whole
frame upscaled). When the mesh finds nothing, mediapipe's full-range face detector (``model_selection=1``)
looks for faces, and each one is cut out square (``fallback_crop_scale`` x its box), resized to
``fallback_crop_size`` pixels and meshed there; the landmarks are mapped back to frame pixels. While such a
small face is being followed, its last crop is tried first, so the detector runs only when the face is lost.

Landmarks are ``(478, 3)`` float32 in frame pixels: x, y, and mediapipe's relative depth z scaled like x.
Every input here is RGB uint8: the caller converts (mediapipe misreads BGR quietly, see FIELD-NOTES).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.face.config import FaceConfig

# Outer and inner corners of each eye (subject's own right/left, as mediapipe names them).
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (263, 362)
MIN_EYE_DISTANCE = 4.0  # pixels; below it a mesh is degenerate and cannot be aligned

Landmarks = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FaceLandmarks:
    """One face found in a frame."""

    points: Landmarks  # (478, 3) frame pixels
    source: str  # "mesh" (whole frame) or "detector" (fallback crop)

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Bounding box ``(x0, y0, x1, y1)`` of the landmarks in frame pixels."""
        xy = self.points[:, :2]
        return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())


def eye_centres(points: Landmarks) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Centres of the subject's right and left eye from their corners (steady while the gaze moves)."""
    right = points[list(RIGHT_EYE_CORNERS), :2].mean(axis=0)
    left = points[list(LEFT_EYE_CORNERS), :2].mean(axis=0)
    return right, left


def eye_distance(points: Landmarks) -> float:
    """Distance between the eye centres in pixels."""
    right, left = eye_centres(points)
    return float(np.linalg.norm(left - right))


def _to_array(face: Any, width: float, height: float) -> Landmarks:
    pts = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
    pts *= np.array([width, height, width], dtype=np.float32)
    return pts


class LandmarkDetector:
    """Finds up to ``max_num_faces`` faces per RGB frame; owns the mediapipe graphs (close it when done)."""

    def __init__(self, config: FaceConfig) -> None:
        import mediapipe as mp  # heavy import, only where the mesh is really used

        self._config = config
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=config.max_num_faces,
            refine_landmarks=True,
            min_detection_confidence=config.min_detection_confidence,
            min_tracking_confidence=config.min_tracking_confidence,
        )
        self._crop_mesh: Any = None
        self._detector: Any = None
        if config.detector_fallback:
            # Crops come from different places frame to frame: static mode re-detects inside each crop.
            self._crop_mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3
            )
            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=config.min_detection_confidence
            )
        self._small_box: tuple[float, float, float, float] | None = None

    def detect(self, rgb: npt.NDArray[np.uint8]) -> list[FaceLandmarks]:
        """Faces in one RGB frame, in no particular order (meshes with eyes under 4 px apart are dropped)."""
        return [face for face in self._detect(rgb) if eye_distance(face.points) >= MIN_EYE_DISTANCE]

    def _detect(self, rgb: npt.NDArray[np.uint8]) -> list[FaceLandmarks]:
        height, width = rgb.shape[:2]
        result = self._mesh.process(rgb)
        if result.multi_face_landmarks:
            self._small_box = None
            return [FaceLandmarks(_to_array(f, width, height), "mesh") for f in result.multi_face_landmarks]
        if self._detector is None:
            return []
        if self._small_box is not None:
            face = self._mesh_crop(rgb, self._small_box)
            if face is not None:
                self._small_box = face.box
                return [face]
        faces = [face for box in self._detect_boxes(rgb) if (face := self._mesh_crop(rgb, box)) is not None]
        self._small_box = faces[0].box if len(faces) == 1 else None
        return faces

    def _detect_boxes(self, rgb: npt.NDArray[np.uint8]) -> list[tuple[float, float, float, float]]:
        height, width = rgb.shape[:2]
        result = self._detector.process(rgb)
        boxes = []
        for detection in (result.detections or [])[: self._config.max_num_faces]:
            rel = detection.location_data.relative_bounding_box
            x0, y0 = rel.xmin * width, rel.ymin * height
            boxes.append((x0, y0, x0 + rel.width * width, y0 + rel.height * height))
        return boxes

    def _mesh_crop(self, rgb: npt.NDArray[np.uint8], box: tuple[float, float, float, float]) -> FaceLandmarks | None:
        """Mesh a square crop around ``box``, upscaled, and map the landmarks back to frame pixels."""
        size = self._config.fallback_crop_size
        side = max(box[2] - box[0], box[3] - box[1]) * self._config.fallback_crop_scale
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        scale = size / side
        # Frame -> crop: one affine warp does the cut, the resize and the zero padding at the borders.
        matrix = np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]], dtype=np.float64)
        crop = cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        result = self._crop_mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        pts = _to_array(result.multi_face_landmarks[0], size, size)
        pts[:, 0] = (pts[:, 0] - matrix[0, 2]) / scale
        pts[:, 1] = (pts[:, 1] - matrix[1, 2]) / scale
        pts[:, 2] /= scale
        return FaceLandmarks(pts, "detector")

    def reset(self) -> None:
        """Forget every face followed so far (restarts the mesh's tracking graph too)."""
        self._small_box = None
        self._mesh.reset()

    def close(self) -> None:
        """Release the mediapipe graphs."""
        for graph in (self._mesh, self._crop_mesh, self._detector):
            if graph is not None:
                with contextlib.suppress(ValueError):  # already closed
                    graph.close()
        self._crop_mesh = self._detector = None
