"""The INT8 bench section's judgements: a collapsed baseline, the peak per thread count, the verdict per count."""

from __future__ import annotations

import numpy as np

from calibration.bench import COLLAPSED_SPREAD, collapsed, render_int8_section


def test_a_near_constant_baseline_is_called_collapsed() -> None:
    fp32 = np.array([8.0, 15.0, 22.0, 31.0, 40.0])
    assert collapsed(fp32, np.full(5, 22.39))  # the demo bundle's quantize_static baseline on one held-out video
    assert collapsed(fp32, 22.39 + 0.5 * COLLAPSED_SPREAD * (fp32 - fp32.mean()))
    assert not collapsed(fp32, fp32 + 0.7)  # an offset is an error, not a collapse
    assert not collapsed(fp32, 22.39 + 2 * COLLAPSED_SPREAD * (fp32 - fp32.mean()))
    assert not collapsed(np.full(5, 20.0), np.full(5, 20.0))  # FP32 itself does not vary: nothing to tell


def _section(*, baseline_collapsed: bool) -> dict:
    metrics = {"mae": 0.1, "max_abs": 0.3}
    row = {
        "threads": 1,
        "median_ms_per_window": {"fp32": 9.0, "int8": 4.0, "quantize_static_defaults": 5.0},
        "speedup": 2.25,
        "speedup_met": False,
        "int8_gmac_per_s": 2.0,
        "int8_peak_gmac_per_s": 4.5,
        "int8_share_of_peak": 2.0 / 4.5,
    }
    return {
        "by_threads": [row],
        "peak": {"int8_gmac_per_s": 9.0, "cores": 2},
        "accuracy": {
            "held_out_windows": 6,
            "held_out_sources": 3,
            "int8": metrics,
            "quantize_static_defaults": {"mae": 32.8, "max_abs": 40.0},
            "output_std": {"fp32": 11.0, "int8": 10.9, "quantize_static_defaults": 0.0},
            "baseline_collapsed": baseline_collapsed,
        },
        "targets": {
            "speedup_at_least": 2.5,
            "speedup_met": False,
            "delta_at_most": 0.27,
            "delta_met": True,
            "units": "PHQ-9",
        },
    }


def test_a_collapsed_baseline_is_flagged_in_the_output() -> None:
    flagged = render_int8_section(_section(baseline_collapsed=True))
    assert "collapsed to a near-constant output (score std 0.000 vs FP32's 11.000" in flagged
    assert "not a fair comparison" in flagged
    assert "collapsed" not in render_int8_section(_section(baseline_collapsed=False))
    assert "6 held-out windows of 3 source(s)" in flagged and "quantize_static defaults 5.00 ms" in flagged
    assert "in PHQ-9 points" in flagged and "within 0.27 PHQ-9 points of FP32" in flagged  # the output's units
