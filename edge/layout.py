"""The default region mosaic and input window: what export writes into a new bundle's manifest.

The default 112x112 mosaic tiles the Expresso-AI regions (eyebrows, eyes, nose, mouth) cut from the aligned
face; "left"/"right" are the subject's own, as mediapipe names its landmarks.

```
  x: 0            56      80         112
 y=0 +------------+------------------+
     | right brow | left brow        |  20 px
  20 +------------+------------------+
     | right eye  | left eye         |  32 px
  52 +------------+-------+----------+
     | mouth              | nose     |  40 px (mouth), 32 px (nose)
  84 |                    +----------+
  92 +--------------------+
     (unused: black)                    20 px
 112 +
```

Each tile has about its region's own width/height on a face (eyebrows 2.7, eyes 1.7, nose 1.0, mouth 2.1,
measured on the aligned face), so a crop widened to its tile's aspect (:mod:`edge.face.regions`) shows its region
and little of its neighbours: the first layout's nose tile (44x64) was taller than a nose and took in the upper
lip, its mouth tile (68x64) twice a mouth's height and took in the nose tip and chin, so each moved with the
other's behaviour. The nose, which carries little behaviour, has the smallest tile, so that pooled region shares
are not inflated by tile size (docs/explanations.md). The unused fifth of the mosaic stays black.
"""

from __future__ import annotations

from typing import Any

DEFAULT_FRAMES = 16
SUPPORTED_FRAMES = (16, 32, 64)
DEFAULT_SIZE = 112
DEFAULT_SAMPLE_FPS = 8.0

DEFAULT_TILES: tuple[dict[str, int | str], ...] = (
    {"region": "right_eyebrow", "x": 0, "y": 0, "width": 56, "height": 20},
    {"region": "left_eyebrow", "x": 56, "y": 0, "width": 56, "height": 20},
    {"region": "right_eye", "x": 0, "y": 20, "width": 56, "height": 32},
    {"region": "left_eye", "x": 56, "y": 20, "width": 56, "height": 32},
    {"region": "nose", "x": 80, "y": 52, "width": 32, "height": 32},
    {"region": "mouth", "x": 0, "y": 52, "width": 80, "height": 40},
)

# ImageNet statistics: the action-recognition nets Expresso-AI fine-tunes were pretrained with them.
DEFAULT_NORMALIZATION: dict[str, Any] = {
    "scale": 1.0 / 255.0,
    "mean": [0.43216, 0.394666, 0.37645],
    "std": [0.22803, 0.22145, 0.216989],
}


def default_input_section(*, layout: str, frames: int = DEFAULT_FRAMES, size: int = DEFAULT_SIZE) -> dict[str, Any]:
    """The manifest ``input`` section for a new bundle."""
    return {
        "name": "clip",
        "layout": layout,
        "frames": frames,
        "channels": 3,
        "height": size,
        "width": size,
        "dtype": "float32",
        "color_order": "RGB",
        "sample_fps": DEFAULT_SAMPLE_FPS,
        "window_stride": max(1, frames // 2),
        "normalization": dict(DEFAULT_NORMALIZATION),
    }


def default_regions_section(size: int = DEFAULT_SIZE) -> dict[str, Any]:
    """The manifest ``regions`` section: the default tiles scaled to a ``size`` x ``size`` mosaic."""
    factor = size / DEFAULT_SIZE
    tiles = []
    for tile in DEFAULT_TILES:
        x0, y0 = round(int(tile["x"]) * factor), round(int(tile["y"]) * factor)
        x1 = round((int(tile["x"]) + int(tile["width"])) * factor)
        y1 = round((int(tile["y"]) + int(tile["height"])) * factor)
        tiles.append({"region": tile["region"], "x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0})
    return {"tiles": tiles}
