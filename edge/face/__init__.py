"""The face pipeline: mediapipe landmarks, primary face, eye alignment, region mosaic, quality, windows.

```python
pipeline = FacePipeline(bundle.input, bundle.tiles)
result = pipeline.push(frame_bgr, timestamp)     # FrameResult: quality, windows, sampled
for window in result.windows:                    # Window: frames (T, H, W, 3) RGB uint8, quality
    if window.quality.passed: ...
```
Everything stays in memory: no frame, crop or landmark is written anywhere.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.face.config import FaceConfig
    from edge.face.frames import check_frame, to_rgb
    from edge.face.landmarks import FaceLandmarks, LandmarkDetector
    from edge.face.pipeline import FacePipeline, FrameResult
    from edge.face.quality import FRAME_REASONS, FrameQuality
    from edge.face.regions import REGION_LANDMARKS
    from edge.face.video import iter_video_frames, windows_from_video
    from edge.face.windows import Window, WindowQuality

# Names are imported on first use (PEP 562): mediapipe takes about a second to import, and light users of the
# package (configuration checks, ``edge.face.config``) should not pay for it.
_SOURCES = {
    "FaceConfig": "config",
    "check_frame": "frames",
    "to_rgb": "frames",
    "FaceLandmarks": "landmarks",
    "LandmarkDetector": "landmarks",
    "FacePipeline": "pipeline",
    "FrameResult": "pipeline",
    "FRAME_REASONS": "quality",
    "FrameQuality": "quality",
    "REGION_LANDMARKS": "regions",
    "iter_video_frames": "video",
    "windows_from_video": "video",
    "Window": "windows",
    "WindowQuality": "windows",
}
__all__ = [
    "FRAME_REASONS",
    "REGION_LANDMARKS",
    "FaceConfig",
    "FaceLandmarks",
    "FacePipeline",
    "FrameQuality",
    "FrameResult",
    "LandmarkDetector",
    "Window",
    "WindowQuality",
    "check_frame",
    "iter_video_frames",
    "to_rgb",
    "windows_from_video",
]


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_SOURCES[name]}"), name)
    globals()[name] = value
    return value
