"""The face pipeline facade: frames in, quality and resampled region-mosaic windows out, all in memory.

Per frame: validate (:mod:`edge.face.frames`); decide from the timestamp whether the frame is sampled
(:mod:`edge.face.windows`): frames that are not cost next to nothing. A sampled frame is converted to RGB,
meshed (:mod:`edge.face.landmarks`), its primary face chosen (:mod:`edge.face.primary`), landmarks smoothed
and checked for jumps (:mod:`edge.face.tracking`), aligned on the eyes (:mod:`edge.face.align`), cut into the
mosaic (:mod:`edge.face.regions`) and measured (:mod:`edge.face.quality`); the window buffer emits windows.
Nothing here writes a frame, crop or landmark anywhere.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np
import numpy.typing as npt

from edge.bundle.manifest import InputSpec, Tile
from edge.errors import InputError
from edge.face.align import align_to_eyes
from edge.face.config import FaceConfig
from edge.face.frames import ColorOrder, check_frame, to_rgb
from edge.face.landmarks import LandmarkDetector, Landmarks, eye_centres
from edge.face.primary import PrimaryFaceSelector
from edge.face.quality import NO_FACE, FrameQuality, frame_quality
from edge.face.regions import RegionCropper
from edge.face.tracking import LandmarkTrack
from edge.face.windows import Resampler, Sample, Window, WindowBuffer, missing_allowance

STAGES = ("convert", "mediapipe", "crops", "window")


@dataclass(frozen=True)
class FrameResult:
    """What one pushed frame produced."""

    quality: FrameQuality  # this frame's if sampled, else the last sampled frame's
    windows: list[Window]  # windows completed by this frame (usually 0 or 1)
    sampled: bool  # whether the resampler took this frame (only sampled frames are meshed)
    timestamp: float
    landmarks: Landmarks | None = None  # smoothed (478, 3) landmarks of the primary face, frame pixels
    faces: int = 0  # faces found in this frame
    mosaic: npt.NDArray[np.uint8] | None = None  # this sampled frame's (H, W, 3) RGB mosaic (the last one if no face)
    raw_landmarks: Landmarks | None = None  # the same face's landmarks before smoothing (behaviour descriptors)


@dataclass
class StageClock:
    """Seconds spent per stage since the pipeline was made (for benchmarks)."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the time spent in the ``with`` block to ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


class FacePipeline:
    """Turns a stream of camera frames into quality figures and model-ready mosaic windows.

    ``landmarks`` lets several pipelines share one set of mediapipe graphs (tests, calibration); a pipeline
    closes only the detector it made itself.
    """

    def __init__(
        self,
        input_spec: InputSpec,
        tiles: Sequence[Tile],
        config: FaceConfig | None = None,
        *,
        landmarks: LandmarkDetector | None = None,
    ) -> None:
        self.config = config or FaceConfig()
        self.input_spec = input_spec
        self._cropper = RegionCropper(tiles, input_spec.height, input_spec.width, self.config)
        self._owns_landmarks = landmarks is None
        self._landmarks = landmarks or LandmarkDetector(self.config)
        self._primary = PrimaryFaceSelector(self.config)
        self._track = LandmarkTrack(self.config, missing_allowance(input_spec.frames, self.config))
        self._resampler = Resampler(input_spec.sample_fps, self.config.max_gap)
        self._buffer = WindowBuffer(input_spec.frames, input_spec.window_stride, self._cropper.tiles, self.config)
        self._quality = NO_FACE
        self._last_mosaic = np.zeros((input_spec.height, input_spec.width, 3), dtype=np.uint8)
        self.clock = StageClock()
        self._closed = False

    @property
    def tiles(self) -> tuple[Tile, ...]:
        """The mosaic layout in use."""
        return self._cropper.tiles

    def push(self, frame: npt.NDArray[np.uint8], timestamp: float, *, color_order: ColorOrder = "BGR") -> FrameResult:
        """Feed one camera frame taken at ``timestamp`` seconds (any monotonic clock)."""
        if self._closed:
            raise InputError("the face pipeline is closed", fix="make a new FacePipeline")
        check_frame(frame, color_order, min_side=self.config.min_frame_side)
        if not math.isfinite(timestamp):
            raise InputError(f"frame timestamp {timestamp!r} is not a finite number", fix="pass seconds as a float")
        grid, restart = self._resampler.due(float(timestamp))
        if restart:  # first frame, a gap or a clock going backwards: nothing before it belongs with it
            self._buffer.cut(reject=None)
            self._track.reset()
        if not grid:
            return FrameResult(self._quality, [], False, float(timestamp))
        with self.clock.stage("convert"):
            rgb = to_rgb(frame, color_order, min_side=self.config.min_frame_side)
        with self.clock.stage("mediapipe"):
            faces = self._landmarks.detect(rgb)
        windows: list[Window] = []
        with self.clock.stage("crops"):
            height, width = rgb.shape[:2]
            index, switched = self._primary.choose(faces, width, height)
            points: Landmarks | None = None
            raw: Landmarks | None = None
            corners: dict[str, npt.NDArray[np.float32]] = {}
            if index is None:
                self._track.miss()
                quality = NO_FACE
            else:
                if switched:
                    self._track.reset()
                raw = faces[index].points
                points, jump = self._track.update(raw)
                jump = "switch" if switched else jump
                if jump is not None:
                    self._cropper.reset()
                    cut = self._buffer.cut(reject="landmark_jump")
                    windows.extend([cut] if cut is not None else [])
                to_aligned = align_to_eyes(*eye_centres(points))
                self._last_mosaic, corners = self._cropper.crop(rgb, points, to_aligned)
                quality = frame_quality(
                    rgb,
                    points,
                    to_aligned,
                    faces=len(faces),
                    source=faces[index].source,
                    jump=jump,
                    config=self.config,
                )
        with self.clock.stage("window"):
            for grid_time in grid:
                window = self._buffer.add(Sample(self._last_mosaic, float(timestamp), grid_time, quality, corners))
                windows.extend([window] if window is not None else [])
        self._quality = quality
        return FrameResult(quality, windows, True, float(timestamp), points, len(faces), self._last_mosaic, raw)

    def reset(self) -> None:
        """Drop the partial window and all tracking state (after a pause or a camera restart)."""
        self._buffer.cut(reject=None)
        self._resampler.reset()
        self._primary.reset()
        self._track.reset()
        self._cropper.reset()
        self._landmarks.reset()
        self._quality = NO_FACE
        self._last_mosaic = np.zeros_like(self._last_mosaic)

    def close(self) -> None:
        """Drop all state and release mediapipe (if this pipeline made it)."""
        if not self._closed:
            self.reset()
            if self._owns_landmarks:
                self._landmarks.close()
            self._closed = True

    def __enter__(self) -> FacePipeline:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
