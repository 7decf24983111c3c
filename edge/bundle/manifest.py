"""Typed, read-only views of a validated manifest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InputSpec:
    """What one model input window looks like and how pixels are normalised."""

    name: str
    layout: str
    frames: int
    channels: int
    height: int
    width: int
    sample_fps: float
    window_stride: int
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_manifest(cls, section: dict[str, Any]) -> InputSpec:
        """Build from the manifest's ``input`` section."""
        norm = section["normalization"]
        return cls(
            name=section["name"],
            layout=section["layout"],
            frames=int(section["frames"]),
            channels=int(section["channels"]),
            height=int(section["height"]),
            width=int(section["width"]),
            sample_fps=float(section["sample_fps"]),
            window_stride=int(section["window_stride"]),
            scale=float(norm["scale"]),
            mean=(float(norm["mean"][0]), float(norm["mean"][1]), float(norm["mean"][2])),
            std=(float(norm["std"][0]), float(norm["std"][1]), float(norm["std"][2])),
        )

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """The model input shape for a batch of one, in the manifest's layout."""
        if self.layout == "NTCHW":
            return (1, self.frames, self.channels, self.height, self.width)
        return (1, self.channels, self.frames, self.height, self.width)


@dataclass(frozen=True)
class OutputSpec:
    """The model's output: one severity value per window."""

    name: str
    units: str
    low: float
    high: float

    @classmethod
    def from_manifest(cls, section: dict[str, Any]) -> OutputSpec:
        """Build from the manifest's ``output`` section."""
        return cls(section["name"], section["units"], float(section["range"][0]), float(section["range"][1]))

    @property
    def span(self) -> float:
        """Width of the output range (63 for BDI-II)."""
        return self.high - self.low


@dataclass(frozen=True)
class Tile:
    """Where one face region is placed in the mosaic frame."""

    region: str
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Artifact:
    """One file of the bundle, as the manifest lists it."""

    path: str
    kind: str
    sha256: str
    size: int
    precision: str | None
    target: str | None
    record: dict[str, Any]

    @classmethod
    def from_manifest(cls, record: dict[str, Any]) -> Artifact:
        """Build from one entry of the manifest's ``artifacts`` list."""
        return cls(
            path=record["path"],
            kind=record["kind"],
            sha256=record["sha256"],
            size=int(record["bytes"]),
            precision=record.get("precision"),
            target=record.get("target"),
            record=record,
        )
