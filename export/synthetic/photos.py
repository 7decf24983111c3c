"""Real face photos that ship inside installed packages, with their 478 mediapipe landmarks found once.

Nothing is downloaded: the photos come from scikit-image (``astronaut``: Eileen Collins) and matplotlib
(``grace_hopper.jpg``). Landmarks are found with mediapipe's face mesh in static-image mode and cached in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import InputError

PHOTO_NAMES = ("astronaut", "grace_hopper")


@dataclass(frozen=True)
class FacePhoto:
    """An RGB photo and its face landmarks: ``(478, 3)`` x, y in pixels, z in pixels (mediapipe's scale)."""

    name: str
    image: npt.NDArray[np.uint8]
    landmarks: npt.NDArray[np.float64]


def _read_photo(name: str) -> npt.NDArray[np.uint8]:
    if name == "astronaut":
        import skimage.data

        return np.ascontiguousarray(skimage.data.astronaut())
    if name == "grace_hopper":
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"cannot read {path}", fix="reinstall matplotlib (it ships this sample photo)")
        return np.ascontiguousarray(bgr[:, :, ::-1])
    raise InputError(f"unknown face photo {name!r}", fix=f"use one of {', '.join(PHOTO_NAMES)}")


def detect_landmarks(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64] | None:
    """The 478 landmarks of the largest face in an RGB image (static mode), in pixels; ``None`` without a face."""
    import mediapipe as mp

    height, width = image.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as mesh:
        result = mesh.process(np.ascontiguousarray(image))
    if not result.multi_face_landmarks:
        return None
    points = result.multi_face_landmarks[0].landmark
    return np.array([[p.x * width, p.y * height, p.z * width] for p in points], dtype=np.float64)


@cache
def load_photo(name: str) -> FacePhoto:
    """One of :data:`PHOTO_NAMES` with its landmarks (rounded to 1/100 px so reruns agree)."""
    image = _read_photo(name)
    landmarks = detect_landmarks(image)
    if landmarks is None:
        raise InputError(f"mediapipe found no face in the {name} photo", fix="check the mediapipe installation")
    return FacePhoto(name=name, image=image, landmarks=np.round(landmarks, 2))
