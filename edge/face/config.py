"""Tunable settings of the face pipeline, with the quality thresholds and why they sit where they do.

Quality thresholds (checked per sampled frame, see :mod:`edge.face.quality`):

- ``max_abs_yaw`` 30°, ``max_abs_pitch`` 30°, ``max_abs_roll`` 40°: beyond these the regions are foreshortened or
  the mesh guesses; roll is undone by the alignment, so it is allowed further.
- ``min_brightness`` 40 and ``max_brightness`` 235 (mean grey level 0-255 of the inner face; a fair face in
  even light reaches 220 without losing detail),
  ``min_contrast`` 12 (standard deviation of that grey face).
- ``min_blur`` 50: variance of the Laplacian of the grey inner face warped to a fixed 64 px patch, so the
  figure hardly depends on the face's size in the frame. Measured on ``skimage.data.astronaut()`` (face ~95 px
  across): sharp ~900, Gaussian blur sigma 1.5: 120, sigma 2: 75, sigma 3: 38; the same face at 42 px: 240.
  Check it on the device's own camera (``python -m edge bench-pipeline`` prints the mean).
- ``min_landmarks_in_frame`` 0.9: share of the 478 landmarks inside the frame (mediapipe reports no per-point
  presence for the face mesh, so a face half outside the frame is how "landmarks missing" shows).

A window passes when at least ``min_face_fraction`` of its frames have the face and at most
``max_failed_fraction`` of them fail a frame check (see :mod:`edge.face.windows`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FaceConfig:
    """Settings of :class:`edge.face.FacePipeline`; the defaults suit a 640x480 camera at arm's length."""

    # mediapipe
    max_num_faces: int = 2
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    detector_fallback: bool = True  # full-range detector + mesh on an upscaled crop for small faces
    fallback_crop_scale: float = 2.2  # crop side as a multiple of the detector's box side
    fallback_crop_size: int = 256  # the crop is resized to this many pixels before meshing
    # primary face
    switch_ratio: float = 1.5  # a challenger must score this many times the current face ...
    switch_frames: int = 3  # ... for this many sampled frames in a row before the primary face changes
    # landmark smoothing (adaptive exponential moving average, in units of the inter-ocular distance)
    smooth_min_alpha: float = 0.4  # weight of the new landmarks when the face holds still (jitter only)
    smooth_motion: float = 0.05  # median movement (x eye distance) at which smoothing stops
    box_alpha: float = 0.25  # weight of the new region box size per sampled frame (slow: keeps expressions)
    # landmark jumps between consecutive sampled frames that end a window
    max_jump: float = 0.6  # median landmark move, x eye distance
    max_scale_jump: float = 1.35  # change of eye distance, as a ratio either way
    max_shape_jump: float = 0.12  # residual after a similarity fit, x eye distance (corrupt decode, warp)
    # resampling
    max_gap: float = 0.5  # seconds without frames after which the window restarts
    # frame quality
    max_abs_yaw: float = 30.0
    max_abs_pitch: float = 30.0
    max_abs_roll: float = 40.0
    min_brightness: float = 40.0
    max_brightness: float = 235.0
    min_contrast: float = 12.0
    min_blur: float = 50.0
    min_landmarks_in_frame: float = 0.9
    # window quality
    min_face_fraction: float = 0.875
    max_failed_fraction: float = 0.25
    # input frames
    min_frame_side: int = 32
