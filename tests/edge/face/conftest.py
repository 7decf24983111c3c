"""Shared fixtures for the face pipeline tests: one set of mediapipe graphs, frames built from a real photo."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from face_frames import Frame

from edge.bundle import InputSpec, Tile
from edge.layout import default_input_section, default_regions_section


@pytest.fixture(scope="session")
def spec() -> InputSpec:
    """The default input section (16 frames, stride 8, 8 fps, 112x112)."""
    return InputSpec.from_manifest(default_input_section(layout="NCTHW"))


@pytest.fixture(scope="session")
def short_spec(spec: InputSpec) -> InputSpec:
    """Windows of 8 frames with stride 4, to keep mediapipe calls few."""
    return InputSpec(**{**spec.__dict__, "frames": 8, "window_stride": 4})


@pytest.fixture(scope="session")
def tiles() -> tuple[Tile, ...]:
    """The default mosaic tiles."""
    return tuple(Tile(**tile) for tile in default_regions_section()["tiles"])


@pytest.fixture(scope="session")
def astronaut() -> Frame:
    """``skimage.data.astronaut()``: a real 512x512 RGB photo, face about 95 px across near (225, 120)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="session")
def detector() -> Iterator[Any]:
    """One LandmarkDetector (three mediapipe graphs) for the whole session."""
    from edge.face import FaceConfig, LandmarkDetector

    landmarks = LandmarkDetector(FaceConfig())
    yield landmarks
    landmarks.close()


@pytest.fixture
def make_pipeline(detector: Any, spec: InputSpec, tiles: tuple[Tile, ...]) -> Callable[..., Any]:
    """Factory of FacePipelines sharing the session's mediapipe graphs, each starting from fresh tracking."""
    from edge.face import FaceConfig, FacePipeline

    def make(input_spec: InputSpec | None = None, **config: Any) -> FacePipeline:
        detector.reset()
        return FacePipeline(input_spec or spec, tiles, FaceConfig(**config), landmarks=detector)

    return make
