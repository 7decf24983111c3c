"""Severity scales: published bands at their edges, the one band rule, custom scales and the manifest's output."""

from __future__ import annotations

import pytest

from edge.errors import InputError
from edge.scale import BDI_II, PUBLISHED, Band, custom_scale, parse_scale, scale_of_output

# (scale, score, band): each band's edges by the rule "nearest whole score, halves up", and out-of-range clamping
EDGES = [
    ("BDI-II", -3.0, "minimal"),
    ("BDI-II", 13.49, "minimal"),
    ("BDI-II", 13.5, "mild"),
    ("BDI-II", 19.49, "mild"),
    ("BDI-II", 19.5, "moderate"),
    ("BDI-II", 28.49, "moderate"),
    ("BDI-II", 28.5, "severe"),
    ("BDI-II", 70.0, "severe"),
    ("PHQ-9", 4.49, "none_minimal"),
    ("PHQ-9", 4.5, "mild"),
    ("PHQ-9", 9.5, "moderate"),
    ("PHQ-9", 14.49, "moderate"),
    ("PHQ-9", 14.5, "moderately_severe"),
    ("PHQ-9", 19.5, "severe"),
    ("PHQ-9", 27.0, "severe"),
    ("PHQ-8", 19.49, "moderately_severe"),
    ("PHQ-8", 24.0, "severe"),
]


@pytest.mark.parametrize(("name", "score", "band"), EDGES)
def test_published_bands_place_the_nearest_whole_score(name: str, score: float, band: str) -> None:
    assert PUBLISHED[name].band_names_of([score]) == [band]


def test_published_ranges_and_band_text() -> None:
    assert [(s.low, s.high) for s in PUBLISHED.values()] == [(0, 63), (0, 27), (0, 24)]
    assert BDI_II.band_text() == "minimal 0-13, mild 14-19, moderate 20-28, severe 29-63"
    assert PUBLISHED["PHQ-9"].band_text().endswith("moderately_severe 15-19, severe 20-27")


def test_band_shares_name_every_band() -> None:
    shares = PUBLISHED["PHQ-9"].band_shares([1.0, 2.0, 12.0, 26.0])
    assert shares == {"none_minimal": 0.5, "mild": 0.0, "moderate": 0.25, "moderately_severe": 0.0, "severe": 0.25}


def test_custom_bands_are_continuous_cut_points() -> None:
    scale = custom_scale(0.0, 1.0, [Band("low", 0.0), Band("high", 0.6)])
    assert scale.band_names_of([0.59, 0.6, 2.0]) == ["low", "high", "high"]
    with pytest.raises(ValueError, match="must start at 0"):
        custom_scale(0.0, 1.0, [Band("a", 0.2)])
    with pytest.raises(ValueError, match="is empty"):
        custom_scale(5.0, 5.0)


def test_the_manifest_output_names_the_scale_and_round_trips() -> None:
    phq = PUBLISHED["PHQ-9"]
    assert scale_of_output(phq.manifest_output("phq9")) is phq
    custom = custom_scale(0.0, 10.0, [Band("low", 0.0), Band("high", 5.0)])
    assert scale_of_output(custom.manifest_output("s")) == custom
    with pytest.raises(ValueError, match="is not PHQ-9's"):
        scale_of_output({"name": "x", "units": "PHQ-9", "range": [0, 63]})


@pytest.mark.parametrize(("text", "expected"), [("phq-9", (0, 27)), ("BDI-II", (0, 63)), ("custom:-1:4.5", (-1, 4.5))])
def test_parse_scale(text: str, expected: tuple[float, float]) -> None:
    scale = parse_scale(text)
    assert (scale.low, scale.high) == expected


@pytest.mark.parametrize(("text", "said"), [("hamd", "not a known scale"), ("custom:5:1", "is empty")])
def test_parse_scale_refuses_with_the_choices(text: str, said: str) -> None:
    with pytest.raises(InputError, match=said) as refused:
        parse_scale(text)
    assert refused.value.exit_code == 6
