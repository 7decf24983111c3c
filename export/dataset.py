"""Labelled videos to model-ready windows, through the device's own face pipeline and normalisation.

A labels CSV has a ``video`` column (path, relative to the CSV or absolute), a ``score`` column (on the model's
scale: BDI-II unless told otherwise; the primary output's labels for a model of several outputs), for each further
output a column named after it (``phq9``; an empty cell: that video has no label for that output) and optionally
grouping columns (sex, age band, skin tone, camera...) for the per-group error report. Windows are cut by
:func:`edge.face.windows_from_video` exactly as the device cuts them, kept in memory as uint8 mosaics (never
written anywhere), and normalised by :func:`edge.preprocess.batch_windows` when a batch is drawn.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from edge.bundle.manifest import InputSpec, Tile
from edge.errors import InputError, UsageError
from edge.layout import default_input_section, default_regions_section
from edge.scale import BDI_II, NamedScale, Scale

VIDEO_COLUMN, SCORE_COLUMN = "video", "score"


@dataclass(frozen=True)
class LabelledVideo:
    """One row of a labels CSV."""

    path: Path
    score: float
    groups: dict[str, str]
    further: dict[str, float | None] = field(default_factory=dict)
    """Labels of a model's further outputs by output name (the column named after it); None: its cell was empty."""


def _default_groups(rows: list[dict[str, str]], columns: Sequence[str], labels: Sequence[str] = ()) -> list[str]:
    """Every extra column whose values repeat (a per-row id such as a seed is no group; nor is a label column)."""
    extra = [c for c in columns if c not in (VIDEO_COLUMN, SCORE_COLUMN, *labels)]
    return [c for c in extra if len({row[c] for row in rows}) < len(rows)]


def read_labels(
    csv_path: Path,
    group_columns: Sequence[str] | None = None,
    scale: Scale = BDI_II,
    outputs: Sequence[NamedScale] = (),
    *,
    require_outputs: bool = False,
) -> list[LabelledVideo]:
    """Read a labels CSV whose scores are on ``scale``, with the labels of a model's further ``outputs`` from the
    columns named after them (each on its own scale; an empty cell is a missing label, None). A further output
    without its column is refused with ``require_outputs`` (training), else left out (evaluation says so).
    ``group_columns=None`` takes every extra column whose values repeat, except the outputs' label columns."""
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
    absent = [o.name for o in outputs if o.name not in columns]
    if absent and require_outputs:
        raise UsageError(
            f"labels CSV {csv_path} has no column {', '.join(map(repr, absent))} for the labels of output(s) "
            f"{', '.join(absent)} (columns: {columns})",
            fix="add a column named after each further output with its labels (an empty cell where a video has "
            "none), or train without that output",
        )
    present = [o for o in outputs if o.name in columns]
    labels = [o.name for o in outputs]
    groups = _default_groups(rows, columns, labels) if group_columns is None else list(group_columns)
    unknown = [c for c in groups if c not in columns]
    if unknown:
        raise UsageError(f"group column(s) {', '.join(unknown)} not in {csv_path}", fix=f"use some of {columns}")
    videos = []
    for line, row in enumerate(rows, start=2):
        where = f"{csv_path}:{line}"
        score = _label(row, SCORE_COLUMN, scale, where, "name the labels' scale (train --scale)")
        further = {o.name: _optional_label(row, o.name, o.scale, where) for o in present}
        path = Path(row[VIDEO_COLUMN])
        path = path if path.is_absolute() else csv_path.parent / path
        if not path.is_file():
            raise InputError(f"{where}: video {path} does not exist", fix="fix the path or the file")
        videos.append(LabelledVideo(path, score, {c: row[c] for c in groups}, further))
    return videos


def _optional_label(row: dict[str, str], column: str, scale: Scale, where: str) -> float | None:
    """A further output's label, None for an empty cell (that video has no label for that output)."""
    if not (row.get(column) or "").strip():
        return None
    return _label(row, column, scale, where, f"name output {column}'s scale right (train --output {column}:SCALE)")


def _label(row: dict[str, str], column: str, scale: Scale, where: str, scale_fix: str) -> float:
    """The number in ``row[column]``, which must lie on ``scale`` (InputError naming ``where`` and the fix)."""
    try:
        value = float(row[column])
    except (TypeError, ValueError) as exc:
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

    def label_matrix(self, further: Sequence[str] = ()) -> npt.NDArray[np.float32]:
        """Every window's labels ``(N, 1 + len(further))``: ``scores`` then each further output's, NaN where the
        window's video has none."""
        table = [[_nan_if_none(video.further.get(name)) for name in further] for video in self.videos]
        others = np.asarray(table, dtype=np.float32).reshape(len(self.videos), len(further))[self.video_index]
        return np.concatenate([self.scores.astype(np.float32)[:, None], others], axis=1)

    def for_output(self, name: str) -> tuple[WindowSet, npt.NDArray[np.bool_]]:
        """The windows whose video has a label for further output ``name``, relabelled with it (``scores`` and each
        video's ``score``), and the mask ``(N,)`` that picks them from this set."""
        labels = self.label_matrix([name])[:, 1]
        mask = np.isfinite(labels)
        videos = tuple(replace(v, score=_nan_if_none(v.further.get(name))) for v in self.videos)
        kept = self if mask.all() else self.subset(mask)
        return replace(kept, scores=labels[mask], videos=videos), mask

    def subset(self, mask: npt.NDArray[np.bool_]) -> WindowSet:
        """The windows ``mask`` picks (the videos and the quality gate's refusals stay as they are)."""
        starts = None if self.starts is None else self.starts[mask]
        return replace(self, windows=self.windows[mask], scores=self.scores[mask],
                       video_index=self.video_index[mask], starts=starts)  # fmt: skip

    @property
    def group_columns(self) -> list[str]:
        """Grouping columns the videos carry."""
        return list(self.videos[0].groups) if self.videos else []


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else value


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
