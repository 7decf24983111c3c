"""Settings of the on-device region explanations (the ``[explain]`` section of the daemon's configuration)."""

from __future__ import annotations

from pydantic import Field, field_validator

from edge.settings_base import StrictSettings

DEFAULT_WINDOW_SHARE = 0.125
"""Measured with ``python -m edge replay samples/<clip>.mp4 --fast --json`` on the demo bundle (ONNX Runtime INT8,
2 idle cores): explaining one scored window in 8 (each costs 6 tiles x 4 frames = 24 backend runs) took
6.1-11.4% of the pipeline's time on the three sample videos, one in four 10.2-15.9% (docs/explanations.md, "Cost
on the device")."""


class ExplainSettings(StrictSettings):
    """Which region attribution runs on the device, and on how many of the scored windows."""

    enabled: bool = Field(True, description="Attribute scores to face regions (published as the summary's regions).")
    method: str = Field("occlusion", description="Explanation method (edge.explain registry): occlusion.")
    window_share: float = Field(
        DEFAULT_WINDOW_SHARE,
        gt=0,
        le=1,
        description="Share of scored windows explained, evenly spread (each costs 4 backend runs per region).",
    )

    descriptors: bool = Field(
        False,
        description="Also publish session and period means of the landmark behaviour descriptors (eye openness, "
        "brow raise, lip-corner pull, ...; edge.face.descriptors), behind the same privacy gate; withheld under DP.",
    )

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        from edge.explain import registry

        keys = sorted(registry())
        if value not in keys:
            raise ValueError(f"must be one of {', '.join(keys)}")
        return value


class EvenSampler:
    """Picks ``share`` of a stream of items, evenly spread (no randomness, so the cost bound holds exactly)."""

    def __init__(self, share: float) -> None:
        self.share = share
        self._credit = 1.0 - share  # the first item is picked

    def take(self) -> bool:
        """Whether the next item is picked."""
        self._credit += self.share
        if self._credit >= 1.0 - 1e-9:
            self._credit -= 1.0
            return True
        return False
