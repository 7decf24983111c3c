"""Refuse a degenerate model before it becomes a bundle: scores on varied real windows constant or pinned to an end.

The windows come from real videos (the repository's sample videos by default) or a calibration set, cut and
normalised by the device's own code; a model that gives them all the same score, or scores most of them at the
range's floor or ceiling, measures nothing. The classic cause: a head trained as a plain linear regression on raw
scores, exported behind the zoo's sigmoid head, which saturates at the top for every input. The verdict names the
figures and the likely cause; ``allow`` exports anyway and the manifest says so.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from edge.bundle import InputSpec, Tile
from edge.errors import BundleError, InputError
from edge.preprocess import batch_windows
from edge.scale import NamedScale, Scale

log = logging.getLogger(__name__)

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
WINDOWS_PER_VIDEO = 4
CONSTANT_SHARE = 1e-3
"""Scores whose standard deviation is below this share of the range count as constant."""
EDGE_SHARE = 0.005
"""A score within this share of the range from an end counts as pinned there..."""
PINNED_SHARE = 0.9
"""...and a model with at least this share of its scores pinned at one end is refused."""


class DegenerateModelError(BundleError):
    """The model's scores on real windows are constant or pinned to an end of the range."""


def default_videos() -> list[Path]:
    """The sample videos shipped in the repository (empty where they are not)."""
    return sorted(SAMPLES.glob("*.mp4"))


@functools.lru_cache(maxsize=4)
def _cut(spec: InputSpec, tiles: tuple[Tile, ...], videos: tuple[Path, ...], per_video: int) -> npt.NDArray[np.uint8]:
    from edge.face import FacePipeline, windows_from_video

    kept: list[npt.NDArray[np.uint8]] = []
    with FacePipeline(spec, tiles) as pipeline:
        for video in videos:
            passed = 0
            for window in windows_from_video(video, spec, tiles, pipeline=pipeline):
                if window.quality.passed:
                    kept.append(window.frames)
                    passed += 1
                if passed >= per_video:
                    break
    if not kept:
        raise InputError(
            f"none of {len(videos)} check videos gave a window that passed the quality gate",
            fix="pass --check-videos with videos of one frontal, well-lit face, or --check-calib SET",
        )
    return np.stack(kept)


def video_windows(
    spec: InputSpec, tiles: Sequence[Tile], videos: Sequence[Path], per_video: int = WINDOWS_PER_VIDEO
) -> npt.NDArray[np.uint8]:
    """Up to ``per_video`` quality-passed windows of each video, cut by the device's face pipeline (cached)."""
    return _cut(spec, tuple(tiles), tuple(Path(v).resolve() for v in videos), per_video)


def calibration_windows(path: Path, spec: InputSpec, tiles: Sequence[Tile]) -> npt.NDArray[np.uint8]:
    """The windows of a calibration set made for this input spec and mosaic."""
    from calibration.dataset import load_set

    cset = load_set(path)
    cset.check_fits(spec, tiles)
    return cset.frames


@dataclass(frozen=True)
class OutputCheck:
    """A model's scores on real windows, summarised, with the verdict."""

    source: str
    windows: int
    mean: float
    std: float
    low: float
    high: float
    at_floor: float
    at_ceiling: float
    verdict: str
    """``ok``, ``constant``, ``pinned_floor`` or ``pinned_ceiling``."""
    others: dict[str, str] = field(default_factory=dict)
    """A model of several outputs: the verdict of each output after the primary one (whose figures these are)."""

    def describe(self) -> str:
        """The figures in one clause."""
        return (
            f"on {self.windows} real windows ({self.source}) scores ran {self.low:.3g} to {self.high:.3g} "
            f"(mean {self.mean:.3g}, std {self.std:.3g}), {self.at_floor:.0%} at the range's floor, "
            f"{self.at_ceiling:.0%} at its ceiling"
        )

    def as_dict(self) -> dict[str, Any]:
        """For reports and the manifest."""
        return asdict(self)


def check_scores(scores: npt.ArrayLike, low: float, high: float, source: str) -> OutputCheck:
    """Summarise ``scores`` on the range ``[low, high]`` and give the verdict."""
    values = np.asarray(scores, dtype=np.float64)
    span = high - low
    at_floor = float(np.mean(values <= low + EDGE_SHARE * span))
    at_ceiling = float(np.mean(values >= high - EDGE_SHARE * span))
    std = float(values.std())
    if at_ceiling >= PINNED_SHARE:
        verdict = "pinned_ceiling"
    elif at_floor >= PINNED_SHARE:
        verdict = "pinned_floor"
    elif std < CONSTANT_SHARE * span:
        verdict = "constant"
    else:
        verdict = "ok"
    figures = (float(values.mean()), std, float(values.min()), float(values.max()))
    return OutputCheck(source, int(values.size), *figures, at_floor, at_ceiling, verdict)


def likely_cause(check: OutputCheck, head: str, random_layers: Sequence[str] = ()) -> str:
    """What usually makes a model fail this way, and the flag that fixes it."""
    if random_layers:
        return (
            f"{', '.join(random_layers)} hold random weights (re-initialised: another shape in the checkpoint): "
            "fine-tune first, e.g. python -m export train --init CHECKPOINT"
        )
    if head not in ("sigmoid", "linear"):  # an imported graph: its head is what it is
        return (
            "the model may predict another scale or standardised scores, or expect another input normalisation "
            "(--scale, --mean, --std), frame size or layout than given"
        )
    if check.verdict == "pinned_ceiling" and head == "sigmoid":
        return (
            "a linear head trained on raw scores exported with a sigmoid head saturates at the top: pass --head linear"
        )
    if check.verdict in ("pinned_ceiling", "pinned_floor") and head == "linear":
        return (
            "a linear head's outputs fall outside the range and are clipped: the checkpoint may have a sigmoid head "
            "(pass --head sigmoid) or predict another scale or standardised scores"
        )
    if check.verdict == "pinned_floor":
        return "the head was trained on another target (standardised or logit scores?): check --head and the scale"
    return (
        "untrained or re-initialised weights, a head of another kind (try --head linear or --head sigmoid), or a "
        "checkpoint trained on other input normalisation or frame size"
    )


def model_scores(model: nn.Module, windows: npt.NDArray[np.uint8], spec: InputSpec, batch: int = 8) -> npt.NDArray:
    """The PyTorch model's scores (eval mode) on ``windows``, normalised as the device normalises them."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(windows), batch):
            inputs = torch.from_numpy(batch_windows(list(windows[start : start + batch]), spec))
            out.append(model(inputs).numpy().reshape(-1))
    return np.concatenate(out)


def refuse_if_degenerate(check: OutputCheck, head: str, *, allow: bool, random_layers: Sequence[str] = ()) -> None:
    """Raise :class:`DegenerateModelError` for a verdict other than ``ok`` unless ``allow``."""
    if check.verdict == "ok" or allow:
        return
    raise DegenerateModelError(
        f"refusing a degenerate model ({check.verdict.replace('_', ' ')}): {check.describe()}; likely cause: "
        f"{likely_cause(check, head, random_layers)}",
        fix="fix the export options above, or pass --allow-degenerate to export anyway (the manifest records it)",
    )


@dataclass(frozen=True)
class OutputCheckSource:
    """Where the degenerate-model check takes its real windows: videos (default: the samples) or a calibration set."""

    videos: tuple[Path, ...] | None = None
    calibration_set: Path | None = None
    allow_degenerate: bool = False

    def windows(self, spec: InputSpec, tiles: tuple[Tile, ...]) -> tuple[npt.NDArray[np.uint8], str] | None:
        """(uint8 windows, description), or None when there is nothing to check on."""
        if self.calibration_set is not None:
            return calibration_windows(self.calibration_set, spec, tiles), f"calibration set {self.calibration_set}"
        videos = list(self.videos) if self.videos is not None else default_videos()
        if not videos:
            return None
        return video_windows(spec, tiles, videos), f"{len(videos)} videos, e.g. {videos[0].name}"


Scorer = Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.floating]]
"""A model's scores for a stack of uint8 windows (PyTorch for a checkpoint, ONNX Runtime for an imported file)."""


def torch_scorer(model: nn.Module, spec: InputSpec) -> Scorer:
    """:func:`model_scores` of ``model`` as a :data:`Scorer`."""
    return lambda windows: model_scores(model, windows, spec)


def check_output(
    scorer: Scorer,
    spec: InputSpec,
    tiles: tuple[Tile, ...],
    head: str,
    source: OutputCheckSource,
    random_layers: tuple[str, ...] = (),
    *,
    scale: Scale,
    more: Sequence[NamedScale] = (),
) -> OutputCheck | None:
    """Score the model on real windows and refuse it when degenerate (pinned to ``scale``'s ends or constant;
    unless allowed); None when none to use. With ``more`` outputs the scorer gives ``(N, 1 + len(more))`` scores
    and every output is checked on its own scale (the refusal names the output)."""
    found = source.windows(spec, tiles)
    if found is None:
        log.warning("no real windows to check the model's outputs on: pass --check-videos or --check-calib")
        return None
    windows, where = found
    scores = np.asarray(scorer(windows), dtype=np.float64).reshape(len(windows), 1 + len(more))
    checks = [check_scores(scores[:, 0], scale.low, scale.high, where)]
    checks += [check_scores(scores[:, i + 1], o.scale.low, o.scale.high, f"output {o.name}, {where}")
               for i, o in enumerate(more)]  # fmt: skip
    for check in checks:
        refuse_if_degenerate(check, head, allow=source.allow_degenerate, random_layers=random_layers)
        if check.verdict != "ok":
            log.warning("exporting a degenerate model as --allow-degenerate asks: %s", check.describe())
    return replace(checks[0], others={o.name: c.verdict for o, c in zip(more, checks[1:], strict=True)})
