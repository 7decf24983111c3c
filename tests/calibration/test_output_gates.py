"""The calibration accuracy gate of a bundle of several outputs: each output in its own units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tiny_bundle import make_bundle

from calibration.pipeline import output_gates
from edge.bundle import write_manifest


def test_each_output_is_gated_at_the_same_share_of_its_own_range(tmp_path: Path) -> None:
    manifest = dict(make_bundle(tmp_path / "two").manifest)
    del manifest["output"]
    manifest["outputs"] = [
        {"name": "bdi_ii", "units": "BDI-II", "range": [0, 63]},
        {"name": "phq9", "units": "PHQ-9", "range": [0, 27]},
    ]
    bundle = write_manifest(tmp_path / "two", manifest)
    fp32 = np.array([[10.0, 5.0]] * 4)
    int8 = {"int8": fp32 + np.array([0.3, 0.5])}  # 0.3 BDI-II points pass 0.63; 0.5 PHQ-9 points fail 0.27
    bdi, phq = output_gates(bundle, fp32, int8, max_delta=0.63)
    assert (bdi["name"], bdi["passed"], phq["name"], phq["passed"]) == ("bdi_ii", True, "phq9", False)
    assert phq["max_delta"] == 0.27 and abs(phq["measured_delta"] - 0.5) < 1e-9
    assert phq["against_fp32"]["int8"]["band_agreement"] == 1.0  # 5.0 and 5.5 are both PHQ-9 'mild'
