"""Labelled videos to model-ready windows, through the device's own face pipeline and normalisation.

A labels CSV has a ``video`` column (path, relative to the CSV or absolute), a ``score`` column (on the model's
scale: BDI-II unless told otherwise) and optionally grouping columns (sex, age band, skin tone, camera...) for the
per-group error report. Windows are cut by :func:`edge.face.windows_from_video` exactly as the device cuts them,
kept in memory as uint8 mosaics (never written anywhere), and normalised by :func:`edge.preprocess.batch_windows`
when a batch is drawn.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from edge.bundle.manifest import InputSpec, Tile
from edge.errors import InputError, UsageError
from edge.layout import default_input_section, default_regions_section
from edge.scale import BDI_II, Scale

VIDEO_COLUMN, SCORE_COLUMN = "video", "score"


@dataclass(frozen=True)
class LabelledVideo:
    """One row of a labels CSV."""

    path: Path
    score: float
    groups: dict[str, str]


def _default_groups(rows: list[dict[str, str]], columns: Sequence[str], labels: Sequence[str] = ()) -> list[str]:
    """Every extra column whose values repeat (a per-row id such as a seed is no group; nor is a label column)."""
    extra = [c for c in columns if c not in (VIDEO_COLUMN, SCORE_COLUMN, *labels)]
    return [c for c in extra if len({row[c] for row in rows}) < len(rows)]


def read_labels(
    csv_path: Path, group_columns: Sequence[str] | None = None, scale: Scale = BDI_II, label_columns: Sequence[str] = ()
) -> list[LabelledVideo]:
    """Read a labels CSV whose scores are on ``scale``; ``group_columns=None`` takes every extra column whose values
    repeat, except ``label_columns`` (the labels of a bundle's further outputs, :func:`read_output_labels`)."""
    if not csv_path.is_file():
        raise InputError(f"labels CSV {csv_path} does not exist", fix="pass the CSV written with the videos")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    missing = [c for c in (VIDEO_COLUMN, SCORE_COLUMN) if c not in columns]
    if missing or not rows:
        raise InputError(
            f"labels CSV {csv_path} lacks column(s) {', '.join(missing)} or has no rows (columns: {columns})",
            fix="give it a header with 'video' and 'score' and one row per video",
        )
    groups = _default_groups(rows, columns, label_columns) if group_columns is None else list(group_columns)
    unknown = [c for c in groups if c not in columns]
    if unknown:
        raise UsageError(f"group column(s) {', '.join(unknown)} not in {csv_path}", fix=f"use some of {columns}")
    videos = []
    for line, row in enumerate(rows, start=2):
        score = _label(row, SCORE_COLUMN, scale, f"{csv_path}:{line}", "name the labels' scale (train --scale)")
        path = Path(row[VIDEO_COLUMN])
        path = path if path.is_absolute() else csv_path.parent / path
        if not path.is_file():
            raise InputError(f"{csv_path}:{line}: video {path} does not exist", fix="fix the path or the file")
        videos.append(LabelledVideo(path, score, {c: row[c] for c in groups}))
    return videos


def read_output_labels(csv_path: Path, column: str, scale: Scale) -> list[float] | None:
    """The labels of one further output of a bundle, in the CSV's row order: the column named after the output
    (``phq9``), each on ``scale``; None when the CSV has no such column."""
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if column not in (reader.fieldnames or []):
            return None
        rows = list(reader)
    where = f"the scale of output {column} in the bundle"
    return [_label(row, column, scale, f"{csv_path}:{line}", where) for line, row in enumerate(rows, start=2)]


def _label(row: dict[str, str], column: str, scale: Scale, where: str, scale_fix: str) -> float:
    """The number in ``row[column]``, which must lie on ``scale`` (InputError naming ``where`` and the fix)."""
    try:
        value = float(row[column])
    except ValueError as exc:
        raise InputError(f"{where}: {column} {row[column]!r} is not a number", fix="fix it") from exc
    if not scale.low <= value <= scale.high:
        raise InputError(
            f"{where}: {column} {value} is outside {scale.name} {scale.low:g}-{scale.high:g}",
            fix=f"fix the label, or {scale_fix}",
        )
    return value


def default_spec(layout: str, *, frames: int, size: int) -> tuple[InputSpec, tuple[Tile, ...]]:
    """The input spec and mosaic tiles a new bundle gets (what export will write into the manifest)."""
    spec = InputSpec.from_manifest(default_input_section(layout=layout, frames=frames, size=size))
    tiles = tuple(Tile(**tile) for tile in default_regions_section(size)["tiles"])
    return spec, tiles


@dataclass(frozen=True)
class WindowSet:
    """Windows of labelled videos in memory: uint8 mosaics ``(N, T, H, W, 3)`` with their labels."""

    windows: npt.NDArray[np.uint8]
    scores: npt.NDArray[np.float32]
    video_index: npt.NDArray[np.int64]
    videos: tuple[LabelledVideo, ...]
    rejected: int  # windows the quality gate refused
    starts: npt.NDArray[np.float64] | None = None  # (N,) start of each window in its video, seconds
    rejections: tuple[tuple[int, float, str], ...] = field(default_factory=tuple)
    """(video index, start in seconds, reason) of every window the quality gate refused."""

    def __len__(self) -> int:
        return len(self.scores)

    def group_values(self, column: str) -> list[str]:
        """The value of grouping ``column`` for every window."""
        return [self.videos[i].groups[column] for i in self.video_index]

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        """How many windows the quality gate refused, by reason, most frequent first."""
        return dict(Counter(reason for _, _, reason in self.rejections).most_common())

    @property
    def group_columns(self) -> list[str]:
        """Grouping columns the videos carry."""
        return list(self.videos[0].groups) if self.videos else []


def build_window_set(
    videos: Sequence[LabelledVideo], spec: InputSpec, tiles: Sequence[Tile], *, desc: str = "windows"
) -> WindowSet:
    """Cut every video into windows with the device's face pipeline; keeps the windows that pass its quality gate."""
    from edge.face import FacePipeline, windows_from_video

    kept: list[npt.NDArray[np.uint8]] = []
    scores: list[float] = []
    owners: list[int] = []
    starts: list[float] = []
    rejections: list[tuple[int, float, str]] = []
    with FacePipeline(spec, tuple(tiles)) as pipeline:
        for index, video in enumerate(tqdm(videos, desc=desc, unit="video")):
            for window in windows_from_video(video.path, spec, tuple(tiles), pipeline=pipeline):
                if not window.quality.passed:
                    rejections.append((index, window.start, window.quality.reject_reason or "unspecified"))
                    continue
                kept.append(window.frames)
                starts.append(window.start)
                scores.append(video.score)
                owners.append(index)
    if not kept:
        raise InputError(
            f"none of {len(videos)} videos gave a window that passed the quality gate ({len(rejections)} rejected)",
            fix="check the videos show one frontal, well-lit face for at least one window length",
        )
    return WindowSet(
        windows=np.stack(kept),
        scores=np.asarray(scores, dtype=np.float32),
        video_index=np.asarray(owners, dtype=np.int64),
        videos=tuple(videos),
        rejected=len(rejections),
        starts=np.asarray(starts, dtype=np.float64),
        rejections=tuple(rejections),
    )
