"""Frames for the face tests, built in memory from a real photo."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]


def shifted(image: Frame, dx: float, dy: float = 0.0) -> Frame:
    """``image`` moved by (dx, dy) pixels, borders reflected (a steady head moving a little)."""
    matrix = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
    height, width = image.shape[:2]
    return np.asarray(cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT), dtype=np.uint8)


def on_canvas(image: Frame, scale: float, x: int, y: int, size: tuple[int, int] = (640, 480)) -> Frame:
    """``image`` scaled by ``scale`` and pasted at (x, y) on a grey canvas of ``size`` (width, height)."""
    canvas = np.full((size[1], size[0], 3), 60, dtype=np.uint8)
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = min(small.shape[0], size[1] - y), min(small.shape[1], size[0] - x)
    canvas[y : y + h, x : x + w] = small[:h, :w]
    return canvas


def turned(image: Frame, centre: tuple[float, float], radius: float, shift: float, dy: float = 0.0) -> Frame:
    """A head turn as a landmark-driven warp: the middle of the face slides ``shift`` px sideways and ``dy`` px
    down (a nod; negative: up), its rim stays."""
    height, width = image.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    reach = np.sqrt(((xs - centre[0]) / radius) ** 2 + ((ys - centre[1]) / (1.3 * radius)) ** 2)
    bump = np.where(reach < 1, np.cos(reach * np.pi / 2) ** 2, 0).astype(np.float32)
    return np.asarray(cv2.remap(image, xs - shift * bump, ys - dy * bump, cv2.INTER_LINEAR), dtype=np.uint8)


def rotated(image: Frame, centre: tuple[float, float], degrees: float) -> Frame:
    """``image`` rotated about ``centre`` (a head roll), borders reflected."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    return np.asarray(cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT), dtype=np.uint8)


def two_faces(image: Frame, *, big: bool = True, small: bool = True) -> Frame:
    """A 640x480 frame with the astronaut's head at full size on the left and at 0.7x on the right."""
    head = image[0:300, 90:360]
    canvas = np.full((480, 640, 3), 60, dtype=np.uint8)
    if big:
        canvas[60:360, 20:290] = head
    if small:
        little = cv2.resize(head, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
        canvas[120 : 120 + little.shape[0], 400 : 400 + little.shape[1]] = little
    return canvas
