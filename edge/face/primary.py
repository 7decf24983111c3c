"""Choose the primary face: the largest and most central, with hysteresis so it does not flip between people.

Score of a face = (box area / frame area) x centrality, centrality = 1 - 0.5 x (distance of the box centre from
the frame centre / half the frame diagonal). The current primary face is followed from frame to frame by its
box: the face overlapping the last primary box most, with an intersection over union of at least ``MIN_IOU``,
is the same face. Another face
takes over only after scoring ``switch_ratio`` times the current one for ``switch_frames`` sampled frames in a
row, or at once when the current face is gone. A change of primary face is reported as a switch: the window
ends there (see :mod:`edge.face.windows`). Across sampled frames without any face the last box is kept, so the
same face is followed when it comes back beside another; a face found elsewhere after such a gap is taken
without calling it a switch, and the landmark track judges whether it may share the window with the face
before the gap (see :mod:`edge.face.tracking`).
"""

from __future__ import annotations

from collections.abc import Sequence

from edge.face.config import FaceConfig
from edge.face.landmarks import FaceLandmarks

Box = tuple[float, float, float, float]
MIN_IOU = 0.3  # overlap with the last primary box that makes a face the same one


def face_score(box: Box, width: int, height: int) -> float:
    """Size times centrality of a face box in a ``width`` x ``height`` frame."""
    area = max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]) / (width * height)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    offset = ((cx - width / 2) ** 2 + (cy - height / 2) ** 2) ** 0.5 / (0.5 * (width**2 + height**2) ** 0.5)
    return area * (1.0 - 0.5 * min(1.0, offset))


def box_iou(first: Box, second: Box) -> float:
    """Intersection over union of two boxes."""
    width = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3], second[3]) - max(first[1], second[1])
    inter = max(0.0, width) * max(0.0, height)
    union = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1]) - inter
    return inter / union if union > 0 else 0.0


class PrimaryFaceSelector:
    """Keeps track of which face is the primary one across sampled frames."""

    def __init__(self, config: FaceConfig) -> None:
        self._config = config
        self._box: Box | None = None
        self._challenges = 0
        self._gap = False  # the last sampled frame had no face

    def choose(self, faces: Sequence[FaceLandmarks], width: int, height: int) -> tuple[int | None, bool]:
        """Index of the primary face in ``faces`` (None without faces) and whether the primary face changed.

        A face appearing after frames without one is not a switch; the face being replaced by another is.
        """
        if not faces:
            self._challenges, self._gap = 0, True
            return None, False
        after_gap, self._gap = self._gap, False
        boxes = [face.box for face in faces]
        scores = [face_score(box, width, height) for box in boxes]
        best = max(range(len(faces)), key=scores.__getitem__)
        if self._box is None:
            self._box, self._challenges = boxes[best], 0
            return best, False
        overlaps = [box_iou(self._box, box) for box in boxes]
        current = max(range(len(faces)), key=overlaps.__getitem__)
        if overlaps[current] < MIN_IOU:
            self._box, self._challenges = boxes[best], 0
            return best, not after_gap
        if best != current and scores[best] > self._config.switch_ratio * scores[current]:
            self._challenges += 1
            if self._challenges >= self._config.switch_frames:
                self._box, self._challenges = boxes[best], 0
                return best, True
        else:
            self._challenges = 0
        self._box = boxes[current]
        return current, False

    def reset(self) -> None:
        """Forget the primary face."""
        self._box, self._challenges, self._gap = None, 0, False
