"""The explanation of a set of videos as numbers: per video, per severity band, and the JSON document.

Bands are the output scale's bands by the device's band rule (``edge.scale``); a video falls in the band of its label
when one is given (``--labels``), else of the model's own mean score (``band_by`` says which). With labels, the
videos are also split as Expresso-AI splits them, by whether the model got them right: ``correct`` (mean score
within ``ERROR_TOLERANCE_SHARE`` of the scale's span of the label), ``under`` (estimated lower) or ``over`` (higher).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.face.descriptors import DESCRIPTORS
from edge.scale import BDI_II, NamedScale, Scale
from export.explain.correlate import mean_correlations
from export.explain.pooling import top_region
from export.explain.video import VideoResult

PRIMARY = NamedScale("score", BDI_II)
"""What a document explains when told nothing: one BDI-II output, as models were before outputs were named."""
ERROR_TOLERANCE_SHARE = 5.0 / 63.0
"""Share of the output scale's span within which a video's mean score counts as correct (5 BDI-II points, about 2
PHQ-9 points): a stated choice for this report, not taken from the research; set it to the error a study counts as
meaningful."""
ERROR_GROUPS = ("correct", "under", "over")

CAVEAT = (
    "Attributions are associations inside the model, not causes of anyone's state; artefacts (headsets, glasses, "
    "lighting, a cropped mouth) can draw them."
)


def band_of(score: float, scale: Scale = BDI_II) -> str:
    """The band of ``scale`` a score falls in."""
    return scale.band_names_of([score])[0]


def error_group(score: float, label: float, scale: Scale = BDI_II) -> str:
    """``correct``, ``under`` or ``over``: where ``score`` falls against ``label`` (:data:`ERROR_TOLERANCE_SHARE`)."""
    error = score - label
    return "correct" if abs(error) <= ERROR_TOLERANCE_SHARE * scale.span else ("under" if error < 0 else "over")


def _rounded(values: dict[str, float | None], digits: int = 3) -> dict[str, float | None]:
    return {k: None if v is None else round(v, digits) for k, v in values.items()}


def video_section(result: VideoResult, *, per_window: bool, scale: Scale = BDI_II) -> dict[str, Any]:
    """One video's numbers (``per_window`` adds each window's; those stay on the engineer's machine)."""
    regions = result.regions
    band_score = result.label if result.label is not None else result.score
    section: dict[str, Any] = {
        "video": result.video,
        "windows": len(result.windows),
        "score": round(result.score, 2),
        "label": result.label,
        "band": band_of(band_score, scale),
        "regions": {r: round(float(s), 4) for r, s in zip(regions, result.shares, strict=True)},
        "regions_raw": {r: float(v) for r, v in zip(regions, result.raw, strict=True)},
        "top_region": top_region(result.shares, regions),
        "correlations": _rounded(result.correlations),
    }
    if result.label is not None:
        section["prediction"] = error_group(result.score, result.label, scale)
    if per_window:
        section["per_window"] = [
            {
                "start_s": round(w.start, 3),
                "end_s": round(w.end, 3),
                "score": round(w.score, 2),
                "regions": {r: round(float(s), 4) for r, s in zip(regions, w.pooled.shares, strict=True)},
                "top_region": top_region(w.pooled.shares, regions),
                "curve": [float(v) for v in w.pooled.curve],
                "correlations": _rounded(dict(w.correlations)),
            }
            for w in result.windows
        ]
    return section


def band_sections(results: Sequence[VideoResult], scale: Scale = BDI_II) -> dict[str, dict[str, Any]]:
    """Per severity band with videos: count, mean region shares and mean correlations over its videos."""
    groups = {
        name: [r for r in results if band_of(r.label if r.label is not None else r.score, scale) == name]
        for name in scale.band_names
    }
    return {name: _group(members) for name, members in groups.items() if members}


def error_sections(results: Sequence[VideoResult], scale: Scale = BDI_II) -> dict[str, dict[str, Any]] | None:
    """Per prediction group (:data:`ERROR_GROUPS`) with videos, the same numbers as a band; None without labels."""
    if not results or any(r.label is None for r in results):
        return None
    groups = {
        g: [r for r in results if r.label is not None and error_group(r.score, r.label, scale) == g]
        for g in ERROR_GROUPS
    }
    return {name: _group(members) for name, members in groups.items() if members}


def _group(members: Sequence[VideoResult]) -> dict[str, Any]:
    shares = np.mean([r.shares for r in members], axis=0)
    return {
        "videos": len(members),
        "regions": {r: round(float(s), 4) for r, s in zip(members[0].regions, shares, strict=True)},
        "correlations": _rounded(mean_correlations([_finite(r.correlations) for r in members])),
    }


def _finite(values: dict[str, float | None]) -> dict[str, float]:
    return {k: float("nan") if v is None else v for k, v in values.items()}


def document(
    results: Sequence[VideoResult], *, method: str, model: str, per_window: bool, output: NamedScale = PRIMARY
) -> dict[str, Any]:
    """The whole explanation of one ``output`` of the model as a JSON-ready document; bands are its scale's."""
    scale = output.scale
    return {
        "model": model,
        "output": output.name,
        "method": method,
        "band_by": "label" if all(r.label is not None for r in results) else "model score",
        "descriptors": list(DESCRIPTORS),
        "scale": scale.text,
        "videos": [video_section(r, per_window=per_window, scale=scale) for r in results],
        "bands": band_sections(results, scale),
        "predictions": error_sections(results, scale),
        "error_tolerance": round(ERROR_TOLERANCE_SHARE * scale.span, 3),
        "caveat": CAVEAT,
        "disclaimer": NOT_A_DIAGNOSTIC_DEVICE,
    }
