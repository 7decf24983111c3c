"""Measure a bundle on labelled videos the device's way: face pipeline, ``edge.preprocess``, an ``edge`` backend.

A video's score is the mean of its scored windows, as the device aggregates a session (the research's
"clustered" error). The report gives MAE, RMSE, Pearson r and Lin's CCC over videos with seeded bootstrap 95%
intervals, the same for the constant baseline (the training mean when the manifest records one, else the labels'
own mean, which flatters the baseline's competitor less than nothing but is said), the bias per severity band of
the true score, the breakdown per grouping column and the windows the quality gate refused, by reason.
A bundle of several outputs is scored once; the report's top level is its primary output (labels: ``score``), and
``outputs`` holds the same report for every further output whose labels the CSV has in a column named after it
(``phq9``; a video with an empty cell is left out of that output's report), in that output's scale (baseline: its
training mean where the manifest records one, as bundles of ``train`` checkpoints do, else those labels' mean).
Everything here runs on the engineer's machine; per-window scores are written only on explicit request.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from calibration.report import severity_bands
from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.backends import create
from edge.bundle import Bundle
from edge.errors import UsageError
from edge.preprocess import batch_windows
from edge.scale import NamedScale, Scale
from export.dataset import LabelledVideo, WindowSet, build_window_set, read_labels
from export.metrics import agreement, bland_altman

BATCH = 16
FEW_VIDEOS = 10
"""Below this many videos, bootstrap intervals and correlations say little; the report says so."""


def score_windows(
    bundle: Bundle, data: WindowSet, *, backend: str = "onnxruntime", precision: str = "fp32"
) -> tuple[npt.NDArray[np.float64], dict[str, Any]]:
    """Every window's scores ``(N, K)``, one per output, through backend ``backend`` at ``precision``, and what the
    backend ran on."""
    with create(backend, bundle, precision=precision) as runner:
        scores = [
            runner.infer_outputs(batch_windows(list(data.windows[start : start + BATCH]), bundle.input))
            for start in range(0, len(data), BATCH)
        ]
        described = runner.describe()
    return np.concatenate(scores).astype(np.float64), described


def training_mean(manifest: dict[str, Any], output: str | None = None) -> tuple[float | None, str | None]:
    """The training-label mean the manifest's model card records (top level of ``metrics`` or one section down);
    for a further ``output``, the one ``metrics.outputs.<output>`` records (``train`` checkpoints carry it)."""
    metrics = (manifest.get("model_card") or {}).get("metrics") or {}
    if output is not None:
        outputs = metrics.get("outputs")
        section = outputs.get(output) if isinstance(outputs, dict) else None
        if not isinstance(section, dict) or not isinstance(section.get("train_mean"), int | float):
            return None, None
        return float(section["train_mean"]), f"model_card.metrics.outputs.{output}.train_mean"
    if isinstance(metrics.get("train_mean"), int | float):
        return float(metrics["train_mean"]), "model_card.metrics.train_mean"
    for name, section in metrics.items():
        if isinstance(section, dict) and isinstance(section.get("train_mean"), int | float):
            return float(section["train_mean"]), f"model_card.metrics.{name}.train_mean"
    return None, None


def per_video(
    scores: npt.NDArray[np.float64], data: WindowSet
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(video indices with a scored window, their true scores, the mean of their windows' scores)."""
    videos = np.unique(data.video_index)
    truth = np.array([data.videos[v].score for v in videos], dtype=np.float64)
    predicted = np.array([scores[data.video_index == v].mean() for v in videos], dtype=np.float64)
    return videos, truth, predicted


def _errors(truth: npt.NDArray[np.float64], predicted: npt.NDArray[np.float64], baseline: float) -> dict[str, Any]:
    return {
        "videos": int(truth.size),
        "mae": float(np.mean(np.abs(predicted - truth))),
        "bias": float(np.mean(predicted - truth)),
        "baseline_mae": float(np.mean(np.abs(baseline - truth))),
    }


def by_band(
    truth: npt.NDArray[np.float64], predicted: npt.NDArray[np.float64], baseline: float, scale: Scale
) -> dict[str, Any]:
    """Errors per band of ``scale`` of the true score (regression to the mean shows as + bias low, - bias high)."""
    bands = severity_bands(truth, scale)
    order = dict.fromkeys(bands[np.argsort(truth, kind="stable")].tolist())
    return {str(band): _errors(truth[bands == band], predicted[bands == band], baseline) for band in order}


def by_group(
    data: WindowSet,
    videos: npt.NDArray[np.int64],
    truth: npt.NDArray[np.float64],
    predicted: npt.NDArray[np.float64],
    baseline: float,
) -> dict[str, dict[str, Any]]:
    """Errors per value of every grouping column, and the largest MAE gap between a column's values."""
    out: dict[str, dict[str, Any]] = {}
    for column in data.group_columns:
        values = np.array([data.videos[v].groups[column] for v in videos])
        rows = {str(value): _errors(truth[values == value], predicted[values == value], baseline)
                for value in sorted(set(values.tolist()))}  # fmt: skip
        maes = [row["mae"] for row in rows.values()]
        out[column] = {"values": rows, "mae_gap": float(max(maes) - min(maes))}
    return out


def report_of(
    bundle: Bundle,
    data: WindowSet,
    scores: npt.NDArray[np.float64],
    *,
    seed: int = 0,
    resamples: int = 2000,
    output: NamedScale | None = None,
) -> tuple[dict[str, Any], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The evaluation report of window ``scores`` of ``output`` (default: the primary one), with the per-video truth
    and predictions it rests on."""
    primary = output is None
    output = bundle.outputs[0] if output is None else output
    videos, truth, predicted = per_video(scores, data)
    recorded, where = training_mean(bundle.manifest, None if primary else output.name)
    value = float(truth.mean()) if recorded is None else recorded
    source = (
        f"training mean recorded in the manifest ({where})"
        if recorded is not None
        else "mean of these labels: the manifest records no training mean, so the baseline has seen the answers "
        "(it is harder to beat than a fair one)"
    )
    model = agreement(truth, predicted, resamples=resamples, seed=seed)
    constant = np.full_like(truth, value)
    baseline = {"value": value, "source": source, **agreement(truth, constant, resamples=resamples, seed=seed)}
    scale = output.scale
    report: dict[str, Any] = {
        "model": bundle.name,
        "bundle": str(bundle.root),
        "output": output.name,
        "units": scale.name,
        "range": [scale.low, scale.high],
        "aggregation": "a video's score is the mean of its scored windows, as the device aggregates a session",
        "videos": {"labelled": len(data.videos), "scored": int(videos.size)},
        "windows": {"scored": len(data), "rejected": data.rejected, "rejected_by_reason": data.rejected_by_reason},
        "model_metrics": model,
        "baseline": baseline,
        "beats_baseline": bool(model["mae"] < baseline["mae"]),
        "bland_altman": bland_altman(truth, predicted),
        "bootstrap": {"resamples": resamples, "seed": seed, "unit": "video", "confidence": 0.95},
        "caution": f"only {videos.size} videos: intervals and correlations are unreliable below {FEW_VIDEOS}"
        if videos.size < FEW_VIDEOS
        else None,
        "bands": by_band(truth, predicted, value, scale) if scale.bands else None,
        "groups": by_group(data, videos, truth, predicted, value),
        "notice": NOT_A_DIAGNOSTIC_DEVICE,
    }
    return report, truth, predicted


def find_video(videos: Sequence[LabelledVideo], name: str) -> int:
    """Index of the labelled video whose path or file name is ``name``; refuses an unknown one with the list."""
    for index, video in enumerate(videos):
        if name in (str(video.path), video.path.name) or Path(name).resolve() == video.path.resolve():
            return index
    listed = ", ".join(video.path.name for video in videos[:8])
    raise UsageError(f"--per-window-csv {name} is not a video of the labels CSV", fix=f"name one of: {listed}")


def write_per_window_csv(path: Path, data: WindowSet, scores: npt.NDArray[np.float64], video: int) -> int:
    """Every window of one video (start, passed or why not, score) as CSV at ``path``; returns the row count."""
    mask = data.video_index == video
    starts = data.starts if data.starts is not None else np.full(len(data), np.nan)
    rows = [(float(s), "yes", "", f"{v:.4f}") for s, v in zip(starts[mask], scores[mask], strict=True)]
    rows += [(start, "no", reason, "") for owner, start, reason in data.rejections if owner == video]
    rows.sort(key=lambda row: row[0])
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "start_s", "passed", "reject_reason", "score"])
        writer.writerows([data.videos[video].path.name, f"{start:.3f}", *rest] for start, *rest in rows)
    path.chmod(0o600)  # one person's window scores: readable by the engineer only
    return len(rows)


@dataclass(frozen=True)
class Evaluation:
    """An evaluation's report, per-video arrays and window scores (kept for the plots and the per-window CSV)."""

    report: dict[str, Any]
    truth: npt.NDArray[np.float64]
    predicted: npt.NDArray[np.float64]
    data: WindowSet
    scores: npt.NDArray[np.float64]
    """The primary output's window scores."""


def evaluate_bundle(
    bundle: Bundle,
    labels: Path,
    *,
    group_by: list[str] | None = None,
    backend: str = "onnxruntime",
    precision: str = "fp32",
    seed: int = 0,
) -> Evaluation:
    """Cut the labelled videos into windows with the device's pipeline, score them and build the report."""
    further = bundle.outputs[1:]
    videos = read_labels(labels, group_by, bundle.scale, further)
    data = build_window_set(videos, bundle.input, bundle.tiles, desc="evaluation windows")
    scores, described = score_windows(bundle, data, backend=backend, precision=precision)
    report, truth, predicted = report_of(bundle, data, scores[:, 0], seed=seed)
    report["labels"] = str(labels)
    report["backend"] = described
    report["outputs"] = [
        _further_report(bundle, data, scores[:, column], output, seed) for column, output in enumerate(further, start=1)
    ]
    return Evaluation(report, truth, predicted, data, scores[:, 0])


def _further_report(
    bundle: Bundle, data: WindowSet, scores: npt.NDArray[np.float64], output: NamedScale, seed: int
) -> dict[str, Any]:
    """The report of a further output against its label column (videos with an empty cell left out), or why there
    is none."""
    if not data.videos or output.name not in data.videos[0].further:
        return {"output": output.name, "units": output.scale.name, "evaluated": False,
                "reason": f"the labels CSV has no column {output.name!r} for this output's labels"}  # fmt: skip
    labelled, mask = data.for_output(output.name)
    if not mask.any():
        return {"output": output.name, "units": output.scale.name, "evaluated": False,
                "reason": f"no scored window's video has a label in column {output.name!r}"}  # fmt: skip
    report, _, _ = report_of(bundle, labelled, scores[mask], seed=seed, output=output)
    report["videos"]["labelled"] = sum(video.further[output.name] is not None for video in data.videos)
    return {**report, "evaluated": True}
