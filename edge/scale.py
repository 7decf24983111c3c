"""Severity scales: the one place that knows a scale's range and bands (DESIGN.md, "Scale is one concept").

A bundle's manifest names each output's scale (``outputs[i].units``: ``BDI-II``, ``PHQ-9``, ``PHQ-8`` or ``custom``)
and range; a custom scale may list its own bands (``output.bands``). Everything else (heads, training loss,
calibration gate, aggregation bands, payloads, the demo table) asks :func:`scale_of_output` and never writes a
scale's numbers itself.

**Several outputs.** A manifest lists one or more named outputs (``outputs``, e.g. a BDI-II and a PHQ-9 head of one
model); the first is the *primary* output, the one a summary's ``score`` carries. A manifest written before
``outputs`` existed has one ``output`` section; :func:`output_sections` reads both forms (the one place that
migrates them), so no other code looks at ``output`` itself.

**Band rule.** A published scale is a sum of integer item scores and its bands are integer ranges (BDI-II 0-13
minimal, 14-19 mild, ...). A model's estimate is continuous, so it is placed in the band of the nearest whole score,
halves rounded up: 13.49 is minimal, 13.5 is mild. Put differently, a band starts at its lowest whole score minus
0.5. A custom scale's bands are continuous cut points: a score belongs to the last band whose lower bound it
reaches. Scores are clamped to the scale's range before they are banded.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.errors import InputError

CUSTOM = "custom"


@dataclass(frozen=True)
class Band:
    """One severity band: its name and lowest score (for a published scale, its lowest whole score)."""

    name: str
    low: float


@dataclass(frozen=True)
class Scale:
    """A severity scale: name, range, bands; ``integer`` scales band the nearest whole score (module docstring)."""

    name: str
    low: float
    high: float
    bands: tuple[Band, ...] = ()
    integer: bool = False

    @property
    def span(self) -> float:
        """Width of the range."""
        return self.high - self.low

    @property
    def text(self) -> str:
        """The name :func:`parse_scale` reads back (``PHQ-9``, ``custom:0:10``); a custom scale's bands are lost."""
        return f"{CUSTOM}:{self.low:g}:{self.high:g}" if self.name == CUSTOM else self.name

    @property
    def band_names(self) -> tuple[str, ...]:
        """The bands' names, lowest first."""
        return tuple(band.name for band in self.bands)

    def clip(self, scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Scores clamped to the range."""
        return np.clip(np.asarray(scores, dtype=np.float64), self.low, self.high)

    def band_indices(self, scores: npt.ArrayLike) -> npt.NDArray[np.intp]:
        """The index of each score's band (scores clamped first; the band rule in the module docstring)."""
        if not self.bands:
            raise ValueError(f"scale {self.name} has no bands")
        cuts = [band.low - (0.5 if self.integer else 0.0) for band in self.bands]
        cuts[0] = -np.inf  # the clamped range's floor belongs to the first band
        return np.searchsorted(cuts, self.clip(scores), side="right") - 1

    def band_names_of(self, scores: npt.ArrayLike) -> list[str]:
        """The band name of each score."""
        return [self.bands[i].name for i in self.band_indices(scores)]

    def band_shares(self, scores: npt.ArrayLike) -> dict[str, float]:
        """Share of ``scores`` in each band, every band named (0.0 where none fell)."""
        indices = self.band_indices(scores)
        counts = np.bincount(indices, minlength=len(self.bands))
        return {band.name: float(counts[i]) / max(len(indices), 1) for i, band in enumerate(self.bands)}

    def band_text(self) -> str:
        """``minimal 0-13, mild 14-19, ...`` for help texts and reports."""
        step = 1.0 if self.integer else 0.0
        tops = [band.low - step for band in self.bands[1:]] + [self.high]
        return ", ".join(f"{b.name} {b.low:g}-{top:g}" for b, top in zip(self.bands, tops, strict=True))

    def manifest_output(self, name: str) -> dict[str, Any]:
        """The manifest's ``output`` section for an output ``name`` on this scale."""
        section: dict[str, Any] = {"name": name, "units": self.name, "range": [self.low, self.high]}
        if self.name == CUSTOM and self.bands:
            section["bands"] = [{"name": band.name, "low": band.low} for band in self.bands]
        return section


_PHQ_BANDS = (
    Band("none_minimal", 0),
    Band("mild", 5),
    Band("moderate", 10),
    Band("moderately_severe", 15),
    Band("severe", 20),
)
PUBLISHED: dict[str, Scale] = {
    "BDI-II": Scale(
        "BDI-II", 0.0, 63.0, (Band("minimal", 0), Band("mild", 14), Band("moderate", 20), Band("severe", 29)), True
    ),
    "PHQ-9": Scale("PHQ-9", 0.0, 27.0, _PHQ_BANDS, True),
    "PHQ-8": Scale("PHQ-8", 0.0, 24.0, _PHQ_BANDS, True),
}
"""The published scales and their severity bands (BDI-II: Beck 1996; PHQ-9/PHQ-8: Kroenke 2001/2009)."""
BDI_II = PUBLISHED["BDI-II"]
"""The scale of manifests written before scales were named (and of the demo model)."""


@dataclass(frozen=True)
class NamedScale:
    """One output of a model: its name in the manifest and its scale."""

    name: str
    scale: Scale


def output_sections(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's output sections, primary first: ``outputs``, or the single ``output`` of an older manifest."""
    if "outputs" in manifest:
        return list(manifest["outputs"])
    return [manifest["output"]]


def named_scales(manifest: dict[str, Any]) -> tuple[NamedScale, ...]:
    """Every output of a manifest as name and scale, primary first (ValueError naming a bad range)."""
    return tuple(NamedScale(str(section["name"]), scale_of_output(section)) for section in output_sections(manifest))


def manifest_outputs(outputs: Sequence[NamedScale]) -> dict[str, Any]:
    """The manifest's output part for ``outputs`` (primary first): one ``output`` section, as before, which devices of
    earlier releases also read, or ``outputs`` for two or more."""
    sections = [output.scale.manifest_output(output.name) for output in outputs]
    return {"output": sections[0]} if len(sections) == 1 else {"outputs": sections}


def scale_of_output(section: dict[str, Any]) -> Scale:
    """The scale of a manifest's ``output`` section: a published scale (its range must match) or a custom one."""
    units = str(section["units"])
    low, high = (float(v) for v in section["range"])
    if units in PUBLISHED:
        scale = PUBLISHED[units]
        if (low, high) != (scale.low, scale.high):
            raise ValueError(f"output range [{low:g}, {high:g}] is not {units}'s [{scale.low:g}, {scale.high:g}]")
        return scale
    bands = tuple(Band(str(b["name"]), float(b["low"])) for b in section.get("bands", []))
    return custom_scale(low, high, bands)


def custom_scale(low: float, high: float, bands: Sequence[Band] = ()) -> Scale:
    """A custom scale; its bands (optional) must start at ``low`` and rise inside the range."""
    if not high > low:
        raise ValueError(f"custom scale range [{low:g}, {high:g}] is empty: the top must exceed the bottom")
    lows = [band.low for band in bands]
    if bands and (lows[0] != low or any(b <= a for a, b in itertools.pairwise(lows)) or lows[-1] >= high):
        raise ValueError(f"custom bands {lows} must start at {low:g} and rise strictly below {high:g}")
    return Scale(CUSTOM, float(low), float(high), tuple(bands))


SCALE_CHOICES = "bdi-ii, phq-9, phq-8 or custom:MIN:MAX"


def parse_scale(text: str) -> Scale:
    """``bdi-ii``, ``phq-9``, ``phq-8`` (any case) or ``custom:MIN:MAX`` as a scale (InputError naming the fix)."""
    by_key = {name.lower(): scale for name, scale in PUBLISHED.items()}
    key = text.strip().lower()
    if key in by_key:
        return by_key[key]
    parts = key.split(":")
    if len(parts) == 3 and parts[0] == CUSTOM:
        try:
            return custom_scale(float(parts[1]), float(parts[2]))
        except ValueError as error:
            raise InputError(f"--scale {text!r}: {error}", fix="pass custom:MIN:MAX with MIN < MAX") from error
    raise InputError(f"--scale {text!r} is not a known scale", fix=f"pass one of {SCALE_CHOICES}")
