"""The irises as a layer behind the eyelids: taken out of the still once, drawn where the gaze puts them.

The piecewise-affine warp moves pixels rigidly only inside its triangles; an iris whose four ring landmarks move
inside a fixed eye contour is stretched, not moved (a 3.5 px gaze shift moved the dark iris 0.3-1.1 px and
mediapipe's iris centre 1.0-1.9 px). So the still's irises are painted out (OpenCV inpainting inside the eye
opening), the warp bends the bare eye with the lids, and each frame draws an iris disk (the still's own iris
colour, a darker limbal ring, a pupil) at the posed iris centre, clipped by the posed eye opening: closing lids
cover it as real lids do.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from export.synthetic.rig import LEFT_EYE, LEFT_IRIS, RIGHT_EYE, RIGHT_IRIS

EYES = ((RIGHT_EYE, RIGHT_IRIS), (LEFT_EYE, LEFT_IRIS))
_SHIFT = 4  # sub-pixel bits for cv2 drawing
_SUPERSAMPLE = 1 << _SHIFT
PUPIL_SHARE, LIMBUS_SHARE = 0.45, 0.8  # pupil radius and where the darker limbal ring starts, share of the iris radius


def _polygon_mask(points: npt.NDArray[np.float64], height: int, width: int) -> npt.NDArray[np.float32]:
    """Anti-aliased filled polygon, 0..1."""
    mask = np.zeros((height, width), dtype=np.float32)
    fixed = np.round(points[:, :2] * _SUPERSAMPLE).astype(np.int32)
    cv2.fillPoly(mask, [fixed], (1.0,), lineType=cv2.LINE_AA, shift=_SHIFT)
    return mask


def _iris_radius(points: npt.NDArray[np.float64], iris: tuple[int, ...]) -> float:
    """The iris radius in pixels: half the distance between its ring's two horizontal points (lids do not squash
    it, unlike the vertical pair)."""
    ring = points[list(iris[1:]), :2]
    return float(np.ptp(ring[:, 0]) / 2.0)


def _iris_colour(pixels: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The iris colour from the pixels of the still's iris disk inside the eye opening: the mean of their darker
    half (the disk's edge takes in lid and sclera)."""
    if not len(pixels):
        return np.zeros(3, dtype=np.float32)
    luminance = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.asarray(pixels[luminance <= np.median(luminance)].mean(axis=0), dtype=np.float32)


@dataclass(frozen=True)
class IrisLayer:
    """The still without irises, and the iris colour and radius of each eye measured on the still."""

    bare: npt.NDArray[np.uint8]
    colours: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]
    radii: tuple[float, float]

    @classmethod
    def from_still(cls, image: npt.NDArray[np.uint8], landmarks: npt.NDArray[np.float64]) -> IrisLayer:
        """Paint the irises out of ``image`` (RGB) whose mediapipe ``landmarks`` are known."""
        height, width = image.shape[:2]
        hole = np.zeros((height, width), dtype=np.uint8)
        colours, radii = [], []
        for eye, iris in EYES:
            radius = _iris_radius(landmarks, iris)
            centre = landmarks[iris[0], :2]
            disk = np.zeros((height, width), dtype=np.uint8)
            centre_fixed = (round(float(centre[0]) * _SUPERSAMPLE), round(float(centre[1]) * _SUPERSAMPLE))
            cv2.circle(disk, centre_fixed, round(radius * 1.25 * _SUPERSAMPLE), (1,), -1, shift=_SHIFT)
            inside = (_polygon_mask(landmarks[list(eye)], height, width) > 0.5).astype(np.uint8)
            opening = cv2.dilate(inside, np.ones((3, 3), np.uint8))
            visible = (disk > 0) & (opening > 0)
            colours.append(_iris_colour(image[visible].astype(np.float32)))
            radii.append(radius)
            hole |= visible.astype(np.uint8)
        bare = cv2.inpaint(image, hole * 255, 3, cv2.INPAINT_TELEA)
        return cls(bare=np.asarray(bare, dtype=np.uint8), colours=(colours[0], colours[1]), radii=(radii[0], radii[1]))

    def draw(
        self,
        frame: npt.NDArray[np.float32],
        posed: npt.NDArray[np.float64],
        centres: npt.NDArray[np.float64],
        scale: float,
    ) -> None:
        """Draw both irises into ``frame`` (float RGB, in place) at ``centres`` ``(2, 2)``, radius times ``scale``,
        inside the eye openings of the ``posed`` landmarks."""
        height, width = frame.shape[:2]
        for (eye, _), centre, colour, radius in zip(EYES, centres, self.colours, self.radii, strict=True):
            r = radius * scale
            x0, y0 = np.floor(centre - r - 2).astype(int)
            x1, y1 = np.ceil(centre + r + 2).astype(int) + 1
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
            if x1 <= x0 or y1 <= y0:
                continue
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            distance = np.hypot(xx - centre[0], yy - centre[1]) / max(r, 1e-3)
            alpha = np.clip((1.0 - distance) * r + 0.5, 0.0, 1.0)  # a one-pixel soft edge
            shade = np.where(distance < PUPIL_SHARE, 0.25, np.where(distance > LIMBUS_SHARE, 0.75, 1.0))
            opening = _polygon_mask(posed[list(eye)] - np.array([x0, y0]), y1 - y0, x1 - x0)  # the box only
            weight = (alpha * opening)[..., None]
            region = frame[y0:y1, x0:x1]
            region[:] = region * (1.0 - weight) + (colour[None, None, :] * shade[..., None]) * weight
