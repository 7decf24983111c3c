"""The explanation of a set of videos as numbers: per video, per severity band, and the JSON document.

Bands are the output scale's bands by the device's band rule (``edge.scale``); a video falls in the band of its label
when one is given (``--labels``), else of the model's own mean score (``band_by`` says which).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.face.descriptors import DESCRIPTORS
from edge.scale import BDI_II, Scale
from export.explain.correlate import mean_correlations
from export.explain.pooling import top_region
from export.explain.video import VideoResult

CAVEAT = (
    "Attributions are associations inside the model, not causes of anyone's state; artefacts (headsets, glasses, "
    "lighting, a cropped mouth) can draw them."
)


def band_of(score: float, scale: Scale = BDI_II) -> str:
    """The band of ``scale`` a score falls in."""
    return scale.band_names_of([score])[0]


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
    out: dict[str, dict[str, Any]] = {}
    for name in scale.band_names:
        members = [r for r in results if band_of(r.label if r.label is not None else r.score, scale) == name]
        if not members:
            continue
        regions = members[0].regions
        shares = np.mean([r.shares for r in members], axis=0)
        out[name] = {
            "videos": len(members),
            "regions": {r: round(float(s), 4) for r, s in zip(regions, shares, strict=True)},
            "correlations": _rounded(mean_correlations([_finite(r.correlations) for r in members])),
        }
    return out


def _finite(values: dict[str, float | None]) -> dict[str, float]:
    return {k: float("nan") if v is None else v for k, v in values.items()}


def document(
    results: Sequence[VideoResult], *, method: str, model: str, per_window: bool, scale: Scale = BDI_II
) -> dict[str, Any]:
    """The whole explanation as a JSON-ready document; bands are ``scale``'s (the model's output)."""
    return {
        "model": model,
        "method": method,
        "band_by": "label" if all(r.label is not None for r in results) else "model score",
        "descriptors": list(DESCRIPTORS),
        "scale": scale.text,
        "videos": [video_section(r, per_window=per_window, scale=scale) for r in results],
        "bands": band_sections(results, scale),
        "caveat": CAVEAT,
        "disclaimer": NOT_A_DIAGNOSTIC_DEVICE,
    }
